"""QA model inputs (hf_bert_tasks/qa/inputs.py): windows that cover the context with the stated overlap, training
labels on the answer tokens, window settings checked, long questions cut, contexts far longer than a window."""

import pytest

from conftest import ROOT, decode_gold, load_rows, tiny_tokenizer
from hf_bert_tasks.qa.data import QaDataWarning, read_squad_json
from hf_bert_tasks.qa.inputs import check_window_settings, prepare_eval_features, prepare_train_features

FIXTURES = ROOT / "tests" / "fixtures"


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
