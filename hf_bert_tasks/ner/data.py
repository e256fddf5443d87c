"""Readers that turn NER files into `datasets.Dataset` objects, one row per sentence.

Formats (``format=`` names in :func:`load_ner_dataset`):

``conll``
    CoNLL column files (CoNLL-2003 and friends): one token per line, columns separated by runs of spaces and tabs
    (or by ``separator``, e.g. ``"\t"`` for tokens that contain spaces), token first, tag in ``tag_column``
    (default: the last column); every token line has the same number of columns; a blank line ends a sentence.
    Other whitespace characters (U+00A0, U+2028, U+3000, ...) are part of their token, never separators, so a
    token holding one is read as one token at its own line. ``-DOCSTART-`` lines are document boundaries, never
    rows; they may come before each document (the usual layout) or after it (the shared CoNLL-2003 copy), set off
    from the sentences by a blank line (a ``-DOCSTART-`` line right after a token line is an error at its line);
    documents are numbered in file order, ``document_id = "<file stem>-<n>"`` with n from 0. A file without
    ``-DOCSTART-`` is one document (``"<file stem>-0"``); with ``document_context=True`` (the recipes pass it for
    ``--context_window``, the only place documents matter) a :class:`NerDataWarning` says so.
``char``
    Chinese character-per-line files, ``char<TAB>tag`` or ``char tag`` (MSRA in BIO, Resume in BMES); a blank line
    ends a sentence. The files carry no document marks, so all sentences of a file form one document whose id is
    the file stem.
``cluener``
    CLUENER 2020 JSON lines, ``{"text": ..., "label": {type: {mention: [[start, end], ...]}}}`` with ``end``
    inclusive. Tokens are the characters of ``text`` (whitespace characters included, so offsets stay valid); tags
    are BIO (other schemes through :func:`hf_bert_tasks.modeling.tagging.convert_tags`). A span that does not read as its
    mention, or two overlapping spans (nested entities cannot be written as one tag sequence), is an error. A
    record without ``"label"`` (the unlabelled test set) is all ``O``. Records are independent snippets, so each is
    its own document, ``"<file stem>-<n>"``.
``jsonl``
    JSON lines ``{"tokens": [...], "ner_tags": [...tag strings...]}`` with optional ``"id"`` and ``"document_id"``
    (default: the file stem, as for ``char``).
``spans``
    JSON lines of tokens and entity spans, GENIA's layout: ``{"tokens": [...], "entities": [{"start": 0, "end": 2,
    "type": "DNA"}, ...]}`` (``end`` exclusive; optional ``"id"``, ``"document_id"`` or ``"doc_id"``). Entities may
    nest and overlap: the tags hold the outermost ones (longest first; one overlapping a kept entity is dropped, with
    a :class:`NerDataWarning` naming it), and with ``load_ner_dataset(..., nested="keep")`` an ``entities`` column
    holds them all, for the global pointer head.
``labelstudio``, ``doccano``
    Annotation tools' exports, character spans over raw text (a Label Studio JSON export, doccano JSON lines): read
    into the pipeline's words with BIO tags by ``ner/annotation_tools.py`` (its docstring gives the rules), which
    also writes predictions in both formats.

The JSON formats also take one JSON array of such objects (a pretty-printed file); a record's line is where it starts.

Every reader returns columns ``id`` (str: the record's own id, else the sentence's 0-based index in its file),
``document_id`` (str), ``tokens`` (list[str]) and ``ner_tags`` (``Sequence(ClassLabel(names=labels))``); with
``repair_tags=True`` (:func:`load_ner_dataset`) also ``repaired_tags`` (int: tags of the sentence the repair
changed). Without ``labels`` a single file's label list is its tags in canonical order: ``"O"`` first, then sorted;
:func:`load_ner_dataset` builds the label list of several splits from the training file's entity types (its
docstring says how).

Tags must be ``O``, ``X`` or ``PREFIX-TYPE`` with PREFIX one of B I E S M. Files are UTF-8 (a BOM is dropped),
LF or CRLF; lines holding only whitespace are blank lines. Bad input raises :class:`NerDataError` whose message
starts with ``"<path>:<line>: "`` (1-based line); nothing is skipped silently.

The "file stem" is the file name without its last suffix when that suffix is a data-file extension
(``.txt .conll .json .jsonl .bio .bmes ...``) and the whole name otherwise, so that ``eng.train`` and ``eng.testa``
keep distinct ids.
"""

from __future__ import annotations

import collections
import json
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

from ..files import DataFileError, PathLike, json_records, predictions_path, read_lines

__all__ = [
    "DOCSTART",
    "FORMATS",
    "SAMPLE_DATA_DIR",
    "NerDataError",
    "NerDataWarning",
    "canonical_labels",
    "check_tags_are_labels",
    "column_separator",
    "detect_format",
    "encode_dataset",
    "entity_type_counts",
    "load_ner_dataset",
    "ner_features",
    "read_char_bio",
    "read_cluener",
    "read_conll",
    "read_jsonl",
    "repair_counts",
    "sample_data_path",
    "write_prediction_file",
    "write_tagged_file",
]


DOCSTART = "-DOCSTART-"
# labelstudio, doccano: ner/annotation_tools.py
FORMATS = ("conll", "char", "cluener", "jsonl", "spans", "labelstudio", "doccano")
SAMPLE_DATA_DIR = Path(__file__).resolve().parent.parent / "sample_data"

_TAG_PATTERN = re.compile(r"(?:O|X|[BIESM]-\S+)\Z")
_COLUMN_GAP = re.compile(r"[ \t]+")  # CoNLL column separators: ASCII spaces and tabs only
_MAX_SHOWN = 5  # invalid sentences or repairs quoted in a message
_DATA_SUFFIXES = {".txt", ".conll", ".conllu", ".json", ".jsonl", ".bio", ".bmes", ".bioes", ".iob", ".iob2", ".tsv"}
_JSON_SUFFIXES = {".json", ".jsonl"}


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
    repaired: int = 0  # tags that repair_tags changed
    spans: list[tuple[int, int, str]] | None = None  # every entity (start, end exclusive, type), nested ones too


# ---------------------------------------------------------------------------------------------------------------
# Small shared pieces


def ner_features(labels: list[str], repaired: bool = False) -> Features:
    """The features every reader returns: ``id``, ``document_id``, ``tokens`` and ``ner_tags`` over ``labels``
    (and ``repaired_tags`` with ``repaired``)."""
    features = {
        "id": Value("string"),
        "document_id": Value("string"),
        "tokens": Sequence(Value("string")),
        "ner_tags": Sequence(ClassLabel(names=list(labels))),
    }
    if repaired:
        features["repaired_tags"] = Value("int32")
    return Features(features)


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


def _build_dataset(
    path: PathLike, sentences: list[_Sentence], labels: list[str], label_origin: str = "", repaired: bool = False
) -> Dataset:
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
    columns = {
        "id": [s.id for s in sentences],
        "document_id": [s.document_id for s in sentences],
        "tokens": [s.tokens for s in sentences],
        "ner_tags": ner_tags,
    }
    if repaired:
        columns["repaired_tags"] = [s.repaired for s in sentences]
    features = ner_features(labels, repaired)
    if sentences and sentences[0].spans is not None:  # load_ner_dataset(..., nested="keep")
        columns["entities"] = [[{"start": a, "end": b, "type": t} for a, b, t in s.spans] for s in sentences]
        features["entities"] = [{"start": Value("int32"), "end": Value("int32"), "type": Value("string")}]
    return Dataset.from_dict(columns, features=features)


def _finish(path: PathLike, sentences: list[_Sentence], labels: list[str] | None) -> Dataset:
    if labels is None:
        labels = canonical_labels(tag for s in sentences for tag in s.tags)
    return _build_dataset(path, sentences, _check_labels(labels))


# ---------------------------------------------------------------------------------------------------------------
# CoNLL column files


def _conll_columns(line: str, separator: str | None) -> list[str]:
    line = line.strip(" \t")
    if separator is None:
        return _COLUMN_GAP.split(line)
    return [column.strip(" \t") for column in line.split(separator)]


def _parse_conll(
    path: PathLike,
    lines: list[str],
    tag_column: int = -1,
    separator: str | None = None,
    document_context: bool = False,
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
        columns = _conll_columns(line, separator)
        if columns[0] == DOCSTART:
            if tokens:
                # Splitting here would silently cut a sentence in two (and blame the tag that then starts a sentence).
                raise NerDataError(path, lineno, f"{DOCSTART} inside a sentence: line {tag_lines[-1]} is a token line "
                                                 "of the same sentence; a document boundary needs a blank line before "
                                                 "it")
            # A boundary closes whatever document is open; empty documents (a marker at the very start, or markers
            # both before and after) are not counted, so markers before and after documents number them alike.
            if document_has_sentences:
                document += 1
                document_has_sentences = False
            if first_docstart is None:
                first_docstart = lineno
            continue
        if len(columns) < 2:
            raise NerDataError(path, lineno, f"missing tag column: expected a token and a tag, found {line!r}")
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
                f"found {len(columns)} columns, but line {n_columns_line} has {n_columns}: {line!r}",
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
    if first_docstart is None and document_context:
        warnings.warn(
            f"{path}: no {DOCSTART} lines; the whole file is read as one document ({stem}-0), so document context "
            "may cross what were separate documents",
            NerDataWarning,
            stacklevel=3,
        )
    return sentences


def read_conll(
    path: PathLike,
    tag_column: int = -1,
    labels: list[str] | None = None,
    separator: str | None = None,
    document_context: bool = False,
) -> Dataset:
    """Read a CoNLL column file (token first, tag in ``tag_column``); see the module docstring for the rules.

    ``separator``: the column separator (default: runs of spaces and tabs). ``document_context``: warn when the
    file has no ``-DOCSTART-`` lines (set it when the documents will be used as context)."""
    lines = read_lines(path, NerDataError)
    return _finish(path, _parse_conll(path, lines, tag_column, separator, document_context), labels)


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


def _outermost(spans: list[tuple[int, int, str]]) -> tuple[list[tuple[int, int, str]], list[tuple[int, int, str]]]:
    """`(start, end exclusive, type)` spans -> (those flat tags can hold, the others): longest first at equal
    starts; a span overlapping one already kept is dropped (nested inside it, or crossing it)."""
    kept, dropped = [], []
    for span in sorted(spans, key=lambda span: (span[0], -span[1], span[2])):
        (dropped if kept and span[0] < kept[-1][1] else kept).append(span)
    return kept, dropped


def _warn_dropped(dropped: list[str], what: str) -> None:
    shown = "; ".join(dropped[:5]) + (" ..." if len(dropped) > 5 else "")
    warnings.warn(f"{len(dropped)} {what} dropped (flat tags keep the outer one; the global pointer head keeps "
                  f"all): {shown}", NerDataWarning, stacklevel=4)


def _parse_spans(path: PathLike, lines: list[str], nested: str = "outer") -> list[_Sentence]:
    """JSON lines of tokens and entity spans (GENIA's layout): ``{"tokens": [...], "entities": [{"start": 0, "end":
    2, "type": "DNA"}, ...]}``, ``end`` exclusive, entities may nest and overlap; optional ``id`` and ``document_id``
    (or ``doc_id``). The tags are the outermost entities (:func:`_outermost`); every entity stays in ``spans``."""
    stem = _file_stem(path)
    sentences, dropped = [], []
    for lineno, record in json_records(path, lines, NerDataError):
        tokens = _require(path, lineno, record, "tokens")
        entities = _require(path, lineno, record, "entities")
        if not _is_string_list(tokens) or not tokens:
            raise NerDataError(path, lineno, "'tokens' must be a non-empty list of strings")
        if not isinstance(entities, list):
            raise NerDataError(path, lineno, "'entities' must be a list of {start, end, type} objects")
        spans = set()
        for entity in entities:
            start, end, kind = (entity.get(key) if isinstance(entity, dict) else None
                                for key in ("start", "end", "type"))
            if not (isinstance(start, int) and isinstance(end, int) and not isinstance(start, bool)
                    and not isinstance(end, bool) and 0 <= start < end <= len(tokens)):
                raise NerDataError(path, lineno, f"entity {entity!r} needs integer start < end (exclusive) within "
                                                 f"the {len(tokens)} tokens")
            if not isinstance(kind, str) or not kind or kind != kind.strip() or " " in kind:
                raise NerDataError(path, lineno, f"entity {entity!r} needs a type: a string without spaces")
            spans.add((start, end, kind))
        kept, inner = _outermost(list(spans))
        dropped += [f"{path}:{lineno}: {' '.join(tokens[a:b])!r} ({t})" for a, b, t in inner]
        tags = ["O"] * len(tokens)
        for start, end, kind in kept:
            tags[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 1)
        sentence_id = _optional_id(path, lineno, record, "id", str(len(sentences)))
        document_id = _optional_id(path, lineno, record, "document_id", str(record.get("doc_id", stem)))
        sentences.append(_Sentence(tokens, tags, [lineno] * len(tokens), document_id, sentence_id,
                                   spans=sorted(spans) if nested == "keep" else None))
    if not sentences:
        raise _no_sentences(path)
    if dropped and nested == "outer":
        _warn_dropped(dropped, "nested or overlapping entities")
    return sentences


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
    if nested == "keep":
        return spans
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
    if nested not in ("outer", "error", "keep"):
        raise ValueError(f"nested must be 'outer', 'error' or 'keep', got {nested!r}")
    stem = _file_stem(path)
    sentences, dropped = [], []
    for lineno, record in json_records(path, lines, NerDataError):
        text = _require(path, lineno, record, "text")
        if not isinstance(text, str) or not text:
            raise NerDataError(path, lineno, "'text' must be a non-empty string")
        tags = ["O"] * len(text)
        spans = None
        if nested == "keep":  # every mention, overlapping ones too; the tags keep the outer ones
            spans = sorted({(start, end + 1, kind) for start, end, kind, _ in
                            _cluener_spans(path, lineno, text, record.get("label"), "keep")})
        for start, end, entity_type, _ in _cluener_spans(path, lineno, text, record.get("label"),
                                                         "outer" if nested == "keep" else nested, []
                                                         if nested == "keep" else dropped):
            tags[start] = f"B-{entity_type}"
            tags[start + 1 : end + 1] = [f"I-{entity_type}"] * (end - start)
        for tag in set(tags):
            _check_tag(path, lineno, tag)  # a type containing whitespace would not survive a column file
        n = len(sentences)
        sentences.append(_Sentence(list(text), tags, [lineno] * len(text), f"{stem}-{n}", str(n), spans=spans))
    if not sentences:
        raise _no_sentences(path)
    if dropped:
        _warn_dropped(dropped, "nested entities")
    return sentences


def read_cluener(
    path: PathLike, labels: list[str] | None = None, scheme: str = "BIO", nested: str = "outer"
) -> Dataset:
    """Read CLUENER JSON lines into character tokens tagged in ``scheme`` (BIO, or a scheme ``convert_tags`` knows).

    An entity nested inside another (CLUENER's train file, line 1507, has two company names inside a book title)
    cannot be written in flat tags: ``nested="outer"`` keeps the outer entity and warns with the file, line and mention of
    every dropped one; ``nested="error"`` refuses the file. Crossing spans are always an error."""
    from ..modeling.schemes import normalize_scheme

    sentences = _parse_cluener(path, read_lines(path, NerDataError), nested)
    if normalize_scheme(scheme) != "BIO":
        _convert_sentences(path, sentences, "BIO", scheme)
    return _finish(path, sentences, labels)


# ---------------------------------------------------------------------------------------------------------------
# Format detection, scheme conversion, splits


def _detect_format_lines(path: PathLike, lines: list[str]) -> str:
    first = next(((n, line) for n, line in enumerate(lines, 1) if line.strip()), None)
    if first is None:
        raise _no_sentences(path)
    _, line = first
    is_json_file = Path(path).suffix.lower() in _JSON_SUFFIXES
    if is_json_file or line.lstrip().startswith(("{", "[")):
        try:
            record = next(json_records(path, lines, NerDataError), (None, None))[1]
        except NerDataError:
            if is_json_file:
                raise
            record = None
        if isinstance(record, dict) and "tokens" in record and "entities" in record:
            return "spans"
        if isinstance(record, dict) and "data" in record and ("annotations" in record or "predictions" in record):
            return "labelstudio"
        if isinstance(record, dict) and "text" in record and ("entities" in record
                                                              or isinstance(record.get("label"), list)):
            return "doccano"
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

    ``.json``/``.jsonl`` files (or files whose first line is a JSON object) are ``spans`` when the first record
    has ``"tokens"`` and ``"entities"``, ``labelstudio`` when it has ``"data"`` and ``"annotations"`` or
    ``"predictions"``, ``doccano`` when it has ``"text"`` and ``"entities"`` or a ``"label"`` list, ``cluener`` when
    it has ``"text"`` and no ``"tokens"``, else ``jsonl``; otherwise ``char`` when every non-blank line has exactly
    two columns and the first is one character; otherwise ``conll``.
    """
    return _detect_format_lines(path, read_lines(path, NerDataError))


def _parse_file(
    path: PathLike, format: str, tag_column: int, separator: str | None = None, document_context: bool = False,
    nested: str = "outer",
) -> list[_Sentence]:
    lines = read_lines(path, NerDataError)
    if format == "auto":
        format = _detect_format_lines(path, lines)
    if format == "conll":
        return _parse_conll(path, lines, tag_column, separator, document_context)
    if format == "char":
        return _parse_char(path, lines)
    if format == "cluener":
        return _parse_cluener(path, lines, nested)
    if format == "spans":
        return _parse_spans(path, lines, nested)
    if format == "jsonl":
        return _parse_jsonl(path, lines)
    if format in ("labelstudio", "doccano"):
        from .annotation_tools import parse_labelstudio, parse_doccano

        return (parse_labelstudio if format == "labelstudio" else parse_doccano)(path, lines, nested)
    raise ValueError(f"unknown format {format!r}; expected 'auto' or one of {', '.join(FORMATS)}")


def _convert_sentences(
    path: PathLike, sentences: list[_Sentence], source: str, target: str, repair: bool = False
) -> None:
    """Check every sentence under ``source`` (repairing it with ``repair``), then re-encode it in ``target``.

    Invalid sentences raise one :class:`NerDataError` at the line of the first offending tag, with how many
    sentences of the file are invalid and the first few; repairs are counted per sentence and summarised in a
    :class:`NerDataWarning`."""
    # Imported here: tagging is a sibling module (it imports torch through the scheme table) that readers without
    # conversion do not need.
    from ..modeling.tagging import convert_tags, normalize_scheme, repair_tags, tag_problems

    source, target = normalize_scheme(source), normalize_scheme(target)  # a bad name is the caller's error
    invalid = []
    for sentence in sentences:
        problems = tag_problems(sentence.tags, source)
        unrepairable = [problem for problem in problems if not problem.repairable]
        if unrepairable or (problems and not repair):
            invalid.append((sentence, (unrepairable or problems)[0]))
    if invalid:
        raise _invalid_sequences(path, len(sentences), invalid, source, target, repair)

    repaired_lines = []
    for sentence in sentences:
        tags = sentence.tags
        if repair:
            fixed = repair_tags(tags, source)
            changed = [line for old, new, line in zip(tags, fixed, sentence.lines) if old != new]
            sentence.repaired = len(changed)
            repaired_lines += changed
            tags = fixed
        converted = list(convert_tags(tags, source, target))
        if len(converted) != len(tags):
            message = f"convert_tags changed the sentence length ({source} -> {target})"
            raise NerDataError(path, sentence.lines[0], message)
        sentence.tags = converted
    if repaired_lines:
        n_sentences = sum(1 for sentence in sentences if sentence.repaired)
        shown = ", ".join(map(str, repaired_lines[:_MAX_SHOWN])) + (" ..." if len(repaired_lines) > _MAX_SHOWN else "")
        warnings.warn(
            f"{path}: repaired {len(repaired_lines)} tag(s) in {n_sentences} of {len(sentences)} sentences, "
            f"{source} read with the conlleval rule (a tag that cannot continue the current entity starts a new "
            f"one); lines {shown}",
            NerDataWarning,
            stacklevel=4,
        )


def _invalid_sequences(path, n_sentences: int, invalid: list, source: str, target: str, repair: bool) -> NerDataError:
    """The error for invalid tag sequences: at the first offending tag's line, counting and quoting the others."""
    lines = [(sentence.lines[problem.position], problem) for sentence, problem in invalid]
    shown = "; ".join(f"line {line}: {problem.message}" for line, problem in lines[:_MAX_SHOWN])
    more = f"; ... ({len(lines) - _MAX_SHOWN} more)" if len(lines) > _MAX_SHOWN else ""
    converting = f" (the source scheme; converting to {target})" if target != source else ""
    if all(problem.repairable for _, problem in lines):
        hint = ("repair_tags=True (the NER recipe's --repair_tags) repairs such sequences with the conlleval rule: "
                "a tag that cannot continue the current entity starts a new one")
    else:
        hint = (f"tags that are not {source} tags are never repaired: is the source scheme right "
                "(the NER recipe's --source_scheme)?")
    message = (f"{len(invalid)} of {n_sentences} sentences are not valid {source}{converting}: {shown}{more}. "
               f"{hint}")
    return NerDataError(path, lines[0][0], message)


def _entity_type(tag: str) -> str | None:
    return tag[2:] if len(tag) > 2 else None  # tags passed _TAG_PATTERN: "O", "X" or "P-TYPE"


def _split_labels(
    sources: dict[str, tuple[PathLike, list[_Sentence]]], scheme: str | None
) -> tuple[list[str], str]:
    """The label list of several splits and where it came from (for messages).

    Entity types come from the training split (without one: from every split); the labels are every tag of the
    scheme (``scheme``'s prefixes; without a scheme the prefixes found in any split) for those types, plus ``"O"``
    (and ``"X"`` when the training tags have it). A type of another split that training lacks is an error at the
    line of its first tag."""
    label_splits = ["train"] if "train" in sources else list(sources)
    training_tags = {tag for split in label_splits for s in sources[split][1] for tag in s.tags}
    types = {t for t in map(_entity_type, training_tags) if t is not None}
    origin = ", ".join(str(sources[split][0]) for split in label_splits)
    if scheme is not None:
        from ..modeling.schemes import SCHEME_PREFIXES, normalize_scheme

        prefixes = set(SCHEME_PREFIXES[normalize_scheme(scheme)])
    else:
        prefixes = {tag[0] for _, sentences in sources.values() for s in sentences for tag in s.tags if len(tag) > 2}
    for split, (where, sentences) in sources.items():
        if split in label_splits:
            continue
        for sentence in sentences:
            for tag, line in zip(sentence.tags, sentence.lines):
                entity_type = _entity_type(tag)
                if entity_type is not None and entity_type not in types:
                    raise NerDataError(
                        where,
                        line,
                        f"entity type {entity_type!r} (tag {tag!r}) does not occur in the training data ({origin}), "
                        f"whose types are {', '.join(sorted(types)) or 'none'}: a model cannot learn a type it never "
                        "sees; add examples of it to the training data, or pass labels=",
                    )
    typeless = {"O"} | ({"X"} & training_tags)
    labels = canonical_labels(typeless | {f"{prefix}-{t}" for prefix in prefixes for t in types})
    return labels, f" (taken from {origin})"


def _load_hub_dataset(
    name: str,
    config: str | None,
    labels: list[str] | None,
    source_scheme: str | None,
    target_scheme: str | None,
    repair_tags: bool = False,
) -> DatasetDict:
    """``datasets.load_dataset`` plus the common columns; the Hub's own label order is kept unless tags change."""
    raw = datasets.load_dataset(name, config)
    sources: dict[str, tuple[str, list[_Sentence]]] = {}
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
        sources[split] = (where, [
            # "Line" numbers of Hub rows are 1-based row numbers.
            _Sentence(list(tokens), [names[t] for t in tags], [row] * len(tags), str(doc), str(i))
            for row, (tokens, tags, doc, i) in enumerate(zip(dataset["tokens"], dataset["ner_tags"], documents, ids), 1)
        ])
    origin = ""
    if source_scheme is not None:
        for where, sentences in sources.values():
            _convert_sentences(where, sentences, source_scheme, target_scheme, repair_tags)
        if labels is None:
            labels, origin = _split_labels(sources, target_scheme)
    labels = _check_labels(labels if labels is not None else hub_labels)
    return DatasetDict({
        split: _build_dataset(where, sentences, labels, origin, repair_tags)
        for split, (where, sentences) in sources.items()
    })


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
    separator: str | None = None,
    repair_tags: bool = False,
    document_context: bool = False,
    nested: str = "outer",
) -> DatasetDict:
    """Read NER splits into a ``DatasetDict`` (``train``/``validation``/``test``, those given) sharing one ClassLabel.

    Files: ``format`` is ``"auto"`` (:func:`detect_format`, per file) or one of :data:`FORMATS`; ``tag_column`` and
    ``separator`` are for CoNLL files; ``document_context`` makes a CoNLL file without ``-DOCSTART-`` warn.
    ``nested="keep"`` (the global pointer head) adds a column ``entities``, every entity of each sentence as
    ``{"start", "end" (exclusive), "type"}``: nested and overlapping ones of ``spans``, ``cluener``, ``labelstudio``
    and ``doccano`` files too (not dropped, no warning), the entities of the (converted) tags for the other formats.
    ``dataset_name``: ``datasets.load_dataset(dataset_name, dataset_config)``, which must give ``tokens`` and a
    ClassLabel ``ner_tags`` column (e.g. ``conll2003``); cannot be mixed with files.

    With ``source_scheme`` and ``target_scheme`` (e.g. ``"IOB1"``, ``"BIO"``) every sentence must be a valid
    ``source_scheme`` sequence and is re-encoded in ``target_scheme``. An invalid sentence is an error at the line
    of its first offending tag, naming how many sentences of the file are invalid and quoting the first few; with
    ``repair_tags=True`` they are repaired instead (``tagging.repair_tags``, the conlleval rule), a
    :class:`NerDataWarning` says how many tags in how many sentences of which file changed, and every row gets
    ``repaired_tags`` (see :func:`repair_counts`). Tags outside the source scheme (``E-PER`` in BIO) are never
    repaired.

    The label list is ``labels`` if given; else every tag of the (target) scheme for the entity types of the
    training data (without a training file: of all files given), so a tag absent from training (``I-PER`` when
    every training person is one word) is no error; without a scheme the prefixes are those found in the files.
    A validation or test entity type absent from training raises :class:`NerDataError` (a ValueError) at its line.
    From the Hub without conversion the Hub's own label list and order are kept.
    """
    if (source_scheme is None) != (target_scheme is None):
        raise ValueError("give both source_scheme and target_scheme, or neither")
    if repair_tags and source_scheme is None:
        raise ValueError("repair_tags needs source_scheme and target_scheme: the scheme the tags are repaired in")
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
        return _load_hub_dataset(dataset_name, dataset_config, labels, source_scheme, target_scheme, repair_tags)
    if not files:
        raise ValueError("give train_file, validation_file or test_file, or dataset_name")
    if format != "auto" and format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; expected 'auto' or one of {', '.join(FORMATS)}")

    sources = {
        split: (path, _parse_file(path, format, tag_column, separator, document_context, nested))
        for split, path in files.items()
    }
    if source_scheme is not None:
        for path, sentences in sources.values():
            _convert_sentences(path, sentences, source_scheme, target_scheme, repair_tags)

    label_origin = ""
    if labels is None:
        # After conversion, so the label list matches the tags the model will see.
        labels, label_origin = _split_labels(sources, target_scheme)
    if nested == "keep":
        from ..modeling.tagging import tags_to_spans

        for _, sentences in sources.values():
            for sentence in sentences:
                if sentence.spans is None:
                    sentence.spans = [(span.start, span.end, span.type)
                                      for span in tags_to_spans(sentence.tags, target_scheme or "BIO")]
    return DatasetDict({
        split: _build_dataset(path, sentences, labels, label_origin, repair_tags)
        for split, (path, sentences) in sources.items()
    })


_SEPARATOR_NAMES = {"tab": "\t", "\\t": "\t", "space": " "}


def column_separator(value: str | None) -> str | None:
    """A CoNLL column separator as typed on a command line: ``tab`` (or the two characters ``\\t``, what a shell
    passes for ``"\\t"``) is a tab, ``space`` a space, anything else itself; None: runs of spaces and tabs."""
    if value is None or value == "":
        return None
    return _SEPARATOR_NAMES.get(value.lower() if len(value) > 1 else value, value)


def entity_type_counts(dataset: Dataset) -> dict[str, int]:
    """How many words of ``dataset`` are outside any entity (``"O"``) and inside an entity of each type: what a
    tagger trained on it can answer (the recipes refuse training data with ``"O"`` only)."""
    names = dataset.features["ner_tags"].feature.names
    counts = collections.Counter(tag for sentence in dataset["ner_tags"] for tag in sentence)
    answers: dict[str, int] = collections.Counter()
    for tag, count in counts.items():
        answers[_entity_type(names[tag]) or "O"] += count
    return dict(answers)


def repair_counts(dataset: DatasetDict) -> dict[str, int]:
    """``{"<split>_repaired_tags": n, "<split>_repaired_sentences": m}`` for every split read with
    ``repair_tags=True`` (the recipes write them to ``all_results.json``, so a repaired file is never silent)."""
    counts = {}
    for split, rows in dataset.items():
        if "repaired_tags" in rows.column_names:
            repaired = rows["repaired_tags"]
            counts[f"{split}_repaired_tags"] = int(sum(repaired))
            counts[f"{split}_repaired_sentences"] = sum(1 for n in repaired if n)
    return counts


def check_tags_are_labels(tag_names: Sequence[str], labels: Sequence[str], model: str) -> None:
    """Refuse data whose tags the model has no label for (``ValueError`` naming the tags and ``model``, e.g.
    ``"the model out/conll"``): the NER and distillation recipes' check before they encode."""
    unknown = sorted(set(tag_names) - set(labels))
    if unknown:
        raise ValueError(f"tags {unknown} of the data are not labels of {model}")


def encode_dataset(
    raw: DatasetDict, tokenizer, label2id: dict[str, int], *, max_length: int, stride: int, scheme: str,
    strategy: str, context_window: int, spans: bool = False,
) -> DatasetDict:
    """Every split of ``raw`` (from :func:`load_ner_dataset`) as windows of model inputs
    (:func:`hf_bert_tasks.modeling.windows.encode_words`): token labels from the tags, or with ``spans`` (the global
    pointer head) each window's gold entity spans from the ``entities`` column, ``label2id`` keyed by entity type.
    ``example_index`` numbers the sentences of the split, so evaluation maps windows back to them. The NER and
    distillation recipes' encoding (run it under ``main_process_first``)."""
    from ..modeling.windows import encode_words, window_span_labels

    tag_names = raw[next(iter(raw))].features["ner_tags"].feature.names

    def encode(batch, indices):
        tags = None if spans else [[tag_names[t] for t in sentence] for sentence in batch["ner_tags"]]
        windows = encode_words(
            tokenizer, batch["tokens"], tags=tags, label2id=label2id, max_length=max_length, stride=stride,
            scheme=scheme, strategy=strategy, document_ids=batch["document_id"], context_window=context_window,
        )
        if spans:  # the gold spans of each window, from its sentence's entities
            windows["labels"] = [
                window_span_labels(ids, [(label2id[e["type"]], e["start"], e["end"]) for e in batch["entities"][i]])
                for ids, i in zip(windows["word_ids"], windows["example_index"])]
        windows["example_index"] = [indices[i] for i in windows["example_index"]]  # batch-relative -> split-wide
        return windows

    # With context, a document must not be cut between map batches: then the whole split is one batch.
    return raw.map(encode, batched=True, with_indices=True, batch_size=None if context_window else 1000,
                   remove_columns=raw[next(iter(raw))].column_names)


def write_tagged_file(
    path: PathLike,
    sentences: Iterable[list[str]],
    tags: Iterable[list[str]],
    layout: PathLike | None = None,
    separator: str | None = None,
) -> Path:
    """Write tagged sentences in a format the readers read back: ``{"tokens", "ner_tags"}`` JSON lines for a
    ``.json``/``.jsonl`` path, else ``token<TAB>tag`` lines with a blank line after each sentence.

    ``layout``: the column file (CoNLL or character-per-line, columns split by ``separator``) the sentences were
    read from. The output then follows it line for line, so that it lines up with that gold file: each token line
    becomes ``token<TAB>tag``, each ``-DOCSTART-`` line ``-DOCSTART-<TAB>O``, and blank lines stay where they are.
    When the sentences are the first N of the file (``--max_predict_samples``), the output stops after them."""
    path = Path(path)
    pairs = ((token, tag) for sentence, sentence_tags in zip(sentences, tags, strict=True)
             for token, tag in zip(sentence, sentence_tags, strict=True))
    with path.open("w", encoding="utf-8") as out:
        if layout is not None:
            for lineno, line in enumerate(read_lines(layout, NerDataError), 1):
                if not line.strip():
                    out.write("\n")
                elif _conll_columns(line, separator)[0] == DOCSTART:
                    out.write(f"{DOCSTART}\tO\n")
                else:
                    pair = next(pairs, None)
                    if pair is None:
                        break
                    token, tag = pair
                    out.write(f"{token}\t{tag}\n")
            if next(pairs, None) is not None:
                raise ValueError(f"{layout} has fewer token lines than the sentences to write")
            return path
        for tokens, sentence_tags in zip(sentences, tags, strict=True):
            if path.suffix.lower() in _JSON_SUFFIXES:
                out.write(json.dumps({"tokens": list(tokens), "ner_tags": list(sentence_tags)}, ensure_ascii=False))
                out.write("\n")
            else:
                out.writelines(f"{token}\t{tag}\n" for token, tag in zip(tokens, sentence_tags, strict=True))
                out.write("\n")
    return path


def write_prediction_file(
    output_dir: PathLike,
    sentences: Iterable[list[str]],
    tags: Iterable[list[str]],
    test_file: PathLike | None = None,
    format: str = "auto",
    separator: str | None = None,
) -> Path:
    """The recipes' ``test_predictions.jsonl`` (JSON input) or ``test_predictions.txt`` in ``output_dir``; a column
    ``test_file`` (read as ``format``) gives the text file its layout, line for line (:func:`write_tagged_file`)."""
    if test_file is not None and format == "auto":
        format = detect_format(test_file)
    json_lines = test_file is not None and format in ("cluener", "jsonl", "spans", "labelstudio", "doccano")
    path = predictions_path(output_dir, test_file, "txt", json_lines=json_lines)
    if path.suffix == ".jsonl":
        return write_tagged_file(path, sentences, tags)
    return write_tagged_file(path, sentences, tags, layout=test_file, separator=separator)


def write_span_predictions(output_dir: PathLike, sentences: Iterable[list[str]],
                           entities: Iterable[list[tuple[int, int, str]]]) -> Path:
    """The span model's ``test_predictions.jsonl`` in ``output_dir``: per sentence ``{"tokens": [...], "entities":
    [{"start", "end" (exclusive), "type", "text"}]}``, the layout of a ``spans`` file (it reads back as one)."""
    path = Path(output_dir) / "test_predictions.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for tokens, spans in zip(sentences, entities):
            found = [{"start": a, "end": b, "type": t, "text": " ".join(tokens[a:b])} for a, b, t in spans]
            f.write(json.dumps({"tokens": list(tokens), "entities": found}, ensure_ascii=False) + "\n")
    return path
