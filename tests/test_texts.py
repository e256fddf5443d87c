"""The input checks every door shares (hf_bert_tasks/modeling/texts.py), called directly; the doors' own tests
(test_ner_predictor.py, test_qa_predictor.py, test_classification_predictor.py, test_predictor_cli.py, test_demo.py)
check that each door says the same."""

import random

import pytest

from conftest import tiny_tokenizer
from hf_bert_tasks.modeling.texts import check_text, check_texts, texts_without_tokens


def test_one_str_is_one_text_and_any_iterable_of_str_is_many():
    assert check_texts("john met mary") == (["john met mary"], True)
    assert check_texts(("a", "b")) == (["a", "b"], False)
    assert check_texts(text for text in ["a", "", "c"]) == (["a", "", "c"], False)
    assert check_texts([]) == ([], False)


def test_what_is_not_text_is_named_with_its_type_and_position():
    with pytest.raises(TypeError, match=r"^questions must be a str or a list of str, got dict$"):
        check_texts({"text": "a"}, "questions", "question")  # a mapping is refused, not iterated over its keys
    with pytest.raises(TypeError, match=r"got bytes \(decode bytes first\)"):
        check_texts(b"john")
    with pytest.raises(TypeError, match=r"^texts must be a str or a list of str, got int$"):
        check_texts(3)
    with pytest.raises(TypeError, match=r"^sentence 2 must be a str, got NoneType$"):
        check_texts(["a", "b", None], "sentences", "sentence")
    with pytest.raises(TypeError, match=r"^context must be a str, got bytearray \(decode bytes first"):
        check_text(bytearray(b"x"), "context")
    assert check_text("mary", "context") == "mary"


def test_a_lone_surrogate_is_named_at_its_position():
    text = "ab\udc80cd"  # what errors="surrogateescape" leaves of the byte 0x80
    with pytest.raises(ValueError, match=r"^text 1 is not valid Unicode: a lone surrogate U\+DC80 at character 2 "):
        check_texts(["fine", text])
    assert check_text("a \U0001f600 pair") == "a \U0001f600 pair"  # a character beyond the BMP is no surrogate


def test_texts_without_tokens_against_tokenizing_every_text():
    tokenizer = tiny_tokenizer()
    pieces = ["", " ", "\t\n", "\ufffd", "\ue000", "\x00", ".", "!", "，", "a", "7", "朱", "é", "\u200b"]
    rng = random.Random(0)
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 4))) for _ in range(400)]
    rows = tokenizer(texts, add_special_tokens=False)["input_ids"]
    expected = [i for i, row in enumerate(rows) if not row]
    assert 20 < len(expected) < 380  # both kinds are many
    assert texts_without_tokens(tokenizer, texts) == expected
