"""Linear-chain conditional random field for sequence labelling, with optional transition constraints.

This file imports only ``torch``, ``typing`` and ``math`` so that it can be copied as is into a Hugging Face
custom-code folder next to the modelling file.

Model
-----
For emissions ``E`` (B, T, K), a tag path ``y`` of length ``L`` (the number of ``True`` entries of its mask row)
scores::

    score(y) = start[y_0] + E_0[y_0] + sum_{t=1}^{L-1} (trans[y_{t-1}, y_t] + E_t[y_t]) + end[y_{L-1}]

and ``log p(y | E) = score(y) - log Z`` with ``log Z`` the log-sum-exp of ``score`` over all K^L paths.
``trans[i, j]`` is the score of moving from tag ``i`` to tag ``j`` (as in pytorch-crf).

Constraints: the boolean buffers ``start_allowed``, ``transition_allowed`` and ``end_allowed`` select the moves a
tag scheme permits (see :func:`allowed_transitions`). The *effective* scores replace forbidden entries by
``-10000.0``; the raw parameters are left alone. ``exp(-10000)`` is exactly 0 in float32 and float64, so a
forbidden move has probability zero in training and is never chosen by Viterbi while a legal path exists, and the
gradients stay finite.

Partition function (training)
-----------------------------
In exp space ``Z`` is a chain of small matrix products. With step matrices
``M_t[i, j] = exp(trans[i, j] + E_t[j])`` for 1 <= t < L, a first matrix ``M_0[i, j] = exp(start[j] + E_0[j])``
(all rows equal) and ``b = exp(end)``::

    Z = (M_0 M_1 ... M_{N-1} b)[0]        (M_t = identity at padded steps, N = T rounded up to a power of two)

Matrix products are associative, so the chain is reduced as a balanced binary tree: log2(N) levels of one batched
``matmul`` each, instead of T sequential steps. Every leaf and every tree node is divided by its largest entry and
the logarithms of these factors are summed separately (they do not take part in autograd: they cancel exactly).
The tree runs in float64 whatever the input dtype: entries smaller than ``exp(-700)`` times a node's largest entry
are then the only thing lost, so long sequences with large emissions stay exact to float32 precision. Should
``log Z`` come out non-finite anyway (e.g. no legal path exists at all under the constraints, and ``Z`` is about
``exp(-10000)``), the batch is recomputed with the sequential log-space forward algorithm.

Leaves are stored in bit-reversed time order, which makes the two children of every node the first and second
halves of the level below: each level is one ``matmul`` over contiguous (time, batch) blocks, with no copies.

The backward pass is written by hand (``_LogPartition``): the gradient of ``log Z`` with respect to the score of
the move ``i -> j`` at step ``t`` is the pairwise marginal ``P(y_{t-1} = i, y_t = j)``, proportional to
``alpha_t[i] M_t[i, j] beta_t[j]``. The prefix vectors ``alpha`` and suffix vectors ``beta`` of every leaf come from
one top-down pass over the saved tree (vector-matrix products only, log2(N) levels), and each leaf's marginal is
normalised to sum to one, so no scale factor has to be tracked.

Viterbi (decoding)
------------------
A loop over time that does three tensor operations per step (broadcast add of the transitions, add of the
emissions, ``max`` over the previous tag) with everything else prepared outside the loop: padded steps use a
max-plus identity (0 on the diagonal, ``-inf`` elsewhere) so that no per-step masking is needed, and the
arithmetic order is that of pytorch-crf so the paths agree bit for bit. The backtrace composes the back-pointer
tables by pointer doubling (log2(T) ``gather`` operations over all steps at once) instead of T sequential look-ups.
"""

import math
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

__all__ = ["LinearChainCRF", "allowed_transitions"]

# Effective score of a forbidden move: finite (finite gradients), yet exp() of it is exactly 0 in float32/64.
FORBIDDEN_SCORE = -10000.0

_SCHEME_PREFIXES = {
    "BIO": ("B", "I"),
    "IOB1": ("B", "I"),
    "BIOES": ("B", "I", "E", "S"),
    "BMES": ("B", "M", "E", "S"),
}
_SCHEME_ALIASES = {"IOB2": "BIO"}


# ---------------------------------------------------------------------------------------------------------------
# Tag-scheme constraints
# ---------------------------------------------------------------------------------------------------------------


def _parse_label(label: str, scheme: str) -> Tuple[str, Optional[str]]:
    """Split a label into (prefix, entity type); "O" and "X" have no type."""
    if label in ("O", "X"):
        return label, None
    prefix, sep, entity = label.partition("-")
    if not sep or not entity or prefix not in _SCHEME_PREFIXES[scheme]:
        allowed = ", ".join(p + "-TYPE" for p in _SCHEME_PREFIXES[scheme])
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
    """Moves a tag scheme permits, as boolean masks for :class:`LinearChainCRF`.

    Args:
        labels: tag names in id order, e.g. ``["O", "B-PER", "I-PER"]``; ``"X"`` marks a later word piece.
        scheme: ``"BIO"`` (alias ``"IOB2"``), ``"IOB1"``, ``"BIOES"`` or ``"BMES"``; case-insensitive.

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
    name = scheme.upper()
    name = _SCHEME_ALIASES.get(name, name)
    if name not in _SCHEME_PREFIXES:
        known = ", ".join(sorted(list(_SCHEME_PREFIXES) + list(_SCHEME_ALIASES)))
        raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {known}")
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


# ---------------------------------------------------------------------------------------------------------------
# Partition function: tree of matrix products in exp space, hand-written backward
# ---------------------------------------------------------------------------------------------------------------

_BIT_REVERSAL: Dict[Tuple[int, str], Tensor] = {}


def _bit_reversal(n: int, device: torch.device) -> Tensor:
    """Permutation (n,) that reverses the bits of 0..n-1 (n a power of two); it is its own inverse."""
    key = (n, str(device))
    perm = _BIT_REVERSAL.get(key)
    if perm is None:
        bits = n.bit_length() - 1
        index = torch.arange(n)
        perm = torch.zeros(n, dtype=torch.long)
        for bit in range(bits):
            perm |= ((index >> bit) & 1) << (bits - 1 - bit)
        perm = perm.to(device)
        _BIT_REVERSAL[key] = perm
    return perm


def _tree_forward(emissions: Tensor, mask: Tensor, start: Tensor, transitions: Tensor, end: Tensor):
    """log Z (B,) by the product tree, and what the backward pass needs.

    All floating inputs share one dtype (float64 in practice). emissions (B, T, K), mask (B, T) right-padded bool,
    start (K,), transitions (K, K), end (K,).
    """
    batch, length, k = emissions.shape
    n = 1 << (length - 1).bit_length()  # number of leaves: T rounded up to a power of two
    if n > length:
        emissions = torch.cat([emissions, emissions.new_zeros(batch, n - length, k)], dim=1)
        mask = torch.cat([mask, mask.new_zeros(batch, n - length)], dim=1)
    perm = _bit_reversal(n, emissions.device)
    em = emissions.index_select(1, perm).transpose(0, 1)  # (N, B, K), leaves in bit-reversed order (0 stays 0)
    live = mask.index_select(1, perm).t()  # (N, B)
    pad = ~live[..., None]
    # Leaf t is rows_t * diag(exp(E_t)): rows_0 has the start scores in every row, rows_t (t >= 1) the transitions.
    # Each factor is shifted by its maximum (the shifts are added back in log_scale), so entries are <= 1.
    em_max = em.amax(dim=2, keepdim=True).masked_fill(pad, 0.0)  # (N, B, 1)
    em_exp = (em - em_max).exp().masked_fill(pad, 0.0)  # (N, B, K); 0 at padding (ignores whatever is there)
    start_max, trans_max = start.max(), transitions.max()
    start_exp = (start - start_max).exp()  # (K,)
    trans_exp = (transitions - trans_max).exp()  # (K, K)
    rows = torch.cat([start_exp.expand(1, k, k), trans_exp.expand(n - 1, k, k)])  # (N, K, K)
    leaves = rows[:, None] * em_exp[:, :, None, :]  # (N, B, K, K); all zero at padding ...
    leaves.diagonal(dim1=2, dim2=3).add_(pad.to(leaves.dtype))  # ... where the identity is put instead
    lengths = live.sum(0)
    log_scale = em_max.sum(dim=(0, 2)) + start_max + (lengths - 1) * trans_max  # (B,)
    levels = [leaves]
    node = leaves
    while node.shape[0] > 1:
        half = node.shape[0] // 2
        node = torch.matmul(node[:half], node[half:])  # children are the two halves (bit-reversed order)
        peak = node.amax(dim=(2, 3), keepdim=True)
        node = node / peak
        log_scale = log_scale + peak.log().sum(dim=(0, 2, 3))
        levels.append(node)
    end_max = end.max()
    end_exp = (end - end_max).exp()  # (K,)
    root_row = node[0, :, 0, :]  # (B, K): row 0 picks the start vector folded into leaf 0
    log_z = log_scale + (root_row @ end_exp).log() + end_max
    return log_z, (levels, live, perm, em_exp, start_exp, trans_exp, end_exp, length)


def _tree_backward(saved, grad: Tensor):
    """Gradients of sum_b grad[b] * log Z_b with respect to (emissions, start, transitions, end)."""
    levels, live, perm, em_exp, start_exp, trans_exp, end_exp, length = saved
    root = levels[-1][0]  # (B, K, K)
    n, batch, k = em_exp.shape
    tiny = torch.finfo(root.dtype).tiny
    # Top-down pass: the row vector entering each node (prefix) and the column vector leaving it (suffix), each
    # known up to a positive factor. At the root they are "row 0" (start folded into leaf 0) and exp(end).
    prefix = root.new_zeros(1, batch, 1, k)
    prefix[..., 0] = 1.0
    suffix = end_exp.view(1, 1, k, 1).expand(1, batch, k, 1)
    for node in reversed(levels[:-1]):
        half = node.shape[0] // 2
        into_right = torch.matmul(prefix, node[:half])
        into_right = into_right / into_right.amax(dim=3, keepdim=True).clamp_min(tiny)
        prefix = torch.cat([prefix, into_right])
        out_of_left = torch.matmul(node[half:], suffix)
        out_of_left = out_of_left / out_of_left.amax(dim=2, keepdim=True).clamp_min(tiny)
        suffix = torch.cat([out_of_left, suffix])
    prefix, suffix = prefix.reshape(n, batch, k), suffix.reshape(n, batch, k)
    # Marginal of (y_{t-1} = i, y_t = j) ~ prefix_t[i] rows_t[i, j] em_exp_t[j] suffix_t[j]; each leaf's marginals
    # are normalised to sum to one, which removes every scale factor.
    through = torch.cat([start_exp.expand(1, batch, k), torch.matmul(prefix[1:], trans_exp)])  # (N, B, K)
    after = em_exp * suffix
    unary = through * after  # (N, B, K), unnormalised marginals of y_t
    weight = (grad * live) / unary.sum(dim=2).clamp_min(tiny)  # (N, B); 0 at padding
    unary = unary * weight[..., None]
    grad_emissions = unary.index_select(0, perm)[:length].transpose(0, 1)
    grad_start = unary[0].sum(0)
    pair = (prefix[1:] * weight[1:, :, None]).reshape(-1, k).t() @ after[1:].reshape(-1, k)
    grad_transitions = trans_exp * pair
    last = root[:, 0, :] * end_exp  # (B, K), proportional to the marginal of the last tag
    grad_end = (last * (grad / last.sum(1).clamp_min(tiny))[:, None]).sum(0)
    return grad_emissions, grad_start, grad_transitions, grad_end


class _LogPartition(torch.autograd.Function):
    """log Z (B,) with the marginals as hand-written gradient; see the module docstring."""

    @staticmethod
    def forward(ctx, emissions, mask, start, transitions, end):
        log_z, saved = _tree_forward(emissions, mask, start, transitions, end)
        ctx.saved = saved
        return log_z

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        g_em, g_start, g_trans, g_end = _tree_backward(ctx.saved, grad)
        ctx.saved = None
        return g_em, None, g_start, g_trans, g_end


def _log_partition_sequential(emissions: Tensor, mask: Tensor, start: Tensor, transitions: Tensor, end: Tensor):
    """log Z (B,) by the plain forward algorithm in log space: slow, but exact for any magnitude (fallback)."""
    alpha = start + emissions[:, 0]
    for t in range(1, emissions.shape[1]):
        step = torch.logsumexp(alpha[:, :, None] + transitions, dim=1) + emissions[:, t]
        alpha = torch.where(mask[:, t, None], step, alpha)
    return torch.logsumexp(alpha + end, dim=1)


# ---------------------------------------------------------------------------------------------------------------
# Viterbi
# ---------------------------------------------------------------------------------------------------------------


def _viterbi(emissions: Tensor, mask: Tensor, start: Tensor, transitions: Tensor, end: Tensor) -> Tensor:
    """Best path (B, T) long, -1 outside the mask. emissions (B, T, K); parameters in the emissions' dtype."""
    batch, length, k = emissions.shape
    em = emissions.transpose(0, 1).contiguous()  # (T, B, K)
    first = start + em[0]  # (B, K)
    lengths = mask.sum(dim=1)
    if length == 1:
        return (first + end).argmax(dim=1, keepdim=True).masked_fill(~mask, -1)
    # Step tables, prepared once: table_t[i, j] = trans[i, j] + em_t[j]. Odd steps take the running score as a
    # column (B, K, 1) and leave a row (B, 1, K); even steps take a row and use the transposed table, so the loop
    # needs no reshaping: one add and one max per step.
    odd = (transitions + em[1::2].unsqueeze(2)).unbind(0)  # [b, i, j]
    even = (transitions.t() + em[2::2].unsqueeze(3)).unbind(0)  # [b, j, i]
    score = first.unsqueeze(2)
    odd_scores, odd_back, even_scores, even_back = [], [], [], []
    for odd_table, even_table in zip(odd, even):
        score, back = (score + odd_table).max(dim=1, keepdim=True)
        odd_scores.append(score)
        odd_back.append(back)
        score, back = (score + even_table).max(dim=2, keepdim=True)
        even_scores.append(score)
        even_back.append(back)
    if len(odd) > len(even):
        score, back = (score + odd[-1]).max(dim=1, keepdim=True)
        odd_scores.append(score)
        odd_back.append(back)
    # scores[t]: best score of a path ending in each tag at t; pointers[t - 1]: its tag at t - 1 (steps run past
    # each row's end, the results there are not used).
    scores = em.new_empty(length, batch, k)
    scores[0] = first
    scores[1::2] = torch.stack(odd_scores).view(-1, batch, k)
    pointers = torch.empty(length - 1, batch, k, dtype=torch.long, device=em.device)
    pointers[0::2] = torch.stack(odd_back).view(-1, batch, k)
    if even_scores:
        scores[2::2] = torch.stack(even_scores).view(-1, batch, k)
        pointers[1::2] = torch.stack(even_back).view(-1, batch, k)
    last_scores = scores.gather(0, (lengths - 1).view(1, batch, 1).expand(1, batch, k))[0]
    last_tag = (last_scores + end).argmax(dim=1)  # (B,)
    # Identity pointers past each row's end carry its last tag to T - 1. Pointer doubling: after the round with
    # stride d, pointers[t] maps the tag at min(t + 2d, T - 1) to the tag at t; log2(T) rounds in all.
    steps = pointers.shape[0]
    identity = torch.arange(k, device=em.device)
    pointers = torch.where(mask.t()[1:, :, None], pointers, identity)
    stride = 1
    while stride < steps:
        pointers = torch.cat([pointers[:-stride].gather(2, pointers[stride:]), pointers[-stride:]])
        stride *= 2
    tags = pointers.gather(2, last_tag.view(1, batch, 1).expand(steps, batch, 1))[..., 0]  # (T-1, B)
    path = torch.cat([tags, last_tag[None]]).t()
    return path.masked_fill(~mask, -1).contiguous()


# ---------------------------------------------------------------------------------------------------------------
# Module
# ---------------------------------------------------------------------------------------------------------------


class LinearChainCRF(torch.nn.Module):
    """Linear-chain CRF over ``num_tags`` tags, batch-first, with optional transition constraints.

    Args:
        num_tags: number of tags K (>= 1).
        allowed: ``(start_allowed (K,), transition_allowed (K, K), end_allowed (K,))`` bool masks, e.g. from
            :func:`allowed_transitions`; ``None`` allows everything.

    Parameters: ``start_transitions`` (K,), ``end_transitions`` (K,), ``transitions`` (K, K) with
    ``transitions[i, j]`` the score of moving from tag i to tag j. Buffers (persistent, saved in the state dict):
    ``start_allowed``, ``transition_allowed``, ``end_allowed``.

    Masks are (B, T) bool, right-padded (``True`` then ``False``), with at least one token per row. Tags outside the
    mask are ignored (they may hold -100).
    """

    def __init__(self, num_tags: int, allowed: Optional[Tuple[Tensor, Tensor, Tensor]] = None):
        super().__init__()
        if not isinstance(num_tags, int) or num_tags < 1:
            raise ValueError(f"num_tags must be a positive integer, got {num_tags!r}")
        self.num_tags = num_tags
        self.start_transitions = torch.nn.Parameter(torch.empty(num_tags))
        self.end_transitions = torch.nn.Parameter(torch.empty(num_tags))
        self.transitions = torch.nn.Parameter(torch.empty(num_tags, num_tags))
        if allowed is None:
            allowed = (
                torch.ones(num_tags, dtype=torch.bool),
                torch.ones(num_tags, num_tags, dtype=torch.bool),
                torch.ones(num_tags, dtype=torch.bool),
            )
        if len(allowed) != 3:
            raise ValueError("allowed must be a tuple (start_allowed, transition_allowed, end_allowed)")
        shapes = ((num_tags,), (num_tags, num_tags), (num_tags,))
        for name, mask, shape in zip(("start_allowed", "transition_allowed", "end_allowed"), allowed, shapes):
            mask = torch.as_tensor(mask)
            if tuple(mask.shape) != shape:
                raise ValueError(f"{name} must have shape {shape}, got {tuple(mask.shape)}")
            self.register_buffer(name, mask.to(torch.bool).clone(), persistent=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the three score parameters uniformly from [-0.1, 0.1] (as pytorch-crf does)."""
        torch.nn.init.uniform_(self.start_transitions, -0.1, 0.1)
        torch.nn.init.uniform_(self.end_transitions, -0.1, 0.1)
        torch.nn.init.uniform_(self.transitions, -0.1, 0.1)

    def extra_repr(self) -> str:
        constrained = not bool(self.transition_allowed.all() and self.start_allowed.all() and self.end_allowed.all())
        return f"num_tags={self.num_tags}, constrained={constrained}"

    # -- helpers -----------------------------------------------------------------------------------------------

    def _effective(self, dtype: torch.dtype) -> Tuple[Tensor, Tensor, Tensor]:
        """(start (K,), transitions (K, K), end (K,)) in ``dtype`` with forbidden moves at FORBIDDEN_SCORE."""
        return (
            self.start_transitions.to(dtype).masked_fill(~self.start_allowed, FORBIDDEN_SCORE),
            self.transitions.to(dtype).masked_fill(~self.transition_allowed, FORBIDDEN_SCORE),
            self.end_transitions.to(dtype).masked_fill(~self.end_allowed, FORBIDDEN_SCORE),
        )

    def _validate(self, emissions: Tensor, mask: Optional[Tensor], tags: Optional[Tensor] = None) -> Tensor:
        """Check shapes, mask layout and tag range; return the mask as bool (B, T)."""
        if emissions.dim() != 3:
            raise ValueError(f"emissions must have shape (batch, length, num_tags), got {tuple(emissions.shape)}")
        if not emissions.is_floating_point():
            raise ValueError(f"emissions must be a floating-point tensor, got {emissions.dtype}")
        batch, length, k = emissions.shape
        if k != self.num_tags:
            raise ValueError(f"emissions have {k} tags in their last dimension, the CRF has {self.num_tags}")
        if mask is None:
            mask = torch.ones(batch, length, dtype=torch.bool, device=emissions.device)
        if tuple(mask.shape) != (batch, length):
            raise ValueError(f"mask must have shape {(batch, length)} like emissions[..., 0], got {tuple(mask.shape)}")
        if mask.dtype != torch.bool:
            mask = mask != 0
        if tags is not None:
            if tuple(tags.shape) != (batch, length):
                raise ValueError(f"tags must have shape {(batch, length)} like emissions[..., 0], got {tuple(tags.shape)}")
            if tags.is_floating_point() or tags.is_complex():
                raise ValueError(f"tags must be an integer tensor, got {tags.dtype}")
        if batch == 0:
            return mask
        if length == 0:
            raise ValueError("row 0 has no tokens: every sequence needs at least one position in the mask")
        # Rows that turn on again after a False: not right-padded. Rows whose first position is off: empty.
        gaps = (mask[:, 1:] & ~mask[:, :-1]).any(dim=1)
        empty = ~mask[:, 0]
        bad_tags = None
        if tags is not None:
            bad_tags = (((tags < 0) | (tags >= k)) & mask).any(dim=1)
        checks = torch.stack([gaps.any(), empty.any()] + ([bad_tags.any()] if bad_tags is not None else []))
        failed = checks.tolist()
        if failed[0]:
            row = int(gaps.nonzero()[0, 0])
            raise ValueError(
                f"mask must be right-padded (True then False in each row), row {row} is not: {mask[row].int().tolist()}"
            )
        if failed[1]:
            row = int(empty.nonzero()[0, 0])
            raise ValueError(f"row {row} has no tokens: every sequence needs at least one position in the mask")
        if len(failed) > 2 and failed[2]:
            row = int(bad_tags.nonzero()[0, 0])
            wrong = tags[row][mask[row] & ((tags[row] < 0) | (tags[row] >= k))]
            raise ValueError(
                f"tags must lie in 0..{k - 1} inside the mask; row {row} holds {sorted(set(wrong.tolist()))}"
            )
        return mask

    # -- public API ----------------------------------------------------------------------------------------------

    def log_likelihood(self, emissions: Tensor, tags: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """log p(tags | emissions) per sequence.

        Args:
            emissions: (B, T, K) float scores.
            tags: (B, T) long gold tags; entries outside the mask are ignored.
            mask: (B, T) bool, right-padded, at least one ``True`` per row; ``None`` means all ``True``.

        Returns:
            (B,) in the dtype and on the device of ``emissions`` (computed in float64 internally).
        """
        mask = self._validate(emissions, mask, tags)
        batch, length, _ = emissions.shape
        if batch == 0:
            return emissions.new_zeros(0)
        work = torch.float64
        em = emissions.to(work)
        start, trans, end = self._effective(work)
        log_z = _LogPartition.apply(em, mask, start, trans, end)
        if not bool(torch.isfinite(log_z).all()):
            log_z = _log_partition_sequential(em, mask, start, trans, end)
        # Score of the gold path; tags outside the mask may be anything, so they are replaced by 0 and masked out.
        gold = tags.masked_fill(~mask, 0).long()
        lengths = mask.sum(dim=1)
        score = start[gold[:, 0]] + em.gather(2, gold[:, :, None]).squeeze(2).masked_fill(~mask, 0.0).sum(dim=1)
        if length > 1:
            moves = trans[gold[:, :-1], gold[:, 1:]].masked_fill(~mask[:, 1:], 0.0)
            score = score + moves.sum(dim=1)
        score = score + end[gold.gather(1, (lengths - 1)[:, None]).squeeze(1)]
        return (score - log_z).to(emissions.dtype)

    def forward(self, emissions: Tensor, tags: Tensor, mask: Optional[Tensor] = None, reduction: str = "mean") -> Tensor:
        """Negative log-likelihood: ``"mean"`` over sequences (scalar), ``"sum"`` (scalar) or ``"none"`` (B,)."""
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        nll = -self.log_likelihood(emissions, tags, mask)
        if reduction == "mean":
            return nll.mean()
        if reduction == "sum":
            return nll.sum()
        return nll

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """Viterbi path.

        Args:
            emissions: (B, T, K) float scores.
            mask: (B, T) bool, right-padded, at least one ``True`` per row; ``None`` means all ``True``.

        Returns:
            (B, T) long on the device of ``emissions``: the best tag sequence, -1 outside the mask. With constraints
            on, the path is legal whenever a legal path exists.
        """
        mask = self._validate(emissions, mask)
        batch, length, _ = emissions.shape
        if batch == 0:
            return torch.zeros(0, length, dtype=torch.long, device=emissions.device)
        work = emissions.dtype if emissions.dtype in (torch.float32, torch.float64) else torch.float32
        start, trans, end = self._effective(work)
        return _viterbi(emissions.to(work), mask, start, trans, end)
