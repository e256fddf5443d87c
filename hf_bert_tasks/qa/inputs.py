"""Question-answering model inputs: question + context windows with their labels.

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
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

from ..modeling.windows import check_stride
from .data import QaDataError, QaDataWarning, show_ids

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
    check_stride(doc_stride, room, "doc_stride", f" (max_seq_length {max_seq_length} - max_question_length "
                                                 f"{max_question_length} - {special} special tokens)")
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
                                    f"tokens were cut to that length (ids: {show_ids(cut)})"), stacklevel=3)
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
