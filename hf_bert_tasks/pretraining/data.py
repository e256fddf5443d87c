"""Pretraining data: plain text, one text per line, and the splits the MLM recipe trains on.

:func:`text_lines` is the package's one plain-text reader: the corpus of ``recipes/pretrain.py``, the ``lines``
files of vocabulary mining (``vocab.read_texts``) and distillation's transfer text all go through it. A plain-text
file is UTF-8 (a BOM is dropped, bad UTF-8 is an error naming the file and the line), split at ``"\\n"`` only (a
``"\\r\\n"`` ending loses its ``"\\r"``; U+2028 and other characters that ``str.splitlines`` would break at stay inside
their text), read line by line, so that a corpus larger than memory streams. Callers decide what a blank line is:
an empty text (pretraining: it gives no chunk), nothing (mining, classification transfer text), or the end of a
document (NER transfer text).

:func:`load_texts` gives the recipe's splits: a ``text`` column, from local files (every line, blank ones included,
so that ``--max_train_samples N`` is the first N lines) or a Hub data set; ``streaming`` gives iterable splits read
as training goes.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterator, Sequence

from ..files import DataFileError, PathLike

__all__ = ["load_texts", "text_lines"]


def text_lines(path: PathLike, column: int | None = None, error: type[DataFileError] = DataFileError) -> Iterator[str]:
    """The lines of a plain-text file, without line endings, read one at a time (the module docstring).

    ``column``: the tab-separated field of each line, counting from 0 (blank lines are skipped then; a line
    without that field raises ``error`` naming its line). ``error``: the reader's :class:`DataFileError` subclass.
    """
    with open(path, "rb") as lines:
        for number, data in enumerate(lines, 1):
            if number == 1 and data.startswith(codecs.BOM_UTF8):
                data = data[len(codecs.BOM_UTF8):]
            try:
                line = data.decode("utf-8")
            except UnicodeDecodeError as err:
                raise error(path, number, f"not valid UTF-8 ({err.reason})") from None
            line = line.removesuffix("\n").removesuffix("\r")
            if column is not None:
                fields = line.split("\t")
                if len(fields) <= column:
                    if not line.strip():
                        continue
                    raise error(path, number, f"no tab-separated column {column} (columns count from 0; this line "
                                              f"has {len(fields)})")
                line = fields[column]
            yield line


def _text_rows(paths: Sequence[str], stamps: Sequence[tuple] = ()) -> Iterator[dict]:
    # `stamps` (each file's size and modification time) only make datasets' cache key change with the files.
    for path in paths:
        for line in text_lines(path):
            yield {"text": line}


def load_texts(train_files: Sequence[str] | None = None, validation_file: str | None = None,
               dataset_name: str | None = None, dataset_config_name: str | None = None, streaming: bool = False):
    """The raw text splits (``train``, ``validation``) with a ``text`` column: a ``DatasetDict``, or an
    ``IterableDatasetDict`` with ``streaming`` (each file a shard, so that processes of a multi-process run can read
    different files)."""
    import datasets

    if dataset_name:
        return datasets.load_dataset(dataset_name, dataset_config_name, streaming=streaming)
    files = {"train": list(train_files or []), "validation": [validation_file] if validation_file else []}
    files = {split: paths for split, paths in files.items() if paths}
    if not files:
        raise ValueError("pass --train_files (and --validation_file) or --dataset_name")
    features = datasets.Features({"text": datasets.Value("string")})
    dataset_class = datasets.IterableDataset if streaming else datasets.Dataset  # Dataset: written to Arrow, mapped
    splits = {}
    for split, paths in files.items():
        paths = [str(path) for path in paths]
        stamps = [(os.stat(path).st_size, os.stat(path).st_mtime_ns) for path in paths]
        splits[split] = dataset_class.from_generator(_text_rows, features=features,
                                                     gen_kwargs={"paths": paths, "stamps": stamps})
    return (datasets.IterableDatasetDict if streaming else datasets.DatasetDict)(splits)
