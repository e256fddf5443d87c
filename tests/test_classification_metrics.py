"""Classification scores (hf_bert_tasks/classification/metrics.py) against scikit-learn, and the confusion-matrix
PNG."""

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from hf_bert_tasks.classification.metrics import classification_scores, plot_confusion_matrix, summary_scores


def test_single_label_scores_match_scikit_learn():
    rng = np.random.default_rng(3)
    labels = ["a", "b", "c", "d", "e"]
    gold = rng.integers(0, 4, size=200)  # "e" never occurs in gold...
    predicted = np.where(rng.random(200) < 0.6, gold, rng.integers(0, 5, size=200))  # ...but is predicted
    predicted[:3] = 1
    scores = classification_scores(gold, predicted, labels)
    assert scores["accuracy"] == pytest.approx(skm.accuracy_score(gold, predicted))
    assert scores["macro_f1"] == pytest.approx(skm.f1_score(gold, predicted, average="macro"))
    assert scores["macro_precision"] == pytest.approx(skm.precision_score(gold, predicted, average="macro"))
    assert scores["weighted_f1"] == pytest.approx(skm.f1_score(gold, predicted, average="weighted"))
    p, r, f, s = skm.precision_recall_fscore_support(gold, predicted, labels=range(5), zero_division=0)
    for i, label in enumerate(labels):
        assert [scores["per_class"][label][k] for k in ("precision", "recall", "f1", "support")] == \
            pytest.approx([p[i], r[i], f[i], s[i]])
    assert scores["confusion_matrix"] == skm.confusion_matrix(gold, predicted, labels=range(5)).tolist()
    # A class absent from gold and predictions does not count in the macro average.
    missing = classification_scores(gold[gold < 3], gold[gold < 3], labels)
    assert missing["macro_f1"] == 1.0 and missing["per_class"]["d"]["support"] == 0


def test_multi_label_scores_match_scikit_learn():
    rng = np.random.default_rng(5)
    gold = (rng.random((120, 4)) < 0.3).astype(int)
    predicted = np.where(rng.random((120, 4)) < 0.75, gold, 1 - gold)
    gold[:, 3] = predicted[:, 3] = 0  # a label nobody has
    scores = classification_scores(gold, predicted, ["w", "x", "y", "z"], multi_label=True)
    assert scores["accuracy"] == pytest.approx(skm.accuracy_score(gold, predicted))
    assert scores["macro_f1"] == pytest.approx(skm.f1_score(gold, predicted, average="macro", labels=[0, 1, 2]))
    assert scores["micro_f1"] == pytest.approx(skm.f1_score(gold, predicted, average="micro"))
    assert scores["confusion_matrix"] == skm.multilabel_confusion_matrix(gold, predicted).tolist()
    assert scores["per_class"]["y"]["recall"] == pytest.approx(skm.recall_score(gold[:, 2], predicted[:, 2]))


def test_two_class_f1_is_the_positive_class_and_mcc_matches_scikit_learn():
    """GLUE's scores: F1 of label id 1 (MRPC, QQP) and Matthews correlation (CoLA), by hand and against
    scikit-learn."""
    gold = [1, 1, 1, 0, 0, 0, 0, 1]
    predicted = [1, 1, 0, 0, 1, 0, 0, 0]  # TP 2, FN 2, FP 1, TN 3
    scores = classification_scores(gold, predicted, ["not_equivalent", "equivalent"])
    assert scores["f1"] == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2)) == pytest.approx(4 / 7)
    assert scores["matthews_correlation"] == pytest.approx((2 * 3 - 1 * 2) / math.sqrt(3 * 4 * 4 * 5))
    assert scores["f1"] != pytest.approx(scores["macro_f1"])  # not an average over the two classes
    rng = np.random.default_rng(7)
    gold = rng.integers(0, 2, size=300)
    predicted = np.where(rng.random(300) < 0.7, gold, 1 - gold)
    scores = classification_scores(gold, predicted, ["0", "1"])
    assert scores["f1"] == pytest.approx(skm.f1_score(gold, predicted, average="binary", pos_label=1))
    assert scores["matthews_correlation"] == pytest.approx(skm.matthews_corrcoef(gold, predicted))
    assert summary_scores(scores) == {key: scores[key] for key in ("accuracy", "f1", "macro_f1", "weighted_f1",
                                                                   "matthews_correlation")}
    # One class predicted for everything: the correlation is 0, as scikit-learn says.
    constant = classification_scores(gold, np.zeros_like(gold), ["0", "1"])
    assert constant["matthews_correlation"] == skm.matthews_corrcoef(gold, np.zeros_like(gold)) == 0.0
    assert constant["f1"] == 0.0


def test_more_classes_have_mcc_but_no_binary_f1_and_multi_label_neither():
    rng = np.random.default_rng(11)
    gold = rng.integers(0, 4, size=250)
    predicted = np.where(rng.random(250) < 0.5, gold, rng.integers(0, 4, size=250))
    scores = classification_scores(gold, predicted, ["a", "b", "c", "d"])
    assert scores["matthews_correlation"] == pytest.approx(skm.matthews_corrcoef(gold, predicted))
    assert "f1" not in scores
    multi = classification_scores([[1, 0], [0, 1]], [[1, 0], [1, 1]], ["x", "y"], multi_label=True)
    assert "f1" not in multi and "matthews_correlation" not in multi
    assert set(summary_scores(multi)) == {"accuracy", "macro_f1", "weighted_f1", "micro_f1"}


def test_scores_reject_mismatched_input():
    with pytest.raises(ValueError, match="shape"):
        classification_scores([0, 1], [0], ["a", "b"])
    with pytest.raises(ValueError, match=r"predicted label ids must be in 0..1"):
        classification_scores([0, 1], [0, 2], ["a", "b"])


def test_confusion_matrix_png(tmp_path):
    from PIL import Image

    path = plot_confusion_matrix([[5, 1], [2, 7]], ["sports", "business"], tmp_path / "cm.png", title="dev")
    chinese = plot_confusion_matrix(np.eye(3, dtype=int) * 4, ["体育", "财经", "时政"], tmp_path / "zh.png")
    multi = plot_confusion_matrix([[[3, 1], [0, 2]], [[4, 0], [1, 1]]], ["a", "b"], tmp_path / "ml.png")
    for png in (path, chinese, multi):
        with Image.open(png) as image:
            assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100
