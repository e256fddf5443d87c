"""Fast algorithms for :mod:`crf` (the linear-chain CRF), and the rule that picks one from the shapes.

This file imports only ``torch``, ``numpy`` (a requirement of transformers) and the standard library; ``crf.py``
imports it as ``from .crf_kernels import ...``, so ``save_pretrained`` copies it next to the weights with the other
custom-code files. ``crf.py`` keeps the plain recursions (log-space forward algorithm, max-with-indices Viterbi) as
the readable reference; every function here computes the same thing and is tested against them, against brute force
and against pytorch-crf.

Notation as in ``crf.py``: emissions (B, T, K), mask (B, T) right-padded bool, effective ``start`` (K,),
``transitions`` (K, K) (``[i, j]``: from tag i to tag j) and ``end`` (K,); L is a row's number of tokens.

Log-partition function and its gradient (training), all in float64, each with a hand-written backward:

- ``tree``: Z as a balanced tree of matrix products in exp space, log2(T) batched products but K^3 work per node
  (see :func:`tree_forward`). Few operations, much arithmetic: best for few tags and long, few sequences.
- ``sequential``: the forward algorithm in exp space, one (B, K) x (K, K) product per step (K^2 work per step),
  rescaled every second step; with gradients on, the backward recursion runs in the same loop, side by side, and the
  marginals are then a few batched operations (see :func:`sequential_forward`). About 4 T small operations:
  best once K or B is large.
- ``numpy``: the same recursion, and the gold path's score and counts, in numpy on the host (see
  :func:`numpy_log_likelihood`): on the CPU up to a few million multiply-adds, where the number of operations is
  the cost.

Viterbi (decoding):

- ``numpy``: the plain recursion in numpy on the host, row-major (see :func:`viterbi_numpy`): on the CPU for one
  row, or a few short ones with few tags, where the number of operations is the cost (a numpy operation on a few
  hundred numbers takes about a microsecond, a torch operation several).
- ``numpy_batched``: ``middle`` below in numpy on the host (see :func:`viterbi_numpy_batched`): on the CPU for
  batches with few tags.
- ``tree``: a tree of max-plus matrix products (K^3 work per node, about 5 log2(T) operations), for a few long
  rows with very few tags (see :func:`viterbi_tree`).
- ``middle``: meet in the middle (a forward and a backward max-plus pass in one loop of about T / 2 steps, see
  :func:`viterbi_middle`), layout (tag, tag, row), back-pointers recovered from the kept sums every few steps:
  few tags on an accelerator (on the CPU its numpy port, ``numpy_batched``, is faster at every shape measured).
- ``middle_rows``: the same loop in a row-major layout, in torch, back-pointers recomputed along the path during
  a backtrace on the host (see :func:`viterbi_middle_rows`): many tags, where keeping the sums costs more memory
  traffic than the loop itself.

The choice (:func:`choose_log_likelihood`, :func:`choose_viterbi`) uses crossovers measured on the CPU with
``python benchmarks/crf_speed.py --crossovers`` (see the constants below); any choice gives the same results up to
rounding, so a wrong crossover costs time only.
"""

from typing import Dict, Tuple

import numpy
import torch
from torch import Tensor

# The sequential recursion divides its vectors by their sum every this many steps (and at the last): a vector
# can then shrink by at most two steps' factors before it is rescaled, as a tree node covers two leaves at its
# first level, so only entries below exp(-700) times the largest of two steps' product can be lost.
RESCALE_EVERY = 2
# Viterbi steps whose back-pointers are recovered together (keeps the kept sums small).
_POINTER_CHUNK = 8

# ---------------------------------------------------------------------------------------------------------------
# Choosing an algorithm
# ---------------------------------------------------------------------------------------------------------------

# Measured crossovers: `python benchmarks/crf_speed.py --crossovers --threads 2 --point-seconds 0.4` times every
# algorithm at the 96 shapes B in {1, 8, 32, 128}, T in {16, 64, 128, 512}, K in {5, 9, 21, 41, 73, 133}
# (benchmarks/results/crf_crossovers.json; the 2 CPU cores of the development machine, otherwise idle; any choice
# gives the same results up to rounding, so a wrong one costs time only).
#
# Log-likelihood: the tree costs about B T K^3 arithmetic in about 2 log2(T) + 30 operations, the sequential
# recursion B T K^2 in about 3 T + 40 operations of a few microseconds each: the tree wins for long rows while its
# extra arithmetic per step, B K^3, stays small.
TREE_MIN_LENGTH = 128
TREE_MAX_WORK_PER_STEP = 12000  # B * K^3
# On the CPU: the tree for long rows while B K^3 is tiny, then numpy (the sequential recursion on the host) while
# the whole arithmetic, B T K^2, the rows' steps, B T, and a step's product, B K^2, are at most these; the torch
# recursion beyond (its large operations use torch's threads). The numpy backward pass runs its matrix products row
# by row: one (B T, K) x (K, K) product starts BLAS threads, which compete with torch's (idling on the same cores)
# and were measured several times slower.
CPU_TREE_MAX_WORK_PER_STEP = 1024
CPU_TREE_MIN_LENGTH = 256
NUMPY_LOG_LIKELIHOOD_MAX_WORK = 40_000_000
NUMPY_LOG_LIKELIHOOD_MAX_ROW_STEPS = 4096
NUMPY_LOG_LIKELIHOOD_MAX_WORK_PER_STEP = 1_000_000
# Viterbi on the CPU: the max-plus tree for long rows while its arithmetic per step, B * K^3, is tiny; below 32 tags
# numpy, vectorised over the rows once the batch has some rows and steps (B >= 8 and B * T >= 256), row by row
# before; from 32 tags numpy row by row for one row while its arithmetic (T K^2) is small, else the row-major loop
# (its large operations use torch's threads). Elsewhere (an accelerator, where numpy would add copies to and from
# the host): the tree for long rows with few tags, then the row-major loop for many tags, and from 16 tags for
# short rows or wide batches, the (tag, tag, row) loop otherwise.
TREE_VITERBI_MIN_LENGTH = 256
TREE_VITERBI_MAX_WORK_PER_STEP = 1024
CPU_TREE_VITERBI_MAX_WORK_PER_STEP = 128
NUMPY_VITERBI_MANY_TAGS = 32
NUMPY_BATCHED_VITERBI_MIN_ROWS = 8
NUMPY_BATCHED_VITERBI_MIN_ROW_STEPS = 256  # B * T
NUMPY_VITERBI_MAX_ROW_WORK = 1_000_000  # T * K^2 of one row, from NUMPY_VITERBI_MANY_TAGS tags
ROWS_LAYOUT_MIN_TAGS = 32
ROWS_LAYOUT_MIN_TAGS_SHORT_OR_WIDE = 16  # when T <= 32 or B >= 32


def choose_log_likelihood(batch: int, length: int, num_tags: int, device_type: str = "cpu") -> str:
    """``"numpy"``, ``"tree"`` or ``"sequential"`` for a (batch, length, num_tags) input on a device of type
    ``device_type`` (see the constants above)."""
    if device_type == "cpu":
        if length >= CPU_TREE_MIN_LENGTH and batch * num_tags**3 <= CPU_TREE_MAX_WORK_PER_STEP:
            return "tree"
        if (
            batch * length * num_tags**2 <= NUMPY_LOG_LIKELIHOOD_MAX_WORK
            and batch * length <= NUMPY_LOG_LIKELIHOOD_MAX_ROW_STEPS
            and batch * num_tags**2 <= NUMPY_LOG_LIKELIHOOD_MAX_WORK_PER_STEP
        ):
            return "numpy"
        return "sequential"
    if length >= TREE_MIN_LENGTH and batch * num_tags**3 <= TREE_MAX_WORK_PER_STEP:
        return "tree"
    return "sequential"


def choose_viterbi(batch: int, length: int, num_tags: int, device_type: str = "cpu") -> str:
    """One of ``"numpy"``, ``"numpy_batched"``, ``"tree"``, ``"middle"``, ``"middle_rows"`` for a (batch, length,
    num_tags) input on a device of type ``device_type`` (see the constants above)."""
    if device_type == "cpu":
        if length >= TREE_VITERBI_MIN_LENGTH and batch * num_tags**3 <= CPU_TREE_VITERBI_MAX_WORK_PER_STEP:
            return "tree"
        if num_tags < NUMPY_VITERBI_MANY_TAGS:
            batched = batch >= NUMPY_BATCHED_VITERBI_MIN_ROWS and batch * length >= NUMPY_BATCHED_VITERBI_MIN_ROW_STEPS
            return "numpy_batched" if batched else "numpy"
        if batch == 1 and length * num_tags**2 <= NUMPY_VITERBI_MAX_ROW_WORK:
            return "numpy"
        return "middle_rows"
    if length >= TREE_VITERBI_MIN_LENGTH and batch * num_tags**3 <= TREE_VITERBI_MAX_WORK_PER_STEP:
        return "tree"
    if num_tags >= ROWS_LAYOUT_MIN_TAGS or (
        num_tags >= ROWS_LAYOUT_MIN_TAGS_SHORT_OR_WIDE and (length <= 32 or batch >= 32)
    ):
        return "middle_rows"
    return "middle"


# ---------------------------------------------------------------------------------------------------------------
# Partition function: tree of matrix products in exp space
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


def tree_forward(emissions: Tensor, mask: Tensor, start: Tensor, transitions: Tensor, end: Tensor):
    """log Z (B,) by the product tree, and what the backward pass needs (:func:`tree_backward`).

    All floating inputs share one dtype (float64 in practice). emissions (B, T, K), mask (B, T) right-padded bool,
    start (K,), transitions (K, K), end (K,).

    In exp space ``Z`` is a chain of small matrix products. With ``a = exp(start + E_0)``, step matrices
    ``M_t = exp(trans) diag(exp(E_t))`` for 1 <= t < L and ``b = exp(end)``::

        Z = a^T M_1 M_2 ... M_N b        (M_t = identity at padded steps; N = T - 1 rounded up to a power of two)

    Matrix products are associative, so the chain is reduced as a balanced binary tree: log2(N) levels of one batched
    matrix product each, instead of T - 1 sequential steps. The first level comes straight from the factors:
    ``exp(trans) diag(x) exp(trans) diag(y) = (x @ W) * y`` with ``W[j, (i, l)] = exp(trans)[i, j] exp(trans)[j, l]``,
    one (N/2 * B, K) x (K, K^2) product. Every factor and every tree node is divided by its largest entry and the
    logarithms of these factors are summed on the side; the gradient does not flow through them (they cancel). The
    tree runs in float64 whatever the input dtype, so only entries below ``exp(-700)`` times a node's largest entry
    are lost, and long sequences with large emissions stay exact. Should ``log Z`` come out non-finite anyway (no legal
    path at all under the constraints: ``Z`` is then about ``exp(-10000)``), the batch is recomputed with the
    sequential forward algorithm in log space.

    Leaves are stored in bit-reversed time order: the two children of every node are then at the same position in the
    first and second halves of the level below, so each level is one ``bmm`` over contiguous memory. All levels, and
    the vectors of the backward pass, share one buffer: on Linux each fresh large allocation is page-faulted in again
    at every call, and with one allocation per level that cost more than the arithmetic.

    The backward pass is written by hand (``_LogLikelihood``). The gradient of the gold score counts the path's
    emissions and moves. The gradient of ``log Z`` with respect to the score of the move ``i -> j`` at step ``t`` is
    the pairwise marginal ``P(y_{t-1} = i, y_t = j)``, proportional to ``alpha_t[i] M_t[i, j] beta_t[j]``. The prefix
    vectors ``alpha`` and suffix vectors ``beta`` of every leaf come from one top-down pass over the saved tree
    (vector-matrix products, log2(N) levels), and each leaf's marginals are normalised to sum to one, so no scale
    factor has to be tracked.
    """
    batch, length, k = emissions.shape
    # Leaves are the steps t = 1..T-1, padded with identities to a power of two (at least 2).
    n = 1 << (max(length - 1, 2) - 1).bit_length()
    steps = emissions[:, 1:]
    step_mask = mask[:, 1:]
    if n > length - 1:
        steps = torch.cat([steps, steps.new_zeros(batch, n - length + 1, k)], dim=1)
        step_mask = torch.cat([step_mask, step_mask.new_zeros(batch, n - length + 1)], dim=1)
    perm = _bit_reversal(n, emissions.device)
    em = steps.transpose(0, 1).index_select(0, perm)  # (N, B, K) contiguous, leaves in bit-reversed order
    live = step_mask.t().index_select(0, perm)  # (N, B)
    pad = ~live[..., None]
    # Leaf t is trans_exp @ diag(em_exp_t); every factor is shifted by its maximum (added back in log_scale).
    em_max = em.amax(dim=2, keepdim=True).masked_fill_(pad, 0.0)  # (N, B, 1)
    em_exp = em.sub_(em_max).exp_().masked_fill_(pad, 0.0)  # (N, B, K); 0 at padding, whatever the input holds there
    trans_max = transitions.max()
    trans_exp = (transitions - trans_max).exp()  # (K, K)
    first = start + emissions[:, 0]  # (B, K): start and first emission, the row vector left of the chain
    first_max = first.amax(dim=1, keepdim=True)
    first_exp = (first - first_max).exp()
    lengths = mask.sum(dim=1)
    log_scale = first_max[:, 0] + em_max.sum(dim=(0, 2)) + (lengths - 1) * trans_max  # (B,)

    # One buffer holds the tree levels and the backward pass's vectors: on Linux, every fresh large allocation
    # is page-faulted in again at each call, which cost more than the arithmetic when each level had its own.
    level_size = (n - 1) * batch * k * k
    workspace = em_exp.new_empty(level_size + 4 * n * batch * k)
    vectors = workspace[level_size:].view(4, n, batch, k)  # used by tree_backward
    # Level 1 straight from the factors: trans_exp diag(a) trans_exp diag(b) = (a @ W) * b with
    # W[j, (i, l)] = trans_exp[i, j] * trans_exp[j, l], one (N/2 * B, K) x (K, K * K) product for all pairs.
    half = n // 2
    em_a, em_b = em_exp[:half], em_exp[half:]  # left and right leaf of each pair (bit-reversed order)
    pairs = (trans_exp.t()[:, :, None] * trans_exp[:, None, :]).reshape(k, k * k)
    node = workspace[: half * batch * k * k].view(half, batch, k, k)
    torch.mm(em_a.reshape(-1, k), pairs, out=node.view(-1, k * k))
    node.mul_(em_b[:, :, None, :])
    # Two padded leaves give the identity. A live leaf followed by padding (in a row with an odd number L - 1 of
    # live leaves, leaf L - 2, at position perm[L - 2]) is the left leaf alone: add it where the product left zero.
    node.diagonal(dim1=2, dim2=3).add_(pad[:half].to(node.dtype))
    odd = (lengths - 1) % 2 == 1
    last_left = torch.where(odd, perm[(lengths - 2).clamp(min=0)], 0)  # (any valid position for the others)
    rows = torch.arange(batch, device=emissions.device)
    lone = em_exp[last_left, rows] * odd[:, None]  # (B, K)
    node.index_put_((last_left, rows), trans_exp * lone[:, None, :], accumulate=True)
    levels = []
    offset = half * batch * k * k
    while True:
        peak = node.amax(dim=(2, 3), keepdim=True)
        node.div_(peak)
        log_scale = log_scale + peak.log().sum(dim=(0, 2, 3))
        levels.append(node)
        if node.shape[0] == 1:
            break
        half = node.shape[0] // 2
        parent = workspace[offset : offset + half * batch * k * k].view(half, batch, k, k)
        offset += half * batch * k * k
        # the children of a node are at the same position in the two halves of the level below
        torch.bmm(node[:half].view(-1, k, k), node[half:].view(-1, k, k), out=parent.view(-1, k, k))
        node = parent
    end_max = end.max()
    end_exp = (end - end_max).exp()  # (K,)
    root = node[0]  # (B, K, K)
    log_z = log_scale + (first_exp[:, None, :] @ root @ end_exp).view(batch).log() + end_max
    return log_z, (levels, vectors, live, perm, em_exp, trans_exp, first_exp, end_exp, length)


def tree_backward(saved, grad: Tensor):
    """Gradients of sum_b grad[b] * log Z_b with respect to (emissions, start, transitions, end)."""
    levels, vectors, live, perm, em_exp, trans_exp, first_exp, end_exp, length = saved
    root = levels[-1][0]  # (B, K, K)
    n, batch, k = em_exp.shape
    tiny = torch.finfo(root.dtype).tiny

    def normalise_(v):
        return v.div_(v.amax(dim=-1, keepdim=True).clamp_min_(tiny))

    # Top-down pass: prefix[p] is the row vector entering node p of the current level, suffix[p] the column vector
    # leaving it, each up to a positive factor. At the root: first_exp and end_exp. Going down one level, the left
    # children keep the parent's prefix and the right children its suffix; the parents sit at positions [0, c)
    # and their right children at [c, 2c), so prefix only grows, and suffix moves its old entries up.
    prefix, suffix, through, after = vectors  # (N, B, K) each
    prefix[0] = first_exp
    suffix[0] = end_exp
    for node in reversed(levels[:-1]):
        c = node.shape[0] // 2
        torch.bmm(prefix[:c].view(-1, 1, k), node[:c].view(-1, k, k), out=prefix[c : 2 * c].view(-1, 1, k))
        normalise_(prefix[c : 2 * c])
        suffix[c : 2 * c] = suffix[:c]
        torch.bmm(node[c : 2 * c].view(-1, k, k), suffix[c : 2 * c].view(-1, k, 1), out=suffix[:c].view(-1, k, 1))
        normalise_(suffix[:c])
    # Level 1 -> leaves, through the factors: prefix @ trans_exp diag(a) and trans_exp diag(b) @ suffix (the
    # identity when leaf b is padding).
    c = n // 2
    torch.matmul(prefix[:c], trans_exp, out=through[:c])
    normalise_(torch.mul(through[:c], em_exp[:c], out=prefix[c:]))
    torch.matmul(prefix[c:], trans_exp, out=through[c:])
    suffix[c:] = suffix[:c]
    torch.matmul(torch.mul(em_exp[c:], suffix[c:], out=after[c:]), trans_exp.t(), out=suffix[:c])
    live_b = live[c:, :, None].to(suffix.dtype)
    normalise_(suffix[:c].mul_(live_b).addcmul_(suffix[c:], 1.0 - live_b))
    # Marginal of (y_{t-1} = i, y_t = j) ~ prefix_t[i] trans_exp[i, j] em_exp_t[j] suffix_t[j]; each leaf's
    # marginals are normalised to sum to one, which removes every scale factor.
    torch.mul(em_exp, suffix, out=after)
    unary = through.mul_(after)  # (N, B, K), unnormalised marginals of y_t
    weight = ((grad * live) / unary.sum(dim=2).clamp_min(tiny))[..., None]  # (N, B, 1); 0 at padding
    unary.mul_(weight)
    grad_transitions = trans_exp * (prefix.mul_(weight).view(-1, k).t() @ after.view(-1, k))
    # time 0 and the end: marginals of y_0 and of the last tag
    first = first_exp * (root @ end_exp)  # (B, K)
    first.mul_((grad / first.sum(1).clamp_min(tiny))[:, None])
    last = (first_exp[:, None, :] @ root)[:, 0] * end_exp
    grad_end = (last * (grad / last.sum(1).clamp_min(tiny))[:, None]).sum(0)
    grad_emissions = unary.new_empty(batch, length, k)
    grad_emissions[:, 0] = first
    grad_emissions[:, 1:] = unary.index_select(0, perm[: length - 1]).transpose(0, 1)
    return grad_emissions, first.sum(0), grad_transitions, grad_end



# ---------------------------------------------------------------------------------------------------------------
# Partition function: sequential recursion in exp space, both directions in one loop
# ---------------------------------------------------------------------------------------------------------------


def sequential_forward(
    emissions: Tensor, mask: Tensor, start: Tensor, transitions: Tensor, end: Tensor, with_backward: bool = True
):
    """log Z (B,) by the forward algorithm in exp space, and (``with_backward``) what the backward pass needs.

    All floating inputs share one dtype (float64 in practice). With ``W = exp(trans - max trans)`` and
    ``E_t = exp(em_t - max em_t)`` the forward vectors are ``a_0 = exp(start - max) E_0``, ``a_t = (a_{t-1} W) E_t``,
    every ``RESCALE_EVERY`` steps divided by its sum ``c_t`` (whose logarithms, with the shifts, make up
    ``log Z``): one (B, K) x (K, K) product and two or three small operations per step, no masking (a row's
    ``log Z`` is read at its own last step).

    For the gradient the backward vectors ``h_t = E_t beta_t`` (``beta`` the suffix sums, ``beta_{L-1} =
    exp(end)``) follow ``h_{t-1} = (h_t W^T) E_{t-1}``, the same form. Each row runs it from its own last token
    (emissions read in per-row reversed order), so it shares the loop with the forward vectors: one batched
    product of (2, B, K) by (W, W^T) per step.
    """
    batch, length, k = emissions.shape
    device = emissions.device
    lengths = mask.sum(dim=1)
    rows = torch.arange(batch, device=device)
    directions = 2 if with_backward else 1
    em = emissions.masked_fill(~mask[..., None], 0.0)  # padding may hold anything (NaN): never read it
    em_max = em.amax(dim=2, keepdim=True)  # (B, T, 1)
    trans_max, start_max, end_max = transitions.max(), start.max(), end.max()
    w = (transitions - trans_max).exp()  # (K, K)
    start_exp, end_exp = (start - start_max).exp(), (end - end_max).exp()
    # steps[t, 0] = E_t (forward); steps[s, 1] = E_{L-1-s} of each row (backward, clamped past the row's start)
    steps = em.new_empty(length, directions, batch, k)
    torch.exp(em.sub_(em_max).transpose(0, 1), out=steps[:, 0])
    if with_backward:
        back = (lengths[None, :] - 1 - torch.arange(length, device=device)[:, None]).clamp_(min=0)  # (T, B)
        steps[:, 1] = steps[:, 0][back, rows[None, :]]
    vectors = torch.empty_like(steps)  # a_t (direction 0) and h_{L-1-s} (direction 1), normalised
    sums = em.new_empty(length, directions, batch, 1)
    vectors[0, 0] = steps[0, 0] * start_exp
    if with_backward:
        vectors[0, 1] = steps[0, 1] * end_exp
    torch.sum(vectors[0], dim=2, keepdim=True, out=sums[0])
    vectors[0].div_(sums[0])
    mats = torch.stack([w, w.t()])[:directions]  # (D, K, K)
    vector_steps, sum_steps, em_steps = vectors.unbind(0), sums.unbind(0), steps.unbind(0)
    sums[1:] = 1.0
    for t in range(1, length):
        current = torch.bmm(vector_steps[t - 1], mats, out=vector_steps[t])
        current.mul_(em_steps[t])
        if t % RESCALE_EVERY == 0 or t == length - 1:
            torch.sum(current, dim=2, keepdim=True, out=sum_steps[t])
            current.div_(sum_steps[t])
    log_sums = sums[:, 0, :, 0].log().masked_fill_(~mask.t(), 0.0).sum(dim=0)  # (B,)
    last = vectors[lengths - 1, 0, rows]  # (B, K): each row's a_{L-1}
    shifts = em_max[..., 0].masked_fill(~mask, 0.0).sum(dim=1) + (lengths - 1) * trans_max + start_max + end_max
    log_z = (last @ end_exp).log() + log_sums + shifts
    return log_z, (vectors, w, end_exp, lengths, mask)


def sequential_backward(saved, grad: Tensor):
    """Gradients of ``sum(grad * log Z)``: (emissions (B, T, K), start (K,), transitions (K, K), end (K,)).

    With ``a_t`` and ``h_t`` from :func:`sequential_forward` (each up to a positive factor), the tag marginal at t
    is proportional to ``a_t beta_t`` with ``beta_t = h_{t+1} W^T`` (``exp(end)`` at the last token), and the
    move marginal ``P(y_{t-1} = i, y_t = j)`` to ``a_{t-1}[i] W[i, j] h_t[j]`` with the normaliser of step t - 1:
    every scale factor cancels, and no step of this needs a loop.
    """
    vectors, w, end_exp, lengths, mask = saved
    length, _, batch, k = vectors.shape
    device = vectors.device
    rows = torch.arange(batch, device=device)
    tiny = torch.finfo(vectors.dtype).tiny
    alpha = vectors[:, 0].transpose(0, 1)  # (B, T, K)
    back = (lengths[None, :] - 1 - torch.arange(length, device=device)[:, None]).clamp_(min=0)  # (T, B)
    after = vectors[:, 1][back, rows[None, :]].transpose(0, 1)  # (B, T, K): h_t
    beta = alpha.new_empty(batch, length, k)
    torch.matmul(after[:, 1:], w.t(), out=beta[:, :-1])
    beta[:, -1] = end_exp  # (only read where it is a row's last token, but never left uninitialised)
    beta[rows, lengths - 1] = end_exp
    unary = beta.mul_(alpha)  # (B, T, K), unnormalised marginals
    norm = unary.sum(dim=2, keepdim=True).clamp_min_(tiny)
    weight = (grad[:, None, None] * mask[..., None]) / norm  # (B, T, 1); 0 at padding
    pairs = (alpha[:, :-1] * weight[:, :-1] * mask[:, 1:, None]).reshape(-1, k)
    grad_transitions = w * (pairs.t() @ after[:, 1:].reshape(-1, k))
    unary.mul_(weight)
    return unary, unary[:, 0].sum(dim=0), grad_transitions, unary[rows, lengths - 1].sum(dim=0)


def numpy_log_likelihood(emissions, gold, mask, start, transitions, end, with_backward: bool = True):
    """log p(gold) (B,) for numpy arrays on the host, and (``with_backward``) what :func:`numpy_log_likelihood_backward`
    needs: :func:`sequential_forward` and the gold-path score in numpy, for small inputs on the CPU, where the
    number of operations is the cost (a numpy operation on a few hundred numbers takes about a microsecond, a torch
    operation several; autograd adds more).

    emissions (B, T, K), start (K,), transitions (K, K), end (K,) float64; gold (B, T) int (0 outside the mask), or
    None for -log Z alone (the marginals need no path); mask (B, T) bool, right-padded. The recursion, rescaling and
    shifts are those of :func:`sequential_forward`.
    """
    batch, length, k = emissions.shape
    lengths = mask.sum(axis=1)
    rows = numpy.arange(batch)
    directions = 2 if with_backward else 1
    em = numpy.where(mask[..., None], emissions, 0.0)  # padding may hold anything (NaN): never read it
    em_max = em.max(axis=2, keepdims=True)  # (B, T, 1)
    trans_max, start_max, end_max = transitions.max(), start.max(), end.max()
    w = numpy.exp(transitions - trans_max)
    start_exp, end_exp = numpy.exp(start - start_max), numpy.exp(end - end_max)
    # steps[t, 0] = E_t (forward); steps[s, 1] = E_{L-1-s} of each row (backward, clamped past the row's start)
    steps = numpy.empty((length, directions, batch, k))
    steps[:, 0] = numpy.exp(em - em_max).transpose(1, 0, 2)
    if with_backward:
        back = numpy.maximum(lengths[None, :] - 1 - numpy.arange(length)[:, None], 0)  # (T, B)
        steps[:, 1] = steps[:, 0][back, rows[None, :]]
    vectors = numpy.empty_like(steps)  # a_t (direction 0) and h_{L-1-s} (direction 1), normalised
    sums = numpy.ones((length, directions, batch, 1))
    vectors[0, 0] = steps[0, 0] * start_exp
    if with_backward:
        vectors[0, 1] = steps[0, 1] * end_exp
    numpy.sum(vectors[0], axis=2, keepdims=True, out=sums[0])
    vectors[0] /= sums[0]
    mats = numpy.stack([w, w.T])[:directions]  # (D, K, K)
    vector_at, sum_at, step_at = list(vectors), list(sums), list(steps)  # views made once
    for t in range(1, length):
        current = numpy.matmul(vector_at[t - 1], mats, out=vector_at[t])
        current *= step_at[t]
        if t % RESCALE_EVERY == 0 or t == length - 1:
            numpy.sum(current, axis=2, keepdims=True, out=sum_at[t])
            current /= sum_at[t]
    log_sums = numpy.where(mask.T, numpy.log(sums[:, 0, :, 0]), 0.0).sum(axis=0)  # (B,)
    last = vectors[lengths - 1, 0, rows]  # (B, K): each row's a_{L-1}
    shifts = numpy.where(mask, em_max[..., 0], 0.0).sum(axis=1) + (lengths - 1) * trans_max + start_max + end_max
    with numpy.errstate(divide="ignore"):  # no legal path: log Z = -inf, which the caller recomputes in log space
        log_z = numpy.log(last @ end_exp) + log_sums + shifts
    if gold is None:
        return -log_z, (vectors, w, end_exp, lengths, mask, gold)
    score = start[gold[:, 0]] + numpy.where(mask, numpy.take_along_axis(em, gold[:, :, None], 2)[:, :, 0], 0.0).sum(1)
    if length > 1:
        score += numpy.where(mask[:, 1:], transitions[gold[:, :-1], gold[:, 1:]], 0.0).sum(axis=1)
    score += end[gold[rows, lengths - 1]]
    return score - log_z, (vectors, w, end_exp, lengths, mask, gold)


def _numpy_unnormalised_marginals(saved):
    """From :func:`numpy_log_likelihood`'s saved state: alpha (B, T, K), h (B, T, K), the unnormalised token
    marginals alpha * beta (B, T, K) and their sums over tags (B, T, 1), never 0."""
    vectors, w, end_exp, lengths, _, _ = saved
    length, _, batch, k = vectors.shape
    rows = numpy.arange(batch)
    alpha = vectors[:, 0].transpose(1, 0, 2)  # (B, T, K)
    back = numpy.maximum(lengths[None, :] - 1 - numpy.arange(length)[:, None], 0)  # (T, B)
    after = vectors[:, 1][back, rows[None, :]].transpose(1, 0, 2)  # (B, T, K): h_t
    beta = numpy.empty((batch, length, k))
    beta[:, :-1] = after[:, 1:] @ w.T
    beta[:, -1] = end_exp
    beta[rows, lengths - 1] = end_exp
    unary = beta * alpha
    return alpha, after, unary, numpy.maximum(unary.sum(axis=2, keepdims=True), numpy.finfo(numpy.float64).tiny)


def numpy_token_marginals(emissions, mask, start, transitions, end):
    """p(y_t = k | x) (B, T, K) for numpy arrays on the host (as :func:`numpy_log_likelihood`), 0 at padding: the
    forward and backward recursions without autograd, for inference (a path's per-token confidence)."""
    _, saved = numpy_log_likelihood(emissions, None, mask, start, transitions, end, with_backward=True)
    _, _, unary, norm = _numpy_unnormalised_marginals(saved)
    return unary / norm * mask[..., None]


def numpy_log_likelihood_backward(saved, grad):
    """Gradients of ``sum(grad * log p(gold))`` (numpy, float64): emissions (B, T, K), start (K,), transitions
    (K, K), end (K,). The marginals as in :func:`sequential_backward`, minus the gold path's counts."""
    _, w, _, lengths, mask, gold = saved
    batch, length, k = mask.shape + (w.shape[0],)
    rows = numpy.arange(batch)
    alpha, after, unary, norm = _numpy_unnormalised_marginals(saved)
    weight = (grad[:, None, None] * mask[..., None]) / norm  # (B, T, 1); 0 at padding
    pairs = alpha[:, :-1] * weight[:, :-1] * mask[:, 1:, None]  # (B, T - 1, K)
    # one (K, T) x (T, K) product per row, summed: one (K, B T) x (B T, K) product would start BLAS threads, which
    # compete with torch's own (idling on the same cores)
    moves_expected = w * (pairs.transpose(0, 2, 1) @ after[:, 1:]).sum(axis=0)
    unary *= weight
    # minus the marginals, plus the gold path's emissions and moves where the mask is on
    counts = grad[:, None] * mask  # (B, T)
    grad_emissions = -unary
    grad_emissions[rows[:, None], numpy.arange(length)[None, :], gold] += counts
    grad_start = numpy.bincount(gold[:, 0], weights=grad, minlength=k) - unary[:, 0].sum(axis=0)
    moves = (gold[:, :-1] * k + gold[:, 1:]).ravel()
    gold_moves = numpy.bincount(moves, weights=counts[:, 1:].ravel(), minlength=k * k).reshape(k, k)
    grad_transitions = gold_moves - moves_expected
    last = gold[rows, lengths - 1]
    grad_end = numpy.bincount(last, weights=grad, minlength=k) - unary[rows, lengths - 1].sum(axis=0)
    return grad_emissions, grad_start, grad_transitions, grad_end


# ---------------------------------------------------------------------------------------------------------------
# Viterbi
# ---------------------------------------------------------------------------------------------------------------


def viterbi_numpy(emissions: Tensor, mask: Tensor, start: Tensor, transitions: Tensor, end: Tensor) -> Tensor:
    """Best path (B, T) long, -1 outside the mask, by the plain recursion in numpy on the host.

    For small inputs, where the cost is the number of operations, not the arithmetic: a numpy operation on a few
    hundred numbers takes about a microsecond, a torch one several. Per step, ``sums[b, j, i] = score[b, i] +
    trans[i, j]`` with the previous tag ``i`` last, so that the back-pointer is an argmax over contiguous memory
    (numpy's argmax picks the first maximum, as ``torch.max`` does); the kept score is read at the pointer rather
    than reduced a second time. Inputs on an accelerator are copied to the host and the path back.
    """
    em = emissions.detach().cpu().numpy()
    batch, length, k = em.shape
    last = mask.detach().cpu().numpy().sum(axis=1) - 1  # (B,) each row's last time
    first, into, final_move = (p.detach().cpu().numpy() for p in (start, transitions.t(), end))
    scores = numpy.empty((length, batch, k), dtype=em.dtype)
    pointers = numpy.empty((length, batch, k), dtype=numpy.intp)  # pointers[t, b, j]: best tag at t - 1
    numpy.add(first, em[:, 0], out=scores[0])
    # Views made once: a view costs as much as a small operation.
    score_from, score_at = list(scores[:, :, None, :]), list(scores)  # (B, 1, K_from), (B, K)
    pointer_at, emission_at = list(pointers), list(em.transpose(1, 0, 2))
    sums = numpy.empty((batch, k, k), dtype=em.dtype)  # (B, K_to, K_from)
    flat_sums = sums.reshape(-1)
    offsets = numpy.arange(0, batch * k * k, k).reshape(batch, k)  # flat index of sums[b, j, 0]
    for t in range(1, length):
        numpy.add(score_from[t - 1], into, out=sums)
        best = sums.argmax(axis=2, out=pointer_at[t])
        numpy.add(flat_sums.take(offsets + best), emission_at[t], out=score_at[t])
    rows = numpy.arange(batch)
    tag = (scores[last, rows] + final_move).argmax(axis=1)  # (B,) each row's last tag
    if batch == 1:  # one row: the backtrace on Python ints
        n, tag = int(last[0]), int(tag[0])
        path = [tag]
        for step in reversed(pointers[1 : n + 1, 0].tolist()):
            tag = step[tag]
            path.append(tag)
        path = numpy.array([path[::-1] + [-1] * (length - 1 - n)], dtype=numpy.int64)
    else:
        # Past a row's end every pointer leads to its last tag, so that all rows trace back from time T - 1.
        beyond = numpy.arange(length)[:, None] > last  # (T, B)
        pointers[beyond] = numpy.broadcast_to(tag, (length, batch))[beyond][:, None]
        traced = [tag]
        for t in range(length - 1, 0, -1):
            tag = pointers[t, rows, tag]
            traced.append(tag)
        path = numpy.stack(traced[::-1], axis=1)
        path[beyond.T] = -1
    return torch.from_numpy(path).to(emissions.device)


def viterbi_numpy_batched(
    emissions: Tensor, mask: Tensor, start: Tensor, transitions: Tensor, end: Tensor
) -> Tensor:
    """Best path (B, T) long, -1 outside the mask: :func:`viterbi_middle` in numpy on the host, for CPU batches.

    The same meet-in-the-middle loop (a forward pass up to each row's middle time and a backward pass down to it,
    side by side as 2B rows, about T / 2 steps) in the same layout (tag, tag, row): the max over the previous tag
    is an elementwise maximum of K planes of K x 2B contiguous numbers (an argmax over the short tag axis, row by
    row, costs far more), and the loop keeps maxima only. The back-pointers (the first tag that reaches the max, as
    ``torch.max`` picks it) are recovered every few steps from the kept sums of those steps at once; the backtrace
    gathers one tag per row and step.
    """
    em = emissions.detach().cpu().numpy()
    batch, length, k = em.shape
    first, moves, final_move = (p.detach().cpu().numpy() for p in (start, transitions, end))
    if length == 1:
        return torch.from_numpy((first + em[:, 0] + final_move).argmax(axis=1)[:, None]).to(emissions.device)
    lengths = mask.detach().cpu().numpy().sum(axis=1)
    middle, to_end, steps = _middle_plan(lengths, length)
    rows, rows2 = numpy.arange(batch), 2 * batch
    # added[s, :, row]: the emission added after step s, forward rows then backward rows
    added = numpy.ascontiguousarray(_host_step_emissions(em, lengths, steps).transpose(0, 3, 1, 2))
    added = added.reshape(steps + 1, k, rows2)
    # table[in, out, row]: trans[in, out] for the forward rows, trans[out, in] for the backward rows
    table = numpy.concatenate(
        [numpy.broadcast_to(moves[:, :, None], (k, k, batch)), numpy.broadcast_to(moves.T[:, :, None], (k, k, batch))],
        axis=2,
    )
    values = numpy.empty((steps + 1, k, rows2), dtype=em.dtype)  # v_s = max over the previous tag
    scores = numpy.empty((steps + 1, k, rows2), dtype=em.dtype)  # v_s + added_s
    values[0, :, :batch] = first[:, None]
    values[0, :, batch:] = final_move[:, None]
    numpy.add(values[0], added[0], out=scores[0])
    chunk_size = _POINTER_CHUNK
    sums = numpy.empty((chunk_size, k, k, rows2), dtype=em.dtype)  # the sums of the last few steps
    pointers = numpy.empty((steps + 1, k, rows2), dtype=numpy.intp)  # pointers[s, j]: the tag one step back
    weight_type = numpy.uint8 if k <= 256 else numpy.int32
    weights = numpy.arange(k - 1, -1, -1, dtype=weight_type)[None, :, None, None]  # the first hit weighs most
    # Views made once: a view costs as much as a small operation.
    score_from, score_at = list(scores[:, :, None, :]), list(scores)
    value_at, added_at, sums_at = list(values), list(added), list(sums)
    for s in range(1, steps + 1):
        c = (s - 1) % chunk_size
        step_sums = numpy.add(score_from[s - 1], table, out=sums_at[c])  # (K_in, K_out, 2B)
        numpy.add(step_sums.max(axis=0, out=value_at[s]), added_at[s], out=score_at[s])
        if c == chunk_size - 1 or s == steps:  # back-pointers of steps s - c .. s
            hits = sums[: c + 1] == values[s - c : s + 1, None]
            pointers[s - c : s + 1] = (k - 1) - (hits * weights).max(axis=1)
    alpha = scores[middle, :, rows]  # (B, K)
    beta = values[to_end, :, rows + batch]
    middle_tag = (alpha + beta).argmax(axis=1)  # (B,)
    # Backtrace both halves from the middle tag; past a row's own steps the pointers are the identity.
    beyond = numpy.arange(steps + 1)[:, None] > numpy.concatenate([middle, to_end])  # (S + 1, 2B)
    pointers.transpose(0, 2, 1)[beyond] = numpy.arange(k)
    rows2_index, tag = numpy.arange(rows2), numpy.concatenate([middle_tag, middle_tag])
    traced = [None] * steps  # traced[s - 1]: the forward rows' tag at time s - 1, the backward rows' at L - s
    for s in range(steps, 0, -1):
        tag = pointers[s, tag, rows2_index]
        traced[s - 1] = tag
    path = _host_middle_path(numpy.stack(traced, axis=1), middle_tag, lengths, length)
    return torch.from_numpy(path).to(emissions.device)


def _middle_plan(lengths, length: int):
    """Meet-in-the-middle bookkeeping (lengths a tensor or a numpy array): each row's middle time, its backward
    steps, the loop's step count S."""
    middle = (lengths - 1) // 2  # (B,)
    to_end = lengths - 1 - middle  # backward steps from the last time down to the middle
    steps = length - 1 - (length - 1) // 2  # S >= every row's middle and to_end
    return middle, to_end, steps


def _host_step_emissions(em, lengths, steps: int):
    """(S + 1, 2, B, K) numpy: the emission each meet-in-the-middle row adds after step s, at time s (forward rows,
    ``[:, 0]``) or at time L - 1 - s (backward rows, ``[:, 1]``; times past a row's own steps are clamped and never
    read). ``em`` (B, T, K) numpy, ``lengths`` (B,)."""
    batch, length, k = em.shape
    back_time = numpy.clip(lengths - 1 - numpy.arange(steps + 1)[:, None], 0, length - 1)  # (S + 1, B)
    added = numpy.empty((steps + 1, 2, batch, k), dtype=em.dtype)
    added[:, 0] = em[:, : steps + 1].transpose(1, 0, 2)
    added[:, 1] = em[numpy.arange(batch), back_time]
    return added


def _host_middle_path(traced, middle_tag, lengths, length: int):
    """The paths (B, T) int64 numpy, -1 outside each row, from the backtrace ``traced`` (2B, S): column s - 1
    holds, for the forward rows, the tag at time s - 1 and, for the backward rows, the tag at time L - s."""
    batch, steps = middle_tag.shape[0], traced.shape[1]
    middle, _, _ = _middle_plan(lengths, length)
    rows, time = numpy.arange(batch)[:, None], numpy.arange(length)[None, :]
    forward_tags = numpy.concatenate([traced[:batch], middle_tag[:, None]], axis=1)  # (B, S + 1), by time
    forward_part = forward_tags[rows, numpy.minimum(time, steps)]
    backward_part = traced[batch:][rows, numpy.clip(lengths[:, None] - 1 - time, 0, steps - 1)]
    path = numpy.where(time <= middle[:, None], forward_part, backward_part)
    path[time >= lengths[:, None]] = -1
    return path


def _middle_path(traced: Tensor, middle_tag: Tensor, lengths: Tensor, mask: Tensor) -> Tensor:
    """Assemble the paths (B, T) from the backtrace ``traced`` (S, 2B): row s - 1 holds, for the forward rows, the
    tag at time s - 1 and, for the backward rows, the tag at time L - s; ``middle_tag`` (B,)."""
    batch, length = mask.shape
    middle, _, steps = _middle_plan(lengths, length)
    traced = traced.t()  # (2B, S)
    time = torch.arange(length, device=mask.device)[None, :]  # (1, T)
    forward_tags = torch.cat([traced[:batch], middle_tag[:, None]], dim=1)  # (B, S + 1), by time
    forward_part = forward_tags.gather(1, time.clamp(max=steps).expand(batch, length))
    backward_part = traced[batch:].gather(1, (lengths[:, None] - 1 - time).clamp(0, steps - 1))
    path = torch.where(time <= middle[:, None], forward_part, backward_part)
    return path.masked_fill(~mask, -1)


def viterbi_middle(emissions: Tensor, mask: Tensor, start: Tensor, transitions: Tensor, end: Tensor) -> Tensor:
    """Best path (B, T) long, -1 outside the mask, for few tags. emissions (B, T, K); parameters in its dtype.

    Meet in the middle: row b's best path through its middle time m = (L - 1) // 2 comes from a forward pass over
    times 0..m (alpha_t[j]: best score of a path over 0..t ending in tag j) and a backward pass from time L - 1
    down to m (beta_t[i]: best score of the rest of the path given tag i at t, end transition included); the tag
    at m maximises alpha_m + beta_m. Both passes run in one loop, side by side on the row axis (B forward rows,
    then B backward rows), so the loop has about T / 2 steps s = 1..S of the same form:

        forward   v_s[out] = max_in (alpha_{s-1}[in] + trans[in, out]),  alpha_s = v_s + em_s
        backward  v_s[out] = max_in ((beta + em)_{t+1}[in] + trans[out, in]),  beta_t = v_s,  t = L - 1 - s

    (the backward rows add the emission of their next step in advance). The backward pass reads each row from its
    own end, so no step needs masking. The layout (tag, tag, row) makes the max a reduction over the outer axis,
    which torch vectorises over the rows (a max with indices is several times slower), and the loop computes
    maxima only: the back-pointers (the first ``in`` that reaches the max, as ``torch.max`` picks it) are
    recovered every few steps from the kept sums of those steps at once, and the backtrace composes the pointer
    maps by doubling (log2(S) batched gathers instead of S small ones).
    """
    batch, length, k = emissions.shape
    device = emissions.device
    lengths = mask.sum(dim=1)
    if length == 1:
        return (start + emissions[:, 0] + end).argmax(dim=1, keepdim=True)
    middle, to_end, steps = _middle_plan(lengths, length)
    s_index = torch.arange(steps + 1, device=device)  # s = 0..S
    # One buffer for the large work tensors (fresh large allocations are page-faulted in at every call).
    rows2, chunk_size = 2 * batch, _POINTER_CHUNK
    plane = k * rows2
    workspace = emissions.new_empty((3 * (steps + 1) + chunk_size * k) * plane)
    added = workspace[: (steps + 1) * plane].view(steps + 1, k, rows2)  # emission added after step s
    values = workspace[(steps + 1) * plane : 2 * (steps + 1) * plane].view(steps + 1, k, rows2)  # v_s
    scores = workspace[2 * (steps + 1) * plane : 3 * (steps + 1) * plane].view(steps + 1, k, rows2)  # v_s + added_s
    chunk = workspace[3 * (steps + 1) * plane :].view(chunk_size, k, k, rows2)  # sums of recent steps
    # Forward rows add the emission at time s, backward rows the one at time L - 1 - s (used by step s + 1).
    # Out-of-range times only occur in steps a row does not use.
    em = emissions.permute(1, 2, 0)  # (T, K, B)
    back_time = (lengths - 1 - s_index[:, None]).clamp_(0, length - 1)  # (S + 1, B)
    added[:, :, :batch] = em[: steps + 1]
    torch.gather(em, 0, back_time[:, None, :].expand(steps + 1, k, batch), out=added[:, :, batch:])
    # table[in, out, row]: trans[in, out] for the forward rows, trans[out, in] for the backward rows
    table = torch.cat([transitions[:, :, None].expand(k, k, batch), transitions.t()[:, :, None].expand(k, k, batch)], 2)
    values[0, :, :batch] = start[:, None]
    values[0, :, batch:] = end[:, None]
    torch.add(values[0], added[0], out=scores[0])
    # weights K-1..0 along "in": the first "in" whose sum equals the max gets the largest weight
    weight_type = torch.uint8 if k <= 256 else torch.int32
    weights = torch.arange(k - 1, -1, -1, dtype=weight_type, device=device)
    first_hit = torch.empty(steps, k, rows2, dtype=weight_type, device=device)  # K - 1 - back-pointer
    chunk_steps, value_steps = chunk.unbind(0), values.unbind(0)
    added_steps, score_steps = added.unbind(0), scores.unbind(0)
    for s in range(1, steps + 1):
        c = (s - 1) % chunk_size
        sums = torch.add(score_steps[s - 1].unsqueeze(1), table, out=chunk_steps[c])  # (K_in, K_out, 2B)
        torch.add(torch.amax(sums, dim=0, out=value_steps[s]), added_steps[s], out=score_steps[s])
        if c == chunk_size - 1 or s == steps:  # back-pointers of steps s - c .. s
            hits = chunk[: c + 1] >= values[s - c : s + 1, None]
            torch.amax(hits * weights.view(1, k, 1, 1), dim=1, out=first_hit[s - c - 1 : s])
    rows = torch.arange(batch, device=device)
    alpha = scores[middle, :, rows]  # (B, K)
    beta = values[to_end, :, rows + batch]
    middle_tag = (alpha + beta).argmax(dim=1)  # (B,)
    # Backtrace both halves from the middle tag. Past a row's own number of steps the pointers are the identity,
    # so that every row starts from its middle tag. (NaN scores, which match nothing, give K - 1.)
    beyond = (s_index[1:, None] > torch.cat([middle, to_end]))[:, None, :]  # (S, 1, 2B)
    maps = (k - 1) - torch.where(beyond, weights[:, None], first_hit).long()  # (S, K_out, 2B): tag at s -> s - 1
    # composed[s - 1] = map_s o map_{s+1} o ... o map_S (tag at S -> tag at s - 1), by doubling
    composed, span = maps, 1
    while span < steps:
        composed = torch.cat([composed[:-span].gather(1, composed[span:]), composed[-span:]])
        span *= 2
    traced = composed.gather(1, torch.cat([middle_tag, middle_tag]).expand(steps, 1, rows2))[:, 0]  # (S, 2B)
    return _middle_path(traced, middle_tag, lengths, mask)


def viterbi_middle_rows(emissions: Tensor, mask: Tensor, start: Tensor, transitions: Tensor, end: Tensor) -> Tensor:
    """Best path (B, T) long, -1 outside the mask, for many tags: :func:`viterbi_middle` in a row-major layout.

    The same meet-in-the-middle loop, with the sums laid out (direction, row, in, out): the max over ``in`` is
    then vectorised over ``out`` (K wide) and the transition table (2, 1, K, K) is broadcast over the rows instead
    of being copied for each. The loop keeps no sums and runs in torch on the emissions' device (its operations
    are large: B K^2 each, and use torch's threads); the small bookkeeping before and after it runs on the host in
    numpy (one copy each way off the CPU, none on it): the step inputs, and the backtrace, which recomputes the
    back-pointer of each row's own tag only (K sums per row and step instead of K^2) with the same float additions
    as the loop's, so the same maxima.
    """
    batch, length, k = emissions.shape
    device = emissions.device
    if length == 1:
        return (start + emissions[:, 0] + end).argmax(dim=1, keepdim=True)
    em = emissions.detach().cpu().numpy()
    first, moves, final_move = (p.detach().cpu().numpy() for p in (start, transitions, end))
    lengths = mask.detach().cpu().numpy().sum(axis=1)
    middle, to_end, steps = _middle_plan(lengths, length)
    rows = numpy.arange(batch)
    added = _host_step_emissions(em, lengths, steps)  # (S + 1, 2, B, K)
    values = numpy.empty_like(added)  # v_s
    scores = numpy.empty_like(added)  # v_s + added_s
    values[0, 0], values[0, 1] = first, final_move
    numpy.add(values[0], added[0], out=scores[0])
    table = numpy.stack([moves, moves.T])[:, None]  # (2, 1, K_in, K_out)
    # On the CPU these tensors share the arrays' memory, so the loop fills `values` and `scores` in place.
    added_t, values_t, scores_t, table_t = (torch.from_numpy(a).to(device) for a in (added, values, scores, table))
    sums = emissions.new_empty(2, batch, k, k)
    # views made once: a view costs as much as a small operation
    value_steps, added_steps, score_steps = values_t.unbind(0), added_t.unbind(0), scores_t.unbind(0)
    score_columns = scores_t.unsqueeze(4).unbind(0)  # (2, B, K_in, 1) each
    for s in range(1, steps + 1):
        torch.add(score_columns[s - 1], table_t, out=sums)
        torch.add(torch.amax(sums, dim=2, out=value_steps[s]), added_steps[s], out=score_steps[s])
    scores, values = scores_t.cpu().numpy(), values_t.cpu().numpy()
    middle_tag = (scores[middle, 0, rows] + values[to_end, 1, rows]).argmax(axis=1)  # (B,)
    # Backtrace: the pointer of tag j at step s is argmax_in (score_{s-1}[in] + table[in, j]), the first maximum.
    # Past a row's own steps: the identity.
    beyond = numpy.arange(1, steps + 1)[:, None, None] > numpy.stack([middle, to_end])  # (S, 2, B)
    columns = numpy.stack([moves.T, moves])  # (2, K_out, K_in): columns[d, j] = table[d, 0, :, j]
    direction = numpy.arange(2)[:, None]
    tag, traced = numpy.stack([middle_tag, middle_tag]), [None] * steps  # (2, B)
    for s in range(steps, 0, -1):
        candidates = scores[s - 1] + columns[direction, tag]  # (2, B, K_in)
        tag = numpy.where(beyond[s - 1], tag, candidates.argmax(axis=2))
        traced[s - 1] = tag
    traced = numpy.stack(traced, axis=2).reshape(2 * batch, steps)  # (2B, S)
    return torch.from_numpy(_host_middle_path(traced, middle_tag, lengths, length)).to(device)


def viterbi_tree(emissions: Tensor, mask: Tensor, start: Tensor, transitions: Tensor, end: Tensor) -> Tensor:
    """Best path (B, T) long, -1 outside the mask, by a tree of max-plus matrix products: for short rows.

    The Viterbi analogue of :func:`tree_forward`: the step matrices ``M_t[i, j] = trans[i, j] + em_t[j]`` (the
    max-plus identity at padded steps: 0 on the diagonal, -inf elsewhere) are combined pairwise,
    ``C[i, l] = max_j A[i, j] + B[j, l]``, keeping the maximising ``j`` of every node (the first, as ``torch.max``
    picks it), in log2(T) levels of one operation pair each (leaves in bit-reversed time order, so the children
    of a node sit at the same position of the two halves of the level below). The root gives the best first and
    last tags at once; going down, each node's kept ``j`` at its two boundary tags is the tag between its
    children. About 5 log2(T) + 20 operations in all, but K^3 work per node: the choice for few, short rows with
    few tags, where the per-step loops cost more in operations than this costs in arithmetic.
    """
    batch, length, k = emissions.shape
    device = emissions.device
    if length == 1:
        return (start + emissions[:, 0] + end).argmax(dim=1, keepdim=True)
    n = 1 << (max(length - 1, 2) - 1).bit_length()  # leaves: steps 1..T-1, padded to a power of two
    perm = _bit_reversal(n, device)
    steps = emissions[:, 1:]
    live = mask[:, 1:]
    if n > length - 1:
        steps = torch.cat([steps, steps.new_zeros(batch, n - length + 1, k)], dim=1)
        live = torch.cat([live, live.new_zeros(batch, n - length + 1)], dim=1)
    steps = steps.transpose(0, 1).index_select(0, perm)  # (N, B, K)
    live = live.t().index_select(0, perm)[:, :, None, None]  # (N, B, 1, 1)
    identity = torch.full((k, k), float("-inf"), dtype=emissions.dtype, device=device).fill_diagonal_(0.0)
    node = torch.where(live, transitions + steps[:, :, None, :], identity)  # (N, B, K_from, K_to)
    pointers = []
    while node.shape[0] > 1:
        half = node.shape[0] // 2
        node, between = (node[:half, :, :, :, None] + node[half:, :, None, :, :]).max(dim=3)
        pointers.append(between)  # (half, B, K, K): the tag between the two children, per boundary pair
    total = (start + emissions[:, 0])[:, :, None] + node[0] + end  # (B, K_first, K_last)
    best = total.view(batch, k * k).argmax(dim=1)
    first, last = best // k, best % k  # (B,)
    # Top-down: the parents' boundary tags (left, right) at positions [0, c) give the middle tag; left children
    # keep positions [0, c), right children go to [c, 2c).
    left, right = first[None, :], last[None, :]  # (c, B)
    for between in reversed(pointers):
        middle = between.view(between.shape[0], batch, k * k).gather(2, (left * k + right)[..., None])[..., 0]
        left, right = torch.cat([left, middle]), torch.cat([middle, right])
    tags = right.index_select(0, perm)[: length - 1].t()  # (B, T - 1): the tag at the end of each step
    return torch.cat([first[:, None], tags], dim=1).masked_fill(~mask, -1)
