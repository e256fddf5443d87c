"""QA readers (hf_bert_tasks/qa/data.py) and their bad-input policy: SQuAD and CMRC fixtures, misplaced and missing
answers, errors that name file and id, Hub folders; the real CMRC 2018 files in a `data` test."""

import json
import warnings

import pytest

from conftest import ROOT, decode_gold, shared_data_path, tiny_tokenizer
from hf_bert_tasks.qa.data import QaDataError, QaDataWarning, load_qa_dataset, read_squad_json
from hf_bert_tasks.qa.inputs import prepare_eval_features, prepare_train_features
from hf_bert_tasks.qa.metrics import detect_language, qa_scores

FIXTURES = ROOT / "tests" / "fixtures"


def write_squad(path, paragraphs, title="T"):
    """A SQuAD file from [(context, [(id, question, [(text, answer_start), ...]), ...]), ...]."""
    data = {"version": "1.1", "data": [{"title": title, "paragraphs": [
        {"context": context, "qas": [
            {"id": qid, "question": question, "answers": [{"text": t, "answer_start": s} for t, s in answers]}
            for qid, question, answers in qas]}
        for context, qas in paragraphs]}]}
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


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
