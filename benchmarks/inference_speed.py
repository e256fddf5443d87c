#!/usr/bin/env python
"""Processes predicting at once on the same cores (issue 26, "threads that do not collapse"): `--concurrent N`
processes of the predictor command line against one alone.

    python benchmarks/inference_speed.py --model_dir runs/conll_minilm_crf --concurrent 2
    python benchmarks/inference_speed.py --smoke          # 64 texts, batch 32 only; an untrained model if none given

Every process predicts the same `--texts` CoNLL-2003 dev sentences (as text, a line each) through the command line's
own code, `hf_bert_tasks.predictor.__main__.main([MODEL, "--input", FILE, "--output", OUT, "--batch_size", B,
...])`, timed from a common start (the processes import first, then wait for each other; the time includes the
model's load, about a second). Per batch size and thread setting:

- `default`: torch's default threads in every process (every core);
- `shared`: `--threads` = the usable cores divided among the processes;
- `passive`: torch's default threads with `OMP_WAIT_POLICY=PASSIVE` (OpenMP workers sleep instead of spinning).

Reported: texts/s of one process alone and the total texts/s of N at once (all their texts over the wall time until
the last one ends), and the ratio of the two (the goal: at least 1.2x). Run it on an otherwise idle machine, with no
OMP_NUM_THREADS set. JSON to benchmarks/results/inference_speed.json.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from onnx_conll import untrained_model

CHILD = """import json, sys, time
from pathlib import Path
from hf_bert_tasks.predictor.__main__ import main
import torch, transformers  # imported before the start, like a warm process
ready, go, argv = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
ready.write_text("ready")
while not go.exists():
    time.sleep(0.01)
start = time.perf_counter()
main(argv)
print(json.dumps({"seconds": time.perf_counter() - start, "threads": torch.get_num_threads()}))
"""


def run_together(count: int, argv: list[str], env: dict, folder: Path) -> list[dict]:
    """Start `count` children predicting with `argv` (each its own output), release them at once, and return what
    each printed (seconds from the common start to its end, its thread count)."""
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


def main():
    parser = common.parser(__doc__, "inference_speed")
    parser.add_argument("--model_dir", type=Path, default=None, help="a trained model folder (recipes/ner.py)")
    parser.add_argument("--concurrent", type=int, default=2, help="processes predicting at once")
    parser.add_argument("--texts", type=int, default=1000, help="CoNLL-2003 dev sentences each process predicts")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--dev_file", type=Path, default=common.data_path("conll2003", "eng.testa"))
    args = common.parse(parser)
    common.shrink_for_smoke(args, texts=64)
    if args.smoke:
        args.batch_sizes = [32]
    if args.model_dir is None:
        if not args.smoke:
            parser.error("--model_dir is required (a trained model folder)")
        args.model_dir = untrained_model(common.work_dir(args) / "untrained_crf", args.seed)
    from hf_bert_tasks.predictor.auto import usable_cores

    sentences, _, _ = common.load_sentences(args.dev_file, "IOB1", args.texts)
    base_env = {key: value for key, value in os.environ.items() if key not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    shared = max(1, usable_cores() // args.concurrent)
    settings = {"default": ([], base_env), "shared": (["--threads", str(shared)], base_env),
                "passive": ([], {**base_env, "OMP_WAIT_POLICY": "PASSIVE"})}
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        texts = folder / "texts.txt"
        texts.write_text("".join(" ".join(words) + "\n" for words in sentences), encoding="utf-8")
        for batch_size in args.batch_sizes:
            for name, (flags, env) in settings.items():
                argv = [str(args.model_dir), "--input", str(texts), "--batch_size", str(batch_size), *flags]
                alone = run_together(1, argv, env, folder)
                together = run_together(args.concurrent, argv, env, folder)
                rate_alone = len(sentences) / alone[0]["seconds"]
                rate_together = args.concurrent * len(sentences) / max(r["seconds"] for r in together)
                results[f"batch {batch_size} {name}"] = {
                    "threads_per_process": together[0]["threads"], "alone_texts_per_second": rate_alone,
                    "together_texts_per_second": rate_together, "together_over_alone": rate_together / rate_alone}
                print(f"batch {batch_size:3d} {name:8s} threads {together[0]['threads']}: alone {rate_alone:7.1f} "
                      f"texts/s, {args.concurrent} at once {rate_together:7.1f} texts/s in all "
                      f"({rate_together / rate_alone:.2f}x)", flush=True)
    common.write_json(args.output, {"arguments": vars(args), "usable_cores": usable_cores(),
                                    "texts_per_process": len(sentences), "results": results,
                                    "machine": common.machine_info()})


if __name__ == "__main__":
    main()
