"""QA decoding (hf_bert_tasks/modeling/qa_spans.py, shipped next to the weights): the exact n-best search against
brute force, gold logits through the whole pre/post-processing (fixtures and the real SQuAD dev set), the null
threshold and the merging of overlapping windows."""

import itertools
import warnings

import numpy as np
import pytest

from conftest import ROOT, decode_gold, gold_logits, load_rows, minilm_path, shared_data_path, tiny_tokenizer
from hf_bert_tasks.modeling.qa_spans import best_spans, postprocess_predictions
from hf_bert_tasks.qa.data import QaDataWarning, read_squad_json
from hf_bert_tasks.qa.inputs import prepare_eval_features
from hf_bert_tasks.qa.metrics import detect_language, qa_scores

FIXTURES = ROOT / "tests" / "fixtures"


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
