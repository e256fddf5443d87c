"""Classification readers (hf_bert_tasks/classification/data.py): the formats, label order, pairs, multi-label, Hub
splits, and errors that name file and line; the real THUCNews titles and SST-2 files in the `data` tests."""

from pathlib import Path

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, Value

from conftest import shared_data_path
from hf_bert_tasks.classification.data import (
    ClassificationDataError,
    gold_label_ids,
    label_names_of,
    load_classification_dataset,
    read_classification_file,
    read_label_names,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
NEWS_TRAIN = FIXTURES / "classify_news_train.txt"


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
