"""Speed of hf_bert_tasks.modeling.crf.LinearChainCRF against pytorch-crf 0.7.2 on the CPU, at one shape or a grid.

    python benchmarks/crf_speed.py [--batch 32 --length 128 --tags 9 --repeats 200 --block 10 --threads N]
    python benchmarks/crf_speed.py --grid [--threads 2]      # 96 shapes, about 10-15 minutes; JSON + heat maps
    python benchmarks/crf_speed.py --grid --crossovers       # our algorithms against each other (no pytorch-crf)
    python benchmarks/crf_speed.py --memory                  # peak memory of forward + backward, both libraries
    python benchmarks/crf_speed.py --points 1x16x21,8x64x41  # a few grid points again (crf_speed_points.json)
    python benchmarks/crf_speed.py --smoke                   # proves it runs (tiny grid; results in {tmp})

Both implementations get the same random case (float32 emissions, mask lengths drawn between --min-length and
the length, transition parameters copied from pytorch-crf into ours). Agreement is checked first: log-likelihood
within 1e-4 relative, close gradients, and Viterbi paths whose scores (computed in float64 from the same
parameters) are equal within float32 rounding; paths themselves may differ where two paths tie. The script stops
if they disagree. Then each measure runs per implementation in interleaved blocks of --block consecutive calls
(each timed warm, as in a loop; which goes first alternates, so a change in machine load hits both alike):

- decode: Viterbi paths (pytorch-crf returns lists, ours a (B, T) tensor);
- ll_forward: log-likelihood summed over the batch, under torch.no_grad() (single shape only);
- ll_forward_backward: the same plus loss.backward() into the emissions and the three CRF parameters.

Reported: the median milliseconds per call, speed-up = pytorch-crf median / ours, and the median of the per-round
speed-ups. On the grid, each point gets about --point-seconds per measure (at least one round, at most --repeats
calls each), so the big points run few calls; the grid JSON (benchmarks/results/crf_speed_grid.json) holds every
point and a heat map per measure is drawn next to it (crf_speed_decode.png, crf_speed_ll_forward_backward.png).
Timings mean something only on an otherwise idle machine; the load average before and after goes into the JSON.

--crossovers times every Viterbi algorithm the CRF can choose (``decode(..., algorithm=)``) against each other over
the grid and prints, per point, the fastest and the one ``choose_viterbi`` picks: the crossovers in
hf_bert_tasks/modeling/crf.py come from this (the log-likelihood has one algorithm).

--memory runs forward + backward once per library in a fresh subprocess and reports the peak resident memory
above the process's resident memory just before the call (ru_maxrss; the CPU has no allocator statistics), at
8 x 512 x 133 and 128 x 128 x 73 by default.
"""

import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import torch

import common

PARAMS = ("start_transitions", "end_transitions", "transitions")
GRID = {"batch": (1, 8, 32, 128), "length": (16, 64, 128, 512), "tags": (5, 9, 21, 41, 73, 133)}
SMOKE_GRID = {"batch": (1, 3), "length": (4, 9), "tags": (3, 5)}
GRID_MEASURES = ("decode", "ll_forward_backward")
MEMORY_SHAPES = ((8, 512, 133), (128, 128, 73))


def load_crf_module():
    """hf_bert_tasks/modeling/crf.py (torch and numpy only), without importing the package (transformers)."""
    path = common.ROOT / "hf_bert_tasks" / "modeling" / "crf.py"
    spec = importlib.util.spec_from_file_location("hf_bert_tasks_crf", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["hf_bert_tasks_crf"] = module
    spec.loader.exec_module(module)
    return module


def version_of(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def build_case(batch, length, tags, min_length, seed):
    generator = torch.Generator().manual_seed(seed)
    emissions = torch.randn(batch, length, tags, generator=generator)
    gold = torch.randint(tags, (batch, length), generator=generator)
    lengths = torch.randint(min_length, length + 1, (batch,), generator=generator)
    lengths[0] = length  # one full row, so that the padded length is the length asked for
    mask = torch.arange(length)[None, :] < lengths[:, None]
    return emissions, gold, mask


def build_pair(torchcrf, crf_module, tags, seed):
    torch.manual_seed(seed)
    ref = torchcrf.CRF(tags, batch_first=True)
    ours = crf_module.LinearChainCRF(tags)
    with torch.no_grad():
        for name in PARAMS:
            getattr(ours, name).copy_(getattr(ref, name))
    return ref, ours


def path_scores(crf, emissions, paths, mask):
    """Score (B,) of each row's path (a list of tags), in float64, from pytorch-crf's parameters."""
    names = ("start_transitions", "transitions", "end_transitions")
    start, trans, end = (getattr(crf, n).detach().double() for n in names)
    em = emissions.double()
    scores = []
    for row, path in enumerate(paths):
        tags = torch.tensor(path)
        score = start[tags[0]] + em[row, torch.arange(len(path)), tags].sum() + end[tags[-1]]
        scores.append(score + trans[tags[:-1], tags[1:]].sum())
    return torch.stack(scores)


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
    ours_as_lists = [paths_ours[i, : len(p)].tolist() for i, p in enumerate(paths_ref)]
    score_ref = path_scores(ref, emissions, paths_ref, mask)
    score_ours = path_scores(ref, emissions, ours_as_lists, mask)
    # float32 rounding of a sum of about T terms of the emissions' size: ties within it are ties
    score_diff = ((score_ours - score_ref).abs() / (score_ref.abs() + 1.0)).max().item()
    same_paths = sum(a == p for a, p in zip(ours_as_lists, paths_ref))
    padding_ok = bool((paths_ours[~mask] == -1).all())
    for module in (ref, ours):
        module.zero_grad(set_to_none=True)
    problems = []
    if not rel <= 1e-4:
        problems.append(f"log-likelihood differs by {rel:.2e} relative")
    if not grad_diff <= 1e-3:
        problems.append(f"gradients differ by {grad_diff:.2e} relative")
    if not score_diff <= 1e-5:
        problems.append(f"Viterbi path scores differ by {score_diff:.2e} relative")
    if not padding_ok:
        problems.append("decode does not put -1 outside the mask")
    return {"ll_max_rel_diff": rel, "grad_max_rel_diff": grad_diff, "path_score_max_rel_diff": score_diff,
            "identical_paths": same_paths, "rows": len(paths_ref)}, problems


def make_calls(crf, emissions, tags, mask, algorithm=None):
    em_grad = emissions.clone().requires_grad_()
    ours = hasattr(crf, "effective_scores")
    decode_options = {"algorithm": algorithm} if ours and algorithm else {}

    def decode():
        crf.decode(emissions, mask, **decode_options)

    def ll_forward():
        with torch.no_grad():
            crf(emissions, tags, mask, reduction="sum")

    def ll_forward_backward():
        (-crf(em_grad, tags, mask, reduction="sum")).backward()

    def reset():
        em_grad.grad = None
        crf.zero_grad(set_to_none=True)

    return {"decode": decode, "ll_forward": ll_forward, "ll_forward_backward": ll_forward_backward}, reset


def time_in_blocks(calls, reset, repeats, block, warmup, budget=None):
    """Per-call milliseconds of each of `calls` (a list), in interleaved blocks.

    Each round times `block` consecutive calls of one implementation, then of the next (the order rotates from
    round to round), after one untimed call: each is timed warm, as a loop that calls it would see it, while a
    change in machine load between rounds hits all alike. With a `budget` (seconds), the number of rounds is cut
    to fit it, judged from the warm-up calls. Returns (times per call, per-round ratios of the first to each).
    """
    first_seconds = []
    for index in range(max(warmup, 1)):
        for call in calls:
            reset()
            began = time.perf_counter()
            call()
            if index == 0:
                first_seconds.append(time.perf_counter() - began)
    rounds = max(1, repeats // block)
    if budget is not None:
        per_round = sum(first_seconds) * (block + 1)
        rounds = max(1, min(rounds, int(budget / max(per_round, 1e-9))))
        if rounds == 1 and sum(first_seconds) * (block + 1) > budget:
            block = max(1, min(block, int(budget / max(sum(first_seconds), 1e-9)) - 1))
    times = [[] for _ in calls]
    ratios = [[] for _ in calls]
    for round_index in range(rounds):
        order = list(range(len(calls)))
        shift = round_index % len(calls)
        order = order[shift:] + order[:shift]
        medians = {}
        for i in order:
            reset()
            calls[i]()
            these = []
            for _ in range(block):
                reset()
                began = time.perf_counter()
                calls[i]()
                these.append((time.perf_counter() - began) * 1e3)
            times[i] += these
            medians[i] = statistics.median(these)
        for i in range(len(calls)):
            ratios[i].append(medians[0] / medians[i])
    return times, ratios


def machine(load_before):
    """common.machine_info() with the load average before the run and (now) after it."""
    info = common.machine_info()
    info["load_average_after"] = info.pop("load_average")
    return {**info, "load_average_before": load_before}


def versions(torchcrf):
    return {"hf_bert_tasks": version_of("hf_bert_tasks"),
            "pytorch_crf": getattr(torchcrf, "__version__", version_of("pytorch-crf")) if torchcrf else None,
            "torch": torch.__version__, "python": platform.python_version()}


def measure_point(torchcrf, crf_module, b, t, k, args, measures):
    min_length = args.min_length if args.min_length is not None else max(1, t // 2)
    ref, ours = build_pair(torchcrf, crf_module, k, args.seed)
    emissions, tags, mask = build_case(b, t, k, min_length, args.seed)
    agreement, problems = check_agreement(ref, ours, emissions, tags, mask)
    if problems:
        sys.exit(f"B={b} T={t} K={k}: implementations disagree, not timing: " + "; ".join(problems))
    ref_calls, ref_reset = make_calls(ref, emissions, tags, mask)
    our_calls, our_reset = make_calls(ours, emissions, tags, mask)

    def reset():
        ref_reset()
        our_reset()

    results = {}
    for measure in measures:
        (ref_times, our_times), (_, ratios) = time_in_blocks(
            [ref_calls[measure], our_calls[measure]], reset, args.repeats, args.block, args.warmup,
            args.point_seconds if args.grid else None)
        ref_ms, our_ms = statistics.median(ref_times), statistics.median(our_times)
        results[measure] = {
            "pytorch_crf_ms": ref_ms,
            "ours_ms": our_ms,
            "speedup": ref_ms / our_ms,
            # median of the per-round ratios: robust to load that changes during the run
            "per_round_speedup_median": statistics.median(ratios),
            "per_round_speedup_min": min(ratios),
            "calls": len(our_times),
        }
    return {"batch": b, "length": t, "tags": k, "min_length": min_length,
            "decode_algorithm": crf_module.choose_viterbi(b, t, k),
            "agreement": agreement, "results": results}


def crossover_point(crf_module, b, t, k, args):
    """Every Viterbi algorithm of ours at one shape, timed against each other."""
    torch.manual_seed(args.seed)
    crf = crf_module.LinearChainCRF(k)
    min_length = args.min_length if args.min_length is not None else max(1, t // 2)
    emissions, tags, mask = build_case(b, t, k, min_length, args.seed)
    algorithms, chosen = list(crf_module.VITERBI_ALGORITHMS), crf_module.choose_viterbi(b, t, k)
    # skip the numpy loops (one thread) far beyond their crossovers: hopeless there, and slow to time
    if b * t * k * k > 100_000_000:
        algorithms = [a for a in algorithms if not a.startswith("numpy")]
    calls, resets = [], []
    for algorithm in algorithms:
        named_calls, reset = make_calls(crf, emissions, tags, mask, algorithm)
        calls.append(named_calls["decode"])
        resets.append(reset)
    times, _ = time_in_blocks(calls, lambda: [r() for r in resets], args.repeats, args.block, args.warmup,
                              args.point_seconds)
    ms = {a: statistics.median(x) for a, x in zip(algorithms, times)}
    if chosen not in ms:
        raise AssertionError(f"B={b} T={t} K={k}: choose_viterbi chose {chosen}, which was skipped as hopeless")
    fastest = min(ms, key=ms.get)
    return {"batch": b, "length": t, "tags": k,
            "decode": {"ms": ms, "fastest": fastest, "chosen": chosen, "chosen_over_fastest": ms[chosen] / ms[fastest]}}


def draw_heat_maps(report, folder: Path, stem: str):
    """One PNG per measure: rows (B, T), columns K, each cell the speed-up over pytorch-crf."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    points = report["points"]
    batches = sorted({p["batch"] for p in points})
    lengths = sorted({p["length"] for p in points})
    tags = sorted({p["tags"] for p in points})
    rows = [(b, t) for b in batches for t in lengths]
    written = []
    for measure in GRID_MEASURES:
        grid = [[float("nan")] * len(tags) for _ in rows]
        for p in points:
            if measure in p["results"]:
                grid[rows.index((p["batch"], p["length"]))][tags.index(p["tags"])] = p["results"][measure]["speedup"]
        figure, axis = plt.subplots(figsize=(1.2 * len(tags) + 2.5, 0.42 * len(rows) + 1.8))
        # log scale centred on the 2x goal: red below, green above, saturated from 8x
        image = axis.imshow(grid, cmap="RdYlGn", norm=LogNorm(vmin=0.5, vmax=8), aspect="auto")
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                if not math.isnan(value):
                    axis.text(j, i, f"{value:.1f}x", ha="center", va="center", fontsize=8,
                              fontweight="bold" if value < 2 else "normal")
        axis.set_xticks(range(len(tags)), [str(k) for k in tags])
        axis.set_yticks(range(len(rows)), [f"B={b} T={t}" for b, t in rows])
        axis.set_xlabel("tags K")
        load = report["machine"]["load_average_before"][0]
        axis.set_title(f"{measure}: speed-up over pytorch-crf {report['versions']['pytorch_crf']}\n"
                       f"threads: {report['machine']['threads']}, load average {load:.1f} at the start", fontsize=9)
        figure.colorbar(image, ax=axis, label="speed-up (log scale)")
        figure.tight_layout()
        path = folder / f"{stem}_{'decode' if measure == 'decode' else measure}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written


def summarise(points, measures):
    summary = {}
    for measure in measures:
        values = [(p["results"][measure]["speedup"], (p["batch"], p["length"], p["tags"])) for p in points]
        ordered = sorted(values)
        summary[measure] = {
            "min_speedup": ordered[0][0], "min_at": ordered[0][1],
            "median_speedup": statistics.median(v for v, _ in values),
            "points_below_2x": [list(s) + [round(v, 2)] for v, s in ordered if v < 2],
            "points_below_1_5x": [list(s) + [round(v, 2)] for v, s in ordered if v < 1.5],
            "worst_five": [list(s) + [round(v, 2)] for v, s in ordered[:5]],
        }
    return summary


MEMORY_SCRIPT = """
import json, resource, torch
from crf_speed import build_case, build_pair, load_crf_module
import torchcrf
b, t, k, which = {b}, {t}, {k}, {which!r}
torch.set_num_threads({threads})
ref, ours = build_pair(torchcrf, load_crf_module(), k, 0)
emissions, tags, mask = build_case(b, t, k, max(1, t // 2), 0)
emissions.requires_grad_()
def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024
before = rss_kib()
if which == "ours":
    loss = -ours.log_likelihood(emissions, tags, mask).sum()
else:
    loss = -ref(emissions, tags, mask, reduction="sum")
loss.backward()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"peak_above_start_mib": (peak - before) / 1024, "resident_before_mib": before / 1024}}))
"""


def measure_memory(shapes, threads):
    # the child imports this file (crf_speed) from the benchmarks folder
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(common.ROOT / "benchmarks"),
                                                                      os.environ.get("PYTHONPATH")]))}
    results = []
    for b, t, k in shapes:
        entry = {"batch": b, "length": t, "tags": k}
        for which in ("pytorch_crf", "ours"):
            script = MEMORY_SCRIPT.format(b=b, t=t, k=k, which=which, threads=threads or torch.get_num_threads())
            out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
            entry[which] = json.loads(out.stdout.strip().splitlines()[-1])
        entry["ours_over_pytorch_crf"] = (entry["ours"]["peak_above_start_mib"]
                                          / entry["pytorch_crf"]["peak_above_start_mib"])
        print(f"B={b} T={t} K={k}: peak memory of forward + backward above the start: pytorch-crf "
              f"{entry['pytorch_crf']['peak_above_start_mib']:.1f} MiB, "
              f"ours {entry['ours']['peak_above_start_mib']:.1f} MiB ({entry['ours_over_pytorch_crf']:.2f}x)")
        results.append(entry)
    return results


def parse_shape_list(text):
    return tuple(int(x) for x in text.split(","))


def main():
    parser = common.parser(__doc__, "crf_speed", seed=0)
    parser.add_argument("--batch", type=int, default=32, help="sequences per batch")
    parser.add_argument("--length", type=int, default=128, help="padded sequence length T")
    parser.add_argument("--min-length", type=int, default=None, help="shortest row (default: length // 2)")
    parser.add_argument("--tags", type=int, default=9, help="number of tags K")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed calls per implementation and measure (default 200; at most 60 per grid point)")
    parser.add_argument("--block", type=int, default=None, help="consecutive timed calls (default 10; grid 3)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls of each first (default 10; grid 1)")
    parser.add_argument("--grid", action="store_true",
                        help="every shape of --grid-batches x --grid-lengths x --grid-tags")
    parser.add_argument("--grid-batches", type=parse_shape_list, default=GRID["batch"], help="e.g. 1,8,32,128")
    parser.add_argument("--grid-lengths", type=parse_shape_list, default=GRID["length"], help="e.g. 16,64,128,512")
    parser.add_argument("--grid-tags", type=parse_shape_list, default=GRID["tags"], help="e.g. 5,9,21,41,73,133")
    parser.add_argument("--points", type=str, default=None,
                        help="grid over these shapes only, e.g. 1x16x21,8x64x41 (to re-measure single points)")
    parser.add_argument("--point-seconds", type=float, default=2.5,
                        help="grid: about this many seconds of timed calls per point and measure")
    parser.add_argument("--crossovers", action="store_true",
                        help="time our algorithms against each other (no pytorch-crf) instead")
    parser.add_argument("--memory", action="store_true", help="peak memory of forward + backward (see above)")
    args = parser.parse_args()
    if args.smoke:
        args.grid = True
        args.grid_batches, args.grid_lengths, args.grid_tags = (SMOKE_GRID[n] for n in ("batch", "length", "tags"))
        args.repeats, args.block, args.warmup, args.point_seconds = 1, 1, 1, 0.01
    if args.points:
        args.grid = args.grid or not args.crossovers
    if args.grid or args.crossovers:
        args.repeats = args.repeats or 60
        args.block = args.block or 3
        args.warmup = args.warmup or 1
    args.repeats, args.block, args.warmup = args.repeats or 200, args.block or 10, args.warmup or 10
    # the results file: crf_speed.json, crf_speed_grid.json, crf_speed_points.json, crf_crossovers.json or
    # crf_memory.json (in {tmp}/hf_bert_tasks_smoke with --smoke)
    args.benchmark = ("crf_memory" if args.memory else "crf_crossovers" if args.crossovers
                      else "crf_speed_points" if args.points else "crf_speed_grid" if args.grid else "crf_speed")
    common.setup(args)

    torchcrf = None
    if not args.crossovers:
        try:
            import torchcrf
        except ImportError:
            sys.exit("pytorch-crf is needed for the comparison: pip install pytorch-crf==0.7.2")
    crf_module = load_crf_module()
    load_before = os.getloadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)  # the heat maps go next to the JSON

    if args.memory:
        shapes = MEMORY_SHAPES if not args.smoke else ((2, 8, 5),)
        report = {"method": "peak resident memory (ru_maxrss) of one forward + backward in a fresh process, above "
                            "its resident memory just before the call",
                  "versions": versions(torchcrf), "points": measure_memory(shapes, args.threads)}
        report["machine"] = machine(load_before)
        common.write_json(args.output, report)
        return

    shapes = ([(b, t, k) for b in args.grid_batches for t in args.grid_lengths for k in args.grid_tags]
              if args.grid or args.crossovers else [(args.batch, args.length, args.tags)])
    if args.points:
        shapes = [tuple(int(x) for x in shape.split("x")) for shape in args.points.split(",")]
    began = time.perf_counter()
    points = []
    for number, (b, t, k) in enumerate(shapes, 1):
        if args.crossovers:
            entry = crossover_point(crf_module, b, t, k, args)
            line = "  ".join(
                f"{m}: " + " ".join(f"{a} {v:.2f}" for a, v in entry[m]["ms"].items())
                + f" ms -> fastest {entry[m]['fastest']}, chosen {entry[m]['chosen']}"
                for m in ("decode",))
            print(f"[{number}/{len(shapes)}] B={b} T={t} K={k}  {line}", flush=True)
        else:
            measures = GRID_MEASURES if args.grid else ("decode", "ll_forward", "ll_forward_backward")
            entry = measure_point(torchcrf, crf_module, b, t, k, args, measures)
            line = "  ".join(f"{m} {r['pytorch_crf_ms']:.2f}/{r['ours_ms']:.2f} ms = {r['speedup']:.2f}x"
                             for m, r in entry["results"].items())
            print(f"[{number}/{len(shapes)}] B={b} T={t} K={k} ({entry['decode_algorithm']})  {line}", flush=True)
        points.append(entry)
    seconds = time.perf_counter() - began

    report = {
        "command": "python " + " ".join([str(Path(sys.argv[0]).relative_to(common.ROOT))
                                         if Path(sys.argv[0]).is_absolute() and common.ROOT in Path(sys.argv[0]).parents
                                         else sys.argv[0]] + sys.argv[1:]),
        "case": {"dtype": "float32", "seed": args.seed, "repeats": args.repeats, "block": args.block,
                 "warmup": args.warmup, "point_seconds": args.point_seconds if args.grid else None,
                 "min_length": "length // 2" if args.min_length is None else args.min_length},
        "versions": versions(torchcrf),
        "machine": machine(load_before),
        "seconds": seconds,
    }
    if args.crossovers:
        report["points"] = points
        worst = sorted(points, key=lambda p: -p["decode"]["chosen_over_fastest"])[:5]
        report["worst_choices"] = [{"shape": [p["batch"], p["length"], p["tags"]],
                                    "decode": p["decode"]["chosen_over_fastest"]} for p in worst]
        print("chosen / fastest, worst five:", json.dumps(report["worst_choices"]))
    elif args.grid:
        report["points"] = points
        report["summary"] = summarise(points, GRID_MEASURES)
        for measure, s in report["summary"].items():
            print(f"{measure}: min {s['min_speedup']:.2f}x at B x T x K = {s['min_at']}, median "
                  f"{s['median_speedup']:.2f}x, {len(s['points_below_2x'])} points below 2x, "
                  f"{len(s['points_below_1_5x'])} below 1.5x")
        if not args.points:
            for path in draw_heat_maps(report, args.output.parent, args.output.stem.replace("_grid", "")):
                print(f"wrote {path}")
    else:
        point = points[0]
        report["case"].update({"batch": args.batch, "length": args.length, "tags": args.tags})
        report["agreement"], report["results"] = point["agreement"], point["results"]
        report["decode_algorithm"] = point["decode_algorithm"]
        print(f"{'measure':<22}{'pytorch-crf ms':>16}{'ours ms':>10}{'speed-up':>10}{'per round':>11}")
        for measure, r in point["results"].items():
            print(f"{measure:<22}{r['pytorch_crf_ms']:>16.3f}{r['ours_ms']:>10.3f}{r['speedup']:>9.2f}x"
                  f"{r['per_round_speedup_median']:>10.2f}x")
    print(f"{torch.get_num_threads()} threads, load average {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}, "
          f"{seconds:.0f} s")
    common.write_json(args.output, report)


if __name__ == "__main__":
    main()
