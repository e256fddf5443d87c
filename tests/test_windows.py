"""hf_bert_tasks/modeling/windows.py: words to windows of model inputs (planning, encoding, document context,
collation) and the windows' predictions back to words."""

import random

import pytest

from conftest import WORDS, tiny_tokenizer
from hf_bert_tasks.modeling.tagging import Span, spans_to_tags, validate_tags
from hf_bert_tasks.modeling.windows import WindowCollator, check_stride, encode_words, merge_windows, plan_windows

LABELS = ["O", "B-LOC", "I-LOC", "E-LOC", "S-LOC", "B-PER", "I-PER", "E-PER", "S-PER", "X"]


@pytest.mark.parametrize("seed", range(30))
def test_plan_windows_covers_every_word_within_budget(seed):
    rng = random.Random(seed)
    counts = [rng.choice([0, 1, 1, 1, 2, 3, 9]) for _ in range(rng.randint(1, 60))]
    max_pieces, stride = rng.randint(4, 12), rng.randint(0, 3)
    windows = plan_windows(counts, max_pieces, stride)
    covered = set()
    for i, (start, end) in enumerate(windows):
        assert start < end
        assert sum(counts[start:end]) <= max_pieces or end - start == 1
        covered.update(range(start, end))
        if i:
            previous_start, previous_end = windows[i - 1]
            assert previous_start < start <= previous_end  # moves forward, no gap
            assert sum(counts[start:previous_end]) <= stride  # overlap within the stride
    assert covered == set(range(len(counts)))
    assert windows[-1][1] == len(counts)


def random_sentence(rng, scheme):
    """Entities of 1-3 one-piece words; other words of 1-3 pieces."""
    n = rng.randint(1, 40)
    spans, position = [], 0
    while position < n:
        length = rng.randint(1, 3)
        if rng.random() < 0.4 and position + length <= n:
            spans.append(Span(rng.choice(["PER", "LOC"]), position, position + length))
            position += length
        position += 1
    tags = spans_to_tags(spans, n, scheme)
    words = [rng.choice(WORDS) if tag != "O" else "".join(rng.choice("abcdefgh") for _ in range(rng.randint(1, 3)))
             for tag in tags]
    return words, tags


@pytest.mark.parametrize("context_window", [0, 6])
@pytest.mark.parametrize("strategy", ["first", "all", "x"])
@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
def test_windows_round_trip_gold_tags(scheme, strategy, context_window):
    """Feeding the aligned gold labels back as predictions must give back every word's tag, across windows
    (exact for entities shorter than half the stride, as documented in hf_bert_tasks.modeling.windows)."""
    rng = random.Random(0)
    tokenizer = tiny_tokenizer()
    labels = [label for label in LABELS if label[0] in scheme + "OX"]
    label2id = {label: i for i, label in enumerate(labels)}
    sentences, tags = zip(*(random_sentence(rng, scheme) for _ in range(25)))
    sentences = list(sentences) + [[]]  # an empty sentence gets no window and no tags
    tags = list(tags) + [[]]
    features = encode_words(tokenizer, sentences, tags=tags, label2id=label2id, max_length=20, stride=10,
                            scheme=scheme, strategy=strategy, context_window=context_window)
    assert max(len(ids) for ids in features["input_ids"]) <= 20
    assert len(features["input_ids"]) > len(sentences)  # long sentences were windowed
    assert len(set(features["example_index"])) == len(sentences) - 1
    for labels_row, mask_row in zip(features["labels"], features["tag_mask"]):
        assert [label != -100 for label in labels_row] == [bool(m) for m in mask_row]
        window_tags = [labels[t] for t in labels_row if t != -100 and labels[t] != "X"]
        assert validate_tags(window_tags, scheme) == []  # each window is a valid sequence on its own
    piece_tags = [[None if t == -100 else labels[t] for t in row] for row in features["labels"]]
    merged, scores = merge_windows(features["word_ids"], features["example_index"], piece_tags,
                                   [len(s) for s in sentences], scheme=scheme, strategy=strategy)
    assert merged == [list(t) for t in tags]
    assert [len(s) for s in scores] == [len(s) for s in sentences]


def test_word_longer_than_a_window_still_gets_its_prediction():
    tokenizer = tiny_tokenizer()
    long_word = "abcdefgh" * 4  # 32 characters, one piece each
    sentence = ["john", long_word, "visited", "paris"]
    tags = ["O", "B-PER", "O", "B-LOC"]
    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    features = encode_words(tokenizer, [sentence], tags=[tags], label2id={l: i for i, l in enumerate(labels)},
                            max_length=8, stride=2, scheme="BIO", strategy="first")
    piece_tags = [[None if t == -100 else labels[t] for t in row] for row in features["labels"]]
    merged, _ = merge_windows(features["word_ids"], features["example_index"], piece_tags, [4], scheme="BIO",
                              strategy="first")
    assert merged == [tags]


def test_merge_prefers_the_most_central_window():
    # word 2 appears in two windows; it is central in the second, at the edge of the first
    word_ids = [[-1, 0, 1, 2, -1], [-1, 1, 2, 3, 4, -1]]
    piece_tags = [[None, "O", "O", "B-PER", None], [None, "O", "O", "O", "O", None]]
    merged, _ = merge_windows(word_ids, [0, 0], piece_tags, [5], scheme="BIO", strategy="first")
    assert merged == [["O", "O", "O", "O", "O"]]


def test_collator_pads_to_the_longest_window():
    collate = WindowCollator(pad_token_id=0)
    batch = collate([
        {"input_ids": [2, 5, 3], "attention_mask": [1, 1, 1], "labels": [-100, 1, -100], "tag_mask": [0, 1, 0],
         "word_ids": [-1, 0, -1]},
        {"input_ids": [2, 3], "attention_mask": [1, 1], "labels": [-100, -100], "tag_mask": [0, 0],
         "word_ids": [-1, -1]},
    ])
    assert set(batch) == {"input_ids", "attention_mask", "labels", "tag_mask"}
    assert batch["input_ids"].tolist() == [[2, 5, 3], [2, 3, 0]]
    assert batch["labels"].tolist() == [[-100, 1, -100], [-100, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]


def test_context_stays_inside_the_document_and_carries_no_labels():
    tokenizer = tiny_tokenizer()
    vocab = tokenizer.get_vocab()
    words_a, words_b = WORDS[5:30], WORDS[30:55]  # disjoint vocabularies, one piece each
    rng = random.Random(1)
    sentences, documents, tags = [], [], []
    for document, pool in (("a", words_a), ("b", words_b), ("a2", words_a)):
        for n in (5, 0, 7, 3, 9):  # an empty sentence inside each document
            sentences.append([rng.choice(pool) for _ in range(n)])
            tags.append(["B-PER"] + ["O"] * (n - 1) if n else [])
            documents.append(document)
    sentences.append(["paris"])  # a document with one sentence
    tags.append(["B-LOC"])
    documents.append("c")
    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    label2id = {label: i for i, label in enumerate(labels)}
    common = dict(tags=tags, label2id=label2id, max_length=16, stride=4, scheme="BIO", strategy="first")
    plain = encode_words(tokenizer, sentences, **common)
    context = encode_words(tokenizer, sentences, document_ids=documents, context_window=8, **common)
    assert plain["example_index"] == context["example_index"]
    for i, example in enumerate(context["example_index"]):
        ids = [t for t, w in zip(context["input_ids"][i], context["word_ids"][i]) if w == -1 and t not in (2, 3)]
        allowed = {vocab[w] for s, d in zip(sentences, documents) if d == documents[example] for w in s}
        assert set(ids) <= allowed, f"window {i} took context from another document"
        assert len(context["input_ids"][i]) <= 16
        # the window's own labels are those of the plain encoding; context adds tokens, never labels
        assert [l for l in context["labels"][i] if l != -100] == [l for l in plain["labels"][i] if l != -100]
        assert sum(context["tag_mask"][i]) == sum(plain["tag_mask"][i])
    # a sentence in the middle of a document gets context on both sides, as much as fits
    middle = context["example_index"].index(2)
    assert len(context["input_ids"][middle]) == 16  # 7 words + 7 context pieces (all that fit) + 2 special
    one_sentence_document = context["example_index"].index(len(sentences) - 1)
    assert len(context["input_ids"][one_sentence_document]) == 3


def test_a_stride_as_long_as_the_window_is_refused_with_the_limit():
    """It was clamped to the window less one piece: windows advanced a piece at a time (20x slower), silently."""
    tokenizer = tiny_tokenizer()
    sentence = [WORDS[:40]]
    for stride in (14, 15, 100, -1):
        with pytest.raises(ValueError, match=rf"stride {stride} must be at least 0 and smaller than a window's room "
                                             r"for text, 14 tokens \(max_length 16 - 2 special tokens\)"):
            encode_words(tokenizer, sentence, max_length=16, stride=stride, scheme="BIO", strategy="first")
    windows = encode_words(tokenizer, sentence, max_length=16, stride=13, scheme="BIO", strategy="first")
    assert len(windows["input_ids"]) == 40 - 13  # the largest overlap allowed: one new word per window
    with pytest.raises(ValueError, match="stride 4 must be"):
        plan_windows([1, 1, 1, 1], 4, 4)
    check_stride(0, 1)
