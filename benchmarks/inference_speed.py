#!/usr/bin/env python
"""Inference speed of every door on this CPU (issue 26): the machine's matrix-product peaks, each door's texts/s and
achieved GFLOP/s, and `--concurrent N` processes predicting at once.

    python benchmarks/inference_speed.py --model_dir runs/conll_minilm_crf --threads 2       # the doors
    python benchmarks/inference_speed.py --model_dir runs/conll_minilm_crf --concurrent 2    # processes at once
    python benchmarks/inference_speed.py --smoke [--concurrent 2]      # a few texts; an untrained model if none given

**Doors** (default). First the peaks, measured in the same run: 2048 x 2048 matrix products in float32, bf16
(torch) and int8 (`torch._int_mm`), GFLOP/s (GOP/s for int8). Then three workloads, the doors taking turns, best of
`--repeats`:

- `conll batch 1`: `--texts_batch1` CoNLL-2003 dev sentences (their words joined by spaces), one text per call;
- `conll batch 32`: `--texts` sentences, 32 per call (the predictors' `batch_size`);
- `documents batch 32`: `--documents` texts of about 2,000 characters (consecutive dev sentences joined), 32 per call.

Doors: `torch float32` and `torch bfloat16` (`NerPredictor.from_pretrained(model_dir, dtype=...)`), `onnx float32`
and `onnx int8` (`OnnxNerPredictor` on `export_onnx`'s file and on `export.quantize_int8`'s), and the peer row:
transformers' own `pipeline("token-classification", aggregation_strategy="simple")` on a softmax model of the same
encoder (`BertForTokenClassification`, its head untrained: speed does not depend on it). Reported per workload and
door: texts/s, the speed-up over torch float32, and the achieved GFLOP/s as a share of the peak of the door's
precision. FLOPs count 2 x the encoder's non-embedding parameters per token plus the attention products (4 x layers x
tokens x hidden per token), over the tokens of the texts as the tokenizer splits them (the predictors' window
overlap and the padding are work the count leaves out, so the share is a floor). JSON to
benchmarks/results/inference_speed.json.

**`--concurrent N`**: every process predicts the same `--texts` dev sentences (a line each) through the command
line's own code, `hf_bert_tasks.predictor.__main__.main([MODEL, "--input", FILE, "--output", OUT, "--batch_size", B,
...])`, timed from a common start (the processes import first, then wait for each other; the time includes the
model's load, two to three seconds on one core, most of it importing transformers' modeling code). Per batch size
and thread setting:

- `default`: torch's default threads in every process (every core);
- `shared`: `--threads` = the usable cores divided among the processes;
- `passive`: torch's default threads with `OMP_WAIT_POLICY=PASSIVE` (OpenMP workers sleep instead of spinning).

Reported, each the median of `--repeats` rounds (every setting runs in every round, so the machine's drift between
minutes spreads over all of them): texts/s of one process alone and the total texts/s of N at once (all their texts
over the wall time until the last one ends), and the ratio of the second to the first and to one process alone with
default threads (the goal: at least 1.2x), with that ratio per round. The same rates after the load (each process's
texts over its time from the model's load to its end, summed over the processes) say what a long-running server
would see, where the load is paid once. Run it with no OMP_NUM_THREADS set. JSON to
benchmarks/results/inference_speed_concurrent.json.

Both want an otherwise idle machine.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import common
from onnx_conll import untrained_model

CHILD = """import json, sys, time
from pathlib import Path
from hf_bert_tasks.predictor import __main__ as cli
import torch, transformers  # imported before the start, like a warm process
ready, go, argv = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
predict_corpus, loaded = cli.predict_corpus, []
def timed_predict_corpus(*args, **kwargs):  # called once the model has loaded
    loaded.append(time.perf_counter())
    return predict_corpus(*args, **kwargs)
cli.predict_corpus = timed_predict_corpus
ready.write_text("ready")
while not go.exists():
    time.sleep(0.01)
start = time.perf_counter()
cli.main(argv)
end = time.perf_counter()
print(json.dumps({"seconds": end - start, "predicting_seconds": end - loaded[0], "threads": torch.get_num_threads()}))
"""


RATES = ("alone", "together", "alone_predicting", "together_predicting")


def run_together(count: int, argv: list[str], env: dict, folder: Path) -> list[dict]:
    """Start `count` children predicting with `argv` (each its own output), release them at once, and return what
    each printed (seconds from the common start to its end and from its model's load to its end, its thread
    count)."""
    go = folder / "go"
    go.unlink(missing_ok=True)
    children = []
    for i in range(count):
        ready = folder / f"ready{i}"
        ready.unlink(missing_ok=True)
        out = folder / f"out{i}.jsonl"
        out.unlink(missing_ok=True)
        children.append((ready, subprocess.Popen(
            [sys.executable, "-c", CHILD, str(ready), str(go), *argv, "--output", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)))
    while not all(ready.exists() for ready, _ in children):
        time.sleep(0.05)
    go.write_text("go")
    results = []
    for _, child in children:
        stdout, stderr = child.communicate()
        if child.returncode:
            sys.exit(f"a predicting process failed:\n{stderr[-3000:]}")
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    return results


def concurrent(args, sentences) -> dict:
    """Processes predicting at once against one alone (see the module docstring)."""
    from hf_bert_tasks.modeling.threads import usable_cores

    base_env = {key: value for key, value in os.environ.items() if key not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    shared = max(1, usable_cores() // args.concurrent)
    settings = {"default": ([], base_env), "shared": (["--threads", str(shared)], base_env),
                "passive": ([], {**base_env, "OMP_WAIT_POLICY": "PASSIVE"})}
    # (batch size, setting) -> {"alone": [...], "together": [...], "alone_predicting": [...], ...}, a rate per round
    rates = {}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        texts = folder / "texts.txt"
        texts.write_text("".join(" ".join(words) + "\n" for words in sentences), encoding="utf-8")
        # Rounds, every setting in each: the machine's speed drifts between minutes, and interleaving spreads the
        # drift over all settings alike.
        for round_ in range(args.repeats):
            for batch_size in args.batch_sizes:
                for name, (flags, env) in settings.items():
                    argv = [str(args.model_dir), "--input", str(texts), "--batch_size", str(batch_size), *flags]
                    alone = run_together(1, argv, env, folder)
                    together = run_together(args.concurrent, argv, env, folder)
                    rate = rates.setdefault((batch_size, name), {key: [] for key in RATES})
                    rate["threads"] = together[0]["threads"]
                    rate["alone"].append(len(sentences) / alone[0]["seconds"])
                    rate["together"].append(args.concurrent * len(sentences) / max(r["seconds"] for r in together))
                    rate["alone_predicting"].append(len(sentences) / alone[0]["predicting_seconds"])
                    rate["together_predicting"].append(sum(len(sentences) / r["predicting_seconds"] for r in together))
                    print(f"round {round_ + 1} batch {batch_size:3d} {name:8s}: alone {rate['alone'][-1]:7.1f} "
                          f"texts/s, {args.concurrent} at once {rate['together'][-1]:7.1f} in all; after the load: "
                          f"{rate['alone_predicting'][-1]:7.1f} and {rate['together_predicting'][-1]:7.1f}", flush=True)
    results = {}
    for (batch_size, name), rate in rates.items():
        median = {key: statistics.median(rate[key]) for key in RATES}
        default = rates[batch_size, "default"]
        row = results[f"batch {batch_size} {name}"] = {
            "threads_per_process": rate["threads"], **{f"{key}_texts_per_second": median[key] for key in RATES},
            "together_over_alone": median["together"] / median["alone"],
            "together_over_default_alone": median["together"] / statistics.median(default["alone"]),
            "together_over_default_alone_per_round": [t / a for t, a in zip(rate["together"], default["alone"])],
            "predicting_together_over_default_alone":
                median["together_predicting"] / statistics.median(default["alone_predicting"]),
            "rounds": rate}
        print(f"batch {batch_size:3d} {name:8s} threads {rate['threads']}, median of {args.repeats}: alone "
              f"{median['alone']:7.1f} texts/s, {args.concurrent} at once {median['together']:7.1f} in all: "
              f"{row['together_over_default_alone']:.2f}x one alone with default threads "
              f"({row['predicting_together_over_default_alone']:.2f}x after the load)")
    return {"usable_cores": usable_cores(), "texts_per_process": len(sentences), "results": results}


def matmul_peaks(size: int, repeats: int) -> dict:
    """GFLOP/s (GOP/s for int8) of `size` x `size` matrix products in float32, bf16 and int8, best of `repeats`."""
    peaks = {}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16), ("int8", torch.int8)):
        if dtype == torch.int8:
            a, b = (torch.randint(-128, 127, (size, size), dtype=dtype) for _ in range(2))
            product = torch._int_mm
        else:
            a, b = (torch.randn(size, size).to(dtype) for _ in range(2))
            product = torch.matmul
        product(a, b)
        best = min(timed(lambda: product(a, b)) for _ in range(repeats))
        peaks[name] = 2 * size**3 / best / 1e9
    return peaks


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def documents_of(sentences, characters: int, count: int) -> list[str]:
    """`count` texts of about `characters` characters: consecutive sentences joined, cycling through them."""
    texts, current, i = [], [], 0
    while len(texts) < count:
        current.append(" ".join(sentences[i % len(sentences)]))
        i += 1
        if sum(len(t) + 1 for t in current) >= characters:
            texts.append(" ".join(current)[:characters])
            current = []
    return texts


def doors(args, sentences) -> dict:
    """Every door on three workloads, and the peaks (see the module docstring)."""
    from transformers import AutoConfig, AutoTokenizer, BertForTokenClassification, pipeline

    from hf_bert_tasks.export import OnnxNerPredictor, export_onnx, quantize_int8
    from hf_bert_tasks.ner.predictor import NerPredictor

    threads = torch.get_num_threads()
    peaks = matmul_peaks(256 if args.smoke else 2048, 3 if args.smoke else 10)
    print("peaks: " + ", ".join(f"{name} {value:.0f} G/s" for name, value in peaks.items()), flush=True)
    work = common.work_dir(args)
    onnx_path = export_onnx(args.model_dir, work / "onnx" / "model.onnx")
    int8_path = quantize_int8(onnx_path, work / "onnx" / "model.int8.onnx")
    softmax_dir = work / "softmax"  # the peer: the same encoder with transformers' own token-classification head
    config = AutoConfig.from_pretrained(args.model_dir, trust_remote_code=True)
    encoder_config = config.encoder
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    BertForTokenClassification.from_pretrained(common.minilm_path(), num_labels=config.num_labels).save_pretrained(
        softmax_dir)
    tokenizer.save_pretrained(softmax_dir)
    predictors = {
        "torch float32": NerPredictor.from_pretrained(args.model_dir),
        "torch bfloat16": NerPredictor.from_pretrained(args.model_dir, dtype="bfloat16"),
        "onnx float32": OnnxNerPredictor(onnx_path, args.model_dir, threads=threads),
        "onnx int8": OnnxNerPredictor(int8_path, args.model_dir, threads=threads),
    }
    peer = pipeline("token-classification", model=str(softmax_dir), aggregation_strategy="simple")
    precision = {"torch float32": "float32", "torch bfloat16": "bfloat16", "onnx float32": "float32",
                 "onnx int8": "int8", "transformers pipeline (softmax)": "float32"}

    texts = [" ".join(words) for words in sentences]
    workloads = {"conll batch 1": (texts[: args.texts_batch1], 1), "conll batch 32": (texts, 32),
                 "documents batch 32": (documents_of(sentences, 2000, args.documents), 32)}
    hidden, layers = encoder_config.hidden_size, encoder_config.num_hidden_layers
    parameters = sum(p.numel() for n, p in predictors["torch float32"].model.named_parameters()
                     if "embeddings" not in n)
    results = {}
    for workload, (batch, batch_size) in workloads.items():
        lengths = [len(ids) for ids in tokenizer(batch)["input_ids"]]
        flops = sum(length * (2 * parameters + 4 * layers * length * hidden) for length in lengths)
        calls = {name: (lambda door=NerPredictor(loaded.model, loaded.tokenizer, batch_size=batch_size), b=batch:
                        door(b)) for name, loaded in predictors.items()}
        calls["transformers pipeline (softmax)"] = lambda b=batch, n=batch_size: peer(b, batch_size=n)
        for call in calls.values():  # warm-up: the first calls allocate (and ONNX Runtime plans its memory)
            call()
        seconds = {name: [] for name in calls}
        for _ in range(args.repeats):
            for name, call in calls.items():
                seconds[name].append(timed(call))
        base = min(seconds["torch float32"])
        rows = {}
        for name, times in seconds.items():
            best = min(times)
            rows[name] = {"texts_per_second": len(batch) / best, "speedup": base / best,
                          "gflops_per_second": flops / best / 1e9,
                          "share_of_peak": flops / best / 1e9 / peaks[precision[name]]}
            print(f"{workload:20s} {name:32s} {rows[name]['texts_per_second']:8.1f} texts/s "
                  f"{rows[name]['speedup']:5.2f}x  {rows[name]['gflops_per_second']:6.1f} GFLOP/s "
                  f"({rows[name]['share_of_peak']:.0%} of the {precision[name]} peak)", flush=True)
        results[workload] = {"texts": len(batch), "tokens": sum(lengths), "batch_size": batch_size, "doors": rows}
    return {"threads": threads, "peaks_g_per_second": peaks, "results": results}


def main():
    parser = common.parser(__doc__, "inference_speed")
    parser.add_argument("--model_dir", type=Path, default=None, help="a trained CRF model folder (recipes/ner.py)")
    parser.add_argument("--concurrent", type=int, default=None, help="processes predicting at once (see above)")
    parser.add_argument("--texts", type=int, default=1000, help="CoNLL-2003 dev sentences (batch 32; per process)")
    parser.add_argument("--texts_batch1", type=int, default=200, help="dev sentences predicted one per call")
    parser.add_argument("--documents", type=int, default=64, help="2,000-character documents")
    parser.add_argument("--repeats", type=int, default=2,
                        help="timed passes per door (the best kept); --concurrent: rounds (the median kept)")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 32], help="--concurrent: batch sizes")
    parser.add_argument("--dev_file", type=Path, default=common.data_path("conll2003", "eng.testa"))
    args = common.parse(parser)
    common.shrink_for_smoke(args, texts=64, texts_batch1=8, documents=4, repeats=1)
    if args.smoke:
        args.batch_sizes = [32]
    if args.model_dir is None:
        if not args.smoke:
            parser.error("--model_dir is required (a trained model folder)")
        args.model_dir = untrained_model(common.work_dir(args) / "untrained_crf", args.seed)
    if args.concurrent and args.output == common.RESULTS_DIR / "inference_speed.json":
        args.output = common.RESULTS_DIR / "inference_speed_concurrent.json"
    common.quiet_transformers()
    sentences, _, _ = common.load_sentences(args.dev_file, "IOB1", args.texts)
    report = concurrent(args, sentences) if args.concurrent else doors(args, sentences)
    common.write_json(args.output, {"arguments": vars(args), **report, "machine": common.machine_info()})


if __name__ == "__main__":
    main()
