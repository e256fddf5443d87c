"""Tests for hf_bert_tasks.modeling.tagging against brute-force oracles written independently of the module."""

from __future__ import annotations

import itertools
import random
import time
import unicodedata

import pytest

from hf_bert_tasks.modeling.tagging import (
    SCHEMES,
    InvalidTagSequenceError,
    Span,
    align_labels,
    convert_tags,
    entities_from_words,
    label_list,
    repair_tags,
    spans_to_tags,
    split_tag,
    split_words,
    tag_problems,
    tags_to_spans,
    validate_tags,
    word_tags_from_pieces,
)

TYPES = ("A", "B")


# --- independent oracles -----------------------------------------------------------------------------------------


def all_span_sets(length, types=TYPES):
    """Every set of non-overlapping typed spans over ``length`` positions, as sorted tuples of (type, s, e)."""
    if length == 0:
        return [()]
    out = []

    def walk(pos, acc):
        if pos == length:
            out.append(tuple(acc))
            return
        walk(pos + 1, acc)  # position pos is outside any entity
        for end in range(pos + 1, length + 1):
            for t in types:
                walk(end, acc + [(t, pos, end)])

    walk(0, [])
    return out


def count_span_sets(length, k):
    # f(n) = f(n-1) [first position O] + k * sum_{m=1..n} f(n-m) [first entity has length m]
    f = [1]
    for n in range(1, length + 1):
        f.append(f[n - 1] + k * sum(f[n - m] for m in range(1, n + 1)))
    return f[length]


def reference_encode(span_set, length, scheme):
    """Encode spans by the scheme definitions, written position by position (not through the module)."""
    tags = ["O"] * length
    for t, s, e in span_set:
        for p in range(s, e):
            first, last = p == s, p == e - 1
            if scheme == "BIO":
                tags[p] = ("B-" if first else "I-") + t
            elif scheme == "IOB1":
                after_same = first and any(t2 == t and e2 == s for t2, _, e2 in span_set)
                tags[p] = ("B-" if after_same else "I-") + t
            else:
                inside = "M-" if scheme == "BMES" else "I-"
                if first and last:
                    tags[p] = "S-" + t
                elif first:
                    tags[p] = "B-" + t
                elif last:
                    tags[p] = "E-" + t
                else:
                    tags[p] = inside + t
    return tags


VOCAB = {
    "IOB1": ["O"] + [f"{p}-{t}" for t in TYPES for p in "BI"],
    "BIO": ["O"] + [f"{p}-{t}" for t in TYPES for p in "BI"],
    "BIOES": ["O"] + [f"{p}-{t}" for t in TYPES for p in "BIES"],
    "BMES": ["O"] + [f"{p}-{t}" for t in TYPES for p in "BMES"],
}


def as_spans(span_set):
    return [Span(t, s, e) for t, s, e in span_set]


# --- schemes, tags, labels ---------------------------------------------------------------------------------------


def test_split_tag():
    assert split_tag("B-PER") == ("B", "PER")
    assert split_tag("O") == ("O", None)
    assert split_tag("X") == ("X", None)
    assert split_tag("I-WORK-OF-ART") == ("I", "WORK-OF-ART")
    for bad in ["", "B", "B-", "-PER", "B_PER", "O-PER", "Q-PER", "b-PER", "B-P ER", None, 3]:
        with pytest.raises(ValueError, match="tag"):
            split_tag(bad)


def test_label_list():
    assert label_list("BIO", ["PER", "LOC"]) == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert label_list("IOB2", ["PER", "PER"], with_x=True) == ["O", "B-PER", "I-PER", "X"]
    assert label_list("BIOES", ["PER"]) == ["O", "B-PER", "I-PER", "E-PER", "S-PER"]
    assert label_list("BMES", ["NR"]) == ["O", "B-NR", "M-NR", "E-NR", "S-NR"]
    assert label_list("IOB1", []) == ["O"]
    with pytest.raises(ValueError):
        label_list("BIO", "PER")
    with pytest.raises(ValueError):
        label_list("BIO", [""])


# --- brute force over all span sets and all tag sequences --------------------------------------------------------


@pytest.mark.parametrize("length", range(6))
def test_span_enumeration_is_complete(length):
    sets = all_span_sets(length)
    assert len(sets) == len(set(sets)) == count_span_sets(length, len(TYPES))


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("length", range(6))
def test_spans_round_trip_and_bijection(scheme, length):
    sets = all_span_sets(length)
    encodings = set()
    for span_set in sets:
        spans = as_spans(span_set)
        tags = spans_to_tags(spans, length, scheme)
        assert tags == reference_encode(span_set, length, scheme)
        assert tags_to_spans(tags, scheme) == spans
        assert validate_tags(tags, scheme) == []
        encodings.add(tuple(tags))
    # Distinct span sets give distinct sequences: the scheme is a bijection onto its valid sequences.
    assert len(encodings) == len(sets)


@pytest.mark.parametrize("length", range(6))
def test_convert_between_every_pair_is_lossless(length):
    for span_set in all_span_sets(length):
        for source, target in itertools.product(SCHEMES, SCHEMES):
            tags = reference_encode(span_set, length, source)
            converted = convert_tags(tags, source, target)
            assert converted == reference_encode(span_set, length, target)
            assert convert_tags(converted, target, source) == tags


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("length", range(5))
def test_validate_accepts_exactly_the_encodings(scheme, length):
    valid = {tuple(reference_encode(s, length, scheme)) for s in all_span_sets(length)}
    for seq in itertools.product(VOCAB[scheme], repeat=length):
        problems = validate_tags(seq, scheme)
        assert (problems == []) == (seq in valid), (seq, problems)
        if seq in valid:
            continue
        assert all(p.startswith("position ") for p in problems)
        with pytest.raises(InvalidTagSequenceError) as info:
            tags_to_spans(seq, scheme)
        assert 0 <= info.value.position < length and info.value.tag == seq[info.value.position]
        with pytest.raises(InvalidTagSequenceError):
            convert_tags(seq, scheme, "BIO")


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("length", range(5))
def test_repair_property(scheme, length):
    for seq in itertools.product(VOCAB[scheme], repeat=length):
        seq = list(seq)
        repaired = repair_tags(seq, scheme)
        assert validate_tags(repaired, scheme) == []
        if not validate_tags(seq, scheme):
            assert repaired == seq
        # Only prefixes change: O stays O, every entity token keeps its type.
        assert [split_tag(t)[1] for t in repaired] == [split_tag(t)[1] for t in seq]
        assert repair_tags(repaired, scheme) == repaired
        assert convert_tags(seq, scheme, scheme, repair=True) == repaired


def test_repair_examples():
    def r(s, scheme):
        return " ".join(repair_tags(s.split(), scheme))

    assert r("O I-PER", "BIO") == "O B-PER"
    assert r("B-PER I-LOC", "BIO") == "B-PER B-LOC"
    assert r("I-PER I-PER O I-LOC", "BIO") == "B-PER I-PER O B-LOC"
    assert r("O B-PER I-PER", "IOB1") == "O I-PER I-PER"
    assert r("I-PER B-PER", "IOB1") == "I-PER B-PER"  # already valid
    assert r("B-PER I-PER O", "BIOES") == "B-PER E-PER O"
    assert r("B-PER", "BIOES") == "S-PER"
    assert r("E-PER", "BIOES") == "S-PER"
    assert r("O I-PER E-PER", "BIOES") == "O B-PER E-PER"
    assert r("B-PER E-LOC", "BIOES") == "S-PER S-LOC"
    assert r("B-PER B-PER E-PER", "BIOES") == "S-PER B-PER E-PER"
    assert r("M-NR E-NR S-NS", "BMES") == "B-NR E-NR S-NS"
    assert r("B-NR M-NR", "BMES") == "B-NR E-NR"
    assert repair_tags([], "BIO") == []
    with pytest.raises(ValueError, match="not a BIO tag"):
        repair_tags(["E-PER"], "BIO")
    with pytest.raises(ValueError, match="piece level"):
        repair_tags(["B-PER", "X"], "BIO")


# --- known examples and errors -----------------------------------------------------------------------------------


def test_conll_iob1_to_bio():
    assert convert_tags(["I-PER", "I-PER", "B-PER"], "IOB1", "BIO") == ["B-PER", "I-PER", "B-PER"]
    iob1 = "I-ORG O I-MISC O O O I-MISC O O".split()  # EU rejects German call to boycott British lamb .
    assert convert_tags(iob1, "IOB1", "BIOES") == "S-ORG O S-MISC O O O S-MISC O O".split()
    assert tags_to_spans(["I-LOC", "I-LOC", "O", "I-PER"], "IOB1") == [Span("LOC", 0, 2), Span("PER", 3, 4)]


def test_bmes_chinese_example():
    chars = list("明朝建立于1368年，开国皇帝是朱元璋。")
    bmes = ["B-DYN", "E-DYN"] + ["O"] * 14 + ["B-PER", "M-PER", "E-PER", "O"]
    assert len(bmes) == len(chars) == 20
    spans = tags_to_spans(bmes, "BMES")
    assert [("".join(chars[s.start:s.end]), s.type) for s in spans] == [("明朝", "DYN"), ("朱元璋", "PER")]
    bio = convert_tags(bmes, "BMES", "BIO")
    assert bio[-4:] == ["B-PER", "I-PER", "I-PER", "O"]
    assert convert_tags(bio, "BIO", "BMES") == bmes


def test_error_messages():
    with pytest.raises(InvalidTagSequenceError, match=r"position 1: I-PER follows O; expected B-PER") as info:
        tags_to_spans(["O", "I-PER"], "BIO")
    assert isinstance(info.value, ValueError) and info.value.position == 1 and info.value.tag == "I-PER"
    assert validate_tags("O O O I-PER".split(), "BIO") == [
        "position 3: I-PER follows O; expected B-PER (I-PER only continues a PER entity)"
    ]
    with pytest.raises(InvalidTagSequenceError, match="E-PER is not a BIO tag"):
        tags_to_spans(["B-PER", "E-PER"], "BIO")
    with pytest.raises(InvalidTagSequenceError, match="piece level"):
        tags_to_spans(["X"], "BIOES")
    with pytest.raises(ValueError, match="malformed tag 'B-'"):
        tags_to_spans(["B-"], "BIO")
    (problem,) = validate_tags(["O", "B-PER", "I-PER"], "BIOES")
    assert problem.startswith("position 2:") and "expected E-PER" in problem
    (problem,) = validate_tags(["B-PER", "O"], "BIOES")
    assert problem.startswith("position 1: O follows B-PER") and "I-PER or E-PER" in problem
    (problem,) = validate_tags(["B-PER"], "IOB1")
    assert "expected I-PER" in problem
    with pytest.raises(ValueError, match="overlapping"):
        spans_to_tags([Span("A", 0, 2), Span("B", 1, 3)], 3, "BIO")
    with pytest.raises(ValueError, match="past the sequence length"):
        spans_to_tags([Span("A", 2, 4)], 3, "BIO")
    with pytest.raises(ValueError):
        Span("A", 2, 2)
    with pytest.raises(ValueError):
        Span("", 0, 1)


def test_tag_problems_are_validate_tags_as_records():
    # Readers point each problem at its own tag's line, so they need positions, not just sentences.
    tags = ["O", "I-PER", "E-PER", "B-LOC", "O", "I-LOC"]
    problems = tag_problems(tags, "BIO")
    assert [(p.position, p.tag, p.repairable) for p in problems] == [(1, "I-PER", True), (2, "E-PER", False),
                                                                      (5, "I-LOC", True)]
    assert problems[0].message == "I-PER follows O; expected B-PER (I-PER only continues a PER entity)"
    assert [f"position {p.position}: {p.message}" for p in problems] == validate_tags(tags, "BIO")
    assert tag_problems(["B-A", "E-A", "S-B"], "bioes") == []


# --- word-piece alignment ----------------------------------------------------------------------------------------


def random_layout(rng, num_words):
    """word_ids of a fast tokenizer: [CLS], 1-3 pieces per word, [SEP]."""
    word_ids = [None]
    for w in range(num_words):
        word_ids += [w] * rng.randint(1, 3)
    return word_ids + [None]


def random_word_tags(rng, num_words, scheme):
    span_set = rng.choice(all_span_sets(num_words)) if num_words <= 5 else ()
    if num_words > 5:  # sample spans left to right
        spans, pos = [], 0
        while pos < num_words:
            if rng.random() < 0.5:
                end = min(num_words, pos + rng.randint(1, 3))
                spans.append((rng.choice(TYPES), pos, end))
                pos = end
            else:
                pos += 1
        span_set = tuple(spans)
    return reference_encode(span_set, num_words, scheme), span_set


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("strategy", ["first", "all", "x"])
def test_align_round_trip(scheme, strategy):
    rng = random.Random(1234)
    for _ in range(300):
        num_words = rng.randint(0, 9)
        word_ids = random_layout(rng, num_words)
        word_tags, span_set = random_word_tags(rng, num_words, scheme)
        labels = align_labels(word_ids, word_tags, scheme, strategy)
        assert len(labels) == len(word_ids)
        assert labels[0] is None and labels[-1] is None
        firsts = [k for k, w in enumerate(word_ids) if w is not None and word_ids[k - 1] != w]
        laters = [k for k, w in enumerate(word_ids) if w is not None and word_ids[k - 1] == w]
        if strategy != "all":
            assert [labels[k] for k in firsts] == word_tags
            assert all(labels[k] == (None if strategy == "first" else "X") for k in laters)
        else:
            pieces = [k for k, w in enumerate(word_ids) if w is not None]
            piece_spans = tags_to_spans([labels[k] for k in pieces], scheme)
            # Each piece-level span covers exactly the pieces of the words of one word-level span.
            mapped = [(s.type, word_ids[pieces[s.start]], word_ids[pieces[s.end - 1]] + 1) for s in piece_spans]
            assert mapped == list(span_set)
            for s in piece_spans:
                assert word_ids[pieces[s.start]] != word_ids[pieces[s.start] - 1]  # starts at a first piece
        assert word_tags_from_pieces(word_ids, labels, num_words, scheme, strategy) == word_tags


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("strategy", ["first", "all", "x"])
def test_align_truncated(scheme, strategy):
    rng = random.Random(99)
    for _ in range(200):
        num_words = rng.randint(1, 9)
        full = random_layout(rng, num_words)
        cut = rng.randint(1, len(full) - 1)
        word_ids = full[:cut] + [None]  # truncated, [SEP] kept
        word_tags, span_set = random_word_tags(rng, num_words, scheme)
        labels = align_labels(word_ids, word_tags, scheme, strategy)
        back = word_tags_from_pieces(word_ids, labels, num_words, scheme, strategy)
        assert validate_tags(back, scheme) == []
        complete = {w for w in range(num_words) if 0 < word_ids.count(w) == full.count(w)}
        got = set(map(tuple, ((s.type, s.start, s.end) for s in tags_to_spans(back, scheme))))
        for t, s, e in span_set:
            if all(w in complete for w in range(s, e)):
                assert (t, s, e) in got
        absent = set(range(num_words)) - set(word_ids)
        assert all(back[w] == "O" for w in absent)


def test_align_examples():
    ids = [None, 0, 0, 0, 1, None]
    assert align_labels(ids, ["B-PER", "O"], "BIO", "all") == [None, "B-PER", "I-PER", "I-PER", "O", None]
    assert align_labels(ids, ["S-PER", "O"], "BIOES", "all") == [None, "B-PER", "I-PER", "E-PER", "O", None]
    assert align_labels(ids, ["S-PER", "O"], "BIOES", "first") == [None, "S-PER", None, None, "O", None]
    assert align_labels(ids, ["S-PER", "O"], "BIOES", "x") == [None, "S-PER", "X", "X", "O", None]
    ids = [None, 0, 0, 1, 1, None]
    assert align_labels(ids, ["I-PER", "B-PER"], "IOB1", "all") == [None, "I-PER", "I-PER", "B-PER", "I-PER", None]
    with pytest.raises(InvalidTagSequenceError):
        align_labels(ids, ["O", "I-PER"], "BIO", "all")
    with pytest.raises(ValueError, match="first, all, x"):
        align_labels(ids, ["O", "O"], "BIO", "last")
    with pytest.raises(ValueError, match="must not decrease"):
        align_labels([0, 1, 0], ["O", "O"], "BIO", "first")
    with pytest.raises(ValueError, match="outside"):
        align_labels([0, 2], ["O", "O"], "BIO", "first")


def test_word_tags_from_noisy_pieces():
    ids = [None, 0, 0, 1, 2, 2, None]
    # First piece decides; X or None there counts as no label; the result is repaired.
    assert word_tags_from_pieces(ids, [None, "I-PER", "O", "X", "I-LOC", "B-PER", None], 4, "BIO", "first") == [
        "B-PER", "O", "B-LOC", "O"
    ]
    # "all": a span covers the words of its first and last piece; the earlier span keeps a shared word.
    tags = [None, "B-PER", "B-LOC", "I-LOC", "O", "X", None]
    assert word_tags_from_pieces(ids, tags, 3, "BIO", "all") == ["B-PER", "B-LOC", "O"]
    tags = [None, "O", "B-PER", "E-PER", "O", "O", None]
    assert word_tags_from_pieces(ids, tags, 3, "BIOES", "all") == ["B-PER", "E-PER", "O"]
    with pytest.raises(ValueError):
        word_tags_from_pieces(ids, ["O"], 3, "BIO", "all")
    with pytest.raises(ValueError, match="not a BIO tag"):
        word_tags_from_pieces(ids, [None, "S-PER", "O", "O", "O", "O", None], 3, "BIO", "all")


# --- split_words -------------------------------------------------------------------------------------------------


def words_of(text):
    return [w for w, _, _ in split_words(text)]


def check_offsets(text, words):
    last = 0
    for w, s, e in words:
        assert text[s:e] == w and w and s >= last
        last = e


def test_split_words_basic():
    assert split_words("") == [] and split_words(" \t\n\u3000\u200b ") == []
    text = "Hello, world! It's 3.14 ok"
    words = split_words(text)
    check_offsets(text, words)
    assert [w for w, _, _ in words] == ["Hello", ",", "world", "!", "It", "'", "s", "3", ".", "14", "ok"]
    assert words[0] == ("Hello", 0, 5)


def test_split_words_cjk_and_full_width():
    text = "明朝建立于1368年，开国皇帝是朱元璋。"
    assert words_of(text) == list("明朝建立于") + ["1368"] + list("年，开国皇帝是朱元璋。")
    check_offsets(text, split_words(text))
    assert words_of("「東京」へ行く　ＡＢＣ１２３！") == ["「", "東", "京", "」", "へ", "行", "く", "ＡＢＣ１２３", "！"]
    assert words_of("北京2008奥运会") == ["北", "京", "2008", "奥", "运", "会"]


def test_split_words_marks_controls_emoji():
    assert words_of("cafe\u0301 e\u0301") == ["cafe\u0301", "e\u0301"]
    assert words_of("!\u0301 \u0301a") == ["!\u0301", "\u0301a"]
    assert words_of("ab\x00cd\u200bef\ufeffg\x07h") == ["ab", "cd", "ef", "g", "h"]
    text = "I ❤️ NY 👍🏽👨\u200d👩\u200d👧 🇯🇵🇫🇷 1\ufe0f\u20e3"
    assert words_of(text) == ["I", "❤️", "NY", "👍🏽", "👨\u200d👩\u200d👧", "🇯🇵", "🇫🇷", "1\ufe0f\u20e3"]
    check_offsets(text, split_words(text))
    assert words_of("a\u200db") == ["a", "b"]  # ZWJ joins emoji only
    assert words_of("👍\u200d") == ["👍"]


POOL = (
    [chr(c) for c in range(0x20, 0x7F)]
    + list(" \t\n\r\u3000\u00a0\u200b\u200d\ufeff\x00\x1f\u0085\u2028")
    + [chr(c) for c in range(0x300, 0x370)]  # combining marks
    + [chr(c) for c in range(0x4E00, 0x4E40)]
    + [chr(c) for c in range(0x3000, 0x3040)]
    + [chr(c) for c in range(0xFF00, 0xFF70)]
    + [chr(c) for c in range(0x1F300, 0x1F340)]
    + [chr(c) for c in range(0x1F1E6, 0x1F1FF)]
    + ["\ufe0f", "\U0001F3FB", "\U000E0067", "\u20e3", "é", "ß", "я", "ع", "क", "\u093f", "\uac00"]
)


def test_split_words_loses_nothing():
    rng = random.Random(7)
    for trial in range(400):
        if trial % 2:
            text = "".join(rng.choice(POOL) for _ in range(rng.randint(0, 40)))
        else:  # anywhere in Unicode except surrogates
            cps = [rng.randint(0, 0x10FFFF) for _ in range(rng.randint(0, 40))]
            text = "".join(chr(c) for c in cps if not 0xD800 <= c <= 0xDFFF)
        words = split_words(text)
        check_offsets(text, words)
        owner = [None] * len(text)
        for k, (_, s, e) in enumerate(words):
            for p in range(s, e):
                owner[p] = k
        for p, ch in enumerate(text):
            category = unicodedata.category(ch)
            dropped = ch.isspace() or category in ("Cc", "Cf")
            if not dropped:
                assert owner[p] is not None, (text, p)
            elif owner[p] is not None:  # only emoji joiners and tag characters live inside words
                assert ch == "\u200d" or 0xE0020 <= ord(ch) <= 0xE007F, (text, p)


def test_split_words_long_text():
    rng = random.Random(3)
    pieces = ["Obama", "visited", "北京", ",", "then", "Paris", ".", "😀", "naïve", "\n"]
    text = " ".join(rng.choice(pieces) for _ in range(2000))[:5000]
    assert len(text) == 5000
    t0 = time.perf_counter()
    words = split_words(text)
    assert time.perf_counter() - t0 < 1.0
    check_offsets(text, words)
    assert sum(len(w) for w, _, _ in words) == sum(1 for ch in text if not ch.isspace())


# --- entities_from_words -----------------------------------------------------------------------------------------


def test_entities_from_words():
    text = "Barack  Obama visited 北京 today."
    words = split_words(text)
    assert [w for w, _, _ in words] == ["Barack", "Obama", "visited", "北", "京", "today", "."]
    tags = ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O", "O"]
    assert entities_from_words(text, words, tags, "BIO") == [
        {"type": "PER", "text": "Barack  Obama", "start": 0, "end": 13, "score": None},
        {"type": "LOC", "text": "北京", "start": 22, "end": 24, "score": None},
    ]
    scores = [0.9, 0.7, 0.1, 0.5, 1.0, 0.2, 0.3]
    ents = entities_from_words(text, words, tags, "BIO", scores)
    assert ents[0]["score"] == pytest.approx(0.8) and ents[1]["score"] == pytest.approx(0.75)
    assert entities_from_words("", [], [], "BIOES") == []
    with pytest.raises(ValueError):
        entities_from_words(text, words, tags[:-1], "BIO")
    with pytest.raises(InvalidTagSequenceError):
        entities_from_words(text, words, ["I-PER"] + tags[1:], "BIO")
