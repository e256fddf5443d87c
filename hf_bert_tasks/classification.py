"""Text classification (the classic `run_classifier.py` role): readers, long-document inputs, pooling, metrics and
a predictor, around transformers' own `AutoModelForSequenceClassification`.

Data (``format=`` in :func:`load_classification_dataset`; ``"auto"`` picks by file suffix: ``.csv`` csv, ``.tsv``
tsv, ``.json``/``.jsonl`` jsonl, anything else label_text):

``label_text``
    ``label<TAB>text`` lines without a header (cnews). The line is split at its first tab.
``text_label``
    ``text<TAB>label`` lines without a header (THUCNews titles), split at the last tab. Labels that are class ids
    become names through ``label_names`` (one name per line of ``class.txt``: line i names id i).
``text``
    one text per line, no label: for prediction only.
``tsv`` / ``csv``
    a header row naming the columns; TSV fields are split at tabs with no quoting at all (a quote is text, as
    GLUE's TSV files expect), CSV uses standard quoting (fields may span lines).
``jsonl``
    one JSON object per line; a label may be a string, an integer or (multi-label) a list.

For the column formats, ``label_column`` (default ``"label"``) names the label, ``text_pair_column`` an optional
second text (sentence pairs), ``text_column`` the text; when ``text_column`` is not given it is the one column
left besides the label and pair columns (so SST-2's ``label sentence`` and ``label content`` files both work),
else ``"text"``. A test file may lack the label column: it is then read unlabelled, for prediction.

Blank lines are skipped. Anything else malformed (no tab, empty text, empty label, a field count that differs from
the header, a missing column, invalid JSON) raises :class:`ClassificationDataError` whose message starts with
``"<path>:<line>: "``; nothing is skipped silently.

Labels: ``labels`` when given, else ``label_names`` (class.txt order), else the training file's labels (without a
training file: those of all files) sorted, numerically when they are all integers. Validation and test labels
outside that list are an error naming file, line and label. Multi-label (``multi_label=True``): the label field holds
labels separated by ``label_delimiter`` (default ``","``; a JSON list also works); an empty field means no label.

Readers return ``datasets`` objects with columns ``line`` (int: 1-based source line, or row for Hub data), ``text``,
``text_pair`` (only with a pair column) and ``label`` (``ClassLabel``, or a ``Sequence(ClassLabel)`` for multi-label;
absent for unlabelled files).

Model inputs (:func:`encode_texts`). ``max_length`` counts special tokens; the "room" for text is ``max_length``
minus the special tokens; a second text (``text_pair``) is kept whole when it fits in half the room, else its head
fills that half; the first text gets what is left (the "budget"). Token type ids are the tokenizer's own (0 for the
first segment, 1 for the pair in BERT). ``long_text`` says what happens to a first text longer than the budget:

``truncate``
    its first ``budget`` tokens (the classic recipe).
``head_tail``
    its first ``head_tokens`` tokens and its last ``budget - head_tokens`` tokens (Sun et al. 2019, "How to
    Fine-Tune BERT for Text Classification": head 128 + tail 382 at length 512). ``head_tokens`` defaults to a
    quarter of the budget, rounded down (127 + 383 at length 512).
``windows``
    windows of ``budget`` tokens, consecutive windows overlapping by ``stride`` tokens (capped at half the budget
    when a long pair leaves little room), so every token is in some window. Each window is an input of its own
    carrying ``example_index``, the text it came from. Training uses every window with its document's label (the
    simplest sound choice: no custom model, and each window's loss is that of an ordinary BERT classifier; longer
    documents weigh more, in proportion to their windows). Evaluation and prediction average the logits of a
    document's windows (:func:`pool_window_logits`, the mean of logits, not of probabilities) and decide on the
    mean. Texts that fit give one window in every mode, so the modes differ only on long texts.

All three modes cut the token sequence with the tokenizers library (``Encoding.truncate``, with a stride for
windows: the mechanism behind ``return_overflowing_tokens``) and add the special tokens with the tokenizer's own
post-processor, so the inputs are exactly what the tokenizer makes for that token sequence (a fast tokenizer is
required): truncation and windows equal ``tokenizer(text, pair, truncation="only_first", max_length=...,
stride=..., return_overflowing_tokens=True)`` whenever the pair fits in half the room (the tests check this), and
head + tail needs the same pieces, which is why one mechanism serves all three.
Padding is dynamic (``DataCollatorWithPadding``: to the longest input of the batch).

Metrics (:func:`classification_scores`, plain numpy, offline): accuracy (exact match of the label set for
multi-label), per-class precision/recall/F1/support, macro averages over the classes that occur in the gold labels or
the predictions (as scikit-learn does when it is not given ``labels``), support-weighted F1, micro F1 for
multi-label, and the confusion matrix (rows gold, columns predicted; per label ``[[TN, FP], [FN, TP]]`` for
multi-label). :func:`write_classification_report` writes them as JSON and the matrix as a PNG (matplotlib, the
``plots`` extra).

Prediction: :class:`TextClassifier` / :func:`classify_texts` take raw strings (any length, the model's long-text
settings) to ``{label, score, probabilities}``; the recipe's ``--do_predict`` writes the same records to TSV or
JSON lines. Single-label: softmax over the (pooled) logits, ``label`` is the argmax and ``score`` its probability.
Multi-label: sigmoid per label, ``label`` the list of labels whose probability reaches ``threshold`` (default 0.5),
most probable first, ``score`` their probabilities.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence as SequenceFeature, Value

from .data import DataFileError, NerDataError, _json_records, _read_lines

__all__ = [
    "FORMATS",
    "LONG_TEXT_MODES",
    "ClassificationDataError",
    "TextClassifier",
    "classification_scores",
    "classify_texts",
    "detect_format",
    "encode_dataset",
    "encode_texts",
    "gold_label_ids",
    "is_trained_classifier",
    "label_names_of",
    "load_classification_dataset",
    "load_classifier",
    "long_text_settings",
    "plot_confusion_matrix",
    "pool_window_logits",
    "predicted_label_ids",
    "prediction_records",
    "probabilities_from_logits",
    "read_classification_file",
    "read_label_names",
    "write_classification_report",
    "write_predictions",
]

PathLike = str | os.PathLike

FORMATS = ("label_text", "text_label", "text", "tsv", "csv", "jsonl")
LONG_TEXT_MODES = ("truncate", "head_tail", "windows")
# Used where neither the caller nor the model's config says otherwise.
DEFAULT_LONG_TEXT = {"long_text": "truncate", "max_seq_length": 128, "stride": 32, "head_tokens": None}
DEFAULT_THRESHOLD = 0.5

_SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".json": "jsonl", ".jsonl": "jsonl"}
_INTEGER = re.compile(r"-?\d+\Z")


class ClassificationDataError(DataFileError):
    """A problem in a classification data file."""


@dataclass
class _Record:
    line: int
    text: str
    text_pair: str | None
    label: str | list[str] | None  # list for multi-label; None when the file has no labels


@dataclass
class _Source:
    """The parsed records of one file (or Hub split), whether it carries labels, and where it came from."""

    where: str
    records: list[_Record]
    labelled: bool


# ---------------------------------------------------------------------------------------------------------------
# Readers


def detect_format(path: PathLike) -> str:
    """The format ``"auto"`` means for ``path``: by suffix, ``label_text`` for anything unknown (e.g. ``.txt``)."""
    return _SUFFIX_FORMATS.get(Path(path).suffix.lower(), "label_text")


def read_label_names(path: PathLike) -> list[str]:
    """Label names from a ``class.txt`` file: line i (0-based, blank lines not allowed) names class id i."""
    names = _lines(path)
    for lineno, name in enumerate(names, 1):
        if not name.strip():
            raise ClassificationDataError(path, lineno, "blank line in a label-names file (line i names class id i-1)")
    names = [name.strip() for name in names]
    if not names:
        raise ClassificationDataError(path, None, "no label names")
    return _check_labels(names, str(path))


def _lines(path: PathLike) -> list[str]:
    try:
        return _read_lines(path)
    except NerDataError as err:  # the shared reader's UTF-8 error, reworded as ours
        raise ClassificationDataError(err.path, err.line, err.message) from None


def _check_labels(labels: Sequence[str], origin: str = "labels") -> list[str]:
    labels = list(labels)
    if not labels:
        raise ValueError(f"{origin}: the label list is empty")
    if not all(isinstance(label, str) and label for label in labels):
        raise ValueError(f"{origin}: labels must be non-empty strings, got {labels!r}")
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"{origin}: duplicate labels {', '.join(duplicates)}")
    return labels


def _label_value(path, lineno, raw, multi_label: bool, delimiter: str):
    """A label field (string, integer or, multi-label, a list) as a string or a list of strings."""
    if multi_label:
        if isinstance(raw, list):
            items = raw
        elif isinstance(raw, str):
            items = raw.split(delimiter)
        else:
            items = [raw]
        labels = []
        for item in items:
            if isinstance(item, bool) or not isinstance(item, (str, int)):
                raise ClassificationDataError(path, lineno, f"label {item!r} is not a string or an integer")
            item = str(item).strip()
            if item and item not in labels:
                labels.append(item)
        return labels
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise ClassificationDataError(path, lineno, f"label {raw!r} is not a string or an integer"
                                                    " (a list needs multi_label=True)")
    label = str(raw).strip()
    if not label:
        raise ClassificationDataError(path, lineno, "empty label")
    return label


def _text_value(path, lineno, raw, what: str) -> str:
    if not isinstance(raw, str):
        raise ClassificationDataError(path, lineno, f"{what} must be a string, found {raw!r}")
    if not raw.strip():
        raise ClassificationDataError(path, lineno, f"empty {what}")
    return raw


def _parse_tab_pairs(path, lines, label_first: bool, multi_label: bool, delimiter: str) -> list[_Record]:
    layout = "label<TAB>text" if label_first else "text<TAB>label"
    records = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise ClassificationDataError(path, lineno, f"no tab: expected '{layout}', found {line[:60]!r}")
        if label_first:
            label, _, text = line.partition("\t")
        else:
            text, _, label = line.rpartition("\t")
        text = _text_value(path, lineno, text, "text")
        records.append(_Record(lineno, text, None, _label_value(path, lineno, label, multi_label, delimiter)))
    return records


def _pick_text_column(path, columns, text_column, label_column, pair_column, line=1) -> str:
    if text_column is not None:
        return text_column
    others = [c for c in columns if c not in (label_column, pair_column)]
    if len(others) == 1:
        return others[0]
    if "text" in others:
        return "text"
    raise ClassificationDataError(
        path, line, f"cannot tell the text column among {', '.join(map(repr, others))}: give text_column"
    )


def _parse_columns(path, lines, csv_quoting: bool, text_column, pair_column, label_column, require_labels,
                   multi_label, delimiter) -> tuple[list[_Record], bool]:
    if csv_quoting:
        reader = csv.reader(io.StringIO("\n".join(lines) + "\n", newline=""))
        rows = []
        start = 1
        for row in reader:
            rows.append((start, row))
            start = reader.line_num + 1
    else:
        rows = [(n, line.split("\t")) for n, line in enumerate(lines, 1)]
    rows = [(n, row) for n, row in rows if any(field.strip() for field in row)]
    if not rows:
        raise ClassificationDataError(path, None, "empty file: expected a header row naming the columns")
    header_line, header = rows[0]
    header = [name.strip() for name in header]
    if len(set(header)) != len(header) or not all(header):
        raise ClassificationDataError(path, header_line, f"the header must name every column once: {header!r}")
    text_column = _pick_text_column(path, header, text_column, label_column, pair_column, header_line)
    wanted = [text_column] + ([pair_column] if pair_column else [])
    labelled = label_column in header
    if require_labels and not labelled:
        wanted.append(label_column)
    for name in wanted:
        if name not in header:
            raise ClassificationDataError(
                path, header_line, f"no column {name!r}; the header has {', '.join(map(repr, header))}"
            )
    index = {name: i for i, name in enumerate(header)}
    records = []
    for lineno, row in rows[1:]:
        if len(row) != len(header):
            raise ClassificationDataError(
                path, lineno, f"found {len(row)} fields, but the header (line {header_line}) has {len(header)}"
            )
        text = _text_value(path, lineno, row[index[text_column]], f"text (column {text_column!r})")
        pair = _text_value(path, lineno, row[index[pair_column]], f"text pair (column {pair_column!r})") \
            if pair_column else None
        label = _label_value(path, lineno, row[index[label_column]], multi_label, delimiter) if labelled else None
        records.append(_Record(lineno, text, pair, label))
    return records, labelled


def _parse_jsonl(path, lines, text_column, pair_column, label_column, require_labels, multi_label, delimiter
                 ) -> tuple[list[_Record], bool]:
    records, labelled = [], None
    for lineno, record in _json_records(path, lines, ClassificationDataError):
        column = _pick_text_column(path, list(record), text_column, label_column, pair_column, lineno)
        if labelled is None:
            labelled = label_column in record or require_labels
        for name in [column] + ([pair_column] if pair_column else []) + ([label_column] if labelled else []):
            if name not in record:
                keys = ", ".join(map(repr, record)) or "none"
                raise ClassificationDataError(path, lineno, f"missing key {name!r} (keys: {keys})")
        text = _text_value(path, lineno, record[column], f"text ({column!r})")
        pair = _text_value(path, lineno, record[pair_column], f"text pair ({pair_column!r})") if pair_column else None
        label = _label_value(path, lineno, record[label_column], multi_label, delimiter) if labelled else None
        records.append(_Record(lineno, text, pair, label))
    return records, bool(labelled)


def _parse_file(path, format, text_column, pair_column, label_column, require_labels, multi_label, delimiter
                ) -> _Source:
    if format == "auto":
        format = detect_format(path)
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; expected 'auto' or one of {', '.join(FORMATS)}")
    if pair_column and format not in ("tsv", "csv", "jsonl"):
        raise ValueError(f"text_pair_column needs a tsv, csv or jsonl file, but {path} is read as {format!r}")
    lines = _lines(path)
    if format in ("label_text", "text_label"):
        records = _parse_tab_pairs(path, lines, format == "label_text", multi_label, delimiter)
        labelled = True
    elif format == "text":
        if require_labels:
            raise ValueError(f"{path}: format 'text' has no labels; it is for test files to predict")
        records = [_Record(n, line, None, None) for n, line in enumerate(lines, 1) if line.strip()]
        labelled = False
    elif format == "jsonl":
        records, labelled = _parse_jsonl(path, lines, text_column, pair_column, label_column, require_labels,
                                         multi_label, delimiter)
    else:
        records, labelled = _parse_columns(path, lines, format == "csv", text_column, pair_column, label_column,
                                           require_labels, multi_label, delimiter)
    if not records:
        raise ClassificationDataError(path, None, "no examples found")
    return _Source(str(path), records, labelled)


def _name_label_ids(source: _Source, names: list[str]) -> None:
    """Replace class ids (THUCNews' "0".."9") by their names from a class.txt list."""

    def name(record, label):
        if not _INTEGER.match(label) or not 0 <= int(label) < len(names):
            raise ClassificationDataError(
                source.where, record.line, f"label {label!r} is not a class id 0..{len(names) - 1} of the label names"
            )
        return names[int(label)]

    for record in source.records:
        if isinstance(record.label, list):
            record.label = [name(record, label) for label in record.label]
        elif record.label is not None:
            record.label = name(record, record.label)


def _sorted_labels(labels: Iterable[str]) -> list[str]:
    labels = set(labels)
    if labels and all(_INTEGER.match(label) for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def _record_labels(record: _Record) -> list[str]:
    return record.label if isinstance(record.label, list) else [record.label]


def _build_dataset(source: _Source, labels: list[str], multi_label: bool, label_origin: str) -> Dataset:
    index = {label: i for i, label in enumerate(labels)}
    for record in source.records if source.labelled else []:
        for label in _record_labels(record):
            if label not in index:
                raise ClassificationDataError(
                    source.where, record.line,
                    f"label {label!r} is not in the label list{label_origin}; known labels: {', '.join(labels)}",
                )
    columns = {"line": [r.line for r in source.records], "text": [r.text for r in source.records]}
    features = {"line": Value("int32"), "text": Value("string")}
    if any(r.text_pair is not None for r in source.records):
        columns["text_pair"] = [r.text_pair for r in source.records]
        features["text_pair"] = Value("string")
    if source.labelled:
        class_label = ClassLabel(names=labels)
        if multi_label:
            columns["label"] = [sorted(index[label] for label in r.label) for r in source.records]
            features["label"] = SequenceFeature(class_label)
        else:
            columns["label"] = [index[r.label] for r in source.records]
            features["label"] = class_label
    return Dataset.from_dict(columns, features=Features(features))


def _hub_sources(name, config, text_column, pair_column, label_column, multi_label, delimiter
                 ) -> tuple[dict[str, _Source], list[str] | None]:
    """Splits of ``datasets.load_dataset(name, config)`` as records, and the Hub's label names (a ClassLabel)."""
    import datasets

    raw = datasets.load_dataset(name, config)
    sources, hub_names = {}, None
    for split, dataset in raw.items():
        where = f"{name}[{split}]"
        columns = dataset.column_names
        string_columns = [c for c in columns
                          if getattr(dataset.features[c], "dtype", None) in ("string", "large_string")]
        column = text_column or _pick_text_column(where, string_columns, None, label_column, pair_column, None)
        for needed in [column] + ([pair_column] if pair_column else []):
            if needed not in columns:
                raise ValueError(f"{where}: no column {needed!r}; columns: {', '.join(columns)}")
        labelled = label_column in columns
        names = None
        if labelled:
            feature = dataset.features[label_column]
            inner = getattr(feature, "feature", feature)
            if isinstance(inner, ClassLabel):
                names = inner.names
                if hub_names is None or split == "train":
                    hub_names = names
            values = dataset[label_column]
            flat = [v for value in values for v in (value if isinstance(value, list) else [value])]
            if not multi_label and names is not None and flat and all(v == -1 for v in flat):
                labelled = False  # GLUE-style test split: every label is -1
            elif not multi_label and names is not None and -1 in flat:
                row = next(i for i, v in enumerate(values, 1) if v == -1)
                raise ClassificationDataError(where, row, "label -1 (no label) in a split that has labels")
        texts, pairs = dataset[column], dataset[pair_column] if pair_column else None
        records = []
        for row, text in enumerate(texts, 1):
            text = _text_value(where, row, text, f"text ({column!r})")
            pair = _text_value(where, row, pairs[row - 1], f"text pair ({pair_column!r})") if pairs else None
            label = None
            if labelled:
                value = values[row - 1]
                if names is not None:
                    value = [names[v] for v in value] if isinstance(value, list) else names[value]
                label = _label_value(where, row, value, multi_label, delimiter)
            records.append(_Record(row, text, pair, label))
        sources[split] = _Source(where, records, labelled)
    return sources, hub_names


def load_classification_dataset(
    train_file: PathLike | None = None,
    validation_file: PathLike | None = None,
    test_file: PathLike | None = None,
    dataset_name: str | None = None,
    dataset_config: str | None = None,
    *,
    format: str = "auto",
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str = "label",
    label_names_file: PathLike | None = None,
    labels: Sequence[str] | None = None,
    multi_label: bool = False,
    label_delimiter: str = ",",
) -> DatasetDict:
    """Read classification splits into a ``DatasetDict`` (``train``/``validation``/``test``, those given; the Hub's
    own split names for ``dataset_name``) whose ``label`` columns share one ``ClassLabel``.

    See the module docstring for the formats, the columns and the label order. The test file (and Hub splits) may be
    unlabelled; training and validation files must carry labels. A label outside the label list raises
    :class:`ClassificationDataError` naming the file, the line and the label.
    """
    if not label_delimiter:
        raise ValueError("label_delimiter must not be empty")
    files = {split: path for split, path in (("train", train_file), ("validation", validation_file),
                                             ("test", test_file)) if path is not None}
    common = dict(text_column=text_column, pair_column=text_pair_column, label_column=label_column,
                  multi_label=multi_label, delimiter=label_delimiter)
    hub_names = None
    if dataset_name is not None:
        if files:
            raise ValueError("give either dataset_name or data files, not both")
        sources, hub_names = _hub_sources(dataset_name, dataset_config, **common)
    elif files:
        sources = {split: _parse_file(path, format, require_labels=split != "test", **common)
                   for split, path in files.items()}
    else:
        raise ValueError("give train_file, validation_file or test_file, or dataset_name")

    names = read_label_names(label_names_file) if label_names_file is not None else None
    if names is not None:
        for source in sources.values():
            _name_label_ids(source, names)
    label_origin = ""
    if labels is not None:
        labels = _check_labels(labels)
    elif names is not None:
        labels, label_origin = names, f" (from {label_names_file})"
    elif hub_names is not None:
        labels = list(hub_names)
    else:
        label_splits = ["train"] if "train" in sources else list(sources)
        found = [label for split in label_splits if sources[split].labelled
                 for record in sources[split].records for label in _record_labels(record)]
        if not found:
            raise ValueError("no labels: the data carry none; give labels (or train on a labelled file)")
        labels = _sorted_labels(found)
        label_origin = " (taken from " + ", ".join(sources[split].where for split in label_splits) + ")"
    return DatasetDict({split: _build_dataset(source, labels, multi_label, label_origin)
                        for split, source in sources.items()})


def read_classification_file(path: PathLike, *, labels: Sequence[str] | None = None, require_labels: bool = True,
                             **kwargs) -> Dataset:
    """One file as a ``Dataset`` (keyword arguments as for :func:`load_classification_dataset`)."""
    split = "train" if require_labels else "test"
    return load_classification_dataset(**{f"{split}_file": path}, labels=labels, **kwargs)[split]


def label_names_of(dataset: Dataset) -> list[str]:
    """The label list of a dataset from :func:`load_classification_dataset`."""
    feature = dataset.features["label"]
    return list(getattr(feature, "feature", feature).names)


def gold_label_ids(dataset: Dataset, multi_label: bool) -> np.ndarray:
    """Gold labels: ids ``(N,)``, or multi-hot ``(N, num_labels)`` for multi-label."""
    if not multi_label:
        return np.asarray(dataset["label"], dtype=np.int64)
    matrix = np.zeros((len(dataset), len(label_names_of(dataset))), dtype=np.int64)
    for row, ids in enumerate(dataset["label"]):
        matrix[row, ids] = 1
    return matrix


# ---------------------------------------------------------------------------------------------------------------
# Model inputs: truncation, head + tail, windows


def _check_long_text(long_text: str, max_length: int, stride: int, head_tokens: int | None, specials: int) -> None:
    if long_text not in LONG_TEXT_MODES:
        raise ValueError(f"long_text must be one of {', '.join(LONG_TEXT_MODES)}, got {long_text!r}")
    room = max_length - specials
    if room < 2:
        raise ValueError(f"max_length={max_length} leaves no room for text after {specials} special tokens")
    if long_text == "windows" and not 0 <= stride < room:
        raise ValueError(f"stride ({stride}) must be at least 0 and smaller than the window ({room} tokens of text)")
    if long_text == "head_tail" and head_tokens is not None and not 0 <= head_tokens <= room:
        raise ValueError(f"head_tokens ({head_tokens}) must be between 0 and the room for text ({room})")


def _cut(encoding, budget: int, long_text: str, stride: int, head_tokens: int | None) -> list:
    """The token sequences (tokenizers ``Encoding``s, no special tokens) one text becomes."""
    from tokenizers import Encoding

    if len(encoding) <= budget:
        return [encoding]
    if long_text == "truncate":
        encoding.truncate(budget)
        return [encoding]
    if long_text == "head_tail":
        head = budget // 4 if head_tokens is None else min(head_tokens, budget)
        first = Encoding.merge([encoding])  # merging one encoding copies it; truncate works in place
        first.truncate(head)
        last = Encoding.merge([encoding])
        last.truncate(budget - head, direction="left")
        return [Encoding.merge([first, last], growing_offsets=False)]
    encoding.truncate(budget, stride=min(stride, budget // 2) if stride >= budget else stride)
    return [encoding, *encoding.overflowing]


def encode_texts(
    tokenizer,
    texts: Sequence[str],
    text_pairs: Sequence[str] | None = None,
    *,
    max_length: int = 128,
    long_text: str = "truncate",
    stride: int = 32,
    head_tokens: int | None = None,
) -> dict[str, list]:
    """Model inputs for ``texts`` (and ``text_pairs``), one row per window (see the module docstring).

    Returns lists with one entry per window: the tokenizer's model inputs (``input_ids``, ``attention_mask``,
    ``token_type_ids`` when it makes them; unpadded, at most ``max_length`` long) and ``example_index`` (the text
    each window came from, ascending). Every text gives at least one window.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{type(tokenizer).__name__} is not a fast tokenizer; long-text inputs need one")
    if text_pairs is not None and len(text_pairs) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(text_pairs)} text pairs")
    _check_long_text(long_text, max_length, stride, head_tokens, tokenizer.num_special_tokens_to_add(False))
    names = [name for name in tokenizer.model_input_names if name in ("input_ids", "attention_mask", "token_type_ids")]
    features: dict[str, list] = {name: [] for name in names}
    features["example_index"] = []
    if not len(texts):
        return features
    # No special tokens and no truncation here: the windows are cut from the whole token sequence.
    encodings = tokenizer(list(texts), add_special_tokens=False, verbose=False).encodings
    pairs = tokenizer(list(text_pairs), add_special_tokens=False, verbose=False).encodings if text_pairs is not None \
        else [None] * len(encodings)
    processor = tokenizer.backend_tokenizer.post_processor
    for example_index, (encoding, pair) in enumerate(zip(encodings, pairs)):
        room = max_length - tokenizer.num_special_tokens_to_add(pair is not None)
        if pair is not None and len(pair) > room // 2:
            pair.truncate(room // 2)
        budget = room - (len(pair) if pair is not None else 0)
        for piece in _cut(encoding, budget, long_text, stride, head_tokens):
            window = processor.process(piece, pair, True) if processor is not None else piece
            values = {"input_ids": window.ids, "attention_mask": window.attention_mask,
                      "token_type_ids": window.type_ids}
            for name in names:
                features[name].append(list(values[name]))
            features["example_index"].append(example_index)
    return features


def long_text_settings(config=None, **overrides) -> dict:
    """``long_text``, ``max_seq_length``, ``stride``, ``head_tokens``: each from ``overrides`` when not None, else
    from ``config`` (what a trained model was trained with), else the defaults (truncate, 128, 32, a quarter)."""
    settings = {}
    for key, default in DEFAULT_LONG_TEXT.items():
        value = overrides.get(key)
        if value is None and config is not None:
            value = getattr(config, key, None)
        settings[key] = default if value is None else value
    return settings


def encode_dataset(dataset: Dataset, tokenizer, *, multi_label: bool, long_text: str, max_seq_length: int,
                   stride: int, head_tokens: int | None) -> Dataset:
    """Windows of a dataset from :func:`load_classification_dataset`: model inputs, ``labels`` (the text's label
    id, or a multi-hot float vector for multi-label; only for labelled data) and ``example_index`` (row in
    ``dataset``)."""
    has_pair = "text_pair" in dataset.column_names
    labelled = "label" in dataset.column_names
    num_labels = len(label_names_of(dataset)) if labelled else 0

    def encode(batch, indices):
        windows = encode_texts(tokenizer, batch["text"], batch["text_pair"] if has_pair else None,
                               max_length=max_seq_length, long_text=long_text, stride=stride, head_tokens=head_tokens)
        if labelled:
            if multi_label:
                vectors = [[0.0] * num_labels for _ in batch["label"]]
                for vector, ids in zip(vectors, batch["label"]):
                    for i in ids:
                        vector[i] = 1.0
                windows["labels"] = [vectors[i] for i in windows["example_index"]]
            else:
                windows["labels"] = [batch["label"][i] for i in windows["example_index"]]
        windows["example_index"] = [indices[i] for i in windows["example_index"]]  # batch-relative -> dataset-wide
        return windows

    return dataset.map(encode, batched=True, with_indices=True, remove_columns=dataset.column_names,
                       desc="tokenizing")


# ---------------------------------------------------------------------------------------------------------------
# Pooling and decisions


def pool_window_logits(logits, example_index: Sequence[int], num_examples: int) -> np.ndarray:
    """Mean of the window logits of each example: ``(W, L)`` window logits and their ``(W,)`` example indices ->
    ``(num_examples, L)``. Every example must have at least one window."""
    if isinstance(logits, tuple):  # Trainer predictions of a model that also returns hidden states
        logits = logits[0]
    logits = np.asarray(logits.detach().float().cpu() if hasattr(logits, "detach") else logits, dtype=np.float64)
    example_index = np.asarray(example_index, dtype=np.int64)
    if logits.ndim != 2 or len(logits) != len(example_index):
        raise ValueError(f"expected ({len(example_index)}, num_labels) window logits, got shape {logits.shape}")
    counts = np.bincount(example_index, minlength=num_examples)
    if len(counts) > num_examples or (counts == 0).any():
        missing = np.flatnonzero(counts[:num_examples] == 0)[:5].tolist()
        raise ValueError(f"window example indices do not cover 0..{num_examples - 1} exactly (no window: {missing})")
    sums = np.zeros((num_examples, logits.shape[1]))
    np.add.at(sums, example_index, logits)
    return sums / counts[:, None]


def probabilities_from_logits(logits: np.ndarray, multi_label: bool) -> np.ndarray:
    """Softmax over labels, or an independent sigmoid per label for multi-label; ``(N, L)`` -> ``(N, L)``."""
    logits = np.asarray(logits, dtype=np.float64)
    if multi_label:
        return 0.5 * (1.0 + np.tanh(0.5 * logits))  # the sigmoid, without overflow for large |x|
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def predicted_label_ids(logits: np.ndarray, multi_label: bool, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Argmax ids ``(N,)``, or multi-hot ``(N, L)`` of the labels whose sigmoid probability reaches ``threshold``."""
    logits = np.asarray(logits)
    if multi_label:
        return (probabilities_from_logits(logits, True) >= threshold).astype(np.int64)
    return logits.argmax(axis=-1)


def prediction_records(logits: np.ndarray, labels: Sequence[str], multi_label: bool,
                       threshold: float = DEFAULT_THRESHOLD) -> list[dict]:
    """``{label, score, probabilities}`` per row of pooled logits ``(N, L)`` (see the module docstring)."""
    probabilities = probabilities_from_logits(logits, multi_label)
    records = []
    for row in probabilities:
        by_label = {label: float(p) for label, p in zip(labels, row)}
        if multi_label:
            chosen = [i for i in np.argsort(-row, kind="stable") if row[i] >= threshold]
            records.append({"label": [labels[i] for i in chosen], "score": [float(row[i]) for i in chosen],
                            "probabilities": by_label})
        else:
            best = int(row.argmax())
            records.append({"label": labels[best], "score": float(row[best]), "probabilities": by_label})
    return records


# ---------------------------------------------------------------------------------------------------------------
# Metrics


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def classification_scores(gold, predicted, labels: Sequence[str], multi_label: bool = False) -> dict:
    """Accuracy, macro and weighted F1, per-class scores and the confusion matrix.

    ``gold``/``predicted``: label ids ``(N,)``, or multi-hot ``(N, L)`` for multi-label. Per class,
    ``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)``, ``f1`` their harmonic mean, each 0 where its
    denominator is 0. ``macro_*`` average over the classes present in ``gold`` or ``predicted``; ``weighted_f1``
    weighs each class by its support. Single-label: ``accuracy`` is the share of correct predictions and
    ``confusion_matrix[g][p]`` counts examples of gold class g predicted as p. Multi-label: ``accuracy`` is the share
    of examples whose label set is exactly right, ``micro_f1`` pools TP/FP/FN over labels, and
    ``confusion_matrix[c]`` is ``[[TN, FP], [FN, TP]]`` of label c.
    """
    labels = list(labels)
    num_labels = len(labels)
    gold, predicted = np.asarray(gold, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    if gold.shape != predicted.shape:
        raise ValueError(f"gold has shape {gold.shape} but predicted has {predicted.shape}")
    if multi_label:
        if gold.ndim != 2 or gold.shape[1] != num_labels:
            raise ValueError(f"multi-label gold must be (N, {num_labels}) multi-hot, got shape {gold.shape}")
        tp = (gold & predicted).sum(0)
        fp = ((1 - gold) & predicted).sum(0)
        fn = (gold & (1 - predicted)).sum(0)
        tn = len(gold) - tp - fp - fn
        accuracy = _ratio((gold == predicted).all(axis=1).sum(), len(gold))
        matrix = [[[int(tn[c]), int(fp[c])], [int(fn[c]), int(tp[c])]] for c in range(num_labels)]
    else:
        if gold.ndim != 1:
            raise ValueError(f"single-label gold must be (N,) label ids, got shape {gold.shape}")
        for name, ids in (("gold", gold), ("predicted", predicted)):
            if len(ids) and (ids.min() < 0 or ids.max() >= num_labels):
                raise ValueError(f"{name} label ids must be in 0..{num_labels - 1}")
        confusion = np.zeros((num_labels, num_labels), dtype=np.int64)
        np.add.at(confusion, (gold, predicted), 1)
        tp = np.diag(confusion)
        fp = confusion.sum(0) - tp
        fn = confusion.sum(1) - tp
        accuracy = _ratio(tp.sum(), len(gold))
        matrix = confusion.tolist()
    support = tp + fn
    per_class = {}
    for c, label in enumerate(labels):
        precision, recall = _ratio(tp[c], tp[c] + fp[c]), _ratio(tp[c], tp[c] + fn[c])
        per_class[label] = {"precision": precision, "recall": recall,
                            "f1": _ratio(2 * precision * recall, precision + recall), "support": int(support[c])}
    present = [label for c, label in enumerate(labels) if support[c] + fp[c] > 0]
    scores = {
        "accuracy": accuracy,
        "macro_f1": _ratio(sum(per_class[c]["f1"] for c in present), len(present)),
        "macro_precision": _ratio(sum(per_class[c]["precision"] for c in present), len(present)),
        "macro_recall": _ratio(sum(per_class[c]["recall"] for c in present), len(present)),
        "weighted_f1": _ratio(sum(per_class[c]["f1"] * per_class[c]["support"] for c in labels), support.sum()),
    }
    if multi_label:
        scores["micro_f1"] = _ratio(2 * tp.sum(), 2 * tp.sum() + fp.sum() + fn.sum())
    scores.update(num_examples=int(len(gold)), labels=labels, per_class=per_class, confusion_matrix=matrix)
    return scores


def _font_for(texts: Sequence[str]) -> str | None:
    """Name of an installed font that has a glyph for every character of ``texts`` (DejaVu Sans first), or None."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    needed = {ord(ch) for text in texts for ch in text if not ch.isspace()}
    entries = sorted(font_manager.fontManager.ttflist, key=lambda f: f.name != "DejaVu Sans")
    seen = set()
    for entry in entries:
        if entry.fname in seen or not entry.fname.lower().endswith((".ttf", ".otf", ".ttc")):
            continue
        seen.add(entry.fname)
        try:
            if needed <= set(FT2Font(entry.fname).get_charmap()):
                return entry.name
        except (OSError, RuntimeError):
            continue
    return None


def plot_confusion_matrix(matrix, labels: Sequence[str], path: PathLike, title: str = "") -> Path:
    """Write a confusion-matrix heat map as PNG: ``(L, L)`` counts (rows gold, columns predicted), or for
    multi-label ``(L, 2, 2)`` per-label ``[[TN, FP], [FN, TP]]`` drawn as L rows of TN FP FN TP.

    Cells show counts; colours are row-normalised (recall for single-label). Labels are drawn with an installed font
    that has their characters; without one (e.g. Chinese labels and no CJK font) ticks show class ids and the title
    says so (the JSON report has the names).
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, no display backend

    matrix = np.asarray(matrix, dtype=np.int64)
    multi_label = matrix.ndim == 3
    ticks = list(labels)
    font = _font_for(ticks + [title])
    if font is None:
        ticks = [str(i) for i in range(len(ticks))]
        title = "labels by class id (no installed font has their characters; names in the JSON report)"
        font = "DejaVu Sans"
    if multi_label:
        matrix = matrix.reshape(len(ticks), 4)
    columns = ["TN", "FP", "FN", "TP"] if multi_label else ticks
    xlabel = "" if multi_label else "predicted"
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    size = 1.2 + 0.6 * max(len(columns), 4)
    figure = Figure(figsize=(size + 1.5, 1.2 + 0.6 * len(labels)), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    figure.colorbar(image, ax=axes, label="share of the row")
    for (r, c), count in np.ndenumerate(matrix):
        axes.text(c, r, str(count), ha="center", va="center", fontsize=8, family=font,
                  color="white" if shares[r, c] > 0.5 else "black")
    axes.set_xticks(range(len(columns)), columns, rotation=45 if xlabel else 0, ha="right" if xlabel else "center",
                    family=font)
    axes.set_yticks(range(len(ticks)), ticks, family=font)
    axes.set_xlabel(xlabel, family=font)
    axes.set_ylabel("gold" if xlabel else "label", family=font)
    axes.set_title(title, family=font, fontsize=9)
    figure.savefig(path, dpi=120)
    return Path(path)


def write_classification_report(scores: dict, output_dir: PathLike, prefix: str) -> list[Path]:
    """``{prefix}_classification_report.json`` (all of :func:`classification_scores`) and, when matplotlib is
    installed, ``{prefix}_confusion_matrix.png``. Returns the paths written."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    report = output_dir / f"{prefix}_classification_report.json"
    report.write_text(json.dumps(scores, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    written = [report]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        warnings.warn("matplotlib is not installed (pip install 'hf_bert_tasks[plots]'): no confusion-matrix PNG",
                      stacklevel=2)
        return written
    png = output_dir / f"{prefix}_confusion_matrix.png"
    written.append(plot_confusion_matrix(scores["confusion_matrix"], scores["labels"], png,
                                         title=f"{prefix}: confusion matrix"))
    return written


def write_predictions(path: PathLike, dataset: Dataset, records: Sequence[dict], labels: Sequence[str],
                      label_delimiter: str = ",") -> Path:
    """Predictions of ``dataset``'s rows as JSON lines (``.jsonl`` path: ``line``, ``text``, [``text_pair``],
    [``gold``], ``label``, ``score``, ``probabilities``) or TSV (other paths: a header, then ``line``, [``gold``],
    ``label``, ``score`` and one ``prob_<label>`` column per label; multi-label lists joined by the delimiter)."""
    path = Path(path)
    rows = list(dataset)
    gold = None
    if "label" in dataset.column_names:
        gold = [[labels[i] for i in row["label"]] if isinstance(row["label"], list) else labels[row["label"]]
                for row in rows]
    with path.open("w", encoding="utf-8") as out:
        if path.suffix == ".jsonl":
            for i, (row, record) in enumerate(zip(rows, records)):
                item = {"line": row["line"], "text": row["text"]}
                if "text_pair" in row:
                    item["text_pair"] = row["text_pair"]
                if gold is not None:
                    item["gold"] = gold[i]
                out.write(json.dumps({**item, **record}, ensure_ascii=False) + "\n")
            return path

        def joined(value):
            return label_delimiter.join(value) if isinstance(value, list) else value

        def number(value):
            return label_delimiter.join(f"{v:.6f}" for v in value) if isinstance(value, list) else f"{value:.6f}"

        header = ["line"] + (["gold"] if gold is not None else []) + ["label", "score"]
        out.write("\t".join(header + [f"prob_{label}" for label in labels]) + "\n")
        for i, (row, record) in enumerate(zip(rows, records)):
            fields = [str(row["line"])] + ([joined(gold[i])] if gold is not None else [])
            fields += [joined(record["label"]), number(record["score"])]
            fields += [f"{record['probabilities'][label]:.6f}" for label in labels]
            out.write("\t".join(fields) + "\n")
    return path


# ---------------------------------------------------------------------------------------------------------------
# Model and predictor


def is_trained_classifier(config) -> bool:
    """Whether ``config`` is a sequence classifier with real label names (not an encoder, nor transformers'
    placeholder ``LABEL_0``...), whose labels a fine-tune or a prediction must keep."""
    if not any(name.endswith("ForSequenceClassification") for name in getattr(config, "architectures", None) or []):
        return False
    names = [config.id2label[i] for i in range(config.num_labels)]
    return names != [f"LABEL_{i}" for i in range(config.num_labels)]


def load_classifier(model_name_or_path: str, labels: Sequence[str], *, multi_label: bool,
                    revision: str | None = None):
    """``AutoModelForSequenceClassification`` for ``labels``: a trained classifier as it is (its labels must be
    ``labels``, in order), an encoder with a new head whose config carries ``id2label``/``label2id`` and the
    ``problem_type`` (``multi_label_classification`` makes transformers use a BCE loss)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(model_name_or_path, revision=revision)
    problem_type = "multi_label_classification" if multi_label else "single_label_classification"
    if is_trained_classifier(config):
        model_labels = [config.id2label[i] for i in range(config.num_labels)]
        if list(labels) != model_labels:
            raise ValueError(f"{model_name_or_path} is a classifier for {model_labels}, not {list(labels)}")
        if (config.problem_type or "single_label_classification") != problem_type:
            raise ValueError(f"{model_name_or_path} was trained for {config.problem_type}, not {problem_type}")
        return AutoModelForSequenceClassification.from_pretrained(model_name_or_path, revision=revision)
    labels = list(labels)
    return AutoModelForSequenceClassification.from_pretrained(
        model_name_or_path, revision=revision, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}, problem_type=problem_type,
        ignore_mismatched_sizes=True,  # an encoder saved with another head
    )


class TextClassifier:
    """Classify raw strings of any length with a sequence-classification model and its (fast) tokenizer.

    Long-text settings (``long_text``, ``max_length``, ``stride``, ``head_tokens``) and the multi-label
    ``threshold`` default to what the model's config records (the recipe stores what it trained with), else to
    truncation at 128 tokens and 0.5. Calling returns one ``{label, score, probabilities}`` per text.
    """

    def __init__(self, model, tokenizer, *, batch_size: int = 32, long_text: str | None = None,
                 max_length: int | None = None, stride: int | None = None, head_tokens: int | None = None,
                 threshold: float | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        config = model.config
        settings = long_text_settings(config, long_text=long_text, max_seq_length=max_length, stride=stride,
                                      head_tokens=head_tokens)
        self.long_text, self.max_length = settings["long_text"], settings["max_seq_length"]
        self.stride, self.head_tokens = settings["stride"], settings["head_tokens"]
        self.multi_label = config.problem_type == "multi_label_classification"
        self.threshold = threshold if threshold is not None else getattr(config, "classification_threshold", None)
        self.threshold = DEFAULT_THRESHOLD if self.threshold is None else self.threshold
        self.labels = [config.id2label[i] for i in range(config.num_labels)]

    @classmethod
    def from_pretrained(cls, path: str, *, revision: str | None = None, device: str | None = None, **kwargs):
        """Load model and tokenizer from a folder or Hub id (keyword arguments as for the constructor)."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model = AutoModelForSequenceClassification.from_pretrained(path, revision=revision)
        tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
        if device is not None:
            model.to(device)
        return cls(model, tokenizer, **kwargs)

    def logits(self, texts: Sequence[str], text_pairs: Sequence[str] | None = None) -> np.ndarray:
        """Pooled logits ``(len(texts), num_labels)``: the mean over each text's windows."""
        import torch

        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text {i} is a {type(text).__name__}, not a str")
        features = encode_texts(self.tokenizer, texts, text_pairs, max_length=self.max_length,
                                long_text=self.long_text, stride=self.stride, head_tokens=self.head_tokens)
        example_index = features.pop("example_index")
        n = len(example_index)
        window_logits = np.zeros((n, len(self.labels)))
        device = next(self.model.parameters()).device
        order = sorted(range(n), key=lambda i: len(features["input_ids"][i]))  # similar lengths pad little
        with torch.no_grad():
            for begin in range(0, n, self.batch_size):
                chunk = order[begin : begin + self.batch_size]
                batch = self.tokenizer.pad([{k: v[i] for k, v in features.items()} for i in chunk],
                                           return_tensors="pt")
                logits = self.model(**{k: v.to(device) for k, v in batch.items()}).logits
                window_logits[chunk] = logits.float().cpu().numpy()
        return pool_window_logits(window_logits, example_index, len(texts))

    def __call__(self, texts: str | Sequence[str], text_pairs: str | Sequence[str] | None = None):
        """``{label, score, probabilities}`` for one text, or a list of them for a list of texts."""
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        pairs = None if text_pairs is None else ([text_pairs] if isinstance(text_pairs, str) else list(text_pairs))
        records = prediction_records(self.logits(batch, pairs), self.labels, self.multi_label, self.threshold)
        return records[0] if single else records


def classify_texts(model_or_path, texts: Sequence[str], text_pairs: Sequence[str] | None = None, *,
                   tokenizer=None, **kwargs) -> list[dict]:
    """Classify raw strings: ``model_or_path`` is a folder / Hub id, or a loaded model (then ``tokenizer`` too, or
    it is loaded from the model's ``name_or_path``). Keyword arguments go to :class:`TextClassifier`."""
    if isinstance(model_or_path, (str, os.PathLike)):
        classifier = TextClassifier.from_pretrained(str(model_or_path), **kwargs)
    else:
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(model_or_path.config.name_or_path)
        classifier = TextClassifier(model_or_path, tokenizer, **kwargs)
    return classifier(list(texts), None if text_pairs is None else list(text_pairs))


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m hf_bert_tasks.classification MODEL TEXT [TEXT ...]``: print each text's prediction as JSON."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("model", help="model folder or Hub id")
    parser.add_argument("texts", nargs="+", help="texts to classify (any length)")
    parser.add_argument("--long_text", choices=LONG_TEXT_MODES, default=None, help="default: the model's setting")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    args = parser.parse_args(argv)
    classifier = TextClassifier.from_pretrained(args.model, revision=args.revision, long_text=args.long_text)
    for text, record in zip(args.texts, classifier(args.texts)):
        print(json.dumps({"text": text, **record}, ensure_ascii=False))


if __name__ == "__main__":
    main()
