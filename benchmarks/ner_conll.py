#!/usr/bin/env python
"""Softmax vs CRF head, same encoder and budget, on real NER data: dev/test strict F1 and train samples/s.

    python benchmarks/ner_conll.py                      # CoNLL-2003, MiniLM, 3 epochs, batch 32, lr 5e-5
    python benchmarks/ner_conll.py --dataset msra       # MSRA, a small random BERT with a character vocabulary
    python benchmarks/ner_conll.py --smoke              # 32 sentences per split, batch 8, one epoch: proves it runs

Each configuration runs `recipes/ner.py` in a subprocess, one after the other, or with `--parallel` all at once with
one thread each (so that they share whatever else runs on the machine equally); results go to
`benchmarks/results/ner_<dataset>.json` (or `--output`) and a table is printed. CoNLL-2003's files are IOB1 and are
converted to BIO; MSRA has no dev split, so the last 3,000 training sentences are held out as dev.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import common


def main():
    parser = common.parser(__doc__, "ner_<dataset>")
    parser.add_argument("--dataset", choices=["conll2003", "msra"], default="conll2003")
    parser.add_argument("--data_dir", type=Path, default=common.DATA_DIR)
    parser.add_argument("--heads", nargs="+", default=["softmax", "crf"])
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--head_learning_rate", "--crf_learning_rate", type=float, default=1e-3,
                        help="learning rate of the CRF head's new layers (the softmax head keeps --learning_rate, "
                             "as in the transformers example script)")
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=256, help="msra: hidden size of the random character BERT")
    parser.add_argument("--layers", type=int, default=4, help="msra: layers of the random character BERT")
    parser.add_argument("--work_dir", type=Path, default=None,
                        help="the runs go to <work_dir>/<dataset>/<head> (default: runs/benchmarks)")
    parser.add_argument("--parallel", action="store_true",
                        help="run the heads at once, one thread each unless --threads says otherwise")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more recipe flags, passed as is")
    args = parser.parse_args()
    args.benchmark = f"ner_{args.dataset}"  # the results file: ner_conll2003.json, ner_msra.json
    common.setup(args)
    common.require(args.data_dir)
    args.work_dir = args.work_dir or (common.work_dir(args) if args.smoke else common.RUNS_DIR)
    limits = []
    if args.smoke:  # 32 sentences per split, batch 8, one epoch
        args.epochs, args.batch_size = min(args.epochs, 1), min(args.batch_size, 8)
        limits = [f"--max_{split}_samples=32" for split in ("train", "eval", "predict")]

    work = args.work_dir / args.dataset
    if args.dataset == "conll2003":
        conll = args.data_dir / "conll2003"
        files = ["--train_file", str(conll / "eng.train"), "--validation_file", str(conll / "eng.testa"),
                 "--test_file", str(conll / "eng.testb"), "--source_scheme", "IOB1"]
        encoder = common.minilm_path()
    else:
        files, encoder = common.prepare_msra(args.data_dir, work, args.hidden, args.layers, args.seed)
    work.mkdir(parents=True, exist_ok=True)
    results = {"dataset": args.dataset, "encoder": encoder, "settings": vars(args), "machine": common.machine_info(),
               "runs": {}}
    commands = {}
    for head in args.heads:
        out = work / head
        command = [sys.executable, str(common.ROOT / "recipes" / "ner.py"), "--model_name_or_path", encoder, *files,
                   "--head", head, "--output_dir", str(out), "--do_train", "--do_eval", "--do_predict",
                   "--num_train_epochs", str(args.epochs), "--per_device_train_batch_size", str(args.batch_size),
                   "--per_device_eval_batch_size", "64", "--learning_rate", str(args.learning_rate),
                   "--max_seq_length", str(args.max_seq_length), "--seed", str(args.seed), "--save_strategy", "no",
                   "--report_to", "none", "--logging_steps", "100", "--disable_tqdm", "true", *limits,
                   *args.extra]
        if head == "crf":
            command += ["--head_learning_rate", str(args.head_learning_rate)]
        commands[head] = command
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # offline and --threads: common.setup
    if args.parallel and args.threads is None:
        env["OMP_NUM_THREADS"] = "1"
    started, wall = time.time(), {}
    running = {}
    for head, command in commands.items():
        print("running:", " ".join(command), flush=True)
        log = open(work / f"{head}.log", "w")
        running[head] = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        if not args.parallel:
            if running[head].wait():
                sys.exit(f"{head} run failed: see {work / f'{head}.log'}")
            wall[head] = time.time() - started
            started = time.time()
    for head, process in running.items():
        if process.wait():
            sys.exit(f"{head} run failed: see {work / f'{head}.log'}")
        wall.setdefault(head, time.time() - started)
    for head in commands:
        metrics = json.loads((work / head / "all_results.json").read_text())
        results["runs"][head] = {
            "wall_s": round(wall[head], 1),
            "dev_f1": metrics["eval_f1"], "test_f1": metrics["test_f1"],
            "dev_precision": metrics["eval_precision"], "dev_recall": metrics["eval_recall"],
            "test_precision": metrics["test_precision"], "test_recall": metrics["test_recall"],
            "train_samples_per_second": metrics.get("train_samples_per_second"),
            "train_runtime_s": metrics.get("train_runtime"),
            "per_type_test_f1": {k[5:-3]: v for k, v in metrics.items() if k.startswith("test_") and k.endswith("_f1")
                                 and k != "test_f1"},
        }
    print(f"\n{args.dataset}: strict entity F1 (seqeval IOB2) and training speed")
    print(f"{'head':8} {'dev F1':>8} {'test F1':>8} {'train samples/s':>16}")
    for head, run in results["runs"].items():
        print(f"{head:8} {100 * run['dev_f1']:8.2f} {100 * run['test_f1']:8.2f} "
              f"{run['train_samples_per_second'] or float('nan'):16.1f}")
    if {"softmax", "crf"} <= set(results["runs"]):
        delta = results["runs"]["crf"]["test_f1"] - results["runs"]["softmax"]["test_f1"]
        print(f"CRF - softmax, test F1: {100 * delta:+.2f}")
    common.write_json(args.output, results)


if __name__ == "__main__":
    main()
