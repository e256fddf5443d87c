"""Tests for hf_bert_tasks.modeling.crf: brute-force oracles, agreement with pytorch-crf, constraints, errors, numerics."""

import itertools

import pytest
import torch

from hf_bert_tasks.modeling import crf as crf_module
from hf_bert_tasks.modeling.crf import (
    VITERBI_ALGORITHMS,
    LinearChainCRF,
    _log_partition_log_space,
    _LogLikelihood,
    choose_viterbi,
)
from hf_bert_tasks.modeling.schemes import allowed_transitions
from test_schemes import LABELS, valid_sequence

# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------


def random_crf(k, seed, allowed=None, dtype=torch.float64):
    torch.manual_seed(seed)
    crf = LinearChainCRF(k, allowed).to(dtype)
    with torch.no_grad():  # wider than the default init, so that the paths differ clearly
        crf.start_transitions.normal_()
        crf.end_transitions.normal_()
        crf.transitions.normal_()
    return crf


def gold_score(emissions, tags, mask, start, transitions, end):
    """Score (B,) of the paths tags (B, T) (0 outside the mask), in torch: the reference for the CRF's own."""
    lengths = mask.sum(dim=1)
    score = start[tags[:, 0]] + emissions.gather(2, tags[:, :, None])[:, :, 0].masked_fill(~mask, 0.0).sum(dim=1)
    score = score + transitions[tags[:, :-1], tags[:, 1:]].masked_fill(~mask[:, 1:], 0.0).sum(dim=1)
    return score + end[tags.gather(1, (lengths - 1)[:, None])[:, 0]]


def right_padded_mask(lengths, t):
    return torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]


def path_score(crf, emissions, path):
    """Score of one tag path (list of ints) for one row of emissions (T, K), from the definition."""
    s = crf.start_transitions[path[0]] + emissions[0, path[0]]
    for t in range(1, len(path)):
        s = s + crf.transitions[path[t - 1], path[t]] + emissions[t, path[t]]
    return s + crf.end_transitions[path[-1]]


def path_allowed(crf, path):
    if not crf.start_allowed[path[0]] or not crf.end_allowed[path[-1]]:
        return False
    return all(bool(crf.transition_allowed[a, b]) for a, b in zip(path, path[1:]))


def enumerate_paths(crf, length, constrained):
    """Every tag sequence of `length`; constrained: only the legal ones."""
    paths = itertools.product(range(crf.num_tags), repeat=length)
    return [path for path in paths if not constrained or path_allowed(crf, path)]


def brute_force(crf, emissions, lengths, constrained):
    """(log Z (B,), best paths) by enumerating every tag sequence; constrained: only legal sequences."""
    log_z, best = [], []
    for b, length in enumerate(lengths):
        scores = {path: path_score(crf, emissions[b], path) for path in enumerate_paths(crf, length, constrained)}
        values = torch.stack(list(scores.values()))
        log_z.append(torch.logsumexp(values, 0))
        best.append(list(max(scores, key=lambda p: scores[p].item())))
    return torch.stack(log_z), best


def random_case(k, lengths, seed, constrained):
    """(crf, emissions (B, T, K) float64, right-padded mask) for the brute-force comparisons."""
    crf = random_crf(k, seed, random_mask(k, seed) if constrained else None)
    t = max(lengths)
    return crf, torch.randn(len(lengths), t, k, dtype=torch.float64) * 2, right_padded_mask(lengths, t)


def random_mask(k, seed):
    """Random constraint masks that keep tag 0 legal everywhere, so that a legal path always exists."""
    g = torch.Generator().manual_seed(seed)
    start = torch.rand(k, generator=g) < 0.6
    trans = torch.rand(k, k, generator=g) < 0.6
    end = torch.rand(k, generator=g) < 0.6
    start[0] = end[0] = True
    trans[0, 0] = True
    return start, trans, end


# ---------------------------------------------------------------------------------------------------------------
# exactness against brute force
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("constrained", [False, True])
@pytest.mark.parametrize("k,lengths", [(1, [3, 1]), (2, [4, 2, 1]), (3, [4, 4, 3, 1]), (4, [3, 4, 2])])
def test_log_likelihood_and_decode_match_brute_force(k, lengths, constrained):
    for seed in range(3):
        allowed = random_mask(k, seed) if constrained else None
        crf = random_crf(k, seed, allowed)
        t = max(lengths)
        emissions = torch.randn(len(lengths), t, k, dtype=torch.float64) * 2
        mask = right_padded_mask(lengths, t)
        log_z, best = brute_force(crf, emissions, lengths, constrained)
        # a gold path: the best legal one for half the rows, a random legal one for the others
        tags = torch.full((len(lengths), t), -100, dtype=torch.long)
        for b, length in enumerate(lengths):
            path = best[b]
            if b % 2:
                every = itertools.product(range(k), repeat=length)
                legal = [p for p in every if not constrained or path_allowed(crf, p)]
                path = list(legal[torch.randint(len(legal), ()).item()])
            tags[b, :length] = torch.tensor(path)
        gold = torch.stack([path_score(crf, emissions[b], tags[b, :n].tolist()) for b, n in enumerate(lengths)])
        with torch.no_grad():
            ll = crf.log_likelihood(emissions, tags, mask)
            decoded = crf.decode(emissions, mask)
        torch.testing.assert_close(ll, gold - log_z, rtol=1e-10, atol=1e-10)
        for b, length in enumerate(lengths):
            assert decoded[b, :length].tolist() == best[b]
            assert (decoded[b, length:] == -1).all()


def test_float32_matches_float64_brute_force():
    crf = random_crf(3, 7)
    emissions = torch.randn(2, 4, 3, dtype=torch.float64)
    mask = right_padded_mask([4, 2], 4)
    log_z, best = brute_force(crf, emissions, [4, 2], False)
    tags = torch.tensor([best[0], best[1] + [0, 0]])
    crf32 = crf.float()
    ll = crf32.log_likelihood(emissions.float(), tags, mask)
    assert ll.dtype == torch.float32
    gold = torch.stack([path_score(crf, emissions[b], best[b]) for b in range(2)])
    torch.testing.assert_close(ll.double(), gold - log_z, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# agreement with pytorch-crf
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("b,t,k", [(8, 37, 5), (16, 64, 9), (4, 129, 3), (5, 1, 4)])
def test_agrees_with_pytorch_crf(b, t, k, dtype):
    torchcrf = pytest.importorskip("torchcrf")
    torch.manual_seed(b * 1000 + t * 10 + k)
    ref = torchcrf.CRF(k, batch_first=True).to(dtype)
    ours = LinearChainCRF(k).to(dtype)
    with torch.no_grad():
        for name in ("start_transitions", "end_transitions", "transitions"):
            getattr(ours, name).copy_(getattr(ref, name))
    lengths = torch.randint(1, t + 1, (b,))
    lengths[0] = t
    mask = torch.arange(t)[None] < lengths[:, None]
    tags = torch.randint(k, (b, t))
    em_ref = (torch.randn(b, t, k, dtype=dtype) * 3).requires_grad_()
    em_ours = em_ref.detach().clone().requires_grad_()

    ll_ref = ref(em_ref, tags, mask, reduction="none")
    ll_ours = ours.log_likelihood(em_ours, tags.masked_fill(~mask, -100), mask)
    torch.testing.assert_close(ll_ours, ll_ref, rtol=1e-4, atol=0)

    ll_ref.sum().backward()
    ll_ours.sum().backward()
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(em_ours.grad, em_ref.grad, **tol)
    for name in ("start_transitions", "end_transitions", "transitions"):
        expected = getattr(ref, name).grad
        if expected is None:  # pytorch-crf leaves transitions out of the graph when T == 1
            expected = torch.zeros_like(getattr(ours, name))
        torch.testing.assert_close(getattr(ours, name).grad, expected, **tol)

    paths = ours.decode(em_ours.detach(), mask)
    for row, path in enumerate(ref.decode(em_ref.detach(), mask)):
        assert paths[row, : len(path)].tolist() == path
        assert (paths[row, len(path) :] == -1).all()


# ---------------------------------------------------------------------------------------------------------------
# hand-written backward
# ---------------------------------------------------------------------------------------------------------------


def test_gradcheck_log_likelihood_function():
    torch.manual_seed(0)
    k, lengths = 3, [5, 3, 1]
    mask = right_padded_mask(lengths, 5)
    gold = torch.randint(k, (3, 5)).masked_fill(~mask, 0)
    inputs = [
        torch.randn(3, 5, k, dtype=torch.float64, requires_grad=True),
        torch.randn(k, dtype=torch.float64, requires_grad=True),
        torch.randn(k, k, dtype=torch.float64, requires_grad=True),
        torch.randn(k, dtype=torch.float64, requires_grad=True),
    ]

    def terms(em, start, trans, end):  # (gold score, log Z): both gradients written by hand
        return _LogLikelihood.apply(em, gold, mask, start, trans, end)

    def log_likelihood(*args):
        score, log_z = terms(*args)
        return score - log_z

    assert torch.autograd.gradcheck(terms, inputs)
    em, params = inputs[0], inputs[1:]
    reference = gold_score(em, gold, mask, *params) - _log_partition_log_space(em, mask, *params)
    torch.testing.assert_close(log_likelihood(*inputs), reference)


def test_gradcheck_through_module_with_constraints():
    allowed = allowed_transitions(["O", "B-A", "I-A", "B-B", "I-B"], "BIO")
    crf = random_crf(5, 3, allowed)
    mask = right_padded_mask([6, 4], 6)
    tags = torch.tensor([[1, 2, 0, 3, 4, 4], [0, 1, 2, 2, -100, -100]])
    em = torch.randn(2, 6, 5, dtype=torch.float64, requires_grad=True)
    params = [crf.start_transitions, crf.transitions, crf.end_transitions]
    # analytic gradients against finite differences of the module itself
    loss = crf(em, tags, mask, reduction="sum")
    grads = torch.autograd.grad(loss, [em] + params)
    eps = 1e-6
    for tensor, grad in zip([em] + params, grads):
        flat = tensor.detach().view(-1)
        for i in range(0, flat.numel(), max(1, flat.numel() // 7)):
            with torch.no_grad():
                old = flat[i].item()
                flat[i] = old + eps
                up = crf(em, tags, mask, reduction="sum").item()
                flat[i] = old - eps
                down = crf(em, tags, mask, reduction="sum").item()
                flat[i] = old
            assert grad.view(-1)[i].item() == pytest.approx((up - down) / (2 * eps), abs=1e-6)
    # forbidden moves get no gradient on their raw parameter
    assert (grads[2][~crf.transition_allowed] == 0).all()


# ---------------------------------------------------------------------------------------------------------------
# constraints
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", sorted(LABELS))
def test_decoded_paths_are_valid(scheme):
    labels = LABELS[scheme]
    crf = LinearChainCRF(len(labels), allowed_transitions(labels, scheme))
    torch.manual_seed(1)
    lengths = torch.randint(1, 30, (64,))
    mask = torch.arange(30)[None] < lengths[:, None]
    emissions = torch.randn(64, 30, len(labels)) * 5
    paths = crf.decode(emissions, mask)
    for row, length in enumerate(lengths.tolist()):
        assert valid_sequence([labels[i] for i in paths[row, :length].tolist()], scheme)
    # without constraints some of these random paths are invalid: the test has teeth
    free = LinearChainCRF(len(labels))
    free_paths = free.decode(emissions, mask)
    free_labels = [[labels[i] for i in free_paths[row, :n].tolist()] for row, n in enumerate(lengths.tolist())]
    assert not all(valid_sequence(sequence, scheme) for sequence in free_labels)


def test_illegal_gold_path_gets_hugely_negative_log_likelihood():
    labels = ["O", "B-PER", "I-PER"]
    crf = LinearChainCRF(3, allowed_transitions(labels, "BIO"))
    emissions = torch.randn(2, 4, 3)
    mask = torch.ones(2, 4, dtype=torch.bool)
    tags = torch.tensor([[0, 2, 2, 0], [1, 2, 0, 0]])  # O -> I-PER is illegal in row 0
    ll = crf.log_likelihood(emissions, tags, mask)
    assert ll[0] < -5000 and -20 < ll[1] < 0
    loss = crf(emissions.requires_grad_(), tags, mask)
    loss.backward()
    assert torch.isfinite(emissions.grad).all() and torch.isfinite(crf.transitions.grad).all()


def test_constraints_off_means_all_allowed_and_buffers_persist(tmp_path):
    crf = LinearChainCRF(4)
    assert crf.start_allowed.all() and crf.transition_allowed.all() and crf.end_allowed.all()
    labels = ["O", "B-A", "I-A", "X"]
    constrained = LinearChainCRF(4, allowed_transitions(labels, "BIO"))
    state = constrained.state_dict()
    assert {"start_allowed", "transition_allowed", "end_allowed"} <= set(state)
    torch.save(state, tmp_path / "crf.pt")
    restored = LinearChainCRF(4)
    restored.load_state_dict(torch.load(tmp_path / "crf.pt"))
    for name, value in constrained.state_dict().items():
        assert torch.equal(restored.state_dict()[name], value), name
    assert "constrained=True" in repr(constrained) and "constrained=False" in repr(crf)


def test_reset_parameters_range():
    crf = LinearChainCRF(20)
    for p in (crf.start_transitions, crf.end_transitions, crf.transitions):
        assert p.abs().max() <= 0.1 and p.std() > 0.01


def test_no_legal_path_still_finite():
    # BIOES without O/S: a one-token sequence has no legal path; Z is about exp(-10000) (log-space fallback)
    labels = ["B-PER", "I-PER", "E-PER"]
    crf = LinearChainCRF(3, allowed_transitions(labels, "BIOES"))
    emissions = torch.randn(2, 3, 3, requires_grad=True)
    mask = right_padded_mask([1, 3], 3)
    tags = torch.tensor([[0, -100, -100], [0, 1, 2]])
    ll = crf.log_likelihood(emissions, tags, mask)
    assert torch.isfinite(ll).all()
    assert ll[1] > -20  # the legal row is unaffected
    ll.sum().backward()
    assert torch.isfinite(emissions.grad).all()
    assert crf.decode(emissions.detach(), mask)[1].tolist() == [0, 1, 2]


# ---------------------------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------------------------


def test_errors():
    crf = LinearChainCRF(3)
    em = torch.randn(2, 4, 3)
    tags = torch.zeros(2, 4, dtype=torch.long)
    good = torch.ones(2, 4, dtype=torch.bool)
    holes = torch.tensor([[1, 1, 1, 1], [1, 0, 1, 0]], dtype=torch.bool)
    with pytest.raises(ValueError, match=r"right-padded.*row 1"):
        crf.log_likelihood(em, tags, holes)
    with pytest.raises(ValueError, match=r"right-padded.*row 1"):
        crf.decode(em, holes)
    empty = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    with pytest.raises(ValueError, match=r"row 1 has no tokens"):
        crf.decode(em, empty)
    with pytest.raises(ValueError, match=r"no tokens"):
        crf.decode(torch.randn(2, 0, 3), torch.ones(2, 0, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"0\.\.2.*row 0.*\[3\]"):
        crf.log_likelihood(em, torch.tensor([[0, 3, 0, 0], [0, 0, 0, 0]]), good)
    with pytest.raises(ValueError, match=r"0\.\.2.*row 1.*\[-1\]"):
        crf.log_likelihood(em, torch.tensor([[0, 0, 0, 0], [0, 0, -1, 0]]), good)
    # out-of-range tags outside the mask are fine
    short = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]]).bool()
    crf.log_likelihood(em, torch.tensor([[0, 0, -100, 7], [0, 0, 0, 0]]), short)
    with pytest.raises(ValueError, match=r"3 tags"):
        LinearChainCRF(4).decode(em, good)
    with pytest.raises(ValueError, match=r"mask must have shape"):
        crf.decode(em, good[:, :3])
    with pytest.raises(ValueError, match=r"tags must have shape"):
        crf.log_likelihood(em, tags[:1], good)
    with pytest.raises(ValueError, match=r"emissions must have shape"):
        crf.decode(em[0], good[0])
    with pytest.raises(ValueError, match=r"reduction"):
        crf(em, tags, good, reduction="token_mean")
    with pytest.raises(ValueError, match=r"num_tags"):
        LinearChainCRF(0)
    with pytest.raises(ValueError, match=r"transition_allowed must have shape"):
        LinearChainCRF(3, (torch.ones(3), torch.ones(2, 2), torch.ones(3)))


# ---------------------------------------------------------------------------------------------------------------
# numerics, dtypes, reductions
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("constrained", [False, True])
def test_long_sequences_with_large_emissions_are_finite_and_exact(constrained):
    labels = LABELS["BIO"]
    crf = LinearChainCRF(len(labels), allowed_transitions(labels, "BIO") if constrained else None)
    torch.manual_seed(0)
    lengths = [512, 300, 511, 1]
    mask = right_padded_mask(lengths, 512)
    emissions = (torch.randn(4, 512, len(labels)) * 30).requires_grad_()
    tags = crf.decode(emissions.detach(), mask)  # the best path: a legal gold path
    tags[1, 400] = 2  # and one other tag (possibly illegal)
    tags = tags.masked_fill(~mask, -100)
    ll = crf.log_likelihood(emissions, tags, mask)
    assert torch.isfinite(ll).all()
    ll.sum().backward()
    assert torch.isfinite(emissions.grad).all() and torch.isfinite(crf.transitions.grad).all()
    with torch.no_grad():  # exact reference: the log-space forward algorithm in float64
        em64 = emissions.double()
        start, trans, end = (p.double() for p in crf.effective_scores())
        gold = tags.masked_fill(~mask, 0)
        score = gold_score(em64, gold, mask, start, trans, end)
        reference = score - _log_partition_log_space(em64, mask, start, trans, end)
        torch.testing.assert_close(crf.log_likelihood(em64, tags, mask), reference, rtol=1e-12, atol=1e-9)
        torch.testing.assert_close(ll.double(), reference, rtol=1e-6, atol=1e-3)
    saturated = torch.full((2, 512, len(labels)), -50.0)
    saturated[:, ::2, 1] = 50.0
    assert torch.isfinite(crf(saturated, torch.zeros(2, 512, dtype=torch.long), None, reduction="none")).all()


def test_dtype_device_and_reductions():
    crf = LinearChainCRF(4)
    em = torch.randn(3, 5, 4, dtype=torch.float64)
    tags = torch.randint(4, (3, 5))
    mask = right_padded_mask([5, 2, 3], 5)
    ll = crf.log_likelihood(em, tags, mask)
    assert ll.dtype == torch.float64 and ll.shape == (3,) and ll.device == em.device
    assert crf.decode(em, mask).dtype == torch.long
    assert crf(em, tags, mask).shape == ()
    torch.testing.assert_close(crf(em, tags, mask), -ll.mean())
    torch.testing.assert_close(crf(em, tags, mask, reduction="sum"), -ll.sum())
    torch.testing.assert_close(crf(em, tags, mask, reduction="none"), -ll)
    # the mask may be omitted (all tokens) or given as 0/1 integers
    full = crf.log_likelihood(em, tags)
    torch.testing.assert_close(full, crf.log_likelihood(em, tags, torch.ones(3, 5, dtype=torch.uint8)))
    half = crf.log_likelihood(em.half(), tags, mask)
    assert half.dtype == torch.float16
    assert crf.decode(em.bfloat16(), mask).shape == (3, 5)
    assert crf.decode(em[:0], mask[:0]).shape == (0, 5)


@pytest.mark.parametrize("crf_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_emissions_and_parameters(dtype, crf_dtype):
    """A bf16/fp16 encoder (and a CRF cast with its model, as pipeline(..., dtype=torch.bfloat16) does): decode,
    log-likelihood (with gradients) and marginals run, in float32/float64 inside, and equal the float32 results on
    the same rounded numbers."""
    labels = LABELS["BIO"]
    crf = random_crf(len(labels), 2, allowed_transitions(labels, "BIO"), dtype=crf_dtype)
    reference = random_crf(len(labels), 2, allowed_transitions(labels, "BIO"), dtype=crf_dtype).float()
    mask = right_padded_mask([6, 3], 6)
    emissions = (torch.randn(2, 6, len(labels)) * 3).to(dtype)
    tags = reference.decode(emissions.float(), mask)
    assert torch.equal(crf.decode(emissions, mask), tags)
    em = emissions.clone().requires_grad_()
    ll = crf.log_likelihood(em, tags.masked_fill(~mask, -100), mask)
    ll.sum().backward()
    assert ll.dtype == dtype and em.grad.dtype == dtype and crf.transitions.grad.dtype == crf_dtype
    expected = reference.log_likelihood(emissions.float(), tags.masked_fill(~mask, -100), mask)
    torch.testing.assert_close(ll.float(), expected, rtol=1e-2, atol=1e-2)
    marginals = crf.marginals(emissions, mask)
    assert marginals.dtype == torch.float32
    torch.testing.assert_close(marginals, reference.marginals(emissions.float(), mask), rtol=0, atol=1e-6)


def test_padding_shared_by_all_rows_is_ignored():
    crf = random_crf(4, 5, dtype=torch.float32)
    em = torch.randn(3, 10, 4, requires_grad=True)
    tags = torch.randint(4, (3, 10))
    mask = right_padded_mask([4, 2, 3], 10)
    with torch.no_grad():
        em[:, 4:] = float("nan")  # never read
        em[1, 2:4] = float("nan")  # masked: must not leak into row 1
    ll = crf.log_likelihood(em, tags, mask)
    torch.testing.assert_close(ll, crf.log_likelihood(em[:, :4], tags[:, :4], mask[:, :4]))
    ll.sum().backward()
    assert torch.isfinite(em.grad).all() and (em.grad[:, 4:] == 0).all()
    paths = crf.decode(em.detach(), mask)
    assert paths.shape == (3, 10) and (paths[:, 4:] == -1).all()
    assert torch.equal(paths[:, :4], crf.decode(em.detach()[:, :4], mask[:, :4]))
    clean = em.detach()[1:2, :2]
    assert torch.equal(paths[1:2, :2], crf.decode(clean))
    torch.testing.assert_close(ll[1:2], crf.log_likelihood(clean, tags[1:2, :2]))


# ---------------------------------------------------------------------------------------------------------------
# every algorithm the dispatcher can choose, tested directly (issue 15)
# ---------------------------------------------------------------------------------------------------------------


def score_of_paths(crf, emissions, paths, mask):
    """Score (B,) of decoded paths (B, T) (-1 outside the mask) under the effective scores, in float64."""
    start, trans, end = (p.detach().double() for p in crf.effective_scores())
    em = emissions.double()
    scores = []
    for b in range(em.shape[0]):
        path = paths[b][mask[b]]
        steps = torch.arange(len(path))
        scores.append(start[path[0]] + em[b, steps, path].sum() + trans[path[:-1], path[1:]].sum() + end[path[-1]])
    return torch.stack(scores)


@pytest.mark.parametrize("algorithm", VITERBI_ALGORITHMS)
@pytest.mark.parametrize("constrained", [False, True])
@pytest.mark.parametrize("k,lengths", [(1, [3, 1]), (2, [5, 2, 1]), (3, [4, 4, 3, 1]), (4, [3, 4, 2]), (3, [6, 5])])
def test_every_viterbi_algorithm_matches_brute_force(algorithm, constrained, k, lengths):
    for seed in range(3):
        crf, emissions, mask = random_case(k, lengths, seed, constrained)
        _, best = brute_force(crf, emissions, lengths, constrained)
        paths = crf.decode(emissions, mask, algorithm=algorithm)
        for b, length in enumerate(lengths):
            assert paths[b, :length].tolist() == best[b]
            assert (paths[b, length:] == -1).all()


@pytest.mark.parametrize("constrained", [False, True])
@pytest.mark.parametrize("k,lengths", [(1, [3, 1]), (2, [5, 2, 1]), (3, [4, 4, 3, 1]), (4, [3, 4, 2])])
def test_log_likelihood_matches_brute_force_with_ragged_rows(constrained, k, lengths):
    for seed in range(3):
        crf, emissions, mask = random_case(k, lengths, seed, constrained)
        log_z, best = brute_force(crf, emissions, lengths, constrained)
        tags = torch.full(mask.shape, -100, dtype=torch.long)
        for b, length in enumerate(lengths):
            tags[b, :length] = torch.tensor(best[b])
        gold = torch.stack([path_score(crf, emissions[b], best[b]) for b in range(len(lengths))])
        with torch.no_grad():
            ll = crf.log_likelihood(emissions, tags, mask)
        torch.testing.assert_close(ll, gold - log_z, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("constrained", [False, True])
@pytest.mark.parametrize("k,lengths", [(1, [3, 1]), (3, [4, 4, 3, 1]), (4, [3, 4, 2])])
def test_marginals_match_brute_force(constrained, k, lengths):
    """p(y_t = k) as the share of exp(score) of the (legal) paths through tag k at t, by enumeration."""
    for seed in range(2):
        crf, emissions, mask = random_case(k, lengths, seed, constrained)
        expected = torch.zeros_like(emissions)
        for b, length in enumerate(lengths):
            paths = enumerate_paths(crf, length, constrained)
            weights = torch.stack([path_score(crf, emissions[b], p) for p in paths]).softmax(0)
            for path, weight in zip(paths, weights):
                expected[b, torch.arange(length), torch.tensor(path)] += weight
        marginals = crf.marginals(emissions, mask)
        assert marginals.dtype == torch.float64 and not marginals.requires_grad
        torch.testing.assert_close(marginals, expected, rtol=1e-9, atol=1e-10)
    single = crf.marginals(emissions.float(), mask)  # float32
    torch.testing.assert_close(single, expected.float(), rtol=1e-4, atol=1e-5)


# Shapes around every crossover of the dispatcher, and the edges (one token, one tag, all rows full).
AGREEMENT_SHAPES = [
    (1, 1, 3), (3, 2, 1), (1, 16, 5), (4, 9, 2), (2, 17, 9), (5, 33, 21), (3, 70, 5), (2, 40, 41), (17, 12, 33)
]


@pytest.mark.parametrize("b,t,k", AGREEMENT_SHAPES)
def test_every_algorithm_agrees_with_pytorch_crf(b, t, k):
    """log-likelihood within 1e-4 relative and gradients close, Viterbi path scores equal within rounding."""
    torchcrf = pytest.importorskip("torchcrf")
    torch.manual_seed(b * 1000 + t * 10 + k)
    ref = torchcrf.CRF(k, batch_first=True)
    ours = LinearChainCRF(k)
    with torch.no_grad():
        for name in ("start_transitions", "end_transitions", "transitions"):
            getattr(ours, name).copy_(getattr(ref, name).normal_())
    lengths = torch.randint(1, t + 1, (b,))
    lengths[0] = t
    mask = torch.arange(t)[None] < lengths[:, None]
    tags = torch.randint(k, (b, t))
    emissions = torch.randn(b, t, k) * 3
    em_ref = emissions.clone().requires_grad_()
    ll_ref = ref(em_ref, tags, mask, reduction="none")
    ll_ref.sum().backward()
    em = emissions.clone().requires_grad_()
    ll = ours.log_likelihood(em, tags.masked_fill(~mask, -100), mask)
    torch.testing.assert_close(ll, ll_ref, rtol=1e-4, atol=0)
    ll.sum().backward()
    torch.testing.assert_close(em.grad, em_ref.grad, rtol=1e-4, atol=1e-4)
    expected = ref.transitions.grad if ref.transitions.grad is not None else torch.zeros(k, k)
    torch.testing.assert_close(ours.transitions.grad, expected, rtol=1e-4, atol=1e-4)
    reference_paths = ref.decode(emissions, mask)
    padded = torch.full((b, t), -1, dtype=torch.long)
    for row, path in enumerate(reference_paths):
        padded[row, : len(path)] = torch.tensor(path)
    reference_scores = score_of_paths(ours, emissions, padded, mask)
    for algorithm in VITERBI_ALGORITHMS:
        paths = ours.decode(emissions, mask, algorithm=algorithm)
        assert (paths[~mask] == -1).all() and (paths[mask] >= 0).all()
        # ties within float32 rounding may pick another path: compare scores, not paths
        torch.testing.assert_close(score_of_paths(ours, emissions, paths, mask), reference_scores,
                                   rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("constrained", [False, True])
def test_log_likelihood_is_exact_with_large_emissions_in_float64(constrained):
    labels = LABELS["BIOES"]
    crf = random_crf(len(labels), 4, allowed_transitions(labels, "BIOES") if constrained else None)
    torch.manual_seed(1)
    lengths = [200, 71, 1, 199]
    mask = right_padded_mask(lengths, 200)
    emissions = torch.randn(4, 200, len(labels), dtype=torch.float64) * 30
    tags = crf.decode(emissions, mask).masked_fill(~mask, -100)
    em = emissions.clone().requires_grad_()
    ll = crf.log_likelihood(em, tags, mask)
    ll.sum().backward()
    assert torch.isfinite(em.grad).all() and torch.isfinite(crf.transitions.grad).all()
    start, trans, end = (p.detach() for p in crf.effective_scores())
    gold = tags.masked_fill(~mask, 0)
    reference = gold_score(emissions, gold, mask, start, trans, end) - _log_partition_log_space(
        emissions, mask, start, trans, end)
    torch.testing.assert_close(ll.detach(), reference, rtol=1e-12, atol=1e-9)


def test_log_likelihood_ignores_whatever_padding_holds():
    crf = random_crf(4, 5, dtype=torch.float32)
    em = torch.randn(3, 10, 4, requires_grad=True)
    tags = torch.randint(4, (3, 10))
    mask = right_padded_mask([10, 2, 7], 10)
    with torch.no_grad():
        em[1, 2:] = float("nan")
        em[2, 7:] = float("inf")
    ll = crf.log_likelihood(em, tags, mask)
    ll.sum().backward()
    assert torch.isfinite(ll).all() and torch.isfinite(em.grad).all() and (em.grad[~mask] == 0).all()
    for row, length in ((1, 2), (2, 7)):
        clean = em.detach()[row : row + 1, :length]
        torch.testing.assert_close(ll[row : row + 1], crf.log_likelihood(clean, tags[row : row + 1, :length]))


@pytest.mark.parametrize("algorithm", VITERBI_ALGORITHMS)
def test_every_viterbi_algorithm_breaks_ties_and_keeps_constraints(algorithm):
    labels = LABELS["BIO"]
    crf = LinearChainCRF(len(labels), allowed_transitions(labels, "BIO"))
    with torch.no_grad():
        for p in (crf.start_transitions, crf.transitions, crf.end_transitions):
            p.zero_()
    zeros = torch.zeros(2, 7, len(labels))
    mask = right_padded_mask([7, 4], 7)
    assert crf.decode(zeros, mask, algorithm=algorithm).tolist() == [[0] * 7, [0] * 4 + [-1] * 3]
    # emissions that favour an illegal I-x after O: the path stays legal
    em = torch.zeros(1, 5, len(labels))
    em[0, :, labels.index("I-PER")] = 5.0
    path = crf.decode(em, algorithm=algorithm)[0].tolist()
    assert valid_sequence([labels[i] for i in path], "BIO")


def test_viterbi_choice_is_a_known_algorithm_and_used(monkeypatch):
    for b in (1, 8, 32, 128):
        for t in (1, 2, 16, 64, 128, 512):
            for k in (1, 5, 9, 21, 41, 73, 133):
                assert choose_viterbi(b, t, k) in VITERBI_ALGORITHMS
    # few rows or few short rows: the plain recursion; batches with few tags: meet in the middle in numpy; with many
    # tags: meet in the middle in torch
    assert choose_viterbi(1, 16, 21) == "numpy"
    assert choose_viterbi(4, 512, 133) == "numpy"
    assert choose_viterbi(32, 128, 9) == "numpy_batched"
    assert choose_viterbi(32, 128, 73) == "torch_batched"
    assert choose_viterbi(8, 16, 21) == "numpy"
    assert choose_viterbi(1, 16, 133) == "numpy"
    assert choose_viterbi(8, 16, 41) == "torch_batched"
    # the module asks with the longest row's length, not the padded one
    asked = []
    monkeypatch.setattr(crf_module, "choose_viterbi", lambda b, t, k: asked.append((b, t, k)) or "numpy")
    LinearChainCRF(3).decode(torch.randn(2, 9, 3), right_padded_mask([5, 3], 9))
    assert asked == [(2, 5, 3)]


def test_unknown_algorithm_is_named():
    crf = LinearChainCRF(3)
    em = torch.randn(2, 4, 3)
    with pytest.raises(ValueError, match="algorithm must be one of .*'bogus'"):
        crf.decode(em, algorithm="bogus")


def test_crf_file_imports_only_torch_numpy_and_the_standard_library():
    """crf.py is copied next to saved weights: nothing of this package, nothing but torch, numpy (which
    transformers requires) and the standard library."""
    import ast
    import sys
    from pathlib import Path

    tree = ast.parse(Path(crf_module.__file__).read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "crf.py needs no sibling"
            modules.add(node.module.split(".")[0])
    assert modules <= {"torch", "numpy"} | set(sys.stdlib_module_names), modules
