"""NerPredictor on raw text: offsets into the original string, any length, unusual input."""

import random

import pytest
import torch

from conftest import WORDS, tiny_bert_config, tiny_tokenizer
from hf_bert_tasks import BertCrfConfig, BertCrfForTokenClassification
from hf_bert_tasks.ner.predictor import NerPredictor
from hf_bert_tasks.modeling.tagging import split_words

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    config = BertCrfConfig(encoder=tiny_bert_config(), id2label=dict(enumerate(LABELS)),
                           label2id={label: i for i, label in enumerate(LABELS)}, max_seq_length=16, stride=4)
    model = BertCrfForTokenClassification(config).eval()
    with torch.no_grad():  # a random model that still finds plenty of entities
        model.classifier.weight.mul_(20)
        model.classifier.bias.copy_(torch.tensor([0.0, 1.0, 0.5, 1.0, 0.5]))
    return NerPredictor(model, tiny_tokenizer(), batch_size=4)


def check_entities(text, entities):
    previous_end = 0
    for entity in entities:
        assert 0 <= entity["start"] < entity["end"] <= len(text)
        assert text[entity["start"]:entity["end"]] == entity["text"]
        assert entity["start"] >= previous_end  # sorted, never overlapping
        previous_end = entity["end"]
        assert entity["type"] in {"LOC", "PER"}
        assert 0.0 <= entity["score"] <= 1.0


def long_document(n_chars: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    parts = []
    while sum(map(len, parts)) < n_chars:
        parts.append(rng.choice([rng.choice(WORDS), "明朝建立于1368年，开国皇帝是朱元璋。", "\n", "Paris,", "😀"]))
    return " ".join(parts)[:n_chars]


@pytest.mark.parametrize("text", [
    "",
    "   \n\t\u3000",
    "john visited paris",
    "明朝建立于1368年，开国皇帝是朱元璋。",
    "control\x00chars\x07 and \u200bzero width",
    "ＡＢＣ full-width １２３ and ａｂｃ",
    "emoji 😀👍🏽 and 🇫🇷 flags",
    "cafe\u0301 nai\u0308ve e\u0301",
])
def test_entities_index_the_original_string(predictor, text):
    entities = predictor(text)
    check_entities(text, entities)
    if not text.strip():
        assert entities == []


def test_a_5000_character_document_gets_one_prediction_per_word(predictor):
    text = long_document(5000)
    words = [w for w, _, _ in split_words(text)]
    tags, scores = predictor.predict_words([words])
    assert len(tags[0]) == len(words) and len(scores[0]) == len(words)
    entities = predictor(text)
    check_entities(text, entities)
    assert len(entities) > 10
    # Entities far from the window seams do not depend on what else is in the document.
    head = text[:300]
    near_start = [e for e in entities if e["end"] <= 200]
    assert near_start == [e for e in predictor(head) if e["end"] <= 200]


def test_batches_equal_single_calls(predictor):
    texts = ["john visited paris", "", long_document(700, seed=1), "朱元璋"]
    batched, single = predictor(texts), [predictor(text) for text in texts]
    strip = lambda results: [[{k: v for k, v in e.items() if k != "score"} for e in r] for r in results]  # noqa: E731
    assert strip(batched) == strip(single)
    # scores only up to float noise: another batch pads the windows differently
    assert [e["score"] for r in batched for e in r] == pytest.approx([e["score"] for r in single for e in r], abs=1e-5)


def test_document_prediction_returns_each_sentence_with_its_own_offsets(predictor):
    sentences = ["john visited paris .", "", "明朝建立于1368年，开国皇帝是朱元璋。"]
    results = predictor.predict_document(sentences)
    assert len(results) == 3 and results[1] == []
    for sentence, entities in zip(sentences, results):
        check_entities(sentence, entities)


def test_non_text_input_is_refused(predictor):
    """Every door's checks (modeling/texts.py): the argument and the type received are named."""
    with pytest.raises(TypeError, match="text 1 must be a str, got int"):
        predictor(["fine", 3])
    for bad, message in ((5, "texts must be a str or a list of str, got int"),
                         (None, "texts must be a str or a list of str, got NoneType"),
                         (b"John", "got bytes \\(decode bytes first"), ([b"John"], "text 0 must be a str, got bytes")):
        with pytest.raises(TypeError, match=message):
            predictor(bad)
    with pytest.raises(TypeError, match="sentences must be a str or a list of str, got NoneType"):
        predictor.predict_document(None)
    with pytest.raises(TypeError, match="sentence 1 must be a str, got int"):
        predictor.predict_document(["fine", 3])
    with pytest.raises(TypeError, match="predict_document takes the document's sentences"):
        predictor.predict_document("flew from Dublin")
    with pytest.raises(TypeError, match="sentence 0 is a str"):
        predictor.predict_words(["flew from Dublin"])


def test_characters_the_tokenizer_deletes_are_no_words(predictor):
    """U+FFFD and private-use characters have no word piece: an entity around them stays whole (it spans them, offsets
    exact), as if they were not there; before, each became a word forced to O that broke the entity in two."""
    rng = random.Random(1)
    words = [rng.choice(WORDS) for _ in range(150)]
    expected = predictor(" ".join(words))
    assert sum(e["text"].count(" ") > 0 for e in expected) >= 3  # entities of several words
    text, starts, ends, plain_offset = "", {}, {}, 0
    for i, word in enumerate(words):
        if i:
            text += " " + (rng.choice(["\ufffd ", "\ue000 ", "\U000f0001 ", "\ufffd\ufffd "]) if i % 2 else "")
            plain_offset += 1
        starts[plain_offset], ends[plain_offset + len(word)] = len(text), len(text) + len(word)
        text += word
        plain_offset += len(word)
    for got in (predictor(text), [{"type": e["entity_group"], "start": e["start"], "end": e["end"],
                                   "score": e["score"], "text": e["word"]}
                                  for e in predictor.pipeline(text, aggregation_strategy="simple")]):
        assert [(e["type"], e["start"], e["end"]) for e in got] == \
            [(e["type"], starts[e["start"]], ends[e["end"]]) for e in expected]
        assert [e["score"] for e in got] == pytest.approx([e["score"] for e in expected], abs=1e-6)
        check_entities(text, got)
    assert any("\ufffd" in e["text"] for e in predictor(text))
    words_out = predictor.pipeline(text)  # one dict per tagged word: the deleted characters are none of them
    assert words_out and not any(e["word"] in ("\ufffd", "\ue000", "\U000f0001") for e in words_out)
    tags, scores = predictor.predict_words([["john", "\ufffd", "smith"]])
    assert scores[0][1] is None and len(tags[0]) == 3


def test_a_lone_surrogate_is_named_with_its_position(predictor):
    """transformers would fail deep inside with "PreTokenizedEncodeInput must be Union[...]"."""
    for call in (predictor, lambda text: predictor.predict_document(["fine", text])):
        with pytest.raises(ValueError, match="is not valid Unicode: a lone surrogate U\\+DC80 at character 5"):
            call("John \udc80 Smith")
    with pytest.raises(ValueError, match="text 1 is not valid Unicode: a lone surrogate U\\+D800 at character 0"):
        predictor(["fine", "\ud800"])
    with pytest.raises(ValueError, match="word 0 of sentence 0 is not valid Unicode"):
        predictor.predict_words([["\ud800"]])
    with pytest.raises(ValueError, match="text is not valid Unicode"):
        predictor.pipeline("John \udc80")


def test_a_model_folder_without_tokenizer_files_names_the_folder_and_the_files(predictor, tmp_path):
    predictor.model.save_pretrained(tmp_path)  # the weights and config, no tokenizer
    with pytest.raises(FileNotFoundError) as info:
        NerPredictor.from_pretrained(str(tmp_path))
    message = str(info.value)
    assert message.startswith(f"{tmp_path} has no tokenizer files: expected tokenizer.json")
    assert "config.json" in message and "model.safetensors" in message
    predictor.tokenizer.save_pretrained(tmp_path)
    assert NerPredictor.from_pretrained(str(tmp_path))("john visited paris .") == predictor("john visited paris .")
