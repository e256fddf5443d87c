"""Classification readers: files and Hub data sets to ``datasets`` rows ``line, text, [text_pair], label``.

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
    GLUE's TSV files expect), CSV uses standard quoting (fields may span lines; a quote left open, a quoted field
    running to the end of the file or over more than 100 line ends, is an error at the line where it opened).
``jsonl``
    one JSON object per line (or one JSON array of objects); a label may be a string, an integer or (multi-label) a
    list.

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

The recipes' prediction files are written here too (:func:`write_prediction_file`: TSV, or JSON lines for JSON
input).

Readers return ``datasets`` objects with columns ``line`` (int: 1-based source line, or row for Hub data), ``text``,
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from datasets import Sequence as SequenceFeature

from ..files import DataFileError, PathLike, csv_rows, json_records, predictions_path, read_lines

FORMATS = ("label_text", "text_label", "text", "tsv", "csv", "jsonl")

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
    names = read_lines(path, ClassificationDataError)
    for lineno, name in enumerate(names, 1):
        if not name.strip():
            raise ClassificationDataError(path, lineno, "blank line in a label-names file (line i names class id i-1)")
    names = [name.strip() for name in names]
    if not names:
        raise ClassificationDataError(path, None, "no label names")
    return _check_labels(names, str(path))


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
        rows = list(csv_rows(path, lines, ClassificationDataError))
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
    for lineno, record in json_records(path, lines, ClassificationDataError):
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
    lines = read_lines(path, ClassificationDataError)
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


def label_counts(dataset: Dataset) -> dict[str, int]:
    """How many texts of ``dataset`` have each label (multi-label: each set of labels, joined by ``+``): what a
    classifier trained on it can answer (the recipes refuse training data with one answer only)."""
    names = label_names_of(dataset)
    return dict(Counter("+".join(names[i] for i in label) if isinstance(label, list) else names[label]
                        for label in dataset["label"]))


def gold_label_ids(dataset: Dataset, multi_label: bool) -> np.ndarray:
    """Gold labels: ids ``(N,)``, or multi-hot ``(N, num_labels)`` for multi-label."""
    if not multi_label:
        return np.asarray(dataset["label"], dtype=np.int64)
    matrix = np.zeros((len(dataset), len(label_names_of(dataset))), dtype=np.int64)
    for row, ids in enumerate(dataset["label"]):
        matrix[row, ids] = 1
    return matrix


# ---------------------------------------------------------------------------------------------------------------
# Prediction files


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


def write_prediction_file(output_dir: PathLike, dataset: Dataset, records: Sequence[dict], labels: Sequence[str],
                          test_file: PathLike | None = None, label_delimiter: str = ",",
                          predictions_format: str | None = None) -> Path:
    """The recipes' ``test_predictions.jsonl`` (JSON input, or ``predictions_format="jsonl"``) or
    ``test_predictions.tsv`` in ``output_dir`` (:func:`write_predictions`)."""
    json_lines = None if predictions_format is None else predictions_format == "jsonl"
    path = predictions_path(output_dir, test_file, "tsv", json_lines=json_lines)
    return write_predictions(path, dataset, records, labels, label_delimiter)
