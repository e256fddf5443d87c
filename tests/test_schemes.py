"""Tests for hf_bert_tasks.modeling.schemes: the scheme table and the moves each scheme permits, against a state
machine written independently of the module."""

import itertools

import pytest
import torch

from hf_bert_tasks.modeling.schemes import allowed_transitions, normalize_scheme
from hf_bert_tasks.modeling.tagging import tags_to_spans


def test_normalize_scheme():
    assert normalize_scheme("bio") == "BIO"
    assert normalize_scheme("IOB2") == "BIO"
    assert normalize_scheme("iobes") == "BIOES"
    assert normalize_scheme("Bmes") == "BMES"
    assert normalize_scheme("iob1") == "IOB1"
    with pytest.raises(ValueError, match="IOB1, BIO, BIOES, BMES"):
        normalize_scheme("BILOU")
    with pytest.raises(ValueError):
        tags_to_spans(["O"], "IOB")  # ambiguous: IOB1 or IOB2


# Scheme validity written as a state machine over label strings (independent of allowed_transitions).
def valid_sequence(labels, scheme):
    scheme = scheme.upper()
    open_type = None  # type of the entity in progress (BIOES/BMES)
    prev = None
    for label in labels:
        prefix, _, kind = label.partition("-")
        if scheme == "BIO":
            if prefix == "I" and (prev is None or prev == "O" or prev.partition("-")[2] != kind):
                return False
        elif scheme == "IOB1":
            if prefix == "B" and (prev is None or prev == "O" or prev.partition("-")[2] != kind):
                return False
        else:
            inside = "I" if scheme == "BIOES" else "M"
            if prefix in ("O", "B", "S"):
                if open_type is not None:
                    return False
                open_type = kind if prefix == "B" else None
            elif prefix in (inside, "E"):
                if open_type != kind:
                    return False
                open_type = kind if prefix == inside else None
            else:
                return False
        prev = label
    return open_type is None


LABELS = {
    "BIO": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"],
    "IOB1": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"],
    "BIOES": ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"],
    "BMES": ["O", "B-PER", "M-PER", "E-PER", "S-PER", "B-LOC", "M-LOC", "E-LOC", "S-LOC"],
}


@pytest.mark.parametrize("scheme", sorted(LABELS))
def test_allowed_transitions_match_state_machine(scheme):
    labels = LABELS[scheme]
    start, trans, end = allowed_transitions(labels, scheme)
    for i, a in enumerate(labels):
        # a one-token prefix is extendable to a valid sequence iff it may start one
        assert bool(start[i]) == any(valid_sequence([a] + rest, scheme) for rest in _completions(labels))
        assert bool(end[i]) == any(valid_sequence(head + [a], scheme) for head in _completions(labels))
        for j, b in enumerate(labels):
            contexts = itertools.product(_completions(labels), repeat=2)
            possible = any(valid_sequence(head + [a, b] + rest, scheme) for head, rest in contexts)
            assert bool(trans[i, j]) == possible, (a, b)


def _completions(labels):
    # sequences of length 0..1 suffice to open or close any entity in these schemes
    return [[]] + [[x] for x in labels]


def test_scheme_rules_spot_checks():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    ix = {name: i for i, name in enumerate(labels)}
    start, trans, end = allowed_transitions(labels, "bio")
    assert start.tolist() == [True, True, False, True, False]
    assert end.all()
    assert trans[ix["B-PER"], ix["I-PER"]] and trans[ix["I-PER"], ix["I-PER"]]
    assert not trans[ix["O"], ix["I-PER"]] and not trans[ix["B-LOC"], ix["I-PER"]]
    assert all(allowed_transitions(labels, "IOB2")[n].equal(m) for n, m in enumerate((start, trans, end)))

    start, trans, end = allowed_transitions(labels, "IOB1")
    assert start.tolist() == [True, False, True, False, True]
    assert trans[ix["O"], ix["I-PER"]] and trans[ix["I-LOC"], ix["I-PER"]]
    assert trans[ix["I-PER"], ix["B-PER"]] and not trans[ix["O"], ix["B-PER"]] and not trans[ix["I-LOC"], ix["B-PER"]]

    bmes = ["O", "B-X", "M-X", "E-X", "S-X"]
    start, trans, end = allowed_transitions(bmes, "BMES")
    assert start.tolist() == [True, True, False, False, True]
    assert end.tolist() == [True, False, False, True, True]
    assert trans[1].tolist() == [False, False, True, True, False]
    assert trans[3].tolist() == [True, True, False, False, True]


def test_word_piece_label_x():
    labels = ["O", "B-PER", "I-PER", "X"]
    start, trans, end = allowed_transitions(labels, "BIO")
    assert not start[3] and end[3]
    assert trans[:, 3].all()  # anything, X included, may be followed by X
    assert trans[3].tolist() == [True, True, True, True]  # I-PER may follow B-PER, so it may follow X
    labels = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "X"]
    start, trans, end = allowed_transitions(labels, "BIOES")
    assert trans[5, :5].tolist() == [True, True, True, True, True]
    assert not start[5] and end[5]



@pytest.mark.parametrize(
    "labels,scheme,bad",
    [
        (["O", "B-PER", "E-PER"], "BIO", "E-PER"),
        (["O", "M-PER"], "BIOES", "M-PER"),
        (["O", "I-PER"], "BMES", "I-PER"),
        (["O", "PER"], "BIO", "PER"),
        (["O", "B-"], "BIO", "B-"),
        (["O", "Q-PER"], "IOB1", "Q-PER"),
    ],
)
def test_bad_label_for_scheme(labels, scheme, bad):
    with pytest.raises(ValueError, match=repr(bad).replace("[", r"\[")):
        allowed_transitions(labels, scheme)


def test_unknown_scheme():
    with pytest.raises(ValueError, match="unknown tagging scheme"):
        allowed_transitions(["O"], "BILOU")



def test_one_scheme_table_for_crf_and_tagging():
    """The CRF's constraints and the data's tag validation read the same table: same schemes, same aliases."""
    from hf_bert_tasks.modeling.tagging import SCHEMES, label_list, normalize_scheme as tagging_normalize

    assert tagging_normalize is normalize_scheme
    for scheme in SCHEMES:
        labels = label_list(scheme, ["LOC", "PER"])
        allowed_transitions(labels, scheme)  # every label of every scheme fits the CRF's table
    for alias, target in (("IOBES", "BIOES"), ("iob2", "BIO")):
        labels = label_list(target, ["PER"])
        for mine, theirs in zip(allowed_transitions(labels, alias), allowed_transitions(labels, target)):
            assert torch.equal(mine, theirs)
    with pytest.raises(ValueError) as crf_error:
        allowed_transitions(["O"], "BILOU")
    with pytest.raises(ValueError) as tagging_error:
        tagging_normalize("BILOU")
    assert str(crf_error.value) == str(tagging_error.value)
