"""Question-answering decoding and prediction: logits to answers, raw questions to answers.

Post-processing (:func:`best_spans`, :func:`postprocess_predictions`)
    The n-best search is exact: every (start, end) with ``start <= end < start + max_answer_length`` inside the
    window's context part is scored ``start_logit + end_logit`` (BERT's original search only combines the top-n
    starts with the top-n ends, which can miss the best valid span when the top starts lie in the question). Spans
    of all windows of a question are mapped to character offsets of the *original* context, merged (a span seen in
    two overlapping windows keeps its best score) and ranked by score, then start, then end. For 2.0-style data
    the null score is the smallest ``start_logit[0] + end_logit[0]`` over the question's windows, and the answer is
    empty when ``null_score - best_span_score > null_score_diff_threshold``. ``score``/``probability`` is the softmax
    of the n-best scores (the null candidate included for 2.0).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..files import PathLike, load_tokenizer, write_json
from .inputs import prepare_eval_features

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
SAVED_SETTINGS = tuple(DEFAULT_SETTINGS)  # all of them are stored in a trained model's config.json
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


class QuestionAnswerer:
    """Answer questions from contexts of any length with an extractive QA model and its (fast) tokenizer.

    Windowing and decoding settings (``max_seq_length``, ``doc_stride``, ``max_question_length``, ``n_best_size``,
    ``max_answer_length``, ``version_2_with_negative``, ``null_score_diff_threshold``) default to what the model's
    config records (``recipes/qa.py`` saves them there), else :data:`DEFAULT_SETTINGS`; keyword arguments override
    them. Calling returns ``{"answer", "start", "end", "score"}`` per question, with ``answer ==
    context[start:end]`` (``""``, ``None``, ``None`` when a 2.0-style model abstains) and ``score`` the answer's
    n-best probability.
    """

    def __init__(self, model, tokenizer, *, batch_size: int = 16, **settings):
        unknown = set(settings) - set(DEFAULT_SETTINGS)
        if unknown:
            raise TypeError(f"unknown settings {sorted(unknown)}; known: {sorted(DEFAULT_SETTINGS)}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.settings = {key: settings.get(key, getattr(model.config, key, default))
                         for key, default in DEFAULT_SETTINGS.items()}

    @classmethod
    def from_pretrained(cls, path: str, *, revision: str | None = None, device: str | None = None, **kwargs):
        """Load model and tokenizer from a folder or Hub id (keyword arguments as for the constructor)."""
        from transformers import AutoModelForQuestionAnswering

        model = AutoModelForQuestionAnswering.from_pretrained(str(path), revision=revision)
        tokenizer = load_tokenizer(str(path), revision=revision)  # names missing files
        if device is not None:
            model.to(device)
        return cls(model, tokenizer, **kwargs)

    def __call__(self, questions: str | Sequence[str], contexts: str | Sequence[str]) -> dict | list[dict]:
        """The answer to one question from one context, or a list of answers for lists of questions and contexts."""
        single = isinstance(questions, str)
        if single != isinstance(contexts, str):
            raise TypeError("pass one question and one context (two str), or a list of each")
        questions, contexts = ([questions], [contexts]) if single else (list(questions), list(contexts))
        predicted = self.predict(questions, contexts)
        answers = [{key: predicted[str(i)][key] for key in ("answer", "start", "end", "score")}
                   for i in range(len(questions))]
        return answers[0] if single else answers

    def predict(self, questions: Sequence[str], contexts: Sequence[str]) -> dict[str, dict]:
        """:func:`postprocess_predictions` of the questions, keyed by their position (``"0"``, ``"1"``, ...)."""
        import torch

        if len(questions) != len(contexts):
            raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts")
        for i, context in enumerate(contexts):
            if not context.strip():
                raise ValueError(f"context {i} is empty")
        options, tokenizer, model = self.settings, self.tokenizer, self.model
        examples = {"id": [str(i) for i in range(len(questions))], "question": list(questions),
                    "context": list(contexts), "answers": [{"text": [], "answer_start": []}] * len(questions)}
        features = prepare_eval_features(examples, tokenizer, options["max_seq_length"], options["doc_stride"],
                                         options["max_question_length"], with_labels=False)
        model_inputs = [key for key in ("input_ids", "token_type_ids", "attention_mask") if key in features]
        width = max(len(ids) for ids in features["input_ids"])
        start_logits = np.full((len(features["input_ids"]), width), -1e4, dtype=np.float32)
        end_logits = start_logits.copy()
        with torch.no_grad():
            for begin in range(0, len(features["input_ids"]), self.batch_size):
                batch = tokenizer.pad({key: features[key][begin:begin + self.batch_size] for key in model_inputs},
                                      return_tensors="pt")
                output = model(**{key: value.to(model.device) for key, value in batch.items()})
                length = output.start_logits.shape[1]
                start_logits[begin:begin + self.batch_size, :length] = output.start_logits.float().cpu().numpy()
                end_logits[begin:begin + self.batch_size, :length] = output.end_logits.float().cpu().numpy()
        return postprocess_predictions(
            examples, features, start_logits, end_logits, options["n_best_size"], options["max_answer_length"],
            options["version_2_with_negative"], options["null_score_diff_threshold"],
        )


def answer_questions(
    model_or_path,
    questions: Sequence[str],
    contexts: Sequence[str],
    tokenizer=None,
    batch_size: int = 16,
    device: str | None = None,
    **settings,
) -> list[dict]:
    """:class:`QuestionAnswerer` in one call: ``model_or_path`` is a folder or Hub id, or a loaded model (then pass
    ``tokenizer``); the answers of the questions, one dict each."""
    if isinstance(model_or_path, (str, os.PathLike)):
        answerer = QuestionAnswerer.from_pretrained(str(model_or_path), device=device, batch_size=batch_size,
                                                    **settings)
    else:
        if tokenizer is None:
            raise ValueError("pass the tokenizer with a loaded model")
        if device is not None:
            model_or_path.to(device)
        answerer = QuestionAnswerer(model_or_path, tokenizer, batch_size=batch_size, **settings)
    return answerer(list(questions), list(contexts))


def write_predictions(predicted: dict, output_dir: PathLike, prefix: str = "", with_null_odds: bool = False) -> None:
    """``{prefix}predictions.json`` ({id: answer}, the official evaluation scripts' input),
    ``{prefix}nbest_predictions.json`` and, with ``with_null_odds`` (2.0-style data), ``{prefix}null_odds.json``
    ({id: null score - best span score}) from :func:`postprocess_predictions` output."""
    files = {"predictions": {i: p["answer"] for i, p in predicted.items()},
             "nbest_predictions": {i: p["nbest"] for i, p in predicted.items()}}
    if with_null_odds:
        files["null_odds"] = {i: p["null_score_diff"] for i, p in predicted.items()}
    for name, content in files.items():
        write_json(Path(output_dir) / f"{prefix}{name}.json", content)
