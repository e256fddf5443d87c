"""Question-answering decoding: the logits of every window of a question to its answer in the original context.

Standard library and numpy only: the Inference Endpoints handler (``handler.py``) ships this file next to a QA
model's weights (transformers 5 has no question-answering pipeline), and ``qa.predictor`` imports it, so the recipe,
:class:`~hf_bert_tasks.qa.predictor` and the endpoint decode with one implementation.

The n-best search is exact: every (start, end) with ``start <= end < start + max_answer_length`` inside the window's
context part is scored ``start_logit + end_logit`` (BERT's original search only combines the top-n starts with the
top-n ends, which can miss the best valid span when the top starts lie in the question). Spans of all windows of a
question are mapped to character offsets of the *original* context, merged (a span seen in two overlapping windows
keeps its best score) and ranked by score, then start, then end. For 2.0-style data the null score is the smallest
``start_logit[0] + end_logit[0]`` over the question's windows, and the answer is empty when ``null_score -
best_span_score > null_score_diff_threshold``. ``score``/``probability`` is the softmax of the n-best scores (the
null candidate included for 2.0).
"""

import math
from collections import defaultdict

import numpy as np


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
