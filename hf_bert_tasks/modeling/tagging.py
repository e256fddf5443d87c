"""Tagging schemes, span extraction, label alignment and the raw-text pre-tokenizer.

The standard library and the scheme table (``schemes.py``, which imports torch) only, so the file can be copied next
to custom model code on the Hub.

Schemes
=======
A tag is ``"O"`` (outside any entity) or ``PREFIX-TYPE``, split on the first ``"-"``, so the type may itself
contain ``"-"`` (``"B-WORK-OF-ART"`` is ``("B", "WORK-OF-ART")``). Positions are 0-based; spans are half-open
``[start, end)``. The four schemes, shown on the entities "John Smith" (PER) and "Paris" (LOC) followed by an
adjacent PER, "Anna":

    tokens  John   Smith  in  Paris  Anna
    IOB1    I-PER  I-PER  O   I-LOC  I-PER    I- starts or continues; B-x only starts an x entity that
                                              directly follows another x entity (CoNLL-2003's original files)
    BIO     B-PER  I-PER  O   B-LOC  B-PER    B- starts, I- continues (also called IOB2)
    BIOES   B-PER  E-PER  O   S-LOC  S-PER    B- begins, I- inside, E- ends, S- a one-token entity
    BMES    B-PER  E-PER  O   S-LOC  S-PER    as BIOES with M- (middle) for I-; common for Chinese

Between valid sequences and sets of non-overlapping typed spans each scheme is a bijection, so conversion
through spans (``convert_tags``) is lossless between all four. ``"X"`` (the BIOX label of later word pieces)
exists only at piece level: ``align_labels(strategy="x")`` writes it and ``word_tags_from_pieces`` ignores it;
everything else rejects it.

Repair rule
===========
``repair_tags`` reads a sequence left to right and applies the conlleval convention: a tag that cannot continue
the current entity starts a new entity of its own type. Nothing else changes: every position keeps its type
(or stays ``O``); only prefixes are rewritten. Concretely:

- BIO: ``O I-PER`` -> ``O B-PER``; ``B-PER I-LOC`` -> ``B-PER B-LOC``.
- IOB1: a ``B-x`` not directly after an x entity starts one anyway and is written ``I-x``: ``O B-PER`` ->
  ``O I-PER``.
- BIOES/BMES: an unfinished entity (B/I/M without its E) is closed at its last token (``B I O`` -> ``B E O``;
  a lone ``B`` -> ``S``); an I/M/E without a start opens an entity (``O I-PER E-PER`` -> ``O B-PER E-PER``;
  a lone ``E`` -> ``S``; a lone ``I`` -> ``S``).

A valid sequence comes back unchanged and the output is always valid. Tags that are not in the scheme's
vocabulary (``"E-PER"`` under BIO, ``"X"``, malformed strings) are not guessed at: ``repair_tags`` raises.

Pre-tokenizer
=============
``split_words`` is the one pre-tokenizer for raw text; its rules are in its docstring.
"""

from __future__ import annotations

import bisect
import operator
import re
import unicodedata
from dataclasses import dataclass
from typing import NamedTuple, Sequence

from .schemes import SCHEME_PREFIXES, normalize_scheme

__all__ = [
    "SCHEMES",
    "STRATEGIES",
    "InvalidTagSequenceError",
    "Span",
    "TagProblem",
    "align_labels",
    "convert_tags",
    "entities_from_words",
    "is_cjk_ideograph",
    "label_list",
    "normalize_scheme",
    "repair_tags",
    "spans_to_tags",
    "split_tag",
    "split_words",
    "tag_problems",
    "tags_to_spans",
    "validate_tags",
    "word_tags_from_pieces",
]

SCHEMES = tuple(SCHEME_PREFIXES)
STRATEGIES = ("first", "all", "x")

_ALL_PREFIXES = frozenset("BIEMS")


class InvalidTagSequenceError(ValueError):
    """A tag sequence that breaks its scheme's rules; ``position`` and ``tag`` locate the first problem."""

    def __init__(self, message: str, position: int | None = None, tag: str | None = None):
        super().__init__(message)
        self.position = position
        self.tag = tag


@dataclass(frozen=True)
class Span:
    """An entity of ``type`` covering sequence positions ``start`` to ``end`` (exclusive)."""

    type: str
    start: int
    end: int

    def __post_init__(self):
        _check_type(self.type)
        if not (isinstance(self.start, int) and isinstance(self.end, int) and 0 <= self.start < self.end):
            raise ValueError(f"bad span {self!r}: need integers with 0 <= start < end")


def _check_type(entity_type) -> None:
    if not isinstance(entity_type, str) or not entity_type or any(c.isspace() for c in entity_type):
        raise ValueError(f"bad entity type {entity_type!r}: need a non-empty string without whitespace")


def _normalize_strategy(strategy: str) -> str:
    name = str(strategy).strip().lower()
    if name not in STRATEGIES:
        raise ValueError(f"unknown alignment strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    return name


def split_tag(tag: str) -> tuple[str, str | None]:
    """``"B-PER"`` -> ``("B", "PER")``, ``"O"`` -> ``("O", None)``, ``"X"`` -> ``("X", None)``.

    Splits on the first ``"-"`` only. The prefix must be one of B, I, E, M, S (whatever the scheme: see
    ``validate_tags`` for scheme membership); the type must be non-empty without whitespace.
    """
    if tag == "O" or tag == "X":
        return tag, None
    if not isinstance(tag, str):
        raise ValueError(f"tag {tag!r} is not a string")
    prefix, sep, entity_type = tag.partition("-")
    if not sep or prefix not in _ALL_PREFIXES or not entity_type or any(c.isspace() for c in entity_type):
        raise ValueError(f"malformed tag {tag!r}: expected 'O', 'X' or PREFIX-TYPE with PREFIX one of B, I, E, M, S")
    return prefix, entity_type


# ---------------------------------------------------------------------------------------------------------------
# Reading and writing tag sequences
# ---------------------------------------------------------------------------------------------------------------


def _read(
    tags: Sequence[str], scheme: str
) -> tuple[list[Span], list[tuple[int, str, str]], list[tuple[int, str, str]]]:
    """One left-to-right pass shared by validation, strict reading and repair.

    Returns ``(spans, problems, vocabulary_problems)``. ``spans`` is the reading under the repair rule, so for a
    valid sequence it is the exact reading. ``problems`` are ``(position, tag, message)`` for order errors;
    ``vocabulary_problems`` the same for tags that do not belong to the scheme at all (read as ``O``).
    """
    allowed = SCHEME_PREFIXES[scheme]
    inside = "M" if scheme == "BMES" else "I"
    closed_by_end = scheme in ("BIOES", "BMES")  # entities need an explicit end (E/S)
    spans: list[Span] = []
    problems: list[tuple[int, str, str]] = []
    vocabulary: list[tuple[int, str, str]] = []
    open_type: str | None = None  # type of the entity the previous token belongs to, while it may continue
    open_start = 0

    for i, tag in enumerate(tags):
        prev = "the start of the sequence" if i == 0 else str(tags[i - 1])
        known = True
        try:
            prefix, etype = split_tag(tag)
        except ValueError as e:
            vocabulary.append((i, tag, f"position {i}: {e}"))
            prefix, etype, known = "O", None, False
        if prefix == "X" or (prefix != "O" and prefix not in allowed):
            expected = ", ".join(f"{p}-" for p in allowed)
            note = " (X marks later word pieces and exists only at piece level)" if prefix == "X" else ""
            message = f"position {i}: {tag} is not a {scheme} tag{note}; expected O or {expected} tags"
            vocabulary.append((i, tag, message))
            prefix, etype, known = "O", None, False

        if not closed_by_end:
            if prefix == "B":
                if scheme == "IOB1" and open_type != etype:
                    problems.append((i, tag, f"position {i}: {tag} follows {prev}; expected I-{etype} "
                                             f"(IOB1 uses B-{etype} only directly after another {etype} entity)"))
            elif prefix == "I" and open_type == etype:
                continue
            elif prefix == "I" and scheme == "BIO":
                problems.append((i, tag, f"position {i}: {tag} follows {prev}; expected B-{etype} "
                                         f"(I-{etype} only continues a {etype} entity)"))
            if open_type is not None:
                spans.append(Span(open_type, open_start, i))
            open_type, open_start = (None, 0) if prefix == "O" else (etype, i)
            continue

        if open_type is not None:
            if etype == open_type and prefix in (inside, "E"):
                if prefix == "E":
                    spans.append(Span(open_type, open_start, i + 1))
                    open_type = None
                continue
            # An unfinished entity is interrupted: close it at its last token. (An unknown tag already has
            # its own message.)
            if known:
                problems.append((i, tag, f"position {i}: {tag} follows {prev}; expected {inside}-{open_type} or "
                                         f"E-{open_type} to continue or end the {open_type} entity"))
            spans.append(Span(open_type, open_start, i))
            open_type = None
        elif prefix in (inside, "E"):
            problems.append((i, tag, f"position {i}: {tag} follows {prev}; expected B-{etype} or S-{etype} "
                                     f"to start a {etype} entity"))
        if prefix in ("S", "E"):  # an E reaching here has no start: a one-token entity
            spans.append(Span(etype, i, i + 1))
        elif prefix in ("B", inside):
            open_type, open_start = etype, i

    n = len(tags)
    if open_type is not None:
        if closed_by_end:
            expected = f"S-{open_type}" if open_start == n - 1 else f"E-{open_type}"
            problems.append((n - 1, tags[-1], f"position {n - 1}: the sequence ends with {tags[-1]} inside the "
                                              f"{open_type} entity started at position {open_start}; "
                                              f"expected {expected}"))
        spans.append(Span(open_type, open_start, n))
    return spans, problems, vocabulary


def validate_tags(tags: Sequence[str], scheme: str) -> list[str]:
    """Human-readable problems of ``tags`` under ``scheme`` (e.g. ``"position 3: I-PER follows O; ..."``).

    Empty when the sequence is valid. Positions are 0-based; after a problem the rest is read as
    ``repair_tags`` would, so a mistake does not cascade into messages about the tags after it.
    """
    scheme = normalize_scheme(scheme)
    _, problems, vocabulary = _read(tags, scheme)
    return [m for _, _, m in sorted(vocabulary + problems, key=lambda p: p[0])]


class TagProblem(NamedTuple):
    """One problem of a tag sequence: the 0-based ``position`` of the offending ``tag``, what is wrong with it
    (``message``, without the position) and whether ``repair_tags`` can fix it (``repairable``: an order error; a
    tag outside the scheme's vocabulary is not guessed at)."""

    position: int
    tag: str
    message: str
    repairable: bool


_POSITION_PREFIX = re.compile(r"position \d+: ")


def tag_problems(tags: Sequence[str], scheme: str) -> list[TagProblem]:
    """Every problem of ``tags`` under ``scheme``, in order of position (``validate_tags`` as records).

    Readers use it to point each problem at the source line of its own tag."""
    scheme = normalize_scheme(scheme)
    _, problems, vocabulary = _read(tags, scheme)
    found = [TagProblem(i, tag, _POSITION_PREFIX.sub("", m, count=1), True) for i, tag, m in problems]
    found += [TagProblem(i, tag, _POSITION_PREFIX.sub("", m, count=1), False) for i, tag, m in vocabulary]
    return sorted(found, key=lambda problem: (problem.position, problem.repairable))


def _raise_first(problems, vocabulary) -> None:
    """Raise InvalidTagSequenceError for the first problem, if any; vocabulary problems come first."""
    if not (problems or vocabulary):
        return
    position, tag, message = (vocabulary or problems)[0]
    notes = []
    more = len(problems) + len(vocabulary) - 1
    if more:
        notes.append(f"{more} more problem{'s' if more > 1 else ''}: see validate_tags")
    if not vocabulary:
        notes.append("repair_tags fixes such sequences")
    raise InvalidTagSequenceError(f"{message} [{'; '.join(notes)}]" if notes else message, position, tag)


def tags_to_spans(tags: Sequence[str], scheme: str) -> list[Span]:
    """Entity spans of a valid tag sequence, sorted by position.

    Raises ``InvalidTagSequenceError`` (a ``ValueError``) naming the first problem when ``tags`` is not valid
    under ``scheme``; use ``repair_tags`` first for noisy data or raw predictions.
    """
    scheme = normalize_scheme(scheme)
    spans, problems, vocabulary = _read(tags, scheme)
    _raise_first(problems, vocabulary)
    return spans


def spans_to_tags(spans: Sequence[Span], length: int, scheme: str) -> list[str]:
    """Encode non-overlapping spans as a tag sequence of ``length`` under ``scheme``.

    Raises ``ValueError`` for overlapping spans or spans past ``length``.
    """
    scheme = normalize_scheme(scheme)
    length = operator.index(length)
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    inside = "M" if scheme == "BMES" else "I"
    tags = ["O"] * length
    for span in spans:
        if not isinstance(span, Span):
            raise ValueError(f"expected Span objects, got {span!r}")
    previous: Span | None = None
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        if span.end > length:
            raise ValueError(f"{span} ends past the sequence length {length}")
        if previous is not None and span.start < previous.end:
            raise ValueError(f"overlapping spans {previous} and {span}")
        t, s, e = span.type, span.start, span.end
        if scheme == "IOB1":
            adjacent = previous is not None and previous.end == s and previous.type == t
            tags[s:e] = [f"I-{t}"] * (e - s)
            if adjacent:  # the only place IOB1 writes B-
                tags[s] = f"B-{t}"
        elif scheme == "BIO":
            tags[s:e] = [f"B-{t}"] + [f"I-{t}"] * (e - s - 1)
        elif e - s == 1:
            tags[s] = f"S-{t}"
        else:
            tags[s:e] = [f"B-{t}"] + [f"{inside}-{t}"] * (e - s - 2) + [f"E-{t}"]
        previous = span
    return tags


def repair_tags(tags: Sequence[str], scheme: str) -> list[str]:
    """Make ``tags`` valid under ``scheme`` with the conlleval rule (see the module docstring).

    A tag that cannot continue the current entity starts a new entity of its own type; in BIOES/BMES an
    unfinished entity is closed at its last token and an I/M/E without a start opens one. Types and ``O``
    positions never change. Valid input is returned unchanged. Raises ``ValueError`` for tags outside the
    scheme's vocabulary (wrong prefix, ``"X"``, malformed), which are not guessed at.
    """
    scheme = normalize_scheme(scheme)
    spans, _, vocabulary = _read(tags, scheme)
    if vocabulary:
        raise ValueError("cannot repair: " + "; ".join(m for _, _, m in vocabulary))
    return spans_to_tags(spans, len(tags), scheme)


def convert_tags(tags: Sequence[str], source: str, target: str, repair: bool = False) -> list[str]:
    """Re-encode ``tags`` from scheme ``source`` to scheme ``target`` through spans (lossless).

    Invalid input raises ``InvalidTagSequenceError`` unless ``repair=True``, which reads it with the repair rule.
    """
    source, target = normalize_scheme(source), normalize_scheme(target)
    spans, problems, vocabulary = _read(tags, source)
    if vocabulary or not repair:
        _raise_first(problems, vocabulary)
    return spans_to_tags(spans, len(tags), target)


def label_list(scheme: str, entity_types: Sequence[str], with_x: bool = False) -> list[str]:
    """Canonical label order: ``"O"``, then per type (sorted, deduplicated) the scheme's prefixes, then ``"X"``.

    ``label_list("BIO", ["PER", "LOC"])`` -> ``["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]``; BIOES gives B, I, E,
    S per type, BMES B, M, E, S, IOB1 B, I.
    """
    scheme = normalize_scheme(scheme)
    if isinstance(entity_types, str):
        raise ValueError(f"entity_types must be a sequence of type names, not the string {entity_types!r}")
    for t in entity_types:
        _check_type(t)
    labels = ["O"] + [f"{p}-{t}" for t in sorted(set(entity_types)) for p in SCHEME_PREFIXES[scheme]]
    return labels + ["X"] if with_x else labels


# ---------------------------------------------------------------------------------------------------------------
# Word <-> word-piece alignment
# ---------------------------------------------------------------------------------------------------------------


def _check_word_ids(word_ids: Sequence[int | None], num_words: int) -> list[int | None]:
    """Word ids as plain ints; they must lie in ``range(num_words)`` and never decrease (one sequence)."""
    checked: list[int | None] = []
    last = -1
    for k, w in enumerate(word_ids):
        if w is None:
            checked.append(None)
            continue
        w = operator.index(w)  # accepts numpy integers
        if not 0 <= w < num_words:
            raise ValueError(f"word_ids[{k}] = {w} is outside 0..{num_words - 1}")
        if w < last:
            raise ValueError(
                f"word_ids[{k}] = {w} comes after word {last}: word ids must not decrease "
                "(pass the word_ids() of a single sequence)"
            )
        last = w
        checked.append(w)
    return checked


def align_labels(
    word_ids: Sequence[int | None], word_tags: Sequence[str], scheme: str, strategy: str
) -> list[str | None]:
    """Word-level tags -> one label per word piece.

    Args:
        word_ids: per piece, the index of its word (``encoding.word_ids()`` of a fast tokenizer) or ``None``
            for special tokens; pieces of one word are consecutive. Words absent (truncated) are skipped.
        word_tags: a valid tag sequence under ``scheme``, one tag per word.
        strategy: ``"first"``: the first piece gets the word's tag, later pieces ``None``; ``"x"``: later pieces
            get ``"X"``; ``"all"``: every piece is labelled so that the piece sequence encodes the same entities,
            re-encoded in the scheme (BIO ``B-PER`` over 3 pieces -> ``B-PER I-PER I-PER``, BIOES ``S-PER`` ->
            ``B-PER I-PER E-PER``); an entity cut by truncation keeps its present pieces.

    Returns:
        A list of ``len(word_ids)`` labels; ``None`` for special tokens and unlabelled pieces (the caller maps
        ``None`` to the loss's ignore index).
    """
    scheme, strategy = normalize_scheme(scheme), _normalize_strategy(strategy)
    spans = tags_to_spans(word_tags, scheme)
    ids = _check_word_ids(word_ids, len(word_tags))
    labels: list[str | None] = [None] * len(ids)
    if strategy in ("first", "x"):
        later = None if strategy == "first" else "X"
        previous = None
        for k, w in enumerate(ids):
            if w is None:
                continue
            labels[k] = word_tags[w] if w != previous else later
            previous = w
        return labels

    # "all": map word spans onto the sequence of word pieces (special tokens left out), then encode there.
    positions = [k for k, w in enumerate(ids) if w is not None]
    first_piece: dict[int, int] = {}
    last_piece: dict[int, int] = {}
    for j, k in enumerate(positions):
        first_piece.setdefault(ids[k], j)
        last_piece[ids[k]] = j
    piece_spans = []
    for span in spans:
        present = [w for w in range(span.start, span.end) if w in first_piece]
        if present:
            piece_spans.append(Span(span.type, first_piece[present[0]], last_piece[present[-1]] + 1))
    for k, tag in zip(positions, spans_to_tags(piece_spans, len(positions), scheme)):
        labels[k] = tag
    return labels


def word_tags_from_pieces(
    word_ids: Sequence[int | None],
    piece_tags: Sequence[str | None],
    num_words: int,
    scheme: str,
    strategy: str,
) -> list[str]:
    """Piece-level tags (e.g. predictions) -> one valid tag per word for words ``0..num_words-1``.

    ``"first"``/``"x"``: each word takes the tag of its first piece; a first piece tagged ``None`` or ``"X"``
    counts as unlabelled. ``"all"``: pieces with ``None``/``"X"`` tags are left out, the remaining piece sequence
    is read into spans with the repair rule, and each span covers the words of its first and last piece (where
    two spans claim one word, the earlier keeps it). Words with no piece, or no label, get ``"O"``.

    The result is always a valid sequence: for ``"first"``/``"x"`` it is passed through ``repair_tags``, and
    ``"all"`` encodes spans directly. Tags outside the scheme's vocabulary raise ``ValueError``.
    """
    scheme, strategy = normalize_scheme(scheme), _normalize_strategy(strategy)
    num_words = operator.index(num_words)
    if len(word_ids) != len(piece_tags):
        raise ValueError(f"word_ids has {len(word_ids)} pieces but piece_tags has {len(piece_tags)}")
    ids = _check_word_ids(word_ids, num_words)

    if strategy in ("first", "x"):
        tags = ["O"] * num_words
        seen = set()
        for w, tag in zip(ids, piece_tags):
            if w is None or w in seen:
                continue
            seen.add(w)
            if tag is not None and tag != "X":
                tags[w] = tag
        return repair_tags(tags, scheme)

    labelled = [(w, tag) for w, tag in zip(ids, piece_tags) if w is not None and tag is not None and tag != "X"]
    spans, _, vocabulary = _read([tag for _, tag in labelled], scheme)
    if vocabulary:
        raise ValueError("; ".join(m for _, _, m in vocabulary))
    word_spans = []
    claimed = 0  # words before this index already belong to an earlier span
    for span in spans:
        start = max(labelled[span.start][0], claimed)
        end = labelled[span.end - 1][0] + 1
        if start < end:
            word_spans.append(Span(span.type, start, end))
            claimed = end
    return spans_to_tags(word_spans, num_words, scheme)


# ---------------------------------------------------------------------------------------------------------------
# Raw text
# ---------------------------------------------------------------------------------------------------------------

_ZWJ = "\u200d"
# CJK ideographs: one character, one word (split_words) and one token (CMRC2018 scoring, qa/metrics.py).
CJK_IDEOGRAPH_RANGES = (
    (0x3400, 0x4DBF),  # extension A
    (0x4E00, 0x9FFF),  # unified ideographs
    (0xF900, 0xFAFF),  # compatibility ideographs
    (0x20000, 0x2FA1F),  # extensions B-F, I and the compatibility supplement
    (0x30000, 0x323AF),  # extensions G, H
)
# CJK symbols and punctuation (、。〇々「」...): words of their own too; U+3000 is whitespace and never gets here.
_CJK_SYMBOLS = (0x3000, 0x303F)


def is_cjk_ideograph(cp: int) -> bool:
    """Whether the code point ``cp`` is a CJK ideograph (:data:`CJK_IDEOGRAPH_RANGES`)."""
    # Called for every character of every text: most are below the first range, so say so without the loop.
    return cp >= 0x3400 and any(lo <= cp <= hi for lo, hi in CJK_IDEOGRAPH_RANGES)


def _is_cjk(cp: int) -> bool:
    return is_cjk_ideograph(cp) or _CJK_SYMBOLS[0] <= cp <= _CJK_SYMBOLS[1]


def _is_separator(ch: str, category: str) -> bool:
    # Zero-width space and other format characters are Cf: they separate words like whitespace does.
    return ch.isspace() or category in ("Cc", "Cf")


def _is_emoji_modifier(cp: int) -> bool:
    return 0x1F3FB <= cp <= 0x1F3FF  # skin tones


def _is_regional_indicator(cp: int) -> bool:
    return 0x1F1E6 <= cp <= 0x1F1FF


def _is_tag_char(cp: int) -> bool:
    return 0xE0020 <= cp <= 0xE007F  # emoji tag sequences (subdivision flags)


def _extend_cluster(text: str, i: int, emoji: bool) -> int:
    """End of the single-character word whose character is ``text[i - 1]``.

    Combining marks (which include variation selectors) always attach; an emoji also takes skin-tone
    modifiers, tag characters and ``ZWJ + emoji`` continuations.
    """
    n = len(text)
    while i < n:
        ch = text[i]
        cp = ord(ch)
        category = unicodedata.category(ch)
        if category[0] == "M" or (emoji and (_is_emoji_modifier(cp) or _is_tag_char(cp))):
            i += 1
        elif emoji and ch == _ZWJ and i + 1 < n and unicodedata.category(text[i + 1]) == "So":
            i += 2
        else:
            break
    return i


def split_words(text: str) -> list[tuple[str, int, int]]:
    """Split raw text into ``(word, start, end)`` with ``text[start:end] == word`` (offsets into ``text``).

    Rules, in order of precedence:

    - Whitespace (``str.isspace``: spaces, tabs, newlines, U+3000 ...) and control/format characters
      (categories Cc, Cf, e.g. U+0000, U+200B, U+FEFF) separate words and are never part of one.
    - Every CJK ideograph and every character of the CJK Symbols and Punctuation block is a word of its own.
    - Every punctuation (P*) or symbol (S*) character is a word of its own: ``"don't"`` -> ``don ' t``,
      ``"3.14"`` -> ``3 . 14``. Simple and predictable; the model's tokenizer sees the pieces anyway.
    - Emoji (category So) are symbols, so each is its own word; it keeps following variation selectors,
      skin-tone modifiers, tag characters, and ``ZWJ + emoji`` continuations (so a ZWJ family is one word),
      and two regional indicators make one flag.
    - Everything else (letters, digits, kana, Hangul, private-use ...) forms maximal runs.
    - Combining marks (Mn, Mc, Me) stay with the previous character's word; one with no such word (after a
      separator or at the start) starts a run.

    Every character that is not whitespace or Cc/Cf belongs to exactly one word.
    """
    words: list[tuple[str, int, int]] = []
    n = len(text)
    i = 0
    while i < n:
        ch = text[i]
        cp = ord(ch)
        category = unicodedata.category(ch)
        if _is_separator(ch, category):
            i += 1
            continue
        start = i
        i += 1
        if _is_cjk(cp) or category[0] in "PS":
            if _is_regional_indicator(cp) and i < n and _is_regional_indicator(ord(text[i])):
                i += 1
            i = _extend_cluster(text, i, emoji=category == "So")
        else:
            while i < n:
                ch = text[i]
                category = unicodedata.category(ch)
                if _is_separator(ch, category) or category[0] in "PS" or _is_cjk(ord(ch)):
                    break
                i += 1
        words.append((text[start:i], start, i))
    return words


def entities_from_words(
    text: str,
    words: list[tuple[str, int, int]],
    word_tags: Sequence[str],
    scheme: str,
    scores: Sequence[float] | None = None,
) -> list[dict]:
    """Entities of ``text`` from per-word tags, as dicts sorted by ``start``.

    Args:
        words: ``split_words(text)`` (or any ``(word, start, end)`` list with character offsets into ``text``).
        word_tags: a valid tag sequence, one per word (``repair_tags`` raw predictions first).
        scores: optional per-word confidences.

    Returns:
        ``[{"type", "text", "start", "end", "score"}]``: ``start``/``end`` are character offsets of the first
        word's start and the last word's end, ``text`` is ``text[start:end]``, ``score`` is the mean of the
        span's word scores, or ``None`` without scores.
    """
    if len(words) != len(word_tags):
        raise ValueError(f"{len(words)} words but {len(word_tags)} tags")
    if scores is not None and len(scores) != len(words):
        raise ValueError(f"{len(words)} words but {len(scores)} scores")
    entities = []
    for span in tags_to_spans(word_tags, scheme):
        start, end = words[span.start][1], words[span.end - 1][2]
        score = None
        if scores is not None:
            score = sum(float(s) for s in scores[span.start : span.end]) / (span.end - span.start)
        entities.append({"type": span.type, "text": text[start:end], "start": start, "end": end, "score": score})
    return entities


def best_flat_spans(spans: Sequence[tuple]) -> list[tuple]:
    """The non-overlapping subset of `spans` `(type, start, end (exclusive), score)` whose scores sum highest
    (weighted interval scheduling, exact), sorted by start: flat decoding of a span model's nested output."""
    spans = sorted(spans, key=lambda span: (span[2], span[1], span[0]))
    ends = [span[2] for span in spans]
    best, previous, took = [0.0], [], []  # best[i]: the highest sum over the first i spans
    for i, (_, start, _, score) in enumerate(spans):
        j = bisect.bisect_right(ends, start, 0, i)  # spans among the first i that end at or before `start`
        previous.append(j)
        took.append(best[j] + score > best[i])
        best.append(max(best[j] + score, best[i]))
    chosen, i = [], len(spans)
    while i > 0:
        if took[i - 1]:
            chosen.append(spans[i - 1])
            i = previous[i - 1]
        else:
            i -= 1
    return chosen[::-1]
