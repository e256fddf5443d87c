"""A recipe's `--help` in milliseconds: the text argparse renders is kept in a file the first time and printed from
there afterwards, before the recipe imports anything else. Rendering it needs `TrainingArguments`, whose import
(transformers, torch, peft, accelerate) takes several seconds.

The file is named by a hash of everything the text depends on: the recipe's source, the package's sources (the
argument dataclasses the recipes share), the versions of the libraries that define `TrainingArguments`, the program
name and the terminal width (argparse wraps to it). Any change renders the help again. The files live in
`$HF_HOME/hf_bert_tasks/help/` (default `~/.cache/huggingface`); where that cannot be written, `--help` is rendered
every time. Standard library only: it runs before a recipe's other imports.
"""

import hashlib
import os
import shutil
import sys
from importlib import metadata
from pathlib import Path

HELP_FLAGS = ("-h", "--help")
LIBRARIES = ("transformers", "torch", "peft", "accelerate")


def asks_for_help(argv: list[str]) -> bool:
    """Whether argparse would print the help for these arguments (a help flag before any `--`)."""
    options = argv[: argv.index("--")] if "--" in argv else argv
    return any(flag in options for flag in HELP_FLAGS)


def _version(library: str) -> str:
    try:
        return metadata.version(library)
    except metadata.PackageNotFoundError:
        return "absent"


def help_file(script: str) -> Path:
    """The cache file of `script`'s help as it would be rendered now."""
    digest = hashlib.sha256()
    for source in (Path(script), *sorted(Path(__file__).parent.rglob("*.py"))):
        digest.update(source.read_bytes())
    for library in LIBRARIES:
        digest.update(f"{library}={_version(library)};".encode())
    digest.update(f"{os.path.basename(script)};{shutil.get_terminal_size().columns}".encode())
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hf_bert_tasks" / "help" / f"{Path(script).stem}-{digest.hexdigest()[:20]}.txt"


def print_cached_help() -> None:
    """Print the running script's help and exit when it is asked for and cached; otherwise return."""
    script = sys.argv[0]
    if not (asks_for_help(sys.argv[1:]) and os.path.isfile(script)):
        return
    path = help_file(script)
    if path.is_file():
        sys.stdout.write(path.read_text(encoding="utf-8"))
        sys.exit(0)


def save_help(text: str) -> None:
    """Keep the running script's rendered help for :func:`print_cached_help` (written whole, or not at all)."""
    script = sys.argv[0]
    if not os.path.isfile(script):
        return
    path = help_file(script)
    part = path.with_name(f"{path.name}.{os.getpid()}.part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        part.write_text(text, encoding="utf-8")
        os.replace(part, path)
    except OSError:  # a read-only cache: the help is rendered each time
        pass
