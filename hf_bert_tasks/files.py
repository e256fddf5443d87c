"""Reading data files, shared by every task's readers: UTF-8 lines, JSON-lines records, and the error that names the
file and the line.

Every reader of the package (NER, classification, QA, the vocabulary miner) reports a malformed file with a
:class:`DataFileError` (or a task's subclass of it) whose message starts with ``"<path>:<line>: "``.
"""

from __future__ import annotations

import codecs
import json
import os
from pathlib import Path

__all__ = ["DataFileError", "PathLike", "json_records", "read_lines", "write_json"]

PathLike = str | os.PathLike


class DataFileError(ValueError):
    """A problem in a data file; the message starts with ``"<path>:<line>: "`` (or ``"<path>: "``)."""

    def __init__(self, path: PathLike, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")

    def __reduce__(self):
        # Exceptions pickle through self.args; ours has a three-argument constructor.
        return (type(self), (self.path, self.line, self.message))


def read_lines(path: PathLike, error: type[DataFileError] = DataFileError) -> list[str]:
    """The file's lines without line endings; UTF-8, BOM dropped, CRLF accepted; bad UTF-8 raises ``error``."""
    data = Path(path).read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise error(path, line, f"not valid UTF-8 ({err.reason})") from None
    # Split on "\n" only: str.splitlines would also break lines at characters such as U+2028 or U+0085.
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def json_records(path: PathLike, lines: list[str], error: type[DataFileError] = DataFileError):
    """Yield ``(line number, dict)`` for every non-blank line; malformed lines raise ``error``."""
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise error(path, lineno, f"invalid JSON: {err.msg} (column {err.colno})") from None
        if not isinstance(record, dict):
            raise error(path, lineno, f"expected a JSON object, found {type(record).__name__}")
        yield lineno, record


def write_json(path: PathLike, content) -> Path:
    """A UTF-8 JSON file (non-ASCII text kept readable), creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path
