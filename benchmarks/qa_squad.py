#!/usr/bin/env python
r"""SQuAD 1.1 with the offline MiniLM: train on the 44-article train subset, score the official dev set (EM/F1), and
measure training and evaluation speed.

    python benchmarks/qa_squad.py          # the full run: 3 epochs, batch 32, lr 5e-5, windows 384/128 (BERT's)
    python benchmarks/qa_squad.py --epochs 1 --learning_rate 1e-4   # the run recorded in benchmarks/README.md
    python benchmarks/qa_squad.py --smoke  # 16 training and 32 dev questions, batch 8, one epoch: proves it runs

The train subset gives 12,022 windows of at most 384 tokens (161 on average, 341 once a random batch of 32 is
padded), the dev set 10,784. Measured on two idle cores: an epoch takes 66 minutes (3.0 windows/s) and the
evaluation 6, so the full run takes about 3.5 hours.

The run is `recipes/qa.py` in a subprocess (so it measures what users run); results go to
`benchmarks/results/qa_squad.json`. Speeds are given per question and per window (a question whose context is
longer than one window is fed as several): training questions/s = questions x epochs / train runtime; evaluation
questions/s = dev questions / eval runtime, which includes the n-best search and the scoring.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import common


def main():
    parser = common.parser(__doc__, "qa_squad")
    parser.add_argument("--data_dir", type=Path, default=common.DATA_DIR)
    parser.add_argument("--model", default=None, help="encoder folder or Hub id (default: the offline MiniLM)")
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--eval_batch_size", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--warmup", type=float, default=0.1, help="share of the steps with a linear warm-up")
    parser.add_argument("--max_seq_length", type=int, default=384)
    parser.add_argument("--doc_stride", type=int, default=128)
    parser.add_argument("--max_train_samples", type=int, default=None, help="first N training questions")
    parser.add_argument("--max_eval_samples", type=int, default=None, help="first N dev questions")
    parser.add_argument("--work_dir", type=Path, default=None,
                        help="the recipe's output_dir (default: runs/benchmarks/qa_squad)")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more recipe flags, passed as is")
    args = common.parse(parser)
    common.shrink_for_smoke(args, max_train_samples=16, max_eval_samples=32, epochs=1, batch_size=8)
    args.work_dir = args.work_dir or common.work_dir(args)
    squad = args.data_dir / "squad_v1.1"
    train_file, dev_file = squad / "train-v1.1.subset_44articles.json", squad / "dev-v1.1.json"
    common.require(train_file, dev_file)
    encoder = args.model or common.minilm_path()

    command = [sys.executable, str(common.ROOT / "recipes" / "qa.py"), "--model_name_or_path", encoder,
               "--train_file", str(train_file), "--validation_file", str(dev_file), "--output_dir", str(args.work_dir),
               "--do_train", "--do_eval", "--num_train_epochs", str(args.epochs),
               "--per_device_train_batch_size", str(args.batch_size),
               "--per_device_eval_batch_size", str(args.eval_batch_size), "--learning_rate", str(args.learning_rate),
               "--warmup_steps", str(args.warmup), "--max_seq_length", str(args.max_seq_length),
               "--doc_stride", str(args.doc_stride), "--seed", str(args.seed), "--save_strategy", "no",
               "--report_to", "none", "--logging_steps", "50", "--disable_tqdm", "true", "--language", "en"]
    for flag, value in (("--max_train_samples", args.max_train_samples), ("--max_eval_samples", args.max_eval_samples)):
        if value is not None:
            command += [flag, str(value)]
    command += args.extra
    print("running:", " ".join(command), flush=True)
    started = time.time()
    subprocess.run(command, check=True)
    wall = time.time() - started
    metrics = json.loads((args.work_dir / "all_results.json").read_text())

    train_questions, epochs = metrics["train_questions"], metrics["epoch"]
    results = {
        "task": "SQuAD 1.1: train on the 44-article train subset, score the official dev set",
        "encoder": encoder,
        "command": command,
        "settings": vars(args),
        "machine": common.machine_info(),
        "wall_s": round(wall, 1),
        "dev_exact_match": metrics["eval_exact_match"],
        "dev_f1": metrics["eval_f1"],
        "train_questions": train_questions,
        "train_windows": metrics["train_windows"],
        "train_runtime_s": metrics["train_runtime"],
        "train_questions_per_second": train_questions * epochs / metrics["train_runtime"],
        "train_windows_per_second": metrics["train_samples_per_second"],
        "eval_questions": metrics["eval_questions"],
        "eval_windows": metrics["eval_windows"],
        "eval_runtime_s": metrics["eval_runtime"],
        "eval_questions_per_second": metrics["eval_questions"] / metrics["eval_runtime"],
        "eval_windows_per_second": metrics["eval_samples_per_second"],
    }
    print(f"\nSQuAD 1.1 dev ({results['eval_questions']} questions): EM {results['dev_exact_match']:.2f}  "
          f"F1 {results['dev_f1']:.2f}")
    print(f"training: {results['train_questions_per_second']:.1f} questions/s "
          f"({results['train_windows_per_second']:.1f} windows/s); evaluation: "
          f"{results['eval_questions_per_second']:.1f} questions/s "
          f"({results['eval_windows_per_second']:.1f} windows/s)")
    common.write_json(args.output, results)


if __name__ == "__main__":
    main()
