"""Speed of hf_bert_tasks.modeling.crf.LinearChainCRF against pytorch-crf 0.7.2 on the CPU.

    python benchmarks/crf_speed.py [--batch 32 --length 128 --tags 9 --repeats 200 --block 10 --threads N
                                    --output benchmarks/results/crf_speed.json]

Both implementations get the same random case (float32 emissions, mask lengths drawn between --min-length and
--length, transition parameters copied from pytorch-crf into ours). Agreement is checked first (log-likelihood
within 1e-4 relative, identical Viterbi paths, close gradients); the script stops if they disagree. Then each
measure runs --repeats times per implementation, in interleaved blocks of --block consecutive calls (each timed
warm, as in a loop; a change in machine load between blocks hits both alike):

- decode: Viterbi paths (pytorch-crf returns lists, ours a (B, T) tensor);
- ll_forward: log-likelihood summed over the batch, under torch.no_grad();
- ll_forward_backward: the same plus loss.backward() into the emissions and the three CRF parameters.

Reported: the median milliseconds per call of each, speed-up = pytorch-crf median / ours, and the median of the
per-round speed-ups. Timings mean something only on an otherwise idle machine; the load average before and after
the run goes into the JSON.
"""

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ("start_transitions", "end_transitions", "transitions")


def load_crf_module():
    # crf.py is self-contained (torch only): load it by path, without importing the package (and transformers).
    spec = importlib.util.spec_from_file_location("hf_bert_tasks_crf", ROOT / "hf_bert_tasks" / "modeling" / "crf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def version_of(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def build_case(args):
    generator = torch.Generator().manual_seed(args.seed)
    b, t, k = args.batch, args.length, args.tags
    emissions = torch.randn(b, t, k, generator=generator)
    tags = torch.randint(k, (b, t), generator=generator)
    lengths = torch.randint(args.min_length, t + 1, (b,), generator=generator)
    lengths[0] = t  # one full row, so that the padded length is --length
    mask = torch.arange(t)[None, :] < lengths[:, None]
    return emissions, tags, mask


def check_agreement(ref, ours, emissions, tags, mask):
    em_ref = emissions.clone().requires_grad_()
    em_ours = emissions.clone().requires_grad_()
    ll_ref = ref(em_ref, tags, mask, reduction="none")
    ll_ours = ours.log_likelihood(em_ours, tags, mask)
    rel = ((ll_ours - ll_ref).abs() / ll_ref.abs()).max().item()
    ll_ref.sum().backward()
    ll_ours.sum().backward()
    # each gradient's largest difference relative to its largest entry; pytorch-crf runs in float32 (ours in
    # float64), and its rounding error grows with the length: about 3e-4 at T = 512
    pairs = [(em_ours.grad, em_ref.grad)] + [(getattr(ours, n).grad, getattr(ref, n).grad) for n in PARAMS]
    grad_diff = max(((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item() for a, b in pairs)
    paths_ref = ref.decode(emissions, mask)
    paths_ours = ours.decode(emissions, mask)
    same_paths = all(paths_ours[i, : len(p)].tolist() == p for i, p in enumerate(paths_ref))
    same_paths = same_paths and bool((paths_ours[~mask] == -1).all())
    for module in (ref, ours):
        module.zero_grad(set_to_none=True)
    problems = []
    if not rel <= 1e-4:
        problems.append(f"log-likelihood differs by {rel:.2e} relative")
    if not grad_diff <= 1e-3:
        problems.append(f"gradients differ by {grad_diff:.2e} relative")
    if not same_paths:
        problems.append("Viterbi paths differ")
    return {"ll_max_rel_diff": rel, "grad_max_rel_diff": grad_diff, "same_paths": same_paths}, problems


def make_calls(crf, emissions, tags, mask):
    em_grad = emissions.clone().requires_grad_()

    def decode():
        crf.decode(emissions, mask)

    def ll_forward():
        with torch.no_grad():
            crf(emissions, tags, mask, reduction="sum")

    def ll_forward_backward():
        loss = -crf(em_grad, tags, mask, reduction="sum")
        loss.backward()

    def reset():
        em_grad.grad = None
        crf.zero_grad(set_to_none=True)

    return {"decode": decode, "ll_forward": ll_forward, "ll_forward_backward": ll_forward_backward}, reset


def time_in_blocks(ref_call, our_call, reset, repeats, block, warmup):
    """Per-call milliseconds of both, in interleaved blocks.

    Each round times `block` consecutive calls of one implementation, then of the other (which goes first
    alternates), after one untimed call: each is timed warm, as a loop that calls it would see it, while a change
    in machine load between rounds hits both alike. Returns (ref_times, our_times, per-round ratios).
    """
    for _ in range(warmup):
        for call in (ref_call, our_call):
            reset()
            call()
    ref_times, our_times, ratios = [], [], []
    for round_index in range(max(1, repeats // block)):
        pair = [(ref_call, []), (our_call, [])]
        for call, times in pair if round_index % 2 == 0 else pair[::-1]:
            reset()
            call()
            for _ in range(block):
                reset()
                start = time.perf_counter()
                call()
                times.append((time.perf_counter() - start) * 1e3)
        ref_times += pair[0][1]
        our_times += pair[1][1]
        ratios.append(statistics.median(pair[0][1]) / statistics.median(pair[1][1]))
    return ref_times, our_times, ratios


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32, help="sequences per batch")
    parser.add_argument("--length", type=int, default=128, help="padded sequence length T")
    parser.add_argument("--min-length", type=int, default=None, help="shortest row (default: length // 2)")
    parser.add_argument("--tags", type=int, default=9, help="number of tags K")
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per implementation and measure")
    parser.add_argument("--block", type=int, default=10, help="consecutive timed calls of one implementation")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls of each first")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: leave as is)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "crf_speed.json")
    args = parser.parse_args()
    if args.min_length is None:
        args.min_length = max(1, args.length // 2)

    try:
        import torchcrf
    except ImportError:
        sys.exit("pytorch-crf is needed for the comparison: pip install pytorch-crf==0.7.2")
    crf_module = load_crf_module()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    torch.manual_seed(args.seed)
    ref = torchcrf.CRF(args.tags, batch_first=True)
    ours = crf_module.LinearChainCRF(args.tags)
    with torch.no_grad():
        for name in PARAMS:
            getattr(ours, name).copy_(getattr(ref, name))
    emissions, tags, mask = build_case(args)

    agreement, problems = check_agreement(ref, ours, emissions, tags, mask)
    if problems:
        sys.exit("implementations disagree, not timing: " + "; ".join(problems))

    load_before = os.getloadavg()
    ref_calls, ref_reset = make_calls(ref, emissions, tags, mask)
    our_calls, our_reset = make_calls(ours, emissions, tags, mask)

    def reset():
        ref_reset()
        our_reset()

    results = {}
    for measure in ("decode", "ll_forward", "ll_forward_backward"):
        ref_times, our_times, ratios = time_in_blocks(
            ref_calls[measure], our_calls[measure], reset, args.repeats, args.block, args.warmup
        )
        ref_ms, our_ms = statistics.median(ref_times), statistics.median(our_times)
        results[measure] = {
            "pytorch_crf_ms": ref_ms,
            "ours_ms": our_ms,
            "speedup": ref_ms / our_ms,
            # median of the per-round ratios: robust to load that changes during the run
            "per_round_speedup_median": statistics.median(ratios),
            "per_round_speedup_min": min(ratios),
        }
    load_after = os.getloadavg()

    print(
        f"B={args.batch} T={args.length} (rows {args.min_length}..{args.length}) K={args.tags} float32, "
        f"{torch.get_num_threads()} threads, {args.repeats} repeats, "
        f"load average {load_before[0]:.2f} -> {load_after[0]:.2f}"
    )
    print(f"{'measure':<22}{'pytorch-crf ms':>16}{'ours ms':>10}{'speed-up':>10}{'per round':>11}")
    for measure, r in results.items():
        print(f"{measure:<22}{r['pytorch_crf_ms']:>16.3f}{r['ours_ms']:>10.3f}{r['speedup']:>9.2f}x"
              f"{r['per_round_speedup_median']:>10.2f}x")

    report = {
        "case": {"batch": args.batch, "length": args.length, "min_length": args.min_length, "tags": args.tags,
                 "dtype": "float32", "seed": args.seed, "repeats": args.repeats, "block": args.block,
                 "warmup": args.warmup},
        "versions": {
            "hf_bert_tasks": version_of("hf_bert_tasks"),
            "pytorch_crf": getattr(torchcrf, "__version__", version_of("pytorch-crf")),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "machine": {"threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "load_average_before": load_before, "load_average_after": load_after},
        "agreement": agreement,
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
