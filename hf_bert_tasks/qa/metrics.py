"""Question-answering scores, on a 0-100 scale like the official scripts.

Scores (:func:`qa_scores`), on a 0-100 scale like the official scripts
    English, the official SQuAD normalisation: lowercase, drop punctuation, drop the articles a/an/the, collapse
    whitespace; EM is equality, F1 the bag-of-tokens overlap; the best over the reference answers. An empty
    reference list (unanswerable) counts as the single reference ``""``. Chinese, as CMRC2018 scores it:
    :func:`segment_mixed` lowercases, drops punctuation (Unicode P* and ASCII punctuation), makes every CJK character
    a token of its own and keeps runs of other characters (English words, numbers) as whitespace-separated tokens;
    F1 uses the *longest common substring* of the two token sequences (precision = its length / predicted tokens,
    recall = its length / reference tokens), EM is equality of the token sequences. Two deliberate differences from
    the CMRC script: runs of other characters are split at whitespace rather than by NLTK, and EM compares token
    sequences, so a space between two Chinese characters does not count (the script compares strings, spaces
    kept).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence

from ..modeling.tagging import is_cjk_ideograph

# Scores


_ASCII_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official SQuAD normalisation: lowercase, remove ASCII punctuation, the articles a/an/the, extra spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _ASCII_PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def squad_exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def squad_f1(prediction: str, reference: str) -> float:
    """Bag-of-tokens F1 of the normalised texts; an empty side scores 1 only against another empty side."""
    predicted, gold = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not predicted or not gold:
        return float(predicted == gold)
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def _is_punctuation(ch: str) -> bool:
    return ch in _ASCII_PUNCTUATION or unicodedata.category(ch).startswith("P")


def segment_mixed(text: str) -> list[str]:
    """CMRC2018-style tokens: lowercase; punctuation dropped (it does not split a word: ``"u.s."`` -> ``"us"``);
    each CJK character a token; other characters form whitespace-separated tokens."""
    tokens, run = [], []

    def flush():
        if run:
            tokens.append("".join(run))
            run.clear()

    for ch in text.lower():
        if _is_punctuation(ch):
            continue
        if ch.isspace():
            flush()
        elif is_cjk_ideograph(ord(ch)):
            flush()
            tokens.append(ch)
        else:
            run.append(ch)
    flush()
    return tokens


def _longest_common_substring(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest contiguous run shared by two token sequences (dynamic programming, O(len a * len b))."""
    best, previous = 0, [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def cmrc_exact_match(prediction: str, reference: str) -> float:
    return float(segment_mixed(prediction) == segment_mixed(reference))


def cmrc_f1(prediction: str, reference: str) -> float:
    """CMRC2018's F1: longest common substring of the :func:`segment_mixed` tokens."""
    predicted, gold = segment_mixed(prediction), segment_mixed(reference)
    if not predicted or not gold:
        return float(predicted == gold)
    common = _longest_common_substring(predicted, gold)
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def detect_language(texts: Sequence[str]) -> str:
    """``"zh"`` when over 30% of the non-space characters are CJK, else ``"en"`` (picks the metric)."""
    characters = [ch for text in texts for ch in text if not ch.isspace()]
    cjk = sum(is_cjk_ideograph(ord(ch)) for ch in characters)
    return "zh" if characters and cjk / len(characters) > 0.3 else "en"


def qa_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]], language: str = "en") -> dict:
    """Mean EM and F1 (0-100) over the questions of ``references`` ({id: reference texts}), each the best over the
    question's references; an empty reference list means unanswerable (reference ``""``). A question missing from
    ``predictions`` scores 0. With unanswerable questions present, also ``has_answer_*``/``no_answer_*`` scores
    and counts (the official 2.0 breakdown)."""
    if language not in ("en", "zh"):
        raise ValueError(f"language must be 'en' (SQuAD) or 'zh' (CMRC2018), got {language!r}")
    exact, f1 = (squad_exact_match, squad_f1) if language == "en" else (cmrc_exact_match, cmrc_f1)
    rows = []
    for question_id, gold in references.items():
        gold = list(gold) or [""]
        predicted = predictions.get(question_id)
        if predicted is None:
            rows.append((gold != [""], 0.0, 0.0))
            continue
        rows.append((gold != [""], max(exact(predicted, g) for g in gold), max(f1(predicted, g) for g in gold)))
    if not rows:
        raise ValueError("no reference answers to score against")

    def mean(values):
        return 100.0 * sum(values) / len(values) if values else 0.0

    scores = {"exact_match": mean([r[1] for r in rows]), "f1": mean([r[2] for r in rows]), "total": len(rows)}
    if any(not has_answer for has_answer, _, _ in rows):
        answerable = [r for r in rows if r[0]]
        unanswerable = [r for r in rows if not r[0]]
        scores.update({
            "has_answer_exact_match": mean([r[1] for r in answerable]),
            "has_answer_f1": mean([r[2] for r in answerable]), "has_answer_total": len(answerable),
            "no_answer_exact_match": mean([r[1] for r in unanswerable]), "no_answer_total": len(unanswerable),
        })
    return scores
