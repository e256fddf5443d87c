"""Linear-chain conditional random field for sequence labelling, with optional transition constraints.

Imports only ``torch``, ``numpy`` (a requirement of transformers) and the standard library, so that it can be copied as
it is into a Hugging Face custom-code folder next to the modelling file.

Model. For emissions ``E`` (B, T, K), a tag path ``y`` of length ``L`` (the number of ``True`` entries of its mask
row) scores::

    score(y) = start[y_0] + E_0[y_0] + sum_{t=1}^{L-1} (trans[y_{t-1}, y_t] + E_t[y_t]) + end[y_{L-1}]

and ``log p(y | E) = score(y) - log Z``, ``log Z`` the log-sum-exp of ``score`` over all K^L paths; ``trans[i, j]``
scores the move from tag ``i`` to tag ``j`` (as in pytorch-crf). Constraints: the boolean buffers
``start_allowed``, ``transition_allowed`` and ``end_allowed`` (see :func:`schemes.allowed_transitions`) select the
moves a tag scheme permits; the *effective* scores put ``-10000.0`` at forbidden entries (the raw parameters are left
alone). ``exp(-10000)`` is exactly 0 in float32 and float64, so a forbidden move has probability zero in training and
is never decoded while a legal path exists, and the gradients stay finite.

How. At the sizes of NER (rows of up to a few hundred positions, up to a hundred or so tags) the cost is the number of
operations, not the arithmetic: a numpy operation on a few hundred numbers takes about a microsecond, a torch
operation several. So the recursions run in numpy on the host, whatever the device (off the CPU the emissions are
copied to the host and the results back: not measured on an accelerator).

- log Z, its gradient and the marginals (:func:`_forward_backward`, :func:`_expected_counts`): the forward and the
  backward recursion in exp space, side by side in one loop, with the gold path's score and a hand-written backward
  (:class:`_LogLikelihood`): the gradient of ``log Z`` is the marginals, that of the score counts the path's moves.
- Viterbi (:func:`choose_viterbi` picks one from the shapes; all give the same path up to ties within rounding): the
  plain recursion in numpy for fewer than eight rows or a few short ones (:func:`_viterbi_rows`); for batches, a
  forward and a backward pass meeting in the middle of each row (about T / 2 steps of 2B rows), in numpy with few
  tags (:func:`_viterbi_middle`) and in torch with many (:func:`_viterbi_middle_torch`: its large operations use
  torch's threads).

Numerics: log Z and the marginals are computed in float64 whatever the emissions' dtype (bf16, fp16, fp32 or fp64;
results come back in that dtype, the marginals in float32 or float64). Exp space needs the range: each vector is
rescaled every second step, and float64 loses only entries below ``exp(-700)`` times the largest of two steps, so long
rows with large emissions stay exact; float32 would lose them below ``exp(-87)``. Should ``log Z`` come out non-finite
anyway (no legal path at all under the constraints: ``Z`` is then about ``exp(-10000)``), the batch is recomputed with
the forward recursion in log space (:func:`_log_partition_log_space`). Viterbi only adds and compares: float32
(float64 for float64 emissions).
"""

from typing import Optional, Tuple

import numpy
import torch
from torch import Tensor

__all__ = ["LinearChainCRF", "crf_log_partition"]

# Effective score of a forbidden move: finite (finite gradients), yet exp() of it is exactly 0 in float32/64.
FORBIDDEN_SCORE = -10000.0
# The exp-space recursion divides its vectors by their sum every this many steps (and at the last): only entries below
# exp(-700) times the largest product of two steps can be lost.
RESCALE_EVERY = 2
# Viterbi algorithms (see choose_viterbi); ``decode(..., algorithm=)`` overrides the choice.
VITERBI_ALGORITHMS = ("numpy", "numpy_batched", "torch_batched")
# Crossovers measured with `python benchmarks/crf_speed.py --crossovers` on 2 CPU cores: the plain recursion for
# fewer than BATCHED_MIN_ROWS rows; for more, the torch loop from MANY_TAGS tags, and with fewer tags the batched
# numpy loop once the batch has BATCHED_MIN_ROW_STEPS row steps. Any choice gives the same paths (up to ties within
# rounding), so a wrong crossover costs time only.
MANY_TAGS = 32
BATCHED_MIN_ROWS = 8
BATCHED_MIN_ROW_STEPS = 256  # B * T


def choose_viterbi(batch: int, length: int, num_tags: int) -> str:
    """The Viterbi algorithm for a (batch, longest row, num_tags) input (see the constants above)."""
    if batch < BATCHED_MIN_ROWS:
        return "numpy"
    if num_tags >= MANY_TAGS:
        return "torch_batched"
    return "numpy_batched" if batch * length >= BATCHED_MIN_ROW_STEPS else "numpy"


# ---------------------------------------------------------------------------------------------------------------
# Log-likelihood: gold score, log Z, their gradients, the marginals
# ---------------------------------------------------------------------------------------------------------------


def _on_host(x: Tensor, dtype) -> numpy.ndarray:
    """A numpy array of ``dtype`` (float32 or float64) holding the tensor ``x`` (any float dtype, any device); the
    conversion runs in numpy, which costs a microsecond where a torch one costs several (numpy has no bfloat16)."""
    x = x.detach().cpu()
    return (x if x.dtype in (torch.float32, torch.float64) else x.float()).numpy().astype(dtype, copy=False)


def _from_host(x: numpy.ndarray, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The numpy array ``x`` as a tensor of ``dtype`` on ``device`` (converted by numpy where it can)."""
    if dtype in (torch.float32, torch.float64):
        x = x.astype(numpy.float32 if dtype == torch.float32 else numpy.float64, copy=False)
    return torch.from_numpy(x).to(device=device, dtype=dtype)


def _gold_score(emissions, tags, mask, start, transitions, end):
    """Score (B,) of the paths ``tags`` (B, T) int (0 outside the mask); numpy arrays, see :func:`_forward_backward`."""
    rows, lengths = numpy.arange(len(tags)), mask.sum(axis=1)
    score = start[tags[:, 0]] + end[tags[rows, lengths - 1]]
    score += numpy.where(mask, numpy.take_along_axis(emissions, tags[:, :, None], 2)[:, :, 0], 0.0).sum(axis=1)
    return score + numpy.where(mask[:, 1:], transitions[tags[:, :-1], tags[:, 1:]], 0.0).sum(axis=1)


def _gold_counts(tags, mask, weights, num_tags: int):
    """The gradient of ``sum(weights * gold score)``: how often each emission, start, move and end is on each row's
    path, times the row's weight. Emissions as (B, T) weights of the entries at ``tags`` (the rest is 0), then
    start (K,), transitions (K, K) and end (K,)."""
    rows, lengths = numpy.arange(len(tags)), mask.sum(axis=1)
    on_path = weights[:, None] * mask  # (B, T)
    start = numpy.bincount(tags[:, 0], weights=weights, minlength=num_tags)
    moves = (tags[:, :-1] * num_tags + tags[:, 1:]).ravel()
    transitions = numpy.bincount(moves, weights=on_path[:, 1:].ravel(), minlength=num_tags**2)
    end = numpy.bincount(tags[rows, lengths - 1], weights=weights, minlength=num_tags)
    return on_path, start, transitions.reshape(num_tags, num_tags), end


def _forward_backward(emissions, mask, start, transitions, end, with_backward: bool = True):
    """log Z (B,) and what :func:`_expected_counts` needs, for numpy arrays: emissions (B, T, K), start (K,),
    transitions (K, K), end (K,) float64; mask (B, T) bool, right-padded.

    With ``W = exp(trans - max trans)`` and ``E_t = exp(em_t - max em_t)``, the forward vectors are
    ``a_0 = exp(start - max) E_0``, ``a_t = (a_{t-1} W) E_t``, divided by their sum ``c_t`` every ``RESCALE_EVERY``
    steps; ``log Z`` is ``log(a_{L-1} . exp(end))`` plus the logarithms of the ``c_t`` and of the shifts. The
    backward vectors ``h_t = E_t beta_t`` (``beta`` the suffix sums, ``beta_{L-1} = exp(end)``) follow
    ``h_{t-1} = (h_t W^T) E_{t-1}``, the same form: each row runs it from its own last token (emissions read in
    per-row reversed order), so both share the loop, one (2, B, K) x (2, K, K) product per step. No step needs masking:
    a row's ``log Z`` is read at its own last step.
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
    vectors = numpy.empty_like(steps)  # a_t (direction 0) and h_{L-1-s} (direction 1), rescaled
    sums = numpy.ones((length, directions, batch, 1))
    vectors[0, 0] = steps[0, 0] * start_exp
    if with_backward:
        vectors[0, 1] = steps[0, 1] * end_exp
    numpy.sum(vectors[0], axis=2, keepdims=True, out=sums[0])
    vectors[0] /= sums[0]
    mats = numpy.stack([w, w.T])[:directions]  # (D, K, K)
    ones = numpy.ones((k, 1))  # sums over the tags as products: several times faster than numpy.sum for few tags
    vector_at, sum_at, step_at = list(vectors), list(sums), list(steps)  # views made once: each costs an operation
    for t in range(1, length):
        current = numpy.matmul(vector_at[t - 1], mats, out=vector_at[t])
        current *= step_at[t]
        if t % RESCALE_EVERY == 0 or t == length - 1:
            numpy.matmul(current, ones, out=sum_at[t])
            current /= sum_at[t]
    log_sums = numpy.where(mask.T, numpy.log(sums[:, 0, :, 0]), 0.0).sum(axis=0)  # (B,)
    last = vectors[lengths - 1, 0, rows]  # (B, K): each row's a_{L-1}
    shifts = numpy.where(mask, em_max[..., 0], 0.0).sum(axis=1) + (lengths - 1) * trans_max + start_max + end_max
    with numpy.errstate(divide="ignore"):  # no legal path: log Z = -inf, which the caller recomputes in log space
        log_z = numpy.log(last @ end_exp) + log_sums + shifts
    return log_z, (vectors, w, end_exp, lengths, mask)


def _expected_counts(state, weights):
    """From :func:`_forward_backward`'s state and per-row weights (B,): the token marginals ``p(y_t = k)`` times
    each row's weight, (B, T, K), 0 at padding, and the expected moves ``sum_b weight_b sum_t p(y_{t-1} = i, y_t = j)``
    (K, K). With weights ``g`` these are the gradients of ``sum(g * log Z)`` with respect to the emissions and the
    transitions (those of start and end are the first and last tokens' marginals).

    The token marginal at t is proportional to ``a_t beta_t`` with ``beta_t = h_{t+1} W^T`` (``exp(end)`` at the
    last token), the move marginal to ``a_{t-1}[i] W[i, j] h_t[j]`` with the normaliser of step t - 1: every scale
    factor cancels, and no step of this needs a loop.
    """
    vectors, w, end_exp, lengths, mask = state
    length, _, batch, k = vectors.shape
    rows = numpy.arange(batch)
    alpha = vectors[:, 0].transpose(1, 0, 2)  # (B, T, K)
    back = numpy.maximum(lengths[None, :] - 1 - numpy.arange(length)[:, None], 0)  # (T, B)
    after = vectors[:, 1][back, rows[None, :]].transpose(1, 0, 2)  # (B, T, K): h_t
    beta = numpy.empty((batch, length, k))
    beta[:, :-1] = after[:, 1:] @ w.T
    beta[:, -1] = end_exp  # (read only at a row's last token, but never left uninitialised)
    beta[rows, lengths - 1] = end_exp
    tokens = beta * alpha  # unnormalised
    norm = numpy.maximum(tokens.sum(axis=2, keepdims=True), numpy.finfo(numpy.float64).tiny)
    weight = (weights[:, None, None] * mask[..., None]) / norm  # (B, T, 1); 0 at padding
    pairs = alpha[:, :-1] * weight[:, :-1] * mask[:, 1:, None]  # (B, T - 1, K)
    # one (K, T) x (T, K) product per row, summed: one (K, B T) x (B T, K) product would start BLAS threads, which
    # compete with torch's own (idling on the same cores) and were measured several times slower
    moves = w * (pairs.transpose(0, 2, 1) @ after[:, 1:]).sum(axis=0)
    tokens *= weight
    return tokens, moves


class _LogLikelihood(torch.autograd.Function):
    """(gold score (B,), log Z (B,)), float64 on the device of the inputs: emissions (B, T, K), tags (B, T) long (0
    outside the mask), mask (B, T) bool, effective start (K,), transitions (K, K), end (K,), of any float dtype and on
    any device, computed on the host in float64. The backward is written by hand: the gradient of the gold score
    counts the path's emissions and moves (:func:`_gold_counts`), that of log Z is the marginals
    (:func:`_expected_counts`); each comes back in its input's dtype."""

    @staticmethod
    def forward(ctx, emissions, tags, mask, start, transitions, end):
        ctx.inputs = [(x.dtype, x.device) for x in (emissions, start, transitions, end)]
        em, first, moves, last = (_on_host(x, numpy.float64) for x in (emissions, start, transitions, end))
        ctx.tags, ctx.mask = tags.cpu().numpy(), mask.cpu().numpy()
        log_z, ctx.state = _forward_backward(em, ctx.mask, first, moves, last, with_backward=any(ctx.needs_input_grad))
        gold = _gold_score(em, ctx.tags, ctx.mask, first, moves, last)
        return tuple(torch.from_numpy(x).to(emissions.device) for x in (gold, log_z))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_gold, grad_log_z):
        (batch, length), k = ctx.tags.shape, ctx.state[1].shape[0]
        on_path, start, transitions, end = _gold_counts(ctx.tags, ctx.mask, grad_gold.cpu().numpy(), k)
        tokens, moves = _expected_counts(ctx.state, grad_log_z.cpu().numpy())
        rows, lengths = numpy.arange(batch), ctx.state[3]
        start += tokens[:, 0].sum(axis=0)
        end += tokens[rows, lengths - 1].sum(axis=0)
        tokens[rows[:, None], numpy.arange(length)[None, :], ctx.tags] += on_path
        grads = [_from_host(g, dtype, device) for g, (dtype, device) in zip((tokens, start, moves + transitions, end),
                                                                              ctx.inputs)]
        return grads[0], None, None, grads[1], grads[2], grads[3]


def _log_partition_log_space(emissions: Tensor, mask: Tensor, start: Tensor, transitions: Tensor, end: Tensor):
    """log Z (B,) by the plain forward recursion in log space, plain autograd: slow, but exact for any magnitude
    (the fallback when exp space loses all of Z)."""
    alpha = start + emissions[:, 0]
    for t in range(1, emissions.shape[1]):
        step = torch.logsumexp(alpha[:, :, None] + transitions, dim=1) + emissions[:, t]
        alpha = torch.where(mask[:, t, None], step, alpha)
    return torch.logsumexp(alpha + end, dim=1)


def _log_likelihood_terms(emissions, tags, mask, start, transitions, end) -> Tuple[Tensor, Tensor]:
    """(gold score, log Z), (B,) float64 each, differentiable (see :class:`_LogLikelihood`); ``log Z`` recomputed in
    log space where exp space lost all of ``Z``."""
    gold, log_z = _LogLikelihood.apply(emissions, tags, mask, start, transitions, end)
    if not bool(torch.isfinite(log_z).all()):
        em, start, transitions, end = (x.to(torch.float64) for x in (emissions, start, transitions, end))
        log_z = _log_partition_log_space(em, mask, start, transitions, end)
    return gold, log_z


def crf_log_partition(emissions: Tensor, mask: Tensor, start: Tensor, transitions: Tensor, end: Tensor) -> Tensor:
    """log Z (B,) float64 of a linear-chain CRF with the given effective scores, differentiable in all four, for
    callers that transform the scores first (distillation's temperature).

    emissions (B, T, K) of any float dtype; mask (B, T) bool, right-padded, at least one True per row (not checked:
    see :meth:`LinearChainCRF.log_likelihood`); start, end (K,); transitions (K, K).
    """
    tags = torch.zeros(mask.shape, dtype=torch.long, device=mask.device)
    return _log_likelihood_terms(emissions, tags, mask, start, transitions, end)[1]


# ---------------------------------------------------------------------------------------------------------------
# Viterbi (numpy arrays in: emissions (B, T, K), lengths (B,), start (K,), transitions (K, K), end (K,) of one dtype;
# paths (B, T) int64 out, -1 past each row's end)
# ---------------------------------------------------------------------------------------------------------------


def _viterbi_rows(em, lengths, start, transitions, end):
    """The plain recursion, row-major: ``score_t[j] = max_i (score_{t-1}[i] + trans[i, j]) + em_t[j]``, remembering
    the maximising ``i`` (the first one on ties, as numpy's and torch's argmax pick it).

    Per step, ``sums[b, j, i] = score[b, i] + trans[i, j]`` with the previous tag ``i`` last, so that the
    back-pointer is an argmax over contiguous memory; the kept score is read at the pointer rather than reduced a
    second time.
    """
    batch, length, k = em.shape
    last = lengths - 1  # (B,) each row's last time
    into = numpy.ascontiguousarray(transitions.T)  # a transposed view makes every step's addition half as fast
    scores = numpy.empty((length, batch, k), dtype=em.dtype)
    pointers = numpy.empty((length, batch, k), dtype=numpy.intp)  # pointers[t, b, j]: best tag at t - 1
    numpy.add(start, em[:, 0], out=scores[0])
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
    tag = (scores[last, rows] + end).argmax(axis=1)  # (B,) each row's last tag
    if batch == 1:  # one row: the backtrace reads one pointer per step
        n, tag, row_pointers = int(last[0]), int(tag[0]), pointers[:, 0]
        path = [tag]
        for t in range(n, 0, -1):
            tag = int(row_pointers[t, tag])
            path.append(tag)
        return numpy.array([path[::-1] + [-1] * (length - 1 - n)], dtype=numpy.int64)
    # Past a row's end every pointer leads to its last tag, so that all rows trace back from time T - 1.
    beyond = numpy.arange(length)[:, None] > last  # (T, B)
    pointers[beyond] = numpy.broadcast_to(tag, (length, batch))[beyond][:, None]
    traced = [tag]
    for t in range(length - 1, 0, -1):
        tag = pointers[t, rows, tag]
        traced.append(tag)
    path = numpy.stack(traced[::-1], axis=1)
    path[beyond.T] = -1
    return path


# Meet in the middle (the two batched algorithms): row b's best path through its middle time m = (L - 1) // 2 comes
# from a forward pass over times 0..m (alpha_t[j]: the best score of a path over 0..t ending in tag j) and a backward
# pass from time L - 1 down to m (beta_t[i]: the best score of the rest of the path given tag i at t, end included);
# the tag at m maximises alpha_m + beta_m. Both passes run in one loop, side by side on the row axis (B forward rows,
# then B backward rows), so the loop has about T / 2 steps s = 1..S of one form:
#
#     forward   v_s[out] = max_in (alpha_{s-1}[in] + trans[in, out]),  alpha_s = v_s + em_s
#     backward  v_s[out] = max_in ((beta + em)_{t+1}[in] + trans[out, in]),  beta_t = v_s,  t = L - 1 - s
#
# (the backward rows add the emission of their next step in advance). Each row reads from its own end, so no step
# needs masking.


def _middle_plan(lengths, length: int):
    """Each row's middle time, its backward steps down to it, and the loop's step count S."""
    middle = (lengths - 1) // 2  # (B,)
    to_end = lengths - 1 - middle
    steps = length - 1 - (length - 1) // 2  # S >= every row's middle and to_end
    return middle, to_end, steps


def _step_emissions(em, lengths, steps: int):
    """(S + 1, 2, B, K): the emission each row adds after step s, at time s (forward rows, ``[:, 0]``) or at time
    L - 1 - s (backward rows, ``[:, 1]``; times past a row's own steps are clamped and never read)."""
    batch, length, k = em.shape
    back_time = numpy.clip(lengths - 1 - numpy.arange(steps + 1)[:, None], 0, length - 1)  # (S + 1, B)
    added = numpy.empty((steps + 1, 2, batch, k), dtype=em.dtype)
    added[:, 0] = em[:, : steps + 1].transpose(1, 0, 2)
    added[:, 1] = em[numpy.arange(batch), back_time]
    return added


def _middle_path(traced, middle_tag, lengths, length: int):
    """The paths (B, T) from the backtrace ``traced`` (2B, S): column s - 1 holds, for the forward rows, the tag at
    time s - 1 and, for the backward rows, the tag at time L - s."""
    batch, steps = middle_tag.shape[0], traced.shape[1]
    middle, _, _ = _middle_plan(lengths, length)
    rows, time = numpy.arange(batch)[:, None], numpy.arange(length)[None, :]
    forward_tags = numpy.concatenate([traced[:batch], middle_tag[:, None]], axis=1)  # (B, S + 1), by time
    forward_part = forward_tags[rows, numpy.minimum(time, steps)]
    backward_part = traced[batch:][rows, numpy.clip(lengths[:, None] - 1 - time, 0, steps - 1)]
    path = numpy.where(time <= middle[:, None], forward_part, backward_part)
    path[time >= lengths[:, None]] = -1
    return path


def _middle_arrays(em, lengths, start, transitions, end, steps: int):
    """The arrays of both meet-in-the-middle loops, layout (step, tag, row) with the B forward rows then the B backward
    rows: ``added`` (S + 1, K, 2B), the emission added after each step; ``table`` (K_in, K_out, 2B), ``trans[in, out]``
    for the forward rows and ``trans[out, in]`` for the backward ones (written out in full: an addition that
    broadcasts over the last axis runs several times slower); ``values`` and ``scores`` (S + 1, K, 2B), the max over
    the previous tag and it plus ``added``, step 0 filled in."""
    batch, _, k = em.shape
    added = numpy.ascontiguousarray(_step_emissions(em, lengths, steps).transpose(0, 3, 1, 2))
    added = added.reshape(steps + 1, k, 2 * batch)
    table = numpy.concatenate([numpy.broadcast_to(transitions[:, :, None], (k, k, batch)),
                               numpy.broadcast_to(transitions.T[:, :, None], (k, k, batch))], axis=2)
    values = numpy.empty((steps + 1, k, 2 * batch), dtype=em.dtype)
    scores = numpy.empty((steps + 1, k, 2 * batch), dtype=em.dtype)
    values[0, :, :batch] = start[:, None]
    values[0, :, batch:] = end[:, None]
    numpy.add(values[0], added[0], out=scores[0])
    return added, table, values, scores


def _viterbi_middle(em, lengths, start, transitions, end):
    """Meet in the middle in numpy, layout (tag, tag, row), for batches with few tags.

    The max over the previous tag is an elementwise maximum of K planes of K x 2B contiguous numbers (an argmax over
    the short tag axis, row by row, costs far more), and the loop keeps maxima only. The back-pointers (the first tag
    that reaches the max, as argmax picks it) are recovered every ``chunk`` steps from the kept sums of those steps at
    once; the backtrace gathers one tag per row and step.
    """
    batch, length, k = em.shape
    if length == 1:
        return (start + em[:, 0] + end).argmax(axis=1)[:, None]
    middle, to_end, steps = _middle_plan(lengths, length)
    rows, rows2 = numpy.arange(batch), 2 * batch
    added, table, values, scores = _middle_arrays(em, lengths, start, transitions, end, steps)
    chunk = 8  # steps whose back-pointers are recovered together (keeps the kept sums small)
    sums = numpy.empty((chunk, k, k, rows2), dtype=em.dtype)  # the sums of the last few steps
    pointers = numpy.empty((steps + 1, k, rows2), dtype=numpy.intp)  # pointers[s, j]: the tag one step back
    weight_type = numpy.uint8 if k <= 256 else numpy.int32
    weights = numpy.arange(k - 1, -1, -1, dtype=weight_type)[None, :, None, None]  # the first hit weighs most
    # Views made once: a view costs as much as a small operation.
    score_from, score_at = list(scores[:, :, None, :]), list(scores)
    value_at, added_at, sums_at = list(values), list(added), list(sums)
    for s in range(1, steps + 1):
        c = (s - 1) % chunk
        step_sums = numpy.add(score_from[s - 1], table, out=sums_at[c])  # (K_in, K_out, 2B)
        numpy.add(step_sums.max(axis=0, out=value_at[s]), added_at[s], out=score_at[s])
        if c == chunk - 1 or s == steps:  # back-pointers of steps s - c .. s
            hits = sums[: c + 1] == values[s - c : s + 1, None]
            pointers[s - c : s + 1] = (k - 1) - (hits * weights).max(axis=1)
    middle_tag = (scores[middle, :, rows] + values[to_end, :, rows + batch]).argmax(axis=1)  # (B,)
    # Backtrace both halves from the middle tag; past a row's own steps the pointers are the identity.
    beyond = numpy.arange(steps + 1)[:, None] > numpy.concatenate([middle, to_end])  # (S + 1, 2B)
    pointers.transpose(0, 2, 1)[beyond] = numpy.arange(k)
    rows2_index, tag = numpy.arange(rows2), numpy.concatenate([middle_tag, middle_tag])
    traced = [None] * steps  # traced[s - 1]: the forward rows' tag at time s - 1, the backward rows' at L - s
    for s in range(steps, 0, -1):
        tag = pointers[s, tag, rows2_index]
        traced[s - 1] = tag
    return _middle_path(numpy.stack(traced, axis=1), middle_tag, lengths, length)


def _viterbi_middle_torch(em, lengths, start, transitions, end):
    """Meet in the middle, layout (tag, tag, row), the loop in torch (its large operations use torch's threads).

    The max over the previous tag reduces the outer axis: K planes of K x 2B contiguous numbers, vectorised over the
    rows. The loop keeps maxima only; the backtrace recomputes the back-pointer of each row's own tag (K sums per row
    and step) with the same float additions as the loop's, so it meets the same maxima (the first, as argmax picks).
    """
    batch, length, k = em.shape
    if length == 1:
        return (start + em[:, 0] + end).argmax(axis=1)[:, None]
    middle, to_end, steps = _middle_plan(lengths, length)
    rows, rows2 = numpy.arange(batch), 2 * batch
    added, table, values, scores = _middle_arrays(em, lengths, start, transitions, end, steps)
    # The tensors share the arrays' memory: the loop fills `values` and `scores` in place.
    added_t, values_t, scores_t, table_t = (torch.from_numpy(a) for a in (added, values, scores, table))
    sums = torch.empty(k, k, rows2, dtype=added_t.dtype)
    value_steps, added_steps, score_steps = values_t.unbind(0), added_t.unbind(0), scores_t.unbind(0)
    score_columns = scores_t.unsqueeze(2).unbind(0)  # (K_in, 1, 2B) each
    for s in range(1, steps + 1):
        torch.add(score_columns[s - 1], table_t, out=sums)
        torch.add(torch.amax(sums, dim=0, out=value_steps[s]), added_steps[s], out=score_steps[s])
    middle_tag = (scores[middle, :, rows] + values[to_end, :, rows + batch]).argmax(axis=1)  # (B,)
    # Backtrace from the middle tag; past a row's own steps the pointers are the identity.
    beyond = numpy.arange(1, steps + 1)[:, None] > numpy.concatenate([middle, to_end])  # (S, 2B)
    rows2_index, tag = numpy.arange(rows2), numpy.concatenate([middle_tag, middle_tag])
    traced = [None] * steps  # traced[s - 1]: the forward rows' tag at time s - 1, the backward rows' at L - s
    for s in range(steps, 0, -1):
        candidates = scores[s - 1] + table[:, tag, rows2_index]  # (K_in, 2B)
        tag = numpy.where(beyond[s - 1], tag, candidates.argmax(axis=0))
        traced[s - 1] = tag
    return _middle_path(numpy.stack(traced, axis=1), middle_tag, lengths, length)


_VITERBI = {"numpy": _viterbi_rows, "numpy_batched": _viterbi_middle, "torch_batched": _viterbi_middle_torch}


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

    Emissions are (B, T, K) of any float dtype. Masks are (B, T) bool, right-padded (``True`` then ``False``), with at
    least one token per row; ``None`` means all ``True``. Tags outside the mask are ignored (they may hold -100).
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

    def effective_scores(self) -> Tuple[Tensor, Tensor, Tensor]:
        """(start (K,), transitions (K, K), end (K,)) with forbidden moves at FORBIDDEN_SCORE (differentiable)."""
        return (
            torch.where(self.start_allowed, self.start_transitions, FORBIDDEN_SCORE),
            torch.where(self.transition_allowed, self.transitions, FORBIDDEN_SCORE),
            torch.where(self.end_allowed, self.end_transitions, FORBIDDEN_SCORE),
        )

    def log_likelihood(self, emissions: Tensor, tags: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """log p(tags | emissions) (B,), in the dtype and on the device of ``emissions`` (computed in float64).

        Args:
            emissions: (B, T, K) float scores.
            tags: (B, T) long gold tags; entries outside the mask are ignored.
            mask: (B, T) bool, right-padded, at least one ``True`` per row; ``None`` means all ``True``.
        """
        mask, lengths = self._validate(emissions, mask, tags)
        if emissions.shape[0] == 0:
            return emissions.new_zeros(0)
        longest = int(lengths.max())
        if longest < emissions.shape[1]:  # padding shared by every row costs nothing
            emissions, tags, mask = emissions[:, :longest], tags[:, :longest], mask[:, :longest]
        gold = tags.masked_fill(~mask, 0).long()  # tags outside the mask may hold anything (-100)
        gold_score, log_z = _log_likelihood_terms(emissions, gold, mask, *self.effective_scores())
        return (gold_score - log_z).to(emissions.dtype)

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
    def marginals(self, emissions: Tensor, mask: Optional[Tensor] = None, temperature: float = 1.0,
                  with_moves: bool = False):
        """Token marginals ``p(y_t = k | emissions)`` (B, T, K), 0 outside the mask, with every score (emissions,
        start, transitions, end) divided by ``temperature``; float32 (float64 for float64 emissions), no gradient.

        With ``with_moves``, also the expected number of moves ``i -> j`` summed over the rows and steps (K, K):
        ``(marginals, moves)`` (distillation's soft targets; a loss averaged over the batch needs no more, since the
        transition scores are shared).
        """
        mask, lengths = self._validate(emissions, mask)
        batch, length, k = emissions.shape
        dtype = torch.float64 if emissions.dtype == torch.float64 else torch.float32
        tokens = torch.zeros(batch, length, k, dtype=dtype, device=emissions.device)
        moves = torch.zeros(k, k, dtype=dtype, device=emissions.device)
        if batch:
            longest = int(lengths.max())
            em, start, trans, end = (
                _on_host(x, numpy.float64) / temperature for x in (emissions[:, :longest], *self.effective_scores())
            )
            _, state = _forward_backward(em, mask[:, :longest].cpu().numpy(), start, trans, end)
            host_tokens, host_moves = _expected_counts(state, numpy.ones(batch))
            tokens[:, :longest] = _from_host(host_tokens, dtype, tokens.device)
            moves = _from_host(host_moves, dtype, moves.device)
        return (tokens, moves) if with_moves else tokens

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Optional[Tensor] = None, algorithm: Optional[str] = None) -> Tensor:
        """Viterbi path (B, T) long on the device of ``emissions``, -1 outside the mask: the best tag sequence (with
        constraints on, a legal one whenever a legal path exists).

        Args:
            emissions: (B, T, K) float scores.
            mask: (B, T) bool, right-padded, at least one ``True`` per row; ``None`` means all ``True``.
            algorithm: one of ``VITERBI_ALGORITHMS``; ``None`` (default) lets :func:`choose_viterbi` pick.
        """
        mask, lengths = self._validate(emissions, mask)
        batch, length, _ = emissions.shape
        if algorithm is not None and algorithm not in _VITERBI:
            raise ValueError(f"algorithm must be one of {VITERBI_ALGORITHMS}, got {algorithm!r}")
        if batch == 0:
            return torch.zeros(0, length, dtype=torch.long, device=emissions.device)
        longest = int(lengths.max())
        dtype = numpy.float64 if emissions.dtype == torch.float64 else numpy.float32
        host = [_on_host(x, dtype) for x in (emissions[:, :longest], *self.effective_scores())]
        viterbi = _VITERBI[algorithm or choose_viterbi(batch, longest, self.num_tags)]
        path = torch.from_numpy(viterbi(host[0], lengths, *host[1:]))
        if longest < length:  # padding shared by every row is not computed, only filled in
            path = torch.cat([path, path.new_full((batch, length - longest), -1)], dim=1)
        return path.to(emissions.device)

    def _validate(self, emissions: Tensor, mask: Optional[Tensor], tags: Optional[Tensor] = None):
        """Check shapes, mask layout and tag range; return the mask as bool (B, T) and the rows' lengths (B,) numpy."""
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
            return mask, numpy.zeros(0, dtype=numpy.int64)
        if length == 0:
            raise ValueError("row 0 has no tokens: every sequence needs at least one position in the mask")
        # The checks run on a host copy (numpy): a few microseconds where torch operations cost tens, and the rows'
        # lengths have to reach the host anyway.
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
        return mask, on_host.sum(axis=1)
