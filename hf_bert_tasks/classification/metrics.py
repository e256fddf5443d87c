"""Classification scores and their report.

Metrics (:func:`classification_scores`, plain numpy, offline): accuracy (exact match of the label set for
multi-label), per-class precision/recall/F1/support, macro averages over the classes that occur in the gold labels or
the predictions (as scikit-learn does when it is not given ``labels``), support-weighted F1, micro F1 for
multi-label, and the confusion matrix (rows gold, columns predicted; per label ``[[TN, FP], [FN, TP]]`` for
multi-label). GLUE's scores beside them:

``f1``
    two-class single-label tasks only: the F1 of the positive class, label id 1 (the second label of the sorted
    label list, or of a Hub data set's ``ClassLabel``: ``1``/``equivalent`` in MRPC, ``1``/``duplicate`` in QQP),
    what GLUE reports for MRPC and QQP (scikit-learn's ``f1_score(average="binary")``). Absent for more classes and
    for multi-label, so ``f1`` never means an average: those use ``macro_f1`` (and ``weighted_f1``, ``micro_f1``).
``matthews_correlation``
    every single-label task: Matthews correlation (CoLA's score, under the name transformers' ``run_glue.py`` and
    the Hub give it; for more than two classes its multi-class form,
    scikit-learn's ``matthews_corrcoef``), 0 when a row or column of the confusion matrix is all there is. Absent for
    multi-label.

The recipe writes :data:`SUMMARY_METRICS` to ``all_results.json`` (``eval_accuracy``, ``eval_f1``, ...; the model
card's ``model-index`` carries them); :func:`write_classification_report` writes all the scores as JSON and the
matrix as a PNG (matplotlib, the ``plots`` extra).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..files import PathLike
from .data import gold_label_ids
from .predictor import pool_window_logits, predicted_label_ids, prediction_records

# What the recipe reports per split (those a task has; see the module docstring).
SUMMARY_METRICS = ("accuracy", "f1", "macro_f1", "weighted_f1", "micro_f1", "matthews_correlation")

# ---------------------------------------------------------------------------------------------------------------
# Metrics


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def classification_scores(gold, predicted, labels: Sequence[str], multi_label: bool = False) -> dict:
    """Accuracy, macro and weighted F1, GLUE's positive-class F1 and Matthews correlation, per-class scores and the
    confusion matrix.

    ``gold``/``predicted``: label ids ``(N,)``, or multi-hot ``(N, L)`` for multi-label. Per class,
    ``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)``, ``f1`` their harmonic mean, each 0 where its
    denominator is 0. ``macro_*`` average over the classes present in ``gold`` or ``predicted``; ``weighted_f1``
    weighs each class by its support. Single-label: ``accuracy`` is the share of correct predictions and
    ``confusion_matrix[g][p]`` counts examples of gold class g predicted as p. Multi-label: ``accuracy`` is the share
    of examples whose label set is exactly right, ``micro_f1`` pools TP/FP/FN over labels, and
    ``confusion_matrix[c]`` is ``[[TN, FP], [FN, TP]]`` of label c. ``f1`` (two classes: the F1 of label id 1) and
    ``matthews_correlation`` (:func:`matthews_correlation`) only for single-label (module docstring).
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
    else:
        if num_labels == 2:
            scores["f1"] = per_class[labels[1]]["f1"]
        scores["matthews_correlation"] = matthews_correlation(confusion)
    scores.update(num_examples=int(len(gold)), labels=labels, per_class=per_class, confusion_matrix=matrix)
    return scores


def matthews_correlation(confusion) -> float:
    """Matthews correlation of an ``(L, L)`` confusion matrix (rows gold): ``(c * s - p . t) / sqrt((s^2 - p . p)
    (s^2 - t . t))`` with ``c`` the correct count, ``s`` the total, ``p``/``t`` the predicted/gold counts per class
    (Gorodkin's multi-class form; the binary formula for two classes); 0 when the denominator is."""
    confusion = np.asarray(confusion, dtype=np.float64)
    gold, predicted = confusion.sum(1), confusion.sum(0)
    correct, total = np.trace(confusion), confusion.sum()
    denominator = np.sqrt((total**2 - predicted @ predicted) * (total**2 - gold @ gold))
    return _ratio(correct * total - predicted @ gold, denominator)


def summary_scores(scores: dict) -> dict:
    """The :data:`SUMMARY_METRICS` that :func:`classification_scores` gave (the recipe's ``all_results.json``)."""
    return {key: scores[key] for key in SUMMARY_METRICS if key in scores}


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
    from matplotlib.figure import (
        Figure,  # no pyplot: no global state, no display backend
    )

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


# ---------------------------------------------------------------------------------------------------------------
# A recipe's evaluation

class ClassificationEvaluation:
    """A recipe's classification evaluation over windows (``recipes/classify.py`` and ``recipes/distill.py``): the
    window logits pooled per text, decided, scored against the gold labels.

    Args:
        raw: the splits of ``load_classification_dataset``; example_index: by split, the text of each window
            (``encode_dataset``'s column); labels: in id order; multi_label, threshold: the decision rule.

    ``reports[split]``: the full :func:`classification_scores` of the split's last evaluation.
    """

    def __init__(self, raw, example_index: dict, labels: Sequence[str], multi_label: bool, threshold: float):
        self.raw, self.example_index, self.labels = raw, example_index, list(labels)
        self.multi_label, self.threshold = multi_label, threshold
        self.reports: dict[str, dict] = {}

    def pooled_logits(self, split: str, window_logits) -> np.ndarray:
        """``(texts, labels)``: the mean of each text's window logits ``(windows, labels)``."""
        return pool_window_logits(window_logits, self.example_index[split], len(self.raw[split]))

    def compute_metrics(self, split: str) -> Callable | None:
        """The Trainer's ``compute_metrics`` for ``split`` (:func:`summary_scores`); None when the data have no
        such split or it has no labels."""
        if split not in self.raw or "label" not in self.raw[split].column_names:
            return None

        def compute(prediction) -> dict:
            logits = self.pooled_logits(split, prediction.predictions)
            scores = classification_scores(gold_label_ids(self.raw[split], self.multi_label),
                                           predicted_label_ids(logits, self.multi_label, self.threshold),
                                           self.labels, self.multi_label)
            self.reports[split] = scores
            return summary_scores(scores)

        return compute

    def records(self, split: str, window_logits) -> list[dict]:
        """``{label, score, probabilities}`` per text of ``split`` (``predictor.prediction_records``)."""
        return prediction_records(self.pooled_logits(split, window_logits), self.labels, self.multi_label,
                                  self.threshold)
