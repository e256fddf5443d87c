"""QA prediction from raw text (hf_bert_tasks/qa/predictor.py): answer_questions and QuestionAnswerer, their input
checks, and answers equal to the one-call form's; the decoding they use is tested in test_qa_spans.py."""

import pytest

from conftest import tiny_tokenizer
from hf_bert_tasks.qa.predictor import QuestionAnswerer, answer_questions


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
