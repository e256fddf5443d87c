"""Classification model inputs (hf_bert_tasks/classification/inputs.py): truncation, head + tail and windows checked
against the tokenizer's own output and hand-built windows; the real cnews windows with MiniLM in a `data` test."""

import math
import warnings

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, Value

from conftest import CHINESE, manual_windows, minilm_path, shared_data_path, tiny_bert_config, tiny_tokenizer
from hf_bert_tasks.classification.data import label_names_of, read_classification_file
from hf_bert_tasks.classification.inputs import encode_texts, long_text_settings


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


def words_of(n: int) -> str:
    """A text of `n` words cycling through words that split into one or several word pieces."""
    words = "the quick brown fox jumps over lazy dogs while an unbelievably cheerful mathematician writes".split()
    return " ".join(words[i % len(words)] for i in range(n))


@pytest.mark.parametrize("which", ["tiny", "minilm"])
def test_pairs_are_cut_as_the_tokenizers_longest_first(which):
    """Pairs of every length mix (both short, one long, both long; odd and even rooms) give exactly the tokenizer's
    `truncation="longest_first"` inputs, and `truncated_tokens` counts what that removed."""
    if which == "minilm":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    else:
        tokenizer = tiny_tokenizer()
    cut = 0
    for max_length in (8, 9, 16, 33):
        for first in range(1, 30, 4):
            texts = [words_of(first)] * 8
            pairs = [words_of(second) for second in range(1, 30, 4)]
            ours = encode_texts(tokenizer, texts, pairs, max_length=max_length, long_text="truncate")
            reference = tokenizer(texts, pairs, truncation="longest_first", max_length=max_length)
            assert ours["input_ids"] == reference["input_ids"], (max_length, first)
            assert ours["token_type_ids"] == reference["token_type_ids"]
            whole = tokenizer(texts, pairs)["input_ids"]
            assert ours["truncated_tokens"] == [len(w) - len(r) for w, r in zip(whole, reference["input_ids"])]
            cut += sum(n > 0 for n in ours["truncated_tokens"])
    assert 50 < cut < 4 * 8 * 8  # the grid has pairs that fit and pairs that do not


def test_a_pair_that_fits_is_never_cut():
    """The issue's case: a 10-token question and an 80-token passage at length 128 keep every token in every mode
    (the old rule cut the passage to half the room, 62 tokens, and left 53 positions empty)."""
    tokenizer = tiny_tokenizer()
    question, passage = " ".join(["north"] * 10), " ".join(["south"] * 80)
    whole = tokenizer(question, passage)
    for mode in ("truncate", "head_tail", "windows"):
        features = encode_texts(tokenizer, [question], [passage], max_length=128, long_text=mode)
        assert features["input_ids"] == [whole["input_ids"]] and len(whole["input_ids"]) == 93, mode
        assert features["token_type_ids"] == [whole["token_type_ids"]] and features["truncated_tokens"] == [0]
    # A short first text with a second text longer than the room: windows keep the first text whole and give the
    # second the rest, as longest_first does.
    long_passage = " ".join(["south"] * 200)
    windows = encode_texts(tokenizer, [question], [long_passage], max_length=128, long_text="windows")
    reference = tokenizer(question, long_passage, truncation="longest_first", max_length=128)
    assert windows["input_ids"] == [reference["input_ids"]] and windows["truncated_tokens"] == [200 - 115]


def test_head_tail_of_a_pair_takes_the_longest_first_budget():
    tokenizer = tiny_tokenizer()
    document = CHINESE * 2  # 60 tokens
    features = encode_texts(tokenizer, [document], ["north south east"], max_length=20, long_text="head_tail",
                            head_tokens=4)
    ids = tokenizer(document, add_special_tokens=False)["input_ids"]
    pair_ids = tokenizer("north south east", add_special_tokens=False)["input_ids"]
    budget = 20 - 3 - 3
    assert features["input_ids"] == [[2] + ids[:4] + ids[-(budget - 4):] + [3] + pair_ids + [3]]
    assert features["truncated_tokens"] == [60 - budget]


def test_truncation_counts_per_split_and_their_warning():
    from datasets import Dataset as Rows

    from hf_bert_tasks.classification.inputs import TruncationWarning, encode_dataset, truncation_counts

    tokenizer = tiny_tokenizer()
    texts = ["北京"] * 18 + [CHINESE, CHINESE * 3]  # 2, 30 and 90 tokens
    rows = Rows.from_dict({"text": texts})
    for mode, lost in (("truncate", [30 - 14, 90 - 14]), ("head_tail", [30 - 14, 90 - 14]), ("windows", [0, 0])):
        windows = encode_dataset(rows, tokenizer, multi_label=False, long_text=mode, max_seq_length=16, stride=4,
                                 head_tokens=None)
        cut = sum(n > 0 for n in lost)
        expected = {"eval_truncated_texts": cut, "eval_truncated_share": cut / 20, "eval_truncated_tokens": sum(lost)}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert truncation_counts(windows, len(rows), "eval") == expected, mode
        assert [str(w.message)[:40] for w in caught if w.category is TruncationWarning] == \
            (["10.0% of the eval texts (2 of 20) lost t"] if cut else []), mode
    # Windows lose the tokens cut from a long second text only; 1 of 40 texts is not above 5%.
    pairs = Rows.from_dict({"text": ["北京"] * 40, "text_pair": ["north"] * 39 + [" ".join(["south"] * 30)]})
    windows = encode_dataset(pairs, tokenizer, multi_label=False, long_text="windows", max_seq_length=16, stride=4,
                             head_tokens=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert truncation_counts(windows, 40, "train") == {"train_truncated_texts": 1, "train_truncated_share": 1 / 40,
                                                           "train_truncated_tokens": 30 - (13 - 2)}


def test_long_text_errors():
    tokenizer = tiny_tokenizer()
    with pytest.raises(ValueError, match="long_text must be one of truncate, head_tail, windows"):
        encode_texts(tokenizer, ["a"], long_text="sliding")
    with pytest.raises(ValueError, match=r"stride 30 must be at least 0 and smaller than a window's room for text, 30 "
                                         r"tokens \(max_length 32 - 2 special tokens\)"):
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


def test_long_text_settings_precedence():
    config = tiny_bert_config()
    config.long_text, config.max_seq_length = "windows", 256
    assert long_text_settings(config, stride=8) == {"long_text": "windows", "max_seq_length": 256, "stride": 8,
                                                     "head_tokens": None}
    assert long_text_settings(None, long_text="head_tail")["max_seq_length"] == 128


@pytest.mark.data
def test_real_cnews():
    dataset = read_classification_file(shared_data_path("cnews", "cnews.val.txt"))
    names = label_names_of(dataset)
    counts = dict(zip(names, np.bincount(dataset["label"]).tolist()))
    assert counts == {"体育": 116, "财经": 115, "房产": 104, "游戏": 104, "教育": 104, "时政": 94,
                      "科技": 94, "时尚": 91, "娱乐": 89, "家居": 89}
    assert sum(map(len, dataset["text"])) / len(dataset) == pytest.approx(1013, abs=1)
    encoder = minilm_path()  # skips the rest without MiniLM
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(encoder)
    document = max(dataset["text"][:50], key=len)
    ids = tokenizer(document, add_special_tokens=False)["input_ids"]
    features = encode_texts(tokenizer, [document], max_length=128, long_text="windows", stride=32)
    windows = manual_windows(ids, 126, 32)
    assert len(features["input_ids"]) == len(windows) > 5
    assert [row[1:-1] for row in features["input_ids"]] == windows
