"""Extractive question answering: SQuAD-style data, sliding windows, n-best span search, SQuAD/CMRC2018 scores.

The model is transformers' own ``AutoModelForQuestionAnswering`` (a start and an end logit per token); this module
is everything around it, shared by ``recipes/qa.py``, :func:`answer_questions` and the benchmark.

Data (:func:`read_squad_json`, :func:`load_qa_dataset`)
    SQuAD 1.1 / 2.0 JSON (``{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question",
    "answers": [{"text", "answer_start"}], "is_impossible"?}]}]}]}``), which CMRC2018 shares, or a Hub data set with
    the same columns. Every reader returns ``datasets`` rows ``id, title, context, question,
    answers{text: [...], answer_start: [...]}`` (the Hub's ``squad`` layout). Checks, the same for files and Hub:

    - an **answer that is not at its ``answer_start``** is moved to the occurrence of its text nearest to the stated
      offset; an answer whose text does not occur in the context at all keeps its text (it is still a reference for
      scoring, which compares texts) with ``answer_start = -1``, and a question with no locatable answer is left out
      of *training* only. Each kind is reported in a :class:`QaDataWarning` with the count and the ids. (The real
      CMRC2018 files have both: 21 shifted answers in train; in dev 7 shifted ones and 193 paraphrased reference
      answers that occur nowhere in their context, each in a question that keeps another, locatable answer.)
    - an **empty context**, an empty question, an empty answer text, a duplicate id: :class:`QaDataError` naming the
      file and the id.
    - **unanswerable questions in 1.1 mode** (no answers, or ``is_impossible``) are an error naming the ids, not
      skipped: skipping would silently score a model on fewer questions than the file has. Pass
      ``version_2_with_negative=True`` for SQuAD 2.0-style data. A file where *no* question has answers is an
      unlabelled file (prediction only) and is accepted in both modes; training on it is an error.
    - **contexts far longer than the window** are not an error: they are cut into as many overlapping windows as
      they need (below), and every window is scored.

Windows (:func:`prepare_train_features`, :func:`prepare_eval_features`)
    ``[CLS] question [SEP] context-part [SEP]`` with a fast tokenizer, ``truncation="only_second"``,
    ``return_overflowing_tokens`` and offset mappings. ``doc_stride`` is the number of context tokens two
    consecutive windows share (the tokenizers' ``stride``, as in transformers' ``run_qa.py``), so any answer of at
    most ``doc_stride`` tokens lies whole inside some window. Questions longer than ``max_question_length`` tokens
    are cut to that length (BERT's ``max_query_length``) with a warning, which also guarantees the context part of
    every window is longer than ``doc_stride`` (checked up front by :func:`check_window_settings`; the tokenizer
    would otherwise abort the process). An answer's tokens are those overlapping its characters (whitespace at its
    edges ignored). A training window whose context part does not hold the whole answer (and every window of an
    unanswerable question) points both labels at ``[CLS]`` (position 0), as in BERT's ``run_squad.py``; so an
    answer longer than the context part of a window is never a target.

Post-processing (:func:`best_spans`, :func:`postprocess_predictions`)
    The n-best search is exact: every (start, end) with ``start <= end < start + max_answer_length`` inside the
    window's context part is scored ``start_logit + end_logit`` (BERT's original search only combines the top-n
    starts with the top-n ends, which can miss the best valid span when the top starts lie in the question). Spans
    of all windows of a question are mapped to character offsets of the *original* context, merged (a span seen in
    two overlapping windows keeps its best score) and ranked by score, then start, then end. For 2.0-style data
    the null score is the smallest ``start_logit[0] + end_logit[0]`` over the question's windows, and the answer is
    empty when ``null_score - best_span_score > null_score_diff_threshold``. ``score``/``probability`` is the softmax
    of the n-best scores (the null candidate included for 2.0).

Scores (:func:`qa_scores`), on a 0-100 scale like the official scripts
    English, the official SQuAD normalisation: lowercase, drop punctuation, drop the articles a/an/the, collapse
    whitespace; EM is equality, F1 the bag-of-tokens overlap; the best over the reference answers. An empty
    reference list (unanswerable) counts as the single reference ``""``. Chinese, as CMRC2018 scores it:
    :func:`segment_mixed` lowercases, drops punctuation (Unicode P* and ASCII punctuation), makes every CJK character
    a token of its own and keeps runs of other characters (English words, numbers) as whitespace-separated tokens;
    F1 uses the *longest common substring* of the two token sequences (precision = its length / predicted tokens,
    recall = its length / reference tokens), EM is equality of the token sequences. Two deliberate differences from
    the CMRC script: runs of other characters are split at whitespace rather than by NLTK, and EM compares token
    sequences, so a space between two Chinese characters does not count (the script compares strings, spaces
    kept).
"""

from __future__ import annotations

import json
import math
import os
import re
import string
import unicodedata
import warnings
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import datasets
import numpy as np
from datasets import Dataset, DatasetDict, Features, Value

__all__ = [
    "QaDataError",
    "QaDataWarning",
    "answer_questions",
    "best_spans",
    "check_window_settings",
    "cmrc_exact_match",
    "cmrc_f1",
    "detect_language",
    "load_qa_dataset",
    "normalize_answer",
    "postprocess_predictions",
    "prepare_eval_features",
    "prepare_train_features",
    "squad_features",
    "qa_scores",
    "read_squad_json",
    "segment_mixed",
    "squad_exact_match",
    "squad_f1",
]

PathLike = str | os.PathLike

# The settings a trained model keeps in its config, so that answer_questions windows and decodes as training did.
DEFAULT_SETTINGS = {
    "max_seq_length": 384,
    "doc_stride": 128,
    "max_question_length": 64,
    "n_best_size": 20,
    "max_answer_length": 30,
    "version_2_with_negative": False,
    "null_score_diff_threshold": 0.0,
}
_MAX_IDS_SHOWN = 20


class QaDataError(ValueError):
    """Bad QA input; the message starts with the file (or Hub split) and names the question id(s)."""


class QaDataWarning(UserWarning):
    """QA data that was read with a documented repair (shifted answer offsets, unlocatable answers, cut questions)."""


def squad_features() -> Features:
    """The columns every reader returns (the Hub's ``squad`` layout)."""
    return Features(
        {
            "id": Value("string"),
            "title": Value("string"),
            "context": Value("string"),
            "question": Value("string"),
            "answers": {"text": [Value("string")], "answer_start": [Value("int32")]},
        }
    )


def _show_ids(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:_MAX_IDS_SHOWN])
    return shown + (f", ... ({len(ids) - _MAX_IDS_SHOWN} more)" if len(ids) > _MAX_IDS_SHOWN else "")


# ---------------------------------------------------------------------------------------------------------------
# Readers


def read_squad_json(path: PathLike, version_2_with_negative: bool = False) -> Dataset:
    """One row per question of a SQuAD-style JSON file (SQuAD 1.1, 2.0, CMRC2018); checks in the module docstring.

    Raises :class:`QaDataError` naming the file (and the article/paragraph or question id) for a malformed file.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise QaDataError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise QaDataError(f'{path}: expected SQuAD JSON, an object with a "data" list of articles')
    records = []
    for a, article in enumerate(data["data"]):
        title = article.get("title", "") if isinstance(article, dict) else None
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise QaDataError(f'{path}: article {a} has no "paragraphs" list')
        for p, paragraph in enumerate(paragraphs):
            where = f"article {a} ({title!r}), paragraph {p}"
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("qas"), list):
                raise QaDataError(f'{path}: {where} has no "qas" list')
            context = paragraph.get("context")
            if not isinstance(context, str):
                raise QaDataError(f'{path}: {where} has no "context" string')
            for q, qa in enumerate(paragraph["qas"]):
                if not isinstance(qa, dict) or not isinstance(qa.get("id"), (str, int)):
                    raise QaDataError(f'{path}: {where}, question {q} has no "id"')
                question_id = str(qa["id"])
                if not isinstance(qa.get("question"), str):
                    raise QaDataError(f'{path}: question {question_id} has no "question" string')
                answers = qa.get("answers", [])
                if not isinstance(answers, list) or not all(
                    isinstance(x, dict) and isinstance(x.get("text"), str) and isinstance(x.get("answer_start"), int)
                    for x in answers
                ):
                    raise QaDataError(f'{path}: question {question_id}: "answers" must be a list of '
                                      '{"text": str, "answer_start": int}')
                if qa.get("is_impossible") and answers:
                    raise QaDataError(f"{path}: question {question_id} is marked is_impossible but has answers")
                records.append({
                    "id": question_id, "title": str(title or ""), "context": context, "question": qa["question"],
                    "answers": {"text": [x["text"] for x in answers],
                                "answer_start": [x["answer_start"] for x in answers]},
                })
    return _checked_dataset(str(path), records, version_2_with_negative)


def load_qa_dataset(
    train_file: PathLike | None = None,
    validation_file: PathLike | None = None,
    test_file: PathLike | None = None,
    dataset_name: str | None = None,
    dataset_config: str | None = None,
    version_2_with_negative: bool = False,
) -> DatasetDict:
    """SQuAD-style files into ``train``/``validation``/``test`` (those given), or a Hub data set with the columns
    ``id, context, question, answers`` (``title`` optional), e.g. ``squad``, ``squad_v2``, ``cmrc2018``: a thin
    wrapper over ``datasets.load_dataset(dataset_name, dataset_config)`` that applies the same checks."""
    files = {split: path for split, path in (("train", train_file), ("validation", validation_file),
                                             ("test", test_file)) if path is not None}
    if dataset_name is not None:
        if files:
            raise ValueError("give either dataset_name or data files, not both")
        raw = datasets.load_dataset(dataset_name, dataset_config)
        splits = {}
        for split, dataset in raw.items():
            where = f"{dataset_name}[{split}]"
            missing = {"id", "context", "question", "answers"} - set(dataset.column_names)
            if missing:
                raise QaDataError(f"{where}: missing column(s) {', '.join(sorted(missing))}; "
                                  f"have {dataset.column_names}")
            records = [{
                "id": str(row["id"]), "title": str(row.get("title") or ""), "context": row["context"],
                "question": row["question"],
                "answers": {"text": list(row["answers"]["text"]),
                            "answer_start": [int(s) for s in row["answers"]["answer_start"]]},
            } for row in dataset]
            splits[split] = _checked_dataset(where, records, version_2_with_negative)
        return DatasetDict(splits)
    if not files:
        raise ValueError("give train_file, validation_file or test_file, or dataset_name")
    return DatasetDict({split: read_squad_json(path, version_2_with_negative) for split, path in files.items()})


def _nearest_occurrence(context: str, text: str, stated: int) -> int:
    """Start of the occurrence of ``text`` in ``context`` nearest to ``stated`` (the earlier one on a tie); -1 if
    there is none. Occurrences may overlap."""
    best, position = -1, context.find(text)
    while position != -1:
        if best == -1 or abs(position - stated) < abs(best - stated):
            best = position
        position = context.find(text, position + 1)
    return best


def _checked_dataset(source: str, records: list[dict], version_2_with_negative: bool) -> Dataset:
    """The content checks shared by files and Hub splits (module docstring); repairs offsets in place."""
    if not records:
        raise QaDataError(f"{source}: no questions")
    seen: set[str] = set()
    shifted, unlocatable, untrainable, unanswerable = [], [], [], []
    for record in records:
        question_id = record["id"]
        if question_id in seen:
            raise QaDataError(f"{source}: duplicate question id {question_id}")
        seen.add(question_id)
        if not record["context"].strip():
            raise QaDataError(f"{source}: question {question_id} has an empty context")
        if not record["question"].strip():
            raise QaDataError(f"{source}: question {question_id} is empty")
        answers = record["answers"]
        if not answers["text"]:
            unanswerable.append(question_id)
            continue
        for i, (text, start) in enumerate(zip(answers["text"], answers["answer_start"])):
            if not text.strip():
                raise QaDataError(f"{source}: question {question_id} has an empty answer text")
            if start >= 0 and record["context"][start:start + len(text)] == text:
                continue
            found = _nearest_occurrence(record["context"], text, start)
            answers["answer_start"][i] = found
            (shifted if found >= 0 else unlocatable).append(question_id)
        if all(start < 0 for start in answers["answer_start"]):
            untrainable.append(question_id)
    if unanswerable and not version_2_with_negative and len(unanswerable) < len(records):
        raise QaDataError(f"{source}: {len(unanswerable)} question(s) without answers in SQuAD 1.1 mode "
                          f"(ids: {_show_ids(unanswerable)}); pass version_2_with_negative=True "
                          "(--version_2_with_negative) for SQuAD 2.0-style data")
    if shifted:
        warnings.warn(QaDataWarning(
            f"{source}: {len(shifted)} answer(s) not at their answer_start were moved to the nearest occurrence of "
            f"their text (questions: {_show_ids(list(dict.fromkeys(shifted)))})"), stacklevel=3)
    if unlocatable:
        dropped = (f"; {len(untrainable)} question(s) without any locatable answer are left out of training "
                   f"(ids: {_show_ids(untrainable)})" if untrainable else "")
        warnings.warn(QaDataWarning(
            f"{source}: {len(unlocatable)} answer(s) do not occur in their context and are kept as reference texts "
            f"for scoring only, with answer_start -1 (questions: {_show_ids(list(dict.fromkeys(unlocatable)))})"
            f"{dropped}"), stacklevel=3)
    return Dataset.from_list(records, features=squad_features())


# ---------------------------------------------------------------------------------------------------------------
# Scores


_ASCII_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official SQuAD normalisation: lowercase, remove ASCII punctuation, the articles a/an/the, extra spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _ASCII_PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def squad_exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def squad_f1(prediction: str, reference: str) -> float:
    """Bag-of-tokens F1 of the normalised texts; an empty side scores 1 only against another empty side."""
    predicted, gold = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not predicted or not gold:
        return float(predicted == gold)
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return (0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0x20000 <= code <= 0x2FA1F
            or 0xF900 <= code <= 0xFAFF)


def _is_punctuation(ch: str) -> bool:
    return ch in _ASCII_PUNCTUATION or unicodedata.category(ch).startswith("P")


def segment_mixed(text: str) -> list[str]:
    """CMRC2018-style tokens: lowercase; punctuation dropped (it does not split a word: ``"u.s."`` -> ``"us"``);
    each CJK character a token; other characters form whitespace-separated tokens."""
    tokens, run = [], []

    def flush():
        if run:
            tokens.append("".join(run))
            run.clear()

    for ch in text.lower():
        if _is_punctuation(ch):
            continue
        if ch.isspace():
            flush()
        elif _is_cjk(ch):
            flush()
            tokens.append(ch)
        else:
            run.append(ch)
    flush()
    return tokens


def _longest_common_substring(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest contiguous run shared by two token sequences (dynamic programming, O(len a * len b))."""
    best, previous = 0, [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def cmrc_exact_match(prediction: str, reference: str) -> float:
    return float(segment_mixed(prediction) == segment_mixed(reference))


def cmrc_f1(prediction: str, reference: str) -> float:
    """CMRC2018's F1: longest common substring of the :func:`segment_mixed` tokens."""
    predicted, gold = segment_mixed(prediction), segment_mixed(reference)
    if not predicted or not gold:
        return float(predicted == gold)
    common = _longest_common_substring(predicted, gold)
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def detect_language(texts: Sequence[str]) -> str:
    """``"zh"`` when over 30% of the non-space characters are CJK, else ``"en"`` (picks the metric)."""
    characters = [ch for text in texts for ch in text if not ch.isspace()]
    cjk = sum(_is_cjk(ch) for ch in characters)
    return "zh" if characters and cjk / len(characters) > 0.3 else "en"


def qa_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]], language: str = "en") -> dict:
    """Mean EM and F1 (0-100) over the questions of ``references`` ({id: reference texts}), each the best over the
    question's references; an empty reference list means unanswerable (reference ``""``). A question missing from
    ``predictions`` scores 0. With unanswerable questions present, also ``has_answer_*``/``no_answer_*`` scores
    and counts (the official 2.0 breakdown)."""
    if language not in ("en", "zh"):
        raise ValueError(f"language must be 'en' (SQuAD) or 'zh' (CMRC2018), got {language!r}")
    exact, f1 = (squad_exact_match, squad_f1) if language == "en" else (cmrc_exact_match, cmrc_f1)
    rows = []
    for question_id, gold in references.items():
        gold = list(gold) or [""]
        predicted = predictions.get(question_id)
        if predicted is None:
            rows.append((gold != [""], 0.0, 0.0))
            continue
        rows.append((gold != [""], max(exact(predicted, g) for g in gold), max(f1(predicted, g) for g in gold)))
    if not rows:
        raise ValueError("no reference answers to score against")

    def mean(values):
        return 100.0 * sum(values) / len(values) if values else 0.0

    scores = {"exact_match": mean([r[1] for r in rows]), "f1": mean([r[2] for r in rows]), "total": len(rows)}
    if any(not has_answer for has_answer, _, _ in rows):
        answerable = [r for r in rows if r[0]]
        unanswerable = [r for r in rows if not r[0]]
        scores.update({
            "has_answer_exact_match": mean([r[1] for r in answerable]),
            "has_answer_f1": mean([r[2] for r in answerable]), "has_answer_total": len(answerable),
            "no_answer_exact_match": mean([r[1] for r in unanswerable]), "no_answer_total": len(unanswerable),
        })
    return scores


# ---------------------------------------------------------------------------------------------------------------
# Windows


def check_window_settings(tokenizer, max_seq_length: int, doc_stride: int, max_question_length: int) -> None:
    """Reject settings the windowing cannot honour, with the numbers, before the tokenizer aborts on them."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("QA windows need a fast tokenizer (offset mappings); "
                         f"{type(tokenizer).__name__} is not one")
    if max_seq_length > tokenizer.model_max_length:
        raise ValueError(f"max_seq_length {max_seq_length} exceeds the tokenizer's model_max_length "
                         f"{tokenizer.model_max_length}")
    special = tokenizer.num_special_tokens_to_add(pair=True)
    room = max_seq_length - max_question_length - special
    if doc_stride < 0 or doc_stride >= room:
        raise ValueError(f"doc_stride ({doc_stride}) must be at least 0 and smaller than the context part of a "
                         f"window: max_seq_length ({max_seq_length}) - max_question_length ({max_question_length}) "
                         f"- {special} special tokens = {room}")
    probe = tokenizer("q", "c")
    if probe["input_ids"][0] != tokenizer.cls_token_id or probe.sequence_ids(0)[1] != 0:
        raise ValueError("QA windows need a BERT-style tokenizer: [CLS] at position 0, then the question")


def _cut_questions(tokenizer, examples: Mapping[str, list], max_question_length: int) -> list[str]:
    """Questions without leading whitespace (some SQuAD 2.0 questions have a lot), cut to ``max_question_length``
    tokens at a token boundary (BERT's max_query_length), with a warning naming the cut ones."""
    questions = [q.lstrip() for q in examples["question"]]
    encoded = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    cut = []
    for i, offsets in enumerate(encoded["offset_mapping"]):
        keep = max_question_length
        while len(offsets) > max_question_length and keep > 0:
            # Re-tokenising the prefix normally gives the same first tokens; shrink further if it does not.
            candidate = questions[i][: offsets[keep - 1][1]]
            if len(tokenizer(candidate, add_special_tokens=False)["input_ids"]) <= max_question_length:
                questions[i] = candidate
                cut.append(str(examples["id"][i]))
                break
            keep -= 1
    if cut:
        warnings.warn(QaDataWarning(f"{len(cut)} question(s) longer than max_question_length={max_question_length} "
                                    f"tokens were cut to that length (ids: {_show_ids(cut)})"), stacklevel=3)
    return questions


def _windows(tokenizer, examples: Mapping[str, list], max_seq_length: int, doc_stride: int, max_question_length: int):
    """Tokenized windows of a batch of examples and, per window, its example index and context token range."""
    check_window_settings(tokenizer, max_seq_length, doc_stride, max_question_length)
    questions = _cut_questions(tokenizer, examples, max_question_length)
    encoded = tokenizer(
        questions, list(examples["context"]), truncation="only_second", max_length=max_seq_length,
        stride=doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True,
    )
    context_ranges = []
    for w in range(len(encoded["input_ids"])):
        context_tokens = [t for t, s in enumerate(encoded.sequence_ids(w)) if s == 1]
        context_ranges.append((context_tokens[0], context_tokens[-1]))
    return encoded, encoded.pop("overflow_to_sample_mapping"), context_ranges


def _answer_tokens(context: str, offsets, context_range, start: int, text: str) -> tuple[int, int]:
    """(start token, end token) of the answer in this window, or (0, 0) ([CLS]) if the window lacks part of it.

    Whitespace at the edges of the answer is ignored; the answer's tokens are those overlapping its characters.
    """
    end = start + len(text)
    while start < end and context[start].isspace():
        start += 1
    while end > start and context[end - 1].isspace():
        end -= 1
    first, last = context_range
    if offsets[first][0] > start or offsets[last][1] < end:
        return 0, 0
    overlapping = [t for t in range(first, last + 1) if offsets[t][0] < end and offsets[t][1] > start]
    if not overlapping:  # the answer's characters are ones the tokenizer drops
        return 0, 0
    return overlapping[0], overlapping[-1]


def _first_locatable(answers: Mapping[str, list]) -> tuple[int, str] | None:
    for text, start in zip(answers["text"], answers["answer_start"]):
        if start >= 0:
            return start, text
    return None


def prepare_train_features(
    examples: Mapping[str, list],
    tokenizer,
    max_seq_length: int = 384,
    doc_stride: int = 128,
    max_question_length: int = 64,
    version_2_with_negative: bool = False,
) -> dict[str, list]:
    """Training windows of a batch of examples (``Dataset.map(batched=True)``): the tokenizer's inputs plus
    ``start_positions``/``end_positions`` (ints, token indices in the window; 0 = ``[CLS]`` when the window does
    not hold the whole answer). Trained on the first locatable answer; questions without one are left out (their
    answers do not occur in the context; the reader has warned). In 1.1 mode a question with no answers is an
    error."""
    encoded, example_of_window, context_ranges = _windows(tokenizer, examples, max_seq_length, doc_stride,
                                                          max_question_length)
    kept = {key: [] for key in encoded}
    kept["start_positions"], kept["end_positions"] = [], []
    for w, i in enumerate(example_of_window):
        answers = examples["answers"][i]
        if not answers["text"] and not version_2_with_negative:
            raise QaDataError(f"training question {examples['id'][i]} has no answer (SQuAD 1.1 mode); pass "
                              "version_2_with_negative=True for data with unanswerable questions")
        answer = _first_locatable(answers)
        if answers["text"] and answer is None:
            continue
        start, end = (0, 0) if answer is None else _answer_tokens(
            examples["context"][i], encoded["offset_mapping"][w], context_ranges[w], *answer)
        for key in encoded:
            kept[key].append(encoded[key][w])
        kept["start_positions"].append(start)
        kept["end_positions"].append(end)
    kept.pop("offset_mapping")
    return kept


def prepare_eval_features(
    examples: Mapping[str, list],
    tokenizer,
    max_seq_length: int = 384,
    doc_stride: int = 128,
    max_question_length: int = 64,
    with_labels: bool = True,
) -> dict[str, list]:
    """Evaluation windows: the tokenizer's inputs, ``example_id`` and ``offset_mapping`` (character spans of the
    original context, ``None`` outside the window's context part), and with ``with_labels`` the
    ``start_positions``/``end_positions`` of the first locatable answer (``[CLS]`` when there is none), so that
    ``Trainer`` reports an evaluation loss and calls ``compute_metrics``. Every example keeps all its windows."""
    encoded, example_of_window, context_ranges = _windows(tokenizer, examples, max_seq_length, doc_stride,
                                                          max_question_length)
    features = {key: list(values) for key, values in encoded.items() if key != "offset_mapping"}
    features["example_id"], features["offset_mapping"] = [], []
    if with_labels:
        features["start_positions"], features["end_positions"] = [], []
    for w, i in enumerate(example_of_window):
        offsets = encoded["offset_mapping"][w]
        first, last = context_ranges[w]
        features["example_id"].append(str(examples["id"][i]))
        features["offset_mapping"].append([list(o) if first <= t <= last else None for t, o in enumerate(offsets)])
        if with_labels:
            answer = _first_locatable(examples["answers"][i])
            start, end = (0, 0) if answer is None else _answer_tokens(
                examples["context"][i], offsets, context_ranges[w], *answer)
            features["start_positions"].append(start)
            features["end_positions"].append(end)
    return features


# ---------------------------------------------------------------------------------------------------------------
# Post-processing


def best_spans(
    start_logits: np.ndarray, end_logits: np.ndarray, context_mask: np.ndarray, n_best_size: int,
    max_answer_length: int,
) -> list[tuple[int, int, float]]:
    """The exact ``n_best_size`` best spans of one window.

    start_logits, end_logits: (seq_len,) or longer (padding beyond ``len(context_mask)`` is ignored);
    context_mask: (seq_len,) bool, True on the context part. A span (start, end) is valid when both ends are
    context tokens and ``start <= end < start + max_answer_length``; its score is ``start_logit + end_logit``
    (float64). Returns (start, end, score) by descending score, then ascending start and end.
    """
    mask = np.asarray(context_mask, dtype=bool)
    n = len(mask)
    length = min(max_answer_length, n)
    if n == 0 or length <= 0 or n_best_size <= 0:
        return []
    start_scores = np.asarray(start_logits[:n], dtype=np.float64)
    end_scores = np.asarray(end_logits[:n], dtype=np.float64)
    starts = np.broadcast_to(np.arange(n)[:, None], (n, length))  # (n, length): span (i, i + k)
    ends = starts + np.arange(length)[None, :]
    clipped = np.minimum(ends, n - 1)
    valid = (ends < n) & mask[starts] & mask[clipped]
    starts, ends = starts[valid], ends[valid]
    scores = start_scores[starts] + end_scores[ends]
    if len(scores) > n_best_size:
        # Keep everything tied with the n-th best, so that the tie-break below is exact.
        threshold = np.partition(scores, len(scores) - n_best_size)[len(scores) - n_best_size]
        keep = scores >= threshold
        starts, ends, scores = starts[keep], ends[keep], scores[keep]
    order = np.lexsort((ends, starts, -scores))[:n_best_size]
    return [(int(starts[j]), int(ends[j]), float(scores[j])) for j in order]


def _softmax(scores: list[float]) -> list[float]:
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def postprocess_predictions(
    examples,
    features,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    version_2_with_negative: bool = False,
    null_score_diff_threshold: float = 0.0,
) -> dict[str, dict]:
    """Answers with character offsets in the original contexts, from the logits of every window.

    examples: rows with ``id`` and ``context`` (a ``Dataset`` or a dict of lists); features: the windows from
    :func:`prepare_eval_features` (``example_id``, ``offset_mapping``), in the order of the logits;
    start_logits, end_logits: (num_windows, padded_len) (padding with any value past each window's length).

    Returns ``{id: {"answer", "start", "end", "score", "null_score_diff", "nbest"}}``: ``answer ==
    context[start:end]`` (``""`` with start/end ``None`` for no answer), ``score`` the answer's n-best probability,
    ``null_score_diff`` (2.0 mode) ``null_score - best_span_score``, ``nbest`` the ranked candidates
    ``{"text", "start", "end", "logit_score", "probability"}`` (the null candidate has text ``""``).
    """
    start_logits, end_logits = np.asarray(start_logits), np.asarray(end_logits)
    if len(start_logits) != len(features["example_id"]) or start_logits.shape != end_logits.shape:
        raise ValueError(f"{len(features['example_id'])} windows but logits of shape {start_logits.shape} and "
                         f"{end_logits.shape}")
    windows_of = defaultdict(list)
    for w, example_id in enumerate(features["example_id"]):
        windows_of[example_id].append(w)
    offset_mappings = list(features["offset_mapping"])  # a Dataset column is lazy: read it once
    results = {}
    for example_id, context in zip(examples["id"], examples["context"]):
        example_id = str(example_id)
        spans: dict[tuple[int, int], float] = {}
        null_score = None
        for w in windows_of.get(example_id, []):
            offsets = offset_mappings[w]
            mask = np.array([o is not None for o in offsets])
            for start, end, score in best_spans(start_logits[w], end_logits[w], mask, n_best_size,
                                                max_answer_length):
                span = (offsets[start][0], offsets[end][1])
                spans[span] = max(score, spans.get(span, -math.inf))
            window_null = float(start_logits[w][0]) + float(end_logits[w][0])
            null_score = window_null if null_score is None else min(null_score, window_null)
        ranked = sorted(spans.items(), key=lambda item: (-item[1], item[0]))[:n_best_size]
        nbest = [{"text": context[s:e], "start": s, "end": e, "logit_score": score} for (s, e), score in ranked]
        null = None
        if version_2_with_negative and null_score is not None:
            null = {"text": "", "start": None, "end": None, "logit_score": null_score}
            # Ranked with the spans; on a tie the span comes first.
            position = sum(c["logit_score"] >= null_score for c in nbest)
            nbest.insert(position, null)
        for candidate, probability in zip(nbest, _softmax([c["logit_score"] for c in nbest]) if nbest else []):
            candidate["probability"] = probability
        best = next((c for c in nbest if c is not null), None)
        null_score_diff = None
        if null is not None:
            null_score_diff = null_score - best["logit_score"] if best else math.inf
            if null_score_diff > null_score_diff_threshold:
                best = null
        if best is None:
            answer = {"answer": "", "start": None, "end": None, "score": 0.0}
        else:
            answer = {"answer": best["text"], "start": best["start"], "end": best["end"],
                      "score": best["probability"]}
        results[example_id] = {**answer, "null_score_diff": null_score_diff, "nbest": nbest}
    return results


# ---------------------------------------------------------------------------------------------------------------
# Inference


def answer_questions(
    model_or_path,
    questions: Sequence[str],
    contexts: Sequence[str],
    tokenizer=None,
    batch_size: int = 16,
    device: str | None = None,
    **settings,
) -> list[dict]:
    """Answer each question from its context: ``[{"answer", "start", "end", "score"}]`` with
    ``answer == context[start:end]`` (``""``, ``None``, ``None`` when a 2.0-style model abstains) and ``score``
    the answer's n-best probability.

    model_or_path: a folder or Hub id (``AutoModelForQuestionAnswering`` and its tokenizer), or a loaded model
    (then pass ``tokenizer``). Windowing and decoding settings (``max_seq_length``, ``doc_stride``,
    ``max_question_length``, ``n_best_size``, ``max_answer_length``, ``version_2_with_negative``,
    ``null_score_diff_threshold``) come from the model's config as ``recipes/qa.py`` saved them, else the
    defaults; keyword arguments override them.
    """
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    if len(questions) != len(contexts):
        raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts")
    if isinstance(model_or_path, (str, os.PathLike)):
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(str(model_or_path))
        model = AutoModelForQuestionAnswering.from_pretrained(str(model_or_path))
    else:
        model = model_or_path
        if tokenizer is None:
            raise ValueError("pass the tokenizer with a loaded model")
    unknown = set(settings) - set(DEFAULT_SETTINGS)
    if unknown:
        raise TypeError(f"unknown settings {sorted(unknown)}; known: {sorted(DEFAULT_SETTINGS)}")
    options = {key: settings.get(key, getattr(model.config, key, default)) for key, default in DEFAULT_SETTINGS.items()}
    for i, context in enumerate(contexts):
        if not context.strip():
            raise ValueError(f"context {i} is empty")
    examples = {"id": [str(i) for i in range(len(questions))], "question": list(questions),
                "context": list(contexts), "answers": [{"text": [], "answer_start": []}] * len(questions)}
    features = prepare_eval_features(examples, tokenizer, options["max_seq_length"], options["doc_stride"],
                                     options["max_question_length"], with_labels=False)
    model_inputs = [key for key in ("input_ids", "token_type_ids", "attention_mask") if key in features]
    if device is not None:
        model.to(device)
    model.eval()
    width = max(len(ids) for ids in features["input_ids"])
    start_logits = np.full((len(features["input_ids"]), width), -1e4, dtype=np.float32)
    end_logits = start_logits.copy()
    with torch.no_grad():
        for begin in range(0, len(features["input_ids"]), batch_size):
            batch = tokenizer.pad({key: features[key][begin:begin + batch_size] for key in model_inputs},
                                  return_tensors="pt")
            output = model(**{key: value.to(model.device) for key, value in batch.items()})
            length = output.start_logits.shape[1]
            start_logits[begin:begin + batch_size, :length] = output.start_logits.float().cpu().numpy()
            end_logits[begin:begin + batch_size, :length] = output.end_logits.float().cpu().numpy()
    predictions = postprocess_predictions(
        examples, features, start_logits, end_logits, options["n_best_size"], options["max_answer_length"],
        options["version_2_with_negative"], options["null_score_diff_threshold"],
    )
    return [{key: predictions[i][key] for key in ("answer", "start", "end", "score")} for i in examples["id"]]
