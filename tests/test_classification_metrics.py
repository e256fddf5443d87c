"""Classification scores (hf_bert_tasks/classification/metrics.py) against scikit-learn, and the confusion-matrix
PNG."""

import numpy as np
import pytest
from sklearn import metrics as skm

from hf_bert_tasks.classification.metrics import classification_scores, plot_confusion_matrix


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
