"""Linear-chain conditional random field for sequence labelling, with optional transition constraints.

This file imports only ``torch``, ``numpy`` (a requirement of transformers), ``typing`` and its sibling
``crf_kernels.py`` (``from .crf_kernels import ...``) so that both can be copied as they are into a Hugging Face
custom-code folder next to the modelling file.

Model
-----
For emissions ``E`` (B, T, K), a tag path ``y`` of length ``L`` (the number of ``True`` entries of its mask row)
scores::

    score(y) = start[y_0] + E_0[y_0] + sum_{t=1}^{L-1} (trans[y_{t-1}, y_t] + E_t[y_t]) + end[y_{L-1}]

and ``log p(y | E) = score(y) - log Z`` with ``log Z`` the log-sum-exp of ``score`` over all K^L paths.
``trans[i, j]`` is the score of moving from tag ``i`` to tag ``j`` (as in pytorch-crf).

Constraints: the boolean buffers ``start_allowed``, ``transition_allowed`` and ``end_allowed`` select the moves a
tag scheme permits (see :func:`schemes.allowed_transitions`). The *effective* scores replace forbidden entries by
``-10000.0``; the raw parameters are left alone. ``exp(-10000)`` is exactly 0 in float32 and float64, so a
forbidden move has probability zero in training and is never chosen by Viterbi while a legal path exists, and the
gradients stay finite.

Algorithms
----------
This file holds the plain recursions, the reference that a reader checks the model against: the forward
algorithm in log space (:func:`_log_partition_sequential`, also the fallback below) and Viterbi with
``torch.max`` back-pointers (:func:`_viterbi_sequential`). The fast algorithms live in the sibling file
``crf_kernels.py`` (torch only, copied next to the weights with this one), and
:func:`crf_kernels.choose_log_likelihood` / :func:`crf_kernels.choose_viterbi` pick one from the shapes (B, longest
row, K) by crossovers measured with ``benchmarks/crf_speed.py --crossovers``; ``algorithm=`` of
:meth:`LinearChainCRF.log_likelihood` and :meth:`LinearChainCRF.decode` overrides the choice.

- log Z (training): ``"tree"`` (a balanced tree of matrix products in exp space: few operations, K^3 work per
  node; few tags, long rows) or ``"sequential"`` (the forward recursion in exp space with a (B, K) x (K, K)
  product per step, the backward recursion in the same loop when gradients are needed; K^2 work per step; with
  ``"numpy"`` the same recursion and the gold score in numpy on the host, for small CPU inputs where the number
  of operations is the cost). All run in float64 whatever the input dtype and rescale as they go (the tree
  every factor and node by its largest entry, the recursion its vector by its sum every second step; the
  logarithms of the scale factors are summed on the side and take no gradient: they cancel), and all have a
  hand-written backward (``_LogLikelihood``): the gradient of the gold score counts the path's emissions and
  moves, that of log Z is the marginals, each normalised to sum to one so that no scale factor has to be
  tracked. Only entries below ``exp(-700)`` times the largest of a tree node or of two steps are lost, so long
  sequences with large emissions stay exact. Should ``log Z`` come out non-finite anyway (no legal path at all
  under the constraints: ``Z`` is then about ``exp(-10000)``), the batch is recomputed with the log-space
  recursion.
- Viterbi (decoding): ``"numpy"`` (the plain recursion in numpy on the host, row by row: one or a few short rows
  on the CPU, where one torch operation costs more than a numpy one and the number of operations is the cost),
  ``"tree"`` (max-plus matrix products combined as a balanced tree: few operations, K^3 work per node; a few long
  rows with very few tags), ``"middle"`` (a forward and a backward max-plus pass meeting in the middle, about
  T / 2 steps, layout (tag, tag, row), back-pointers recovered from kept sums every few steps; few tags on an
  accelerator), ``"numpy_batched"`` (the same in numpy on the host: CPU batches with few tags) or
  ``"middle_rows"`` (the same loop in a row-major layout with back-pointers recomputed along the path only: many
  tags). Paths equal the reference's except where two paths' scores tie to within rounding.
- Marginals (:meth:`LinearChainCRF.marginals`, the entity scores of inference): with ``"numpy"`` the numpy
  recursion's forward and backward vectors, no autograd; otherwise the gradient of log Z through the
  log-likelihood's backward. :func:`crf_log_partition` exposes log Z for scores a caller has transformed
  (distillation divides them by a temperature).
"""

from typing import Optional, Tuple

import numpy
import torch
from torch import Tensor

from .crf_kernels import (
    choose_log_likelihood,
    choose_viterbi,
    numpy_log_likelihood,
    numpy_log_likelihood_backward,
    numpy_token_marginals,
    sequential_backward,
    sequential_forward,
    tree_backward,
    tree_forward,
    viterbi_middle,
    viterbi_middle_rows,
    viterbi_numpy,
    viterbi_numpy_batched,
    viterbi_tree,
)

__all__ = ["LinearChainCRF", "crf_log_partition"]

# Effective score of a forbidden move: finite (finite gradients), yet exp() of it is exactly 0 in float32/64.
FORBIDDEN_SCORE = -10000.0
# Algorithms the module can run (see crf_kernels.py); ``None`` (the default) lets the shapes choose.
LOG_LIKELIHOOD_ALGORITHMS = ("numpy", "tree", "sequential")
VITERBI_ALGORITHMS = ("numpy", "numpy_batched", "tree", "middle", "middle_rows", "sequential")


# ---------------------------------------------------------------------------------------------------------------
# Log-likelihood: gold score, log Z (fast kernels in crf_kernels.py, the plain recursion here), hand-written backward
# ---------------------------------------------------------------------------------------------------------------


def _gold_score(emissions: Tensor, gold: Tensor, mask: Tensor, start: Tensor, transitions: Tensor, end: Tensor):
    """Score (B,) of the given paths. gold (B, T) long, in range everywhere (0 outside the mask)."""
    lengths = mask.sum(dim=1)
    score = start[gold[:, 0]] + emissions.gather(2, gold[:, :, None])[:, :, 0].masked_fill(~mask, 0.0).sum(dim=1)
    if gold.shape[1] > 1:
        score = score + transitions[gold[:, :-1], gold[:, 1:]].masked_fill(~mask[:, 1:], 0.0).sum(dim=1)
    return score + end[gold.gather(1, (lengths - 1)[:, None])[:, 0]]


class _LogLikelihood(torch.autograd.Function):
    """log p(gold | emissions) (B,): gold-path score minus log Z, computed in float64, with a hand-written backward.

    The gradient of the score is a count of the gold path's emissions and moves; that of log Z the marginals (see
    the module docstring). Inputs: emissions (B, T, K), gold (B, T) long (0 outside the mask), mask (B, T) bool,
    effective start (K,), transitions (K, K), end (K,), and the algorithm for log Z (``"tree"`` or
    ``"sequential"``, see :mod:`crf_kernels`). Output in the emissions' dtype.
    """

    @staticmethod
    def forward(ctx, emissions, gold, mask, start, transitions, end, algorithm="tree"):
        ctx.dtypes = (emissions.dtype, start.dtype, transitions.dtype, end.dtype)
        ctx.algorithm = algorithm
        if algorithm == "numpy":  # the whole computation in numpy on the host (see crf_kernels)
            host = [x.detach().cpu().numpy() for x in (emissions, gold, mask, start, transitions, end)]
            host = [x.astype(numpy.float64) if x.dtype.kind == "f" else x for x in host]
            needs_grad = any(ctx.needs_input_grad[i] for i in (0, 3, 4, 5))
            ll, ctx.saved = numpy_log_likelihood(*host, with_backward=needs_grad)
            return torch.from_numpy(ll).to(device=emissions.device, dtype=emissions.dtype)
        work = torch.float64
        em, start64, trans64, end64 = emissions.to(work), start.to(work), transitions.to(work), end.to(work)
        if algorithm == "tree":
            log_z, saved = tree_forward(em, mask, start64, trans64, end64)
        elif algorithm == "sequential":
            needs_grad = any(ctx.needs_input_grad[i] for i in (0, 3, 4, 5))
            log_z, saved = sequential_forward(em, mask, start64, trans64, end64, with_backward=needs_grad)
        else:
            raise ValueError(f"algorithm must be one of {LOG_LIKELIHOOD_ALGORITHMS}, got {algorithm!r}")
        ctx.backward_of = tree_backward if algorithm == "tree" else sequential_backward
        score = _gold_score(em, gold, mask, start64, trans64, end64)
        ctx.saved = saved
        ctx.save_for_backward(gold, mask)
        return (score - log_z).to(emissions.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        if ctx.algorithm == "numpy":
            host_grads = numpy_log_likelihood_backward(ctx.saved, grad.detach().cpu().numpy().astype(numpy.float64))
            grads = tuple(
                torch.from_numpy(g).to(device=grad.device, dtype=dtype) for g, dtype in zip(host_grads, ctx.dtypes)
            )
            return (grads[0], None, None) + grads[1:] + (None,) * (len(ctx.needs_input_grad) - 6)
        gold, mask = ctx.saved_tensors
        g = grad.to(torch.float64)
        g_em, g_start, g_trans, g_end = ctx.backward_of(ctx.saved, g)  # of sum(g * log Z): subtract them
        k = g_trans.shape[0]
        weights = g[:, None] * mask  # (B, T): the gold path's emissions and moves count where the mask is on
        g_em = g_em.neg_().scatter_add_(2, gold[:, :, None], weights[:, :, None])
        g_start = g_start.neg_().index_add_(0, gold[:, 0], g)
        moves = (gold[:, :-1] * k + gold[:, 1:]).reshape(-1)
        g_trans = g_trans.neg_().view(-1).index_add_(0, moves, weights[:, 1:].reshape(-1)).view(k, k)
        last = gold.gather(1, (mask.sum(dim=1) - 1)[:, None])[:, 0]
        g_end = g_end.neg_().index_add_(0, last, g)
        em_dtype, start_dtype, trans_dtype, end_dtype = ctx.dtypes
        grads = (g_em.to(em_dtype), None, None, g_start.to(start_dtype), g_trans.to(trans_dtype), g_end.to(end_dtype))
        return grads + (None,) * (len(ctx.needs_input_grad) - 6)


def crf_log_partition(emissions: Tensor, mask: Tensor, start: Tensor, transitions: Tensor, end: Tensor,
                      algorithm: Optional[str] = None) -> Tensor:
    """log Z (B,) float64 of a linear-chain CRF with the given effective scores, differentiable in all four: the
    log-likelihood kernels (their hand-written backward) of the all-zeros path, minus that path's score, in float64
    so that nothing cancels. For callers that transform the scores first (distillation's temperature).

    emissions (B, T, K); mask (B, T) bool, right-padded, at least one True per row (not checked: see
    :meth:`LinearChainCRF.log_likelihood`); start, end (K,); transitions (K, K); a legal path must exist.
    """
    emissions, start, transitions, end = (x.to(torch.float64) for x in (emissions, start, transitions, end))
    gold = torch.zeros(mask.shape, dtype=torch.long, device=emissions.device)
    if algorithm is None:
        algorithm = choose_log_likelihood(*emissions.shape, emissions.device.type)
    log_likelihood = _LogLikelihood.apply(emissions, gold, mask, start, transitions, end, algorithm)
    return _gold_score(emissions, gold, mask, start, transitions, end) - log_likelihood


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


def _viterbi_sequential(emissions: Tensor, mask: Tensor, start: Tensor, transitions: Tensor, end: Tensor) -> Tensor:
    """Best path (B, T) long, -1 outside the mask, by the plain Viterbi recursion (the reference; slow).

    ``score_t[j] = max_i (score_{t-1}[i] + trans[i, j]) + em_t[j]``, remembering the maximising ``i`` (the first
    one on ties, as ``torch.max`` picks it); rows that have ended keep their score and point to themselves.
    """
    batch, length, k = emissions.shape
    score = start + emissions[:, 0]  # (B, K)
    identity = torch.arange(k, device=emissions.device).expand(batch, k)
    history = []
    for t in range(1, length):
        best, pointer = (score[:, :, None] + transitions).max(dim=1)  # over the previous tag
        live = mask[:, t, None]
        score = torch.where(live, best + emissions[:, t], score)
        history.append(torch.where(live, pointer, identity))
    tag = (score + end).argmax(dim=1)  # (B,): the last tag of every row
    path = [tag]
    for pointer in reversed(history):
        tag = pointer.gather(1, tag[:, None])[:, 0]
        path.append(tag)
    return torch.stack(path[::-1], dim=1).masked_fill(~mask, -1)


def _viterbi(emissions: Tensor, mask: Tensor, start: Tensor, transitions: Tensor, end: Tensor, algorithm: str):
    """Best path (B, T) by one of VITERBI_ALGORITHMS (all give the same path up to ties within rounding)."""
    if algorithm == "numpy":
        return viterbi_numpy(emissions, mask, start, transitions, end)
    if algorithm == "numpy_batched":
        return viterbi_numpy_batched(emissions, mask, start, transitions, end)
    if algorithm == "tree":
        return viterbi_tree(emissions, mask, start, transitions, end)
    if algorithm == "middle":
        return viterbi_middle(emissions, mask, start, transitions, end)
    if algorithm == "middle_rows":
        return viterbi_middle_rows(emissions, mask, start, transitions, end)
    if algorithm == "sequential":
        return _viterbi_sequential(emissions, mask, start, transitions, end)
    raise ValueError(f"algorithm must be one of {VITERBI_ALGORITHMS}, got {algorithm!r}")


# ---------------------------------------------------------------------------------------------------------------
# Module
# ---------------------------------------------------------------------------------------------------------------


class LinearChainCRF(torch.nn.Module):
    """Linear-chain CRF over ``num_tags`` tags, batch-first, with optional transition constraints.

    Args:
        num_tags: number of tags K (>= 1).
        allowed: ``(start_allowed (K,), transition_allowed (K, K), end_allowed (K,))`` bool masks, e.g. from
            :func:`schemes.allowed_transitions`; ``None`` allows everything.

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

    def effective_scores(self) -> Tuple[Tensor, Tensor, Tensor]:
        """(start (K,), transitions (K, K), end (K,)) with forbidden moves at FORBIDDEN_SCORE (differentiable)."""
        return (
            torch.where(self.start_allowed, self.start_transitions, FORBIDDEN_SCORE),
            torch.where(self.transition_allowed, self.transitions, FORBIDDEN_SCORE),
            torch.where(self.end_allowed, self.end_transitions, FORBIDDEN_SCORE),
        )

    def _validate(
        self, emissions: Tensor, mask: Optional[Tensor], tags: Optional[Tensor] = None
    ) -> Tuple[Tensor, int]:
        """Check shapes, mask layout and tag range; return the mask as bool (B, T) and the longest row's length."""
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
                raise ValueError(
                    f"tags must have shape {(batch, length)} like emissions[..., 0], got {tuple(tags.shape)}"
                )
            if tags.is_floating_point() or tags.is_complex():
                raise ValueError(f"tags must be an integer tensor, got {tags.dtype}")
        if batch == 0:
            return mask, 0
        if length == 0:
            raise ValueError("row 0 has no tokens: every sequence needs at least one position in the mask")
        # The checks run on a host copy (numpy): a handful of microseconds where torch operations cost tens, and the
        # longest row's length has to reach the host anyway.
        on_host = mask.detach().cpu().numpy()
        gaps = (on_host[:, 1:] > on_host[:, :-1]).any(axis=1)  # turns on again after a False: not right-padded
        if gaps.any():
            row = int(gaps.nonzero()[0][0])
            values = on_host[row].astype(int).tolist()
            raise ValueError(f"mask must be right-padded (True then False in each row), row {row} is not: {values}")
        if not on_host[:, 0].all():
            row = int((~on_host[:, 0]).nonzero()[0][0])
            raise ValueError(f"row {row} has no tokens: every sequence needs at least one position in the mask")
        if tags is not None:
            gold = tags.detach().cpu().numpy()
            bad = ((gold < 0) | (gold >= k)) & on_host
            if bad.any():
                row = int(bad.any(axis=1).nonzero()[0][0])
                wrong = sorted(set(gold[row][bad[row]].tolist()))
                raise ValueError(f"tags must lie in 0..{k - 1} inside the mask; row {row} holds {wrong}")
        return mask, int(on_host.sum(axis=1).max())

    # -- public API ----------------------------------------------------------------------------------------------

    def log_likelihood(
        self, emissions: Tensor, tags: Tensor, mask: Optional[Tensor] = None, algorithm: Optional[str] = None
    ) -> Tensor:
        """log p(tags | emissions) per sequence.

        Args:
            emissions: (B, T, K) float scores.
            tags: (B, T) long gold tags; entries outside the mask are ignored.
            mask: (B, T) bool, right-padded, at least one ``True`` per row; ``None`` means all ``True``.
            algorithm: one of ``LOG_LIKELIHOOD_ALGORITHMS`` for log Z; ``None`` (default) chooses from the shapes.

        Returns:
            (B,) in the dtype and on the device of ``emissions`` (computed in float64 internally).
        """
        mask, longest = self._validate(emissions, mask, tags)
        if emissions.shape[0] == 0:
            return emissions.new_zeros(0)
        if longest < emissions.shape[1]:  # padding shared by every row costs nothing
            emissions, tags, mask = emissions[:, :longest], tags[:, :longest], mask[:, :longest]
        gold = tags.masked_fill(~mask, 0).long()  # tags outside the mask may hold anything (-100)
        start, trans, end = self.effective_scores()
        if algorithm is None:
            algorithm = choose_log_likelihood(emissions.shape[0], longest, self.num_tags, emissions.device.type)
        ll = _LogLikelihood.apply(emissions, gold, mask, start, trans, end, algorithm)
        if not bool(torch.isfinite(ll).all()):
            # Exp space lost all of Z (e.g. no legal path at all): log space, plain autograd, slow but exact.
            work = torch.float64
            em, start, trans, end = emissions.to(work), start.to(work), trans.to(work), end.to(work)
            score = _gold_score(em, gold, mask, start, trans, end)
            ll = (score - _log_partition_sequential(em, mask, start, trans, end)).to(emissions.dtype)
        return ll

    def forward(
        self, emissions: Tensor, tags: Tensor, mask: Optional[Tensor] = None, reduction: str = "mean"
    ) -> Tensor:
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
    def marginals(self, emissions: Tensor, mask: Optional[Tensor] = None, algorithm: Optional[str] = None) -> Tensor:
        """Token marginals p(y_t = k | emissions), (B, T, K) float32 (float64 for float64 emissions), 0 outside the
        mask; arguments as in :meth:`log_likelihood`. With ``"numpy"`` (chosen for small inputs on the CPU) the two
        recursions run on the host without autograd; otherwise the marginals are the gradient of log Z, through the
        log-likelihood's backward (d log p(y) / d emissions = one_hot(y) - marginals)."""
        mask, longest = self._validate(emissions, mask)
        batch, length, k = emissions.shape
        dtype = torch.float64 if emissions.dtype == torch.float64 else torch.float32
        result = torch.zeros(batch, length, k, dtype=dtype, device=emissions.device)
        if batch == 0:
            return result
        emissions, mask = emissions[:, :longest], mask[:, :longest]
        start, trans, end = (x.detach() for x in self.effective_scores())
        if algorithm is None:
            algorithm = choose_log_likelihood(batch, longest, k, emissions.device.type)
        if algorithm == "numpy":
            host = [x.cpu().numpy().astype(numpy.float64) for x in (emissions, start, trans, end)]
            probabilities = numpy_token_marginals(host[0], mask.cpu().numpy(), *host[1:])
            result[:, :longest] = torch.from_numpy(probabilities).to(device=result.device, dtype=dtype)
            return result
        gold = torch.zeros(mask.shape, dtype=torch.long, device=emissions.device)
        with torch.enable_grad():
            scores = emissions.detach().to(dtype).requires_grad_(True)
            (gradient,) = torch.autograd.grad(self.log_likelihood(scores, gold, mask, algorithm).sum(), scores)
        one_hot = torch.nn.functional.one_hot(gold, k).to(dtype) * mask[..., None]
        result[:, :longest] = one_hot - gradient
        return result

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Optional[Tensor] = None, algorithm: Optional[str] = None) -> Tensor:
        """Viterbi path.

        Args:
            emissions: (B, T, K) float scores.
            mask: (B, T) bool, right-padded, at least one ``True`` per row; ``None`` means all ``True``.
            algorithm: one of ``VITERBI_ALGORITHMS``; ``None`` (default) chooses from the shapes.

        Returns:
            (B, T) long on the device of ``emissions``: the best tag sequence, -1 outside the mask. With constraints
            on, the path is legal whenever a legal path exists.
        """
        mask, longest = self._validate(emissions, mask)
        batch, length, _ = emissions.shape
        if batch == 0:
            return torch.zeros(0, length, dtype=torch.long, device=emissions.device)
        if emissions.dtype not in (torch.float32, torch.float64):
            emissions = emissions.float()
        start, trans, end = self.effective_scores()
        if start.dtype != emissions.dtype:
            start, trans, end = start.to(emissions.dtype), trans.to(emissions.dtype), end.to(emissions.dtype)
        if algorithm is None:
            algorithm = choose_viterbi(batch, longest, self.num_tags, emissions.device.type)
        if longest == length:  # (slicing costs as much as a small operation: small inputs feel it)
            return _viterbi(emissions, mask, start, trans, end, algorithm)
        path = _viterbi(emissions[:, :longest], mask[:, :longest], start, trans, end, algorithm)
        # padding shared by every row is not computed, only filled in
        return torch.cat([path, path.new_full((batch, length - longest), -1)], dim=1)
