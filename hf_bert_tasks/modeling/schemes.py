"""The one table of tag schemes, and the moves each permits: read by the CRF, the tagging module and the readers.

Imports ``torch`` (:func:`allowed_transitions` returns tensors) and the standard library only: it is copied next
to the weights with the other custom-code files (``from .schemes import ...``).
"""

from typing import List, Optional, Tuple

import torch
from torch import Tensor

__all__ = ["SCHEME_ALIASES", "SCHEME_PREFIXES", "allowed_transitions", "normalize_scheme"]

# Entity prefixes of each scheme in canonical label order, and the accepted aliases.
SCHEME_PREFIXES = {
    "IOB1": ("B", "I"),
    "BIO": ("B", "I"),
    "BIOES": ("B", "I", "E", "S"),
    "BMES": ("B", "M", "E", "S"),
}
SCHEME_ALIASES = {"IOB2": "BIO", "IOBES": "BIOES"}


def normalize_scheme(scheme: str) -> str:
    """Canonical scheme name: case-insensitive, aliases resolved (``"IOB2"`` -> ``"BIO"``, ``"IOBES"`` -> ``"BIOES"``)."""
    name = str(scheme).strip().upper()
    name = SCHEME_ALIASES.get(name, name)
    if name not in SCHEME_PREFIXES:
        aliases = ", ".join(f"{alias} = {target}" for alias, target in SCHEME_ALIASES.items())
        raise ValueError(f"unknown tagging scheme {scheme!r}; valid: {', '.join(SCHEME_PREFIXES)} (aliases: {aliases})")
    return name


def _parse_label(label: str, scheme: str) -> Tuple[str, Optional[str]]:
    """Split a label into (prefix, entity type); "O" and "X" have no type."""
    if label in ("O", "X"):
        return label, None
    prefix, sep, entity = label.partition("-")
    if not sep or not entity or prefix not in SCHEME_PREFIXES[scheme]:
        allowed = ", ".join(p + "-TYPE" for p in SCHEME_PREFIXES[scheme])
        raise ValueError(f"label {label!r} does not fit tag scheme {scheme} (expected O, X or one of {allowed})")
    return prefix, entity


def _transition_ok(prev: Tuple[str, Optional[str]], cur: Tuple[str, Optional[str]], scheme: str) -> bool:
    """Whether tag ``cur`` may follow tag ``prev`` (neither of them X) under ``scheme``."""
    (p_prefix, p_type), (c_prefix, c_type) = prev, cur
    if scheme == "BIO":
        if c_prefix == "I":
            return p_prefix in ("B", "I") and p_type == c_type
        return True
    if scheme == "IOB1":
        if c_prefix == "B":
            return p_prefix in ("B", "I") and p_type == c_type
        return True
    # BIOES / BMES: an open entity (B or inside) must go on with inside or end of the same type.
    inside = "I" if scheme == "BIOES" else "M"
    if p_prefix in ("B", inside):
        return c_prefix in (inside, "E") and c_type == p_type
    return c_prefix in ("O", "B", "S")


def allowed_transitions(labels: List[str], scheme: str) -> Tuple[Tensor, Tensor, Tensor]:
    """Moves a tag scheme permits, as boolean masks for ``LinearChainCRF``.

    Args:
        labels: tag names in id order, e.g. ``["O", "B-PER", "I-PER"]``; ``"X"`` marks a later word piece.
        scheme: ``"BIO"`` (alias ``"IOB2"``), ``"IOB1"``, ``"BIOES"`` (alias ``"IOBES"``) or ``"BMES"``; case-insensitive.

    Returns:
        ``(start_allowed (K,), transition_allowed (K, K), end_allowed (K,))``, bool;
        ``transition_allowed[i, j]`` says whether tag ``j`` may follow tag ``i``.

    Rules. BIO: a sequence starts with O or B-x; I-x only follows B-x or I-x. IOB1: I-x may follow anything (it opens
    an entity after O or another type); B-x only follows B-x or I-x of its type, so never starts a sequence.
    BIOES / BMES (M for inside): B-x and I/M-x are followed only by I/M-x or E-x of the same type; O, E-x and S-x
    only by O, B-y or S-y; a sequence starts with O, B or S and ends with O, E or S. X may follow any tag but
    cannot start a sequence; X may be followed by any tag that may follow at least one non-X tag, and may end one.

    Raises:
        ValueError: unknown scheme, or a label whose form or prefix does not belong to the scheme (named).
    """
    name = normalize_scheme(scheme)
    parsed = [_parse_label(label, name) for label in labels]
    k = len(labels)
    start = torch.zeros(k, dtype=torch.bool)
    trans = torch.zeros(k, k, dtype=torch.bool)
    end = torch.zeros(k, dtype=torch.bool)
    real = [i for i, (prefix, _) in enumerate(parsed) if prefix != "X"]
    for i, (prefix, _) in enumerate(parsed):
        if prefix == "X":
            end[i] = True
            continue
        if name == "BIO":
            start[i] = prefix != "I"
        elif name == "IOB1":
            start[i] = prefix != "B"
        else:
            start[i] = prefix in ("O", "B", "S")
            end[i] = prefix in ("O", "E", "S")
        if name in ("BIO", "IOB1"):
            end[i] = True
        for j in real:
            trans[i, j] = _transition_ok(parsed[i], parsed[j], name)
    follows_something = trans[real][:, real].any(dim=0)  # (len(real),)
    for x in (i for i, (prefix, _) in enumerate(parsed) if prefix == "X"):
        trans[:, x] = True  # any tag (a word piece included) may be followed by a word piece
        trans[x, real] = follows_something  # after a word piece: whatever may follow some real tag
    return start, trans, end
