"""Readers that turn NER files into `datasets.Dataset` objects, one row per sentence.

Formats (``format=`` names in :func:`load_ner_dataset`):

``conll``
    CoNLL column files (CoNLL-2003 and friends): one token per line, columns separated by whitespace (or by
    ``separator``), token first, tag in ``tag_column`` (default: the last column); every token line has the same
    number of columns; a blank line ends a sentence. ``-DOCSTART-`` lines are document boundaries, never rows; they
    may come before each document (the usual layout) or after it (the shared CoNLL-2003 copy); documents are
    numbered in file order, ``document_id = "<file stem>-<n>"`` with n from 0. A file without ``-DOCSTART-`` is one
    document (``"<file stem>-0"``) and a :class:`NerDataWarning` says so.
``char``
    Chinese character-per-line files, ``char<TAB>tag`` or ``char tag`` (MSRA in BIO, Resume in BMES); a blank line
    ends a sentence. The files carry no document marks, so all sentences of a file form one document whose id is
    the file stem.
``cluener``
    CLUENER 2020 JSON lines, ``{"text": ..., "label": {type: {mention: [[start, end], ...]}}}`` with ``end``
    inclusive. Tokens are the characters of ``text`` (whitespace characters included, so offsets stay valid); tags
    are BIO (other schemes through :func:`hf_bert_tasks.ner.tagging.convert_tags`). A span that does not read as its
    mention, or two overlapping spans (nested entities cannot be written as one tag sequence), is an error. A
    record without ``"label"`` (the unlabelled test set) is all ``O``. Records are independent snippets, so each is
    its own document, ``"<file stem>-<n>"``.
``jsonl``
    JSON lines ``{"tokens": [...], "ner_tags": [...tag strings...]}`` with optional ``"id"`` and ``"document_id"``
    (default: the file stem, as for ``char``).

Every reader returns columns ``id`` (str: the record's own id, else the sentence's 0-based index in its file),
``document_id`` (str), ``tokens`` (list[str]) and ``ner_tags`` (``Sequence(ClassLabel(names=labels))``).
Without ``labels`` the label list is the file's tags in canonical order: ``"O"`` first, then sorted.

Tags must be ``O``, ``X`` or ``PREFIX-TYPE`` with PREFIX one of B I E S M. Files are UTF-8 (a BOM is dropped),
LF or CRLF; lines holding only whitespace are blank lines. Bad input raises :class:`NerDataError` whose message
starts with ``"<path>:<line>: "`` (1-based line); nothing is skipped silently.

The "file stem" is the file name without its last suffix when that suffix is a data-file extension
(``.txt .conll .json .jsonl .bio .bmes ...``) and the whole name otherwise, so that ``eng.train`` and ``eng.testa``
keep distinct ids.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import datasets
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

from ..files import DataFileError, PathLike, json_records, read_lines

__all__ = [
    "DOCSTART",
    "FORMATS",
    "SAMPLE_DATA_DIR",
    "NerDataError",
    "NerDataWarning",
    "canonical_labels",
    "detect_format",
    "load_ner_dataset",
    "ner_features",
    "read_char_bio",
    "read_cluener",
    "read_conll",
    "read_jsonl",
    "sample_data_path",
]


DOCSTART = "-DOCSTART-"
FORMATS = ("conll", "char", "cluener", "jsonl")
SAMPLE_DATA_DIR = Path(__file__).resolve().parent.parent / "sample_data"

_TAG_PATTERN = re.compile(r"(?:O|X|[BIESM]-\S+)\Z")
_DATA_SUFFIXES = {".txt", ".conll", ".conllu", ".json", ".jsonl", ".bio", ".bmes", ".bioes", ".iob", ".iob2", ".tsv"}
_JSON_SUFFIXES = {".json", ".jsonl"}
_BIO_NAMES = {"BIO", "IOB2"}


class NerDataError(DataFileError):
    """A problem in an NER data file."""


class NerDataWarning(UserWarning):
    """Data that was read, but maybe not as meant (e.g. a CoNLL file without -DOCSTART- lines)."""


@dataclass
class _Sentence:
    tokens: list[str]
    tags: list[str]
    lines: list[int]  # 1-based source line of each tag, so errors found later can still point at the file
    document_id: str
    id: str


# ---------------------------------------------------------------------------------------------------------------
# Small shared pieces


def ner_features(labels: list[str]) -> Features:
    """The features every reader returns: ``id``, ``document_id``, ``tokens`` and ``ner_tags`` over ``labels``."""
    return Features(
        {
            "id": Value("string"),
            "document_id": Value("string"),
            "tokens": Sequence(Value("string")),
            "ner_tags": Sequence(ClassLabel(names=list(labels))),
        }
    )


def canonical_labels(tags: Iterable[str]) -> list[str]:
    """``"O"`` first (always present: every tagger needs it), then the other tags sorted."""
    return ["O", *sorted(set(tags) - {"O"})]


def sample_data_path(name: str) -> Path:
    """Path of a file shipped in ``hf_bert_tasks/sample_data`` (e.g. ``"en_train.conll"``)."""
    path = SAMPLE_DATA_DIR / name
    if not path.is_file():
        available = sorted(p.name for p in SAMPLE_DATA_DIR.iterdir() if p.is_file()) if SAMPLE_DATA_DIR.is_dir() else []
        raise FileNotFoundError(f"no sample file {name!r} in {SAMPLE_DATA_DIR}; available: {', '.join(available)}")
    return path


def _file_stem(path: PathLike) -> str:
    p = Path(path)
    return p.stem if p.suffix.lower() in _DATA_SUFFIXES else p.name


def _check_tag(path: PathLike, lineno: int, tag: str) -> None:
    if not _TAG_PATTERN.match(tag):
        raise NerDataError(
            path, lineno, f"invalid tag {tag!r}: expected 'O', 'X' or PREFIX-TYPE with PREFIX one of B I E S M"
        )


def _check_labels(labels: list[str]) -> list[str]:
    labels = list(labels)
    if not labels:
        raise ValueError("labels is empty")
    if not all(isinstance(label, str) for label in labels):
        raise ValueError(f"labels must be strings, got {labels!r}")
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"labels has duplicates: {', '.join(duplicates)}")
    return labels


def _no_sentences(path: PathLike) -> NerDataError:
    return NerDataError(path, None, "no sentences found")


def _build_dataset(path: PathLike, sentences: list[_Sentence], labels: list[str], label_origin: str = "") -> Dataset:
    """Encode the tags with ``labels``; a tag outside it is an error at its source line."""
    index = {label: i for i, label in enumerate(labels)}
    ner_tags = []
    for sentence in sentences:
        try:
            ner_tags.append([index[tag] for tag in sentence.tags])
        except KeyError:
            tag, line = next((t, n) for t, n in zip(sentence.tags, sentence.lines) if t not in index)
            raise NerDataError(
                path, line, f"tag {tag!r} is not in the label list{label_origin}; known labels: {', '.join(labels)}"
            ) from None
    return Dataset.from_dict(
        {
            "id": [s.id for s in sentences],
            "document_id": [s.document_id for s in sentences],
            "tokens": [s.tokens for s in sentences],
            "ner_tags": ner_tags,
        },
        features=ner_features(labels),
    )


def _finish(path: PathLike, sentences: list[_Sentence], labels: list[str] | None) -> Dataset:
    if labels is None:
        labels = canonical_labels(tag for s in sentences for tag in s.tags)
    return _build_dataset(path, sentences, _check_labels(labels))


# ---------------------------------------------------------------------------------------------------------------
# CoNLL column files


def _parse_conll(
    path: PathLike, lines: list[str], tag_column: int = -1, separator: str | None = None
) -> list[_Sentence]:
    stem = _file_stem(path)
    sentences: list[_Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    tag_lines: list[int] = []
    document = 0
    document_has_sentences = False
    first_docstart: int | None = None
    n_columns = n_columns_line = tag_index = None

    def end_sentence() -> None:
        nonlocal tokens, tags, tag_lines, document_has_sentences
        if tokens:
            sentences.append(_Sentence(tokens, tags, tag_lines, f"{stem}-{document}", str(len(sentences))))
            document_has_sentences = True
            tokens, tags, tag_lines = [], [], []

    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            end_sentence()
            continue
        columns = line.split() if separator is None else [c.strip() for c in line.strip().split(separator)]
        if columns[0] == DOCSTART:
            # A boundary closes whatever document is open; empty documents (a marker at the very start, or markers
            # both before and after) are not counted, so markers before and after documents number them alike.
            end_sentence()
            if document_has_sentences:
                document += 1
                document_has_sentences = False
            if first_docstart is None:
                first_docstart = lineno
            continue
        if len(columns) < 2:
            raise NerDataError(path, lineno, f"missing tag column: expected a token and a tag, found {line.strip()!r}")
        if n_columns is None:
            n_columns, n_columns_line = len(columns), lineno
            tag_index = tag_column if tag_column >= 0 else n_columns + tag_column
            if not 0 < tag_index < n_columns:
                raise NerDataError(
                    path, lineno, f"tag_column={tag_column} names no tag column in a line of {n_columns} columns"
                )
        elif len(columns) != n_columns:
            # A short line would otherwise silently give another column (e.g. the chunk tag) as the NER tag.
            raise NerDataError(
                path,
                lineno,
                f"found {len(columns)} columns, but line {n_columns_line} has {n_columns}: {line.strip()!r}",
            )
        if not all(columns):
            raise NerDataError(path, lineno, f"empty column in {line!r}")
        tag = columns[tag_index]
        _check_tag(path, lineno, tag)
        tokens.append(columns[0])
        tags.append(tag)
        tag_lines.append(lineno)
    end_sentence()

    if not sentences:
        if first_docstart is not None:
            raise NerDataError(path, first_docstart, "no sentences found, only -DOCSTART- lines")
        raise _no_sentences(path)
    if first_docstart is None:
        warnings.warn(
            f"{path}: no {DOCSTART} lines; the whole file is read as one document ({stem}-0)",
            NerDataWarning,
            stacklevel=3,
        )
    return sentences


def read_conll(
    path: PathLike, tag_column: int = -1, labels: list[str] | None = None, separator: str | None = None
) -> Dataset:
    """Read a CoNLL column file (token first, tag in ``tag_column``); see the module docstring for the rules."""
    return _finish(path, _parse_conll(path, read_lines(path, NerDataError), tag_column, separator), labels)


# ---------------------------------------------------------------------------------------------------------------
# Chinese character-per-line files


def _split_char_line(line: str) -> list[str]:
    line = line.rstrip()
    return line.split("\t") if "\t" in line else line.split(" ")


def _parse_char(path: PathLike, lines: list[str]) -> list[_Sentence]:
    stem = _file_stem(path)
    sentences: list[_Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    tag_lines: list[int] = []
    for lineno, line in enumerate(lines + [""], 1):  # the sentinel blank line ends the last sentence
        if not line.strip():
            if tokens:
                sentences.append(_Sentence(tokens, tags, tag_lines, stem, str(len(sentences))))
                tokens, tags, tag_lines = [], [], []
            continue
        columns = _split_char_line(line)
        if len(columns) != 2:
            raise NerDataError(path, lineno, f"expected 2 columns (character<TAB>tag), found {len(columns)}: {line!r}")
        char, tag = columns
        if len(char) != 1:
            raise NerDataError(
                path,
                lineno,
                f"expected one character in the first column, found {char!r} (word-level files: read_conll)",
            )
        _check_tag(path, lineno, tag)
        tokens.append(char)
        tags.append(tag)
        tag_lines.append(lineno)
    if not sentences:
        raise _no_sentences(path)
    return sentences


def read_char_bio(path: PathLike, labels: list[str] | None = None) -> Dataset:
    """Read a ``char<TAB or space>tag`` file (MSRA BIO, Resume BMES); all its sentences are one document."""
    return _finish(path, _parse_char(path, read_lines(path, NerDataError)), labels)


# ---------------------------------------------------------------------------------------------------------------
# JSON lines: CLUENER and token lists


def _require(path: PathLike, lineno: int, record: dict, key: str):
    if key not in record:
        raise NerDataError(path, lineno, f"missing key {key!r} (keys: {', '.join(map(repr, record)) or 'none'})")
    return record[key]


def _is_string_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _optional_id(path: PathLike, lineno: int, record: dict, key: str, default: str) -> str:
    value = record.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise NerDataError(path, lineno, f"{key!r} must be a string, found {value!r}")
    return str(value)


def _parse_jsonl(path: PathLike, lines: list[str]) -> list[_Sentence]:
    stem = _file_stem(path)
    sentences = []
    for lineno, record in json_records(path, lines, NerDataError):
        tokens = _require(path, lineno, record, "tokens")
        tags = _require(path, lineno, record, "ner_tags")
        if not _is_string_list(tokens) or not tokens:
            raise NerDataError(path, lineno, "'tokens' must be a non-empty list of strings")
        if not _is_string_list(tags):
            raise NerDataError(path, lineno, "'ner_tags' must be a list of tag strings such as 'B-PER'")
        if len(tags) != len(tokens):
            raise NerDataError(path, lineno, f"{len(tokens)} tokens but {len(tags)} ner_tags")
        for tag in tags:
            _check_tag(path, lineno, tag)
        sentence_id = _optional_id(path, lineno, record, "id", str(len(sentences)))
        document_id = _optional_id(path, lineno, record, "document_id", stem)
        sentences.append(_Sentence(tokens, tags, [lineno] * len(tags), document_id, sentence_id))
    if not sentences:
        raise _no_sentences(path)
    return sentences


def read_jsonl(path: PathLike, labels: list[str] | None = None) -> Dataset:
    """Read ``{"tokens": [...], "ner_tags": [...]}`` JSON lines (optional ``"id"``, ``"document_id"``)."""
    return _finish(path, _parse_jsonl(path, read_lines(path, NerDataError)), labels)


def _cluener_spans(
    path: PathLike, lineno: int, text: str, label, nested: str = "error", nested_dropped: list | None = None
) -> list[tuple[int, int, str, str]]:
    """Validated ``(start, end_inclusive, type, mention)`` spans of one record, sorted by start.

    Flat tags cannot hold nested entities: with ``nested="outer"`` a span lying inside another is dropped and
    described in ``nested_dropped``; crossing spans (and any overlap with ``nested="error"``) are an error."""
    if label is None:
        return []
    if not isinstance(label, dict):
        raise NerDataError(path, lineno, f"'label' must be an object {{type: {{mention: [[start, end], ...]}}}}")
    spans = []
    for entity_type, mentions in label.items():
        if not isinstance(mentions, dict):
            raise NerDataError(
                path, lineno, f"label[{entity_type!r}] must be an object {{mention: [[start, end], ...]}}"
            )
        for mention, positions in mentions.items():
            if not isinstance(positions, list):
                raise NerDataError(path, lineno, f"spans of {mention!r} must be a list of [start, end] pairs")
            for span in positions:
                if not (
                    isinstance(span, list)
                    and len(span) == 2
                    and all(isinstance(i, int) and not isinstance(i, bool) for i in span)
                ):
                    raise NerDataError(path, lineno, f"span {span!r} of {mention!r} is not a [start, end] pair")
                start, end = span
                if not 0 <= start <= end < len(text):
                    raise NerDataError(
                        path, lineno, f"span [{start}, {end}] of {mention!r} is outside the text ({len(text)} chars)"
                    )
                if text[start : end + 1] != mention:
                    raise NerDataError(
                        path,
                        lineno,
                        f"span [{start}, {end}] ({entity_type}) reads {text[start:end + 1]!r},"
                        f" not the mention {mention!r} (end is inclusive)",
                    )
                spans.append((start, end, entity_type, mention))
    # Outer spans first at equal starts, so that a nested span always follows the span that contains it.
    spans.sort(key=lambda span: (span[0], -span[1]))
    kept = []
    for s2, e2, t2, m2 in spans:
        if kept and s2 <= kept[-1][1]:
            s1, e1, t1, m1 = kept[-1]
            if nested == "outer" and e2 <= e1:
                nested_dropped.append(f"{path}:{lineno}: {m2!r} ({t2}) inside {m1!r} ({t1})")
                continue
            raise NerDataError(
                path, lineno, f"overlapping spans {m1!r} ({t1}, [{s1}, {e1}]) and {m2!r} ({t2}, [{s2}, {e2}])"
            )
        kept.append((s2, e2, t2, m2))
    return kept


def _parse_cluener(path: PathLike, lines: list[str], nested: str = "outer") -> list[_Sentence]:
    if nested not in ("outer", "error"):
        raise ValueError(f"nested must be 'outer' or 'error', got {nested!r}")
    stem = _file_stem(path)
    sentences, dropped = [], []
    for lineno, record in json_records(path, lines, NerDataError):
        text = _require(path, lineno, record, "text")
        if not isinstance(text, str) or not text:
            raise NerDataError(path, lineno, "'text' must be a non-empty string")
        tags = ["O"] * len(text)
        for start, end, entity_type, _ in _cluener_spans(path, lineno, text, record.get("label"), nested, dropped):
            tags[start] = f"B-{entity_type}"
            tags[start + 1 : end + 1] = [f"I-{entity_type}"] * (end - start)
        for tag in set(tags):
            _check_tag(path, lineno, tag)  # a type containing whitespace would not survive a column file
        n = len(sentences)
        sentences.append(_Sentence(list(text), tags, [lineno] * len(text), f"{stem}-{n}", str(n)))
    if not sentences:
        raise _no_sentences(path)
    if dropped:
        shown = "; ".join(dropped[:5]) + (" ..." if len(dropped) > 5 else "")
        warnings.warn(f"{len(dropped)} nested entities dropped (flat tags keep the outer one): {shown}",
                      NerDataWarning, stacklevel=3)
    return sentences


def read_cluener(
    path: PathLike, labels: list[str] | None = None, scheme: str = "BIO", nested: str = "outer"
) -> Dataset:
    """Read CLUENER JSON lines into character tokens tagged in ``scheme`` (BIO, or a scheme ``convert_tags`` knows).

    An entity nested inside another (CLUENER's train file, line 1507, has two company names inside a book title)
    cannot be written in flat tags: ``nested="outer"`` keeps the outer entity and warns with the file, line and mention of
    every dropped one; ``nested="error"`` refuses the file. Crossing spans are always an error."""
    sentences = _parse_cluener(path, read_lines(path, NerDataError), nested)
    if scheme.upper() not in _BIO_NAMES:
        _convert_sentences(path, sentences, "BIO", scheme)
    return _finish(path, sentences, labels)


# ---------------------------------------------------------------------------------------------------------------
# Format detection, scheme conversion, splits


def _detect_format_lines(path: PathLike, lines: list[str]) -> str:
    first = next(((n, line) for n, line in enumerate(lines, 1) if line.strip()), None)
    if first is None:
        raise _no_sentences(path)
    lineno, line = first
    is_json_file = Path(path).suffix.lower() in _JSON_SUFFIXES
    if is_json_file or line.lstrip().startswith("{"):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if is_json_file:
                raise NerDataError(path, lineno, f"invalid JSON: {err.msg} (column {err.colno})") from None
            record = None
        if isinstance(record, dict) or is_json_file:
            # CLUENER test files have "text" but no "label", so "text" alone decides.
            return "cluener" if isinstance(record, dict) and "text" in record and "tokens" not in record else "jsonl"
    for line in lines:
        if line.strip():
            columns = _split_char_line(line)
            if len(columns) != 2 or len(columns[0]) != 1:
                return "conll"
    return "char"


def detect_format(path: PathLike) -> str:
    """Guess one of :data:`FORMATS` for ``path``.

    ``.json``/``.jsonl`` files (or files whose first line is a JSON object) are ``cluener`` when the first record
    has ``"text"`` and no ``"tokens"``, else ``jsonl``; otherwise ``char`` when every non-blank line has exactly two
    columns and the first is one character; otherwise ``conll``.
    """
    return _detect_format_lines(path, read_lines(path, NerDataError))


def _parse_file(path: PathLike, format: str, tag_column: int) -> list[_Sentence]:
    lines = read_lines(path, NerDataError)
    if format == "auto":
        format = _detect_format_lines(path, lines)
    if format == "conll":
        return _parse_conll(path, lines, tag_column)
    if format == "char":
        return _parse_char(path, lines)
    if format == "cluener":
        return _parse_cluener(path, lines)
    if format == "jsonl":
        return _parse_jsonl(path, lines)
    raise ValueError(f"unknown format {format!r}; expected 'auto' or one of {', '.join(FORMATS)}")


def _convert_sentences(path: PathLike, sentences: list[_Sentence], source: str, target: str) -> None:
    # Imported here: tagging is a sibling module that readers without conversion do not need.
    from .tagging import convert_tags

    convert_tags([], source, target)  # an unknown scheme name is the caller's error, not the file's
    for sentence in sentences:
        try:
            converted = list(convert_tags(sentence.tags, source, target))
        except ValueError as err:  # InvalidTagSequenceError is a ValueError
            message = f"cannot convert tags from {source} to {target}: {err}"
            raise NerDataError(path, sentence.lines[0], message) from err
        if len(converted) != len(sentence.tags):
            message = f"convert_tags changed the sentence length ({source} -> {target})"
            raise NerDataError(path, sentence.lines[0], message)
        sentence.tags = converted


def _load_hub_dataset(
    name: str,
    config: str | None,
    labels: list[str] | None,
    source_scheme: str | None,
    target_scheme: str | None,
) -> DatasetDict:
    """``datasets.load_dataset`` plus the common columns; the Hub's own label order is kept unless tags change."""
    raw = datasets.load_dataset(name, config)
    splits: dict[str, list[_Sentence]] = {}
    hub_labels = None
    for split, dataset in raw.items():
        where = f"{name}[{split}]"
        missing = {"tokens", "ner_tags"} - set(dataset.column_names)
        if missing:
            raise ValueError(f"{where}: missing column(s) {', '.join(sorted(missing))}; have {dataset.column_names}")
        feature = getattr(dataset.features["ner_tags"], "feature", None)
        if not isinstance(feature, ClassLabel):
            found = dataset.features["ner_tags"]
            raise ValueError(f"{where}: 'ner_tags' must be a sequence of ClassLabel, found {found}")
        names = feature.names
        if hub_labels is None or split == "train":
            hub_labels = names
        columns = dataset.column_names
        ids = dataset["id"] if "id" in columns else range(len(dataset))
        documents = dataset["document_id"] if "document_id" in columns else [split] * len(dataset)
        splits[split] = [
            # "Line" numbers of Hub rows are 1-based row numbers.
            _Sentence(list(tokens), [names[t] for t in tags], [row] * len(tags), str(doc), str(i))
            for row, (tokens, tags, doc, i) in enumerate(zip(dataset["tokens"], dataset["ner_tags"], documents, ids), 1)
        ]
    if source_scheme is not None:
        for split, sentences in splits.items():
            _convert_sentences(f"{name}[{split}]", sentences, source_scheme, target_scheme)
        if labels is None:
            train = splits.get("train") or [s for sentences in splits.values() for s in sentences]
            labels = canonical_labels(tag for s in train for tag in s.tags)
    labels = _check_labels(labels if labels is not None else hub_labels)
    return DatasetDict(
        {split: _build_dataset(f"{name}[{split}]", sentences, labels) for split, sentences in splits.items()}
    )


def load_ner_dataset(
    train_file: PathLike | None = None,
    validation_file: PathLike | None = None,
    test_file: PathLike | None = None,
    dataset_name: str | None = None,
    dataset_config: str | None = None,
    format: str = "auto",
    tag_column: int = -1,
    labels: list[str] | None = None,
    source_scheme: str | None = None,
    target_scheme: str | None = None,
) -> DatasetDict:
    """Read NER splits into a ``DatasetDict`` (``train``/``validation``/``test``, those given) sharing one ClassLabel.

    Files: ``format`` is ``"auto"`` (:func:`detect_format`, per file) or one of :data:`FORMATS`; ``tag_column`` is
    for CoNLL files. ``dataset_name``: ``datasets.load_dataset(dataset_name, dataset_config)``, which must give
    ``tokens`` and a ClassLabel ``ner_tags`` column (e.g. ``conll2003``); cannot be mixed with files.

    With ``source_scheme`` and ``target_scheme`` (e.g. ``"IOB1"``, ``"BIO"``) every split's tags go through
    :func:`hf_bert_tasks.ner.tagging.convert_tags` first. The label list is then ``labels`` if given, else the
    (converted) training tags in canonical order (without a training file: the tags of all files given; from the
    Hub without conversion: the Hub's own order). A validation or test tag outside it raises :class:`NerDataError`
    (a ValueError) naming the file, line and tag.
    """
    if (source_scheme is None) != (target_scheme is None):
        raise ValueError("give both source_scheme and target_scheme, or neither")
    if labels is not None:
        labels = _check_labels(labels)
    files = {
        split: path
        for split, path in (("train", train_file), ("validation", validation_file), ("test", test_file))
        if path is not None
    }
    if dataset_name is not None:
        if files:
            raise ValueError("give either dataset_name or data files, not both")
        return _load_hub_dataset(dataset_name, dataset_config, labels, source_scheme, target_scheme)
    if not files:
        raise ValueError("give train_file, validation_file or test_file, or dataset_name")
    if format != "auto" and format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; expected 'auto' or one of {', '.join(FORMATS)}")

    parsed = {split: _parse_file(path, format, tag_column) for split, path in files.items()}
    if source_scheme is not None:
        for split, sentences in parsed.items():
            _convert_sentences(files[split], sentences, source_scheme, target_scheme)

    label_origin = ""
    if labels is None:
        # Recomputed after conversion, so the label list matches the tags the model will see.
        label_splits = ["train"] if "train" in parsed else list(parsed)
        labels = canonical_labels(tag for split in label_splits for s in parsed[split] for tag in s.tags)
        label_origin = " (taken from " + ", ".join(str(files[split]) for split in label_splits) + ")"
    return DatasetDict(
        {split: _build_dataset(files[split], sentences, labels, label_origin) for split, sentences in parsed.items()}
    )


def write_tagged_file(path: PathLike, sentences: Iterable[list[str]], tags: Iterable[list[str]]) -> Path:
    """Write tagged sentences in a format the readers read back: ``{"tokens", "ner_tags"}`` JSON lines for a
    ``.json``/``.jsonl`` path, else ``token<TAB>tag`` lines with a blank line after each sentence."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as out:
        for tokens, sentence_tags in zip(sentences, tags, strict=True):
            if path.suffix.lower() in _JSON_SUFFIXES:
                out.write(json.dumps({"tokens": list(tokens), "ner_tags": list(sentence_tags)}, ensure_ascii=False))
                out.write("\n")
            else:
                out.writelines(f"{token}\t{tag}\n" for token, tag in zip(tokens, sentence_tags, strict=True))
                out.write("\n")
    return path
