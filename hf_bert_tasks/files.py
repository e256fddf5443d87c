"""Reading files, shared by every task: data files (UTF-8 lines, JSON-lines records or one JSON array of records, CSV
rows, and the error that names the file and the line) and a model folder's tokenizer (the check every predictor makes
before loading one, :func:`load_tokenizer`, which names the files a folder lacks).

The line-based readers (NER, classification, the vocabulary miner's plain lines) report a malformed file with a
:class:`DataFileError` (or a task's subclass of it) whose message starts with ``"<path>:<line>: "``. QA is the
exception: a SQuAD file is one JSON document, so its reader points at questions, not lines, and raises
``qa.data.QaDataError`` (a ``ValueError``, not a ``DataFileError``) naming the file or Hub split and the question
ids; one of its errors (a training question without an answer, found while building windows) names no file at all.
"""

from __future__ import annotations

import bisect
import codecs
import csv
import io
import json
import os
from pathlib import Path

__all__ = ["MAX_FIELD_LINE_ENDS", "TOKENIZER_VOCABULARIES", "DataFileError", "PathLike", "check_tokenizer_files",
           "csv_rows", "json_records", "load_tokenizer", "predictions_path", "read_lines", "write_json"]

PathLike = str | os.PathLike

# A quoted CSV field holding more line ends than this is taken for a quote left open (it would swallow the rows
# after it into one field).
MAX_FIELD_LINE_ENDS = 100
_JSON_SPACE = " \t\r\n"


def _json_type(value) -> str:
    """The JSON name of a decoded value's type ("object", "array", "string", ...)."""
    names = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


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
    """Yield ``(line number, dict)`` for every record: JSON lines (one object a line, blank lines skipped), or one JSON
    array of objects (a file whose first non-blank character is ``[``; the line is where each object starts).
    Malformed records raise ``error`` at their line."""
    first = next((line.lstrip(_JSON_SPACE) for line in lines if line.strip(_JSON_SPACE)), "")
    if first.startswith("["):
        yield from _json_array_records(path, lines, error)
        return
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            hint = _json_lines_hint(lines)
            raise error(path, lineno, f"invalid JSON: {err.msg} (column {err.colno}){hint}") from None
        if not isinstance(record, dict):
            raise error(path, lineno, f"expected a JSON object, found {_json_type(record)}")
        yield lineno, record


def _json_lines_hint(lines: list[str]) -> str:
    """What a file that is not JSON lines holds instead, when it is one JSON value over several lines."""
    try:
        value = json.loads("\n".join(lines))
    except json.JSONDecodeError:
        return ""
    return (f"; expected JSON lines (one object a line), found one JSON {_json_type(value)} over "
            f"{len(lines)} lines")


def _json_array_records(path: PathLike, lines: list[str], error: type[DataFileError]):
    """The objects of a file holding one JSON array, each with the line where it starts."""
    text = "\n".join(lines)
    line_starts = [0] + [i + 1 for i, char in enumerate(text) if char == "\n"]

    def line_of(position: int) -> int:
        return bisect.bisect_right(line_starts, position)

    def skip_space(position: int) -> int:
        while position < len(text) and text[position] in _JSON_SPACE:
            position += 1
        return position

    decoder = json.JSONDecoder()
    position = skip_space(skip_space(0) + 1)  # past "["
    closed = position < len(text) and text[position] == "]"
    if closed:
        position += 1
    while not closed:
        if position >= len(text):
            raise error(path, len(lines), "the JSON array is not closed before the end of the file")
        try:
            record, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as err:
            raise error(path, err.lineno, f"invalid JSON in the array: {err.msg} (column {err.colno})") from None
        if not isinstance(record, dict):
            raise error(path, line_of(position), f"expected a JSON object, found {_json_type(record)}")
        yield line_of(position), record
        position = skip_space(end)
        if position >= len(text):
            raise error(path, len(lines), "the JSON array is not closed before the end of the file")
        if text[position] not in (",", "]"):
            raise error(path, line_of(position), "invalid JSON in the array: expected ',' or ']' after an object")
        closed = text[position] == "]"
        position = skip_space(position + 1)
    position = skip_space(position)
    if position < len(text):
        raise error(path, line_of(position), "text after the end of the JSON array")


def csv_rows(path: PathLike, lines: list[str], error: type[DataFileError] = DataFileError,
             max_field_line_ends: int = MAX_FIELD_LINE_ENDS):
    """Yield ``(first line, fields)`` of every CSV row (standard quoting; a quoted field may hold line ends).

    A quote left open would swallow the rest of the file into one field, so a quoted field that runs to the end of
    the file, or over more than ``max_field_line_ends`` line ends, raises ``error`` at the line where the quote
    opened; so does malformed quoting (``"a"b``)."""
    reader = csv.reader(io.StringIO("\n".join(lines) + "\n", newline=""), strict=True)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            if str(err) == "unexpected end of data":
                # Read the unfinished row again, leniently, to find the field that is still open.
                row = next(csv.reader(io.StringIO("\n".join(lines[start - 1 :]) + "\n", newline="")))
                opened = start + sum(field.count("\n") for field in row[:-1])
                raise error(path, opened, "a quoted field opens here and is not closed before the end of the file "
                                          "(a quote left open?)") from None
            began = f" (the row began at line {start}: a quote left open there?)" if reader.line_num > start else ""
            raise error(path, reader.line_num, f"malformed CSV: {err}{began}") from None
        opened = start
        for field in row:
            line_ends = field.count("\n")
            if line_ends > max_field_line_ends:
                raise error(path, opened, f"a quoted field opens here and runs over {line_ends} line ends (to line "
                                          f"{opened + line_ends}); more than {max_field_line_ends} is taken for a "
                                          "quote left open")
            opened += line_ends
        yield start, row
        start = reader.line_num + 1


def write_json(path: PathLike, content) -> Path:
    """A UTF-8 JSON file (non-ASCII text kept readable), creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path


# A tokenizer folder holds one vocabulary file of these (and tokenizer_config.json); hub.py checks pushes with it too.
TOKENIZER_VOCABULARIES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                          "tokenizer.model")


def check_tokenizer_files(path: PathLike) -> None:
    """Raise ``FileNotFoundError`` when the local folder ``path`` holds no tokenizer, naming the folder, the files a
    tokenizer needs and the files it has. transformers would otherwise try to convert a slow tokenizer and fail with
    "Couldn't instantiate the backend tokenizer ... You need to have sentencepiece or tiktoken installed". A Hub id
    (no such folder here) is left to transformers."""
    folder = Path(path)
    if not folder.is_dir():
        return
    if any((folder / name).is_file() for name in TOKENIZER_VOCABULARIES) or any(folder.glob("*.model")):
        return
    present = sorted(p.name for p in folder.iterdir())
    raise FileNotFoundError(
        f"{folder} has no tokenizer files: expected tokenizer.json (or vocab.txt for WordPiece, vocab.json with "
        f"merges.txt for BPE, a sentencepiece *.model); the folder holds {', '.join(present) or 'nothing'}. Save "
        "the tokenizer next to the model (tokenizer.save_pretrained(folder)), as the recipes do"
    )


def load_tokenizer(path: PathLike, **kwargs):
    """``AutoTokenizer.from_pretrained(path, **kwargs)`` after :func:`check_tokenizer_files`."""
    from transformers import AutoTokenizer

    check_tokenizer_files(path)
    return AutoTokenizer.from_pretrained(path, **kwargs)


def predictions_path(output_dir: PathLike, test_file: PathLike | None, text_suffix: str,
                     json_lines: bool | None = None) -> Path:
    """Where a recipe writes its test predictions, the rule of every task: ``test_predictions.jsonl`` in
    ``output_dir`` for JSON input, else ``test_predictions.<text_suffix>``. ``json_lines`` says which (a reader that
    detected the format knows); None: JSON when ``test_file`` ends with ``.json`` or ``.jsonl``."""
    if json_lines is None:
        json_lines = test_file is not None and Path(test_file).suffix.lower() in (".json", ".jsonl")
    return Path(output_dir) / f"test_predictions.{'jsonl' if json_lines else text_suffix}"
