"""hf_bert_tasks/ner/metrics.py: strict entity scores against counts made by hand."""

from fractions import Fraction

import pytest

from hf_bert_tasks.ner.metrics import entity_scores

# Four sentences, tagged BIO. Entities, counted by hand:
#   gold:      PER John Smith, LOC Paris | ORG IBM, LOC Berlin | PER Mary, PER Anna | (none)           -> 6
#   predicted: PER John,       LOC Paris | ORG IBM, PER Berlin | PER Mary, PER Anna | LOC "bridge"     -> 7
# Correct (type and both boundaries): Paris, IBM, Mary, Anna -> 4. "John" alone is wrong in strict mode (a boundary
# differs), Berlin has the wrong type. "I-PER" after "O" in sentence 3 is repaired to "B-PER" (the conlleval rule:
# a tag that cannot continue the current entity starts a new one), so Anna counts.
REFERENCES = [
    ["B-PER", "I-PER", "O", "B-LOC", "O"],  # John Smith visited Paris .
    ["B-ORG", "O", "O", "B-LOC"],  # IBM opened in Berlin
    ["B-PER", "O", "B-PER"],  # Mary met Anna
    ["O", "O", "O"],  # the old bridge
]
PREDICTIONS = [
    ["B-PER", "O", "O", "B-LOC", "O"],
    ["B-ORG", "O", "O", "B-PER"],
    ["B-PER", "O", "I-PER"],
    ["O", "O", "B-LOC"],
]


def by_hand(correct: int, gold: int, predicted: int) -> dict:
    precision, recall = Fraction(correct, predicted), Fraction(correct, gold)
    return {"precision": precision, "recall": recall, "f1": 2 * precision * recall / (precision + recall)}


def test_entity_scores_match_the_counts_made_by_hand():
    scores = entity_scores(REFERENCES, PREDICTIONS, "BIO")
    expected = by_hand(correct=4, gold=6, predicted=7)  # P 4/7, R 2/3, F1 8/13
    for name in ("precision", "recall", "f1"):
        assert scores[name] == pytest.approx(float(expected[name]), abs=1e-12), name
    assert expected["f1"] == Fraction(8, 13)
    # PER: gold John Smith, Mary, Anna; predicted John, Berlin, Mary, Anna; correct Mary, Anna.
    # LOC: gold Paris, Berlin; predicted Paris, bridge; correct Paris. ORG: IBM, right.
    per_type = {"PER": (by_hand(2, 3, 4), 3), "LOC": (by_hand(1, 2, 2), 2), "ORG": (by_hand(1, 1, 1), 1)}
    assert set(scores["per_type"]) == set(per_type)
    for entity_type, (hand, support) in per_type.items():
        got = scores["per_type"][entity_type]
        assert got["support"] == support, entity_type
        for name in ("precision", "recall", "f1"):
            assert got[name] == pytest.approx(float(hand[name]), abs=1e-12), (entity_type, name)
    # Token accuracy after the repair: 15 tags, 3 differ (Smith, Berlin's type, bridge).
    assert scores["accuracy"] == pytest.approx(12 / 15)


def test_a_prediction_with_every_entity_right_scores_one_and_no_entity_scores_zero():
    assert entity_scores(REFERENCES, REFERENCES, "BIO")["f1"] == 1.0
    nothing = [["O"] * len(tags) for tags in REFERENCES]
    scores = entity_scores(REFERENCES, nothing, "BIO")
    assert (scores["precision"], scores["recall"], scores["f1"]) == (0.0, 0.0, 0.0)
