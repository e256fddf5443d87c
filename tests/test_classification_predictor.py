"""Classification decisions and prediction (hf_bert_tasks/classification/predictor.py): window logits pooled per
text, TextClassifier against the model run window by window, prediction records."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import CHINESE, manual_windows, tiny_bert_config, tiny_tokenizer
from hf_bert_tasks.classification.predictor import (
    TextClassifier,
    classify_texts,
    pool_window_logits,
    predicted_label_ids,
    prediction_records,
)


def test_pool_window_logits_means_per_example():
    logits = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 1.0], [0.0, 0.0]])
    pooled = pool_window_logits(logits, [0, 0, 0, 1], 2)
    assert pooled.tolist() == [[3.0, 3.0], [0.0, 0.0]]
    assert pool_window_logits(torch.tensor(logits), [1, 1, 0, 0], 2).tolist() == [[2.5, 0.5], [2.0, 4.0]]
    with pytest.raises(ValueError, match=r"no window: \[1\]"):
        pool_window_logits(logits, [0, 0, 2, 2], 3)


@pytest.fixture(scope="module")
def tiny_classifier_dir(tmp_path_factory) -> Path:
    from transformers import BertForSequenceClassification

    path = tmp_path_factory.mktemp("tiny-classifier")
    torch.manual_seed(0)
    labels = ["business", "politics", "sports"]
    # A wide initialisation, so that the logits of a random model depend visibly on the input.
    config = tiny_bert_config(num_labels=3, initializer_range=0.5, id2label=dict(enumerate(labels)),
                              label2id={label: i for i, label in enumerate(labels)})
    config.long_text, config.max_seq_length, config.stride = "windows", 24, 6
    BertForSequenceClassification(config).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


def test_every_window_contributes_to_the_pooled_logits(tiny_classifier_dir):
    """The predictor's pooled logits equal the mean of the model's logits on hand-built windows, each run alone."""
    classifier = TextClassifier.from_pretrained(str(tiny_classifier_dir), batch_size=3)
    assert (classifier.long_text, classifier.max_length, classifier.stride) == ("windows", 24, 6)
    tokenizer, model = classifier.tokenizer, classifier.model
    document = "".join(CHINESE[(7 * i) % len(CHINESE)] for i in range(150))
    ids = tokenizer(document, add_special_tokens=False)["input_ids"]
    windows = manual_windows(ids, 22, 6)
    assert len(windows) == 1 + math.ceil((150 - 22) / 16) == 9
    with torch.no_grad():
        each = [model(input_ids=torch.tensor([[2] + w + [3]])).logits[0].numpy() for w in windows]
    short = "北京银行"
    with torch.no_grad():
        short_logits = model(**tokenizer(short, return_tensors="pt")).logits[0].numpy()
    pooled = classifier.logits([short, document])
    np.testing.assert_allclose(pooled[1], np.mean(each, axis=0), atol=1e-5)
    np.testing.assert_allclose(pooled[0], short_logits, atol=1e-5)
    assert np.abs(pooled[1] - each[0]).max() > 1e-4  # more than the first window counts
    truncated = TextClassifier(model, tokenizer, long_text="truncate").logits([document])
    np.testing.assert_allclose(truncated[0], each[0], atol=1e-5)


def test_classify_texts_records(tiny_classifier_dir):
    from transformers import AutoModelForSequenceClassification

    texts = ["the team won the cup final", CHINESE * 4]
    records = classify_texts(str(tiny_classifier_dir), texts)
    assert len(records) == 2
    for record in records:
        assert set(record) == {"label", "score", "probabilities"}
        assert list(record["probabilities"]) == ["business", "politics", "sports"]
        assert sum(record["probabilities"].values()) == pytest.approx(1.0)
        assert record["score"] == max(record["probabilities"].values())
        assert record["probabilities"][record["label"]] == record["score"]
    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier_dir)
    again = classify_texts(model, texts, tokenizer=tiny_tokenizer())
    assert [r["label"] for r in again] == [r["label"] for r in records]
    assert TextClassifier(model, tiny_tokenizer())(texts[0])["label"] == records[0]["label"]


def test_a_text_without_tokens_gets_no_prediction(tiny_classifier_dir):
    """Empty, blank, or only characters the tokenizer deletes: None, not a confident label for [CLS] [SEP]."""
    classifier = TextClassifier.from_pretrained(str(tiny_classifier_dir))
    texts = ["", " \t\n", "\ufffd\ue000\u200b", "the team won"]
    records = classifier(texts)
    assert records[:3] == [None, None, None]
    assert records[3] == classifier("the team won") and records[3]["label"] in classifier.labels
    assert classifier("") is None and classify_texts(str(tiny_classifier_dir), ["", "won"])[0] is None
    assert classifier(["won", "won"], ["the team", " "])[1] is None  # a pair without tokens too


def test_one_str_is_one_text_everywhere(tiny_classifier_dir):
    classifier = TextClassifier.from_pretrained(str(tiny_classifier_dir))
    one = classify_texts(str(tiny_classifier_dir), "the team won")
    assert isinstance(one, dict) and one == classifier(["the team won"])[0]
    assert classifier.logits("the team won").shape == (1, 3)
    # Any iterable of texts is a batch (a generator, a datasets column); a mapping is refused, not iterated.
    assert classifier(text for text in ["the team won", "rain"]) == classifier(["the team won", "rain"])
    with pytest.raises(TypeError, match="texts must be a str or a list of str, got dict"):
        classifier({"text": "the team won"})


def test_bad_texts_name_the_argument_and_the_type(tiny_classifier_dir):
    classifier = TextClassifier.from_pretrained(str(tiny_classifier_dir))
    for bad, message in ((b"won", "texts must be a str or a list of str, got bytes \\(decode bytes first"),
                         (None, "texts must be a str or a list of str, got NoneType"),
                         (["won", None], "text 1 must be a str, got NoneType"),
                         ([b"won"], "text 0 must be a str, got bytes")):
        with pytest.raises(TypeError, match=message):
            classifier(bad)
    with pytest.raises(TypeError, match="text pair 0 must be a str, got int"):
        classifier(["won"], [3])
    with pytest.raises(ValueError, match="text 1 is not valid Unicode: a lone surrogate U\\+D83D at character 4"):
        classifier(["won", "the \ud83d team"])
    with pytest.raises(TypeError, match="texts must be a str or a list of str, got int"):
        classify_texts(str(tiny_classifier_dir), 5)


def test_prediction_records_multi_label_threshold():
    logits = np.array([[2.0, -1.0, 0.5], [-3.0, -2.0, -4.0]])
    records = prediction_records(logits, ["a", "b", "c"], multi_label=True, threshold=0.6)
    sigmoid = 1 / (1 + np.exp(-logits))
    assert records[0]["label"] == ["a", "c"] and records[0]["score"] == pytest.approx([sigmoid[0, 0], sigmoid[0, 2]])
    assert records[1] == {"label": [], "score": [], "probabilities": pytest.approx(dict(zip("abc", sigmoid[1])))}
    assert predicted_label_ids(logits, True, 0.6).tolist() == [[1, 0, 1], [0, 0, 0]]
    single = prediction_records(logits, ["a", "b", "c"], multi_label=False)
    softmax = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert single[1]["label"] == "b" and single[1]["score"] == pytest.approx(softmax[1, 1])
