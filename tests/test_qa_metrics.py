"""QA scores (hf_bert_tasks/qa/metrics.py) on hand examples: SQuAD normalisation, EM and F1, the version 2 breakdown,
CMRC segmentation and its longest-common-substring F1 against brute force."""

import random

import pytest

from hf_bert_tasks.qa.metrics import (
    _longest_common_substring,
    cmrc_exact_match,
    cmrc_f1,
    normalize_answer,
    qa_scores,
    segment_mixed,
    squad_exact_match,
    squad_f1,
)


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
