"""NER data from and for annotation tools: Label Studio JSON exports and doccano JSON lines, both character spans over
raw text.

Reading (``format="labelstudio"`` / ``"doccano"`` in :func:`hf_bert_tasks.ner.data.load_ner_dataset`, the recipes'
``--data_format``):

``labelstudio``
    Label Studio's JSON export: an array of tasks ``{"id", "data": {"text": ...}, "annotations": [{"result": [...]}]}``
    whose results of type ``labels`` carry ``value: {"start", "end", "text", "labels": [TYPE]}`` (``end``
    exclusive). The text is ``data["text"]``, or the one string field of ``data``. The first annotation that was not
    cancelled is read; a task without one falls back to its ``predictions`` (pre-annotations, e.g. written by
    :func:`write_labelstudio`), with a :class:`~hf_bert_tasks.ner.data.NerDataWarning` counting such tasks. A task
    with neither is an error: leaving it all ``O`` would teach the model that its entities are not entities.
``doccano``
    doccano's sequence-labelling JSON lines ``{"text": ..., "label": [[start, end, TYPE], ...]}`` (``end``
    exclusive), or the newer ``"entities": [{"start_offset", "end_offset", "label"}, ...]``. A record without either
    has no entities (doccano exports unlabelled texts that way).

Tokens are the words of :func:`hf_bert_tasks.modeling.tagging.split_words` (the pipeline's own words: CJK characters
one by one, other text at whitespace and punctuation), tags BIO. Each record is one sentence and its own document
(``"<file stem>-<n>"``); ``id`` is the record's own id when it has one. Errors are
:class:`~hf_bert_tasks.ner.data.NerDataError` at the record's line, naming the record and the span: a span outside
the text, one whose ``text`` does not read as the text there, one that starts or ends inside a word (annotation tools
let a selection cut a word; the model tags whole words). Overlapping spans follow ``load_ner_dataset``'s ``nested``: the
tags hold the outer entity; ``"keep"`` (the global pointer head) keeps every span, crossing ones too, in the
``entities`` column; ``"outer"`` (the default) drops a span inside another with a warning; crossing spans are an
error unless kept, and so is any overlap with ``"error"``.

Writing (:func:`write_labelstudio`, :func:`write_doccano`): texts with the predictor's entities (``{"type", "start",
"end", "score"}``) as Label Studio pre-annotations (``predictions``, to import and correct) or doccano JSON lines;
reading such a file back gives the same spans.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Sequence

from ..files import PathLike, json_records
from ..modeling.tagging import split_words
from .data import NerDataError, NerDataWarning, _check_tag, _file_stem, _no_sentences, _Sentence, _warn_dropped


def _record_name(record: dict, n: int) -> str:
    return f"record {n}" + (f" (id {record['id']!r})" if "id" in record else "")


def _tags_of_spans(path: PathLike, lineno: int, name: str, text: str, spans: list[tuple[int, int, str, str | None]],
                   nested: str, dropped: list[str]) -> tuple[list[str], list[str], list[tuple[int, int, str]]]:
    """The words of ``text``, their BIO tags and every span as ``(first word, end word exclusive, type)`` from
    ``(start, end_exclusive, type, stated text or None)`` character spans; NerDataError at ``lineno`` naming the record
    ``name`` for a span that does not fit (see the module docstring). Overlapping spans: the tags hold the outer one;
    with ``nested="keep"`` the others stay in the spans, with ``"outer"`` one inside another is dropped and described
    in ``dropped``; crossing spans (and any overlap with ``"error"``) are an error, except with ``"keep"``."""
    words = split_words(text)
    starts = {start: i for i, (_, start, _) in enumerate(words)}
    ends = {end: i for i, (_, _, end) in enumerate(words)}
    tags = ["O"] * len(words)
    word_spans, outer = [], None
    for start, end, entity_type, stated in sorted(spans, key=lambda span: (span[0], -span[1])):
        where = f"{name}: span [{start}, {end}) {entity_type!r}"
        if not 0 <= start < end <= len(text):
            raise NerDataError(path, lineno, f"{where} is outside the text ({len(text)} characters)")
        if stated is not None and text[start:end] != stated:
            raise NerDataError(path, lineno, f"{where} reads {text[start:end]!r}, not its text {stated!r}")
        first, last = starts.get(start), ends.get(end)
        if first is None or last is None:
            raise NerDataError(path, lineno, f"{where} ({text[start:end]!r}) starts or ends inside a word; "
                                             f"the words there are {[w for w, s, e in words if s < end and e > start]}")
        word_spans.append((first, last + 1, entity_type))
        if outer is not None and start < outer[1]:  # inside or across the outer span the tags already hold
            if nested == "keep":
                continue
            if nested == "outer" and end <= outer[1]:
                dropped.append(f"{path}:{lineno}: {text[start:end]!r} ({entity_type}) inside "
                               f"{text[outer[0]:outer[1]]!r} ({outer[2]})")
                continue
            raise NerDataError(path, lineno, f"{where} overlaps span [{outer[0]}, {outer[1]}) {outer[2]!r} "
                                             "(overlapping entities cannot be flat tags)")
        tags[first:last + 1] = [f"B-{entity_type}"] + [f"I-{entity_type}"] * (last - first)
        _check_tag(path, lineno, tags[first])
        outer = (start, end, entity_type)
    return [word for word, _, _ in words], tags, sorted(set(word_spans))


def _offset(path: PathLike, lineno: int, name: str, value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise NerDataError(path, lineno, f"{name}: {what} must be an integer character offset, found {value!r}")
    return value


def _sentence(path, lineno, record, n, text, spans, stem, nested: str, dropped: list[str]) -> _Sentence:
    name = _record_name(record, n)
    if not isinstance(text, str) or not text.strip():
        raise NerDataError(path, lineno, f"{name}: the text must be a non-empty string, found {text!r}")
    tokens, tags, word_spans = _tags_of_spans(path, lineno, name, text, spans, nested, dropped)
    if not tokens:
        raise NerDataError(path, lineno, f"{name}: the text has no words")
    return _Sentence(tokens, tags, [lineno] * len(tags), f"{stem}-{n}", str(record.get("id", n)),
                     spans=word_spans if nested == "keep" else None)


def _labelstudio_text(path, lineno, name: str, task: dict) -> str:
    data = task.get("data")
    if not isinstance(data, dict):
        raise NerDataError(path, lineno, f"{name}: no 'data' object (a Label Studio export task has "
                                         "{'data': {'text': ...}, 'annotations': [...]})")
    if "text" in data:
        return data["text"]
    strings = [key for key, value in data.items() if isinstance(value, str)]
    if len(strings) != 1:
        raise NerDataError(path, lineno, f"{name}: data has no 'text' field and {len(strings)} string fields "
                                         f"({strings}); which one is the text?")
    return data[strings[0]]


def _labelstudio_spans(path, lineno, name: str, results) -> list[tuple[int, int, str, str | None]]:
    if not isinstance(results, list):
        raise NerDataError(path, lineno, f"{name}: 'result' must be a list, found {type(results).__name__}")
    spans = []
    for result in results:
        if not isinstance(result, dict) or result.get("type", "labels") != "labels":
            continue  # other control tags (choices, relations, ...) are not entities
        value = result.get("value") or {}
        labels = value.get("labels")
        if not (isinstance(labels, list) and len(labels) == 1 and isinstance(labels[0], str)):
            raise NerDataError(path, lineno, f"{name}: a result must carry one label in value['labels'], found "
                                             f"{labels!r}")
        start = _offset(path, lineno, name, value.get("start"), "value['start']")
        end = _offset(path, lineno, name, value.get("end"), "value['end']")
        spans.append((start, end, labels[0], value.get("text")))
    return spans


def parse_labelstudio(path: PathLike, lines: list[str], nested: str = "outer") -> list[_Sentence]:
    stem, sentences, from_predictions, dropped = _file_stem(path), [], [], []
    for n, (lineno, task) in enumerate(json_records(path, lines, NerDataError)):
        name = _record_name(task, n)
        text = _labelstudio_text(path, lineno, name, task)
        annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
        if annotations:
            results = annotations[0].get("result", [])
        elif task.get("predictions"):
            results = task["predictions"][0].get("result", []) if isinstance(task["predictions"][0], dict) else None
            from_predictions.append(name)
        else:
            raise NerDataError(path, lineno, f"{name} has no annotation (nor predictions): annotate it, or leave it "
                                             "out of the export")
        sentences.append(_sentence(path, lineno, task, n, text, _labelstudio_spans(path, lineno, name, results),
                                   stem, nested, dropped))
    if not sentences:
        raise _no_sentences(path)
    if dropped:
        _warn_dropped(dropped, "nested entities")
    if from_predictions:
        warnings.warn(f"{path}: {len(from_predictions)} task(s) without annotations read from their predictions "
                      f"(pre-annotations): {', '.join(from_predictions[:5])}", NerDataWarning, stacklevel=3)
    return sentences


def _doccano_spans(path, lineno, name: str, record: dict) -> list[tuple[int, int, str, str | None]]:
    if "entities" in record:
        entities = record["entities"]
        if not isinstance(entities, list) or not all(isinstance(e, dict) for e in entities):
            raise NerDataError(path, lineno, f"{name}: 'entities' must be a list of {{start_offset, end_offset, "
                                             "label}} objects")
        triples = [(e.get("start_offset"), e.get("end_offset"), e.get("label")) for e in entities]
    else:
        triples = record.get("label", [])
        if not isinstance(triples, list) or not all(isinstance(t, list) and len(t) == 3 for t in triples):
            raise NerDataError(path, lineno, f"{name}: 'label' must be a list of [start, end, label] triples, "
                                             f"found {triples!r}")
    spans = []
    for start, end, label in triples:
        if not isinstance(label, str):
            raise NerDataError(path, lineno, f"{name}: a span's label must be a string, found {label!r}")
        spans.append((_offset(path, lineno, name, start, "start"), _offset(path, lineno, name, end, "end"), label,
                      None))
    return spans


def parse_doccano(path: PathLike, lines: list[str], nested: str = "outer") -> list[_Sentence]:
    stem, sentences, dropped = _file_stem(path), [], []
    for n, (lineno, record) in enumerate(json_records(path, lines, NerDataError)):
        name = _record_name(record, n)
        if "text" not in record:
            raise NerDataError(path, lineno, f"{name}: missing key 'text' (keys: {', '.join(map(repr, record))})")
        sentences.append(_sentence(path, lineno, record, n, record["text"],
                                   _doccano_spans(path, lineno, name, record), stem, nested, dropped))
    if not sentences:
        raise _no_sentences(path)
    if dropped:
        _warn_dropped(dropped, "nested entities")
    return sentences


# ---------------------------------------------------------------------------------------------------------------
# Writers


def labelstudio_tasks(texts: Sequence[str], entities: Sequence[Sequence[dict]], *, model_version: str = "hf_bert_tasks",
                      from_name: str = "label", to_name: str = "text") -> Iterator[dict]:
    """Label Studio tasks with pre-annotations, for import: one task per text, ``{"data": {"text"}, "predictions":
    [{"model_version", "score", "result"}]}``, each entity a ``labels`` result (``from_name``/``to_name``: the names
    of the labelling config's ``<Labels>`` and ``<Text>`` tags) with its score; the prediction's score is the mean of
    its entities' (1.0 without entities)."""
    for text, found in zip(texts, entities, strict=True):
        results = [{"from_name": from_name, "to_name": to_name, "type": "labels", "origin": "prediction",
                    "value": {"start": e["start"], "end": e["end"], "text": text[e["start"]:e["end"]],
                              "labels": [e["type"]]}, **({"score": e["score"]} if e.get("score") is not None else {})}
                   for e in found]
        scores = [e["score"] for e in found if e.get("score") is not None]
        yield {"data": {"text": text}, "predictions": [
            {"model_version": model_version, "score": sum(scores) / len(scores) if scores else 1.0,
             "result": results}]}


def write_labelstudio(path: PathLike, texts: Sequence[str], entities: Sequence[Sequence[dict]], **names) -> None:
    """:func:`labelstudio_tasks` as a Label Studio import file (a JSON array)."""
    with open(path, "w", encoding="utf-8") as out:
        json.dump(list(labelstudio_tasks(texts, entities, **names)), out, ensure_ascii=False, indent=1)
        out.write("\n")


def write_doccano(path: PathLike, texts: Sequence[str], entities: Sequence[Sequence[dict]]) -> None:
    """doccano JSON lines for import, ``{"text", "label": [[start, end, type], ...]}`` (``end`` exclusive)."""
    with open(path, "w", encoding="utf-8") as out:
        for text, found in zip(texts, entities, strict=True):
            spans = [[e["start"], e["end"], e["type"]] for e in found]
            out.write(json.dumps({"text": text, "label": spans}, ensure_ascii=False) + "\n")
