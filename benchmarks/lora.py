#!/usr/bin/env python
"""Full fine-tune vs LoRA, same encoder, data and budget (epochs, batch size, sequence length, seed): strict F1,
trainable parameters, peak memory and training speed.

    python benchmarks/lora.py                                   # CoNLL-2003, MiniLM, BERT+CRF, 3 epochs, batch 32
    python benchmarks/lora.py --smoke        # 32 sentences, batch 8, one epoch, no test set: proves it runs

Each configuration runs `recipes/ner.py` in its own subprocess, one after the other. The learning rates differ on
purpose (each method at its usual rate: 5e-5 for the full fine-tune, 5e-4 for the LoRA matrices; 1e-3 for the new
layers in both), everything else is the same. Reported per run:

- `dev_f1`/`test_f1`: strict entity-level F1 (seqeval IOB2) from the recipe's `all_results.json`;
- `trainable_parameters`/`total_parameters`: `hf_bert_tasks.lora.trainable_parameters` of the model as the recipe
  builds it (for LoRA, the total includes peft's frozen copies of the new layers);
- `peak_rss_mib`: the recipe process's peak resident memory (`ru_maxrss` from `os.wait4`, the whole run: loading,
  tokenising, training, evaluation);
- `train_samples_per_second`: the Trainer's figure (windows per second over the training loop).

Results go to `benchmarks/results/lora.json` (or `--output`) and a table is printed. CoNLL-2003's files are IOB1 and
are converted to BIO.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import common


def parameter_counts(encoder: str, lora: bool, args) -> tuple[int, int]:
    """Trainable and total parameters of the CRF model the recipe builds for CoNLL-2003 (BIO over 4 types)."""
    from hf_bert_tasks import BertCrfForTokenClassification
    from hf_bert_tasks.lora import apply_lora, trainable_parameters
    from hf_bert_tasks.modeling.tagging import label_list

    model = BertCrfForTokenClassification.from_encoder(encoder, label_list("BIO", ["LOC", "MISC", "ORG", "PER"]))
    if lora:
        model = apply_lora(model, r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout)
    return trainable_parameters(model)


def run_recipe(command: list[str]) -> tuple[float, float]:
    """Run the recipe to completion; (wall seconds, peak RSS in MiB) of that process."""
    started = time.time()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise subprocess.CalledProcessError(process.returncode, command)
    return time.time() - started, usage.ru_maxrss / 1024  # Linux reports KiB


def main():
    parser = common.parser(__doc__, "lora")
    parser.add_argument("--data_dir", type=Path, default=common.DATA_DIR)
    parser.add_argument("--methods", nargs="+", choices=["full", "lora"], default=["full", "lora"])
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=5e-5, help="encoder learning rate, full fine-tune")
    parser.add_argument("--lora_learning_rate", type=float, default=5e-4, help="learning rate of the LoRA matrices")
    parser.add_argument("--head_learning_rate", "--crf_learning_rate", type=float, default=1e-3,
                        help="the new layers (CRF, emissions), both methods")
    parser.add_argument("--lora_r", type=int, default=8)
    parser.add_argument("--lora_alpha", type=float, default=16.0)
    parser.add_argument("--lora_dropout", type=float, default=0.1)
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--max_train_samples", type=int, default=None, help="first N training sentences only")
    parser.add_argument("--max_eval_samples", type=int, default=None, help="first N dev sentences")
    parser.add_argument("--test", action=argparse.BooleanOptionalAction, default=True,
                        help="score the test set too (--no-test for short runs; --smoke implies it)")
    parser.add_argument("--work_dir", type=Path, default=None, help="the runs' folders (default: runs/benchmarks/lora)")
    args = common.parse(parser)
    common.shrink_for_smoke(args, max_train_samples=32, max_eval_samples=32, epochs=1, batch_size=8)
    args.test = args.test and not args.smoke
    args.work_dir = args.work_dir or common.work_dir(args)
    conll = args.data_dir / "conll2003"
    common.require(conll)

    encoder = common.minilm_path()
    files = ["--train_file", str(conll / "eng.train"), "--validation_file", str(conll / "eng.testa"),
             "--source_scheme", "IOB1"]
    if args.test:
        files += ["--test_file", str(conll / "eng.testb"), "--do_predict"]
    limits = []
    for flag in ("max_train_samples", "max_eval_samples"):
        if getattr(args, flag) is not None:
            limits += [f"--{flag}", str(getattr(args, flag))]

    results = {"dataset": "conll2003", "encoder": encoder, "head": "crf", "settings": vars(args),
               "machine": common.machine_info(), "runs": {}}
    for method in args.methods:
        out = args.work_dir / method
        command = [sys.executable, str(common.ROOT / "recipes" / "ner.py"), "--model_name_or_path", encoder, *files,
                   *limits, "--output_dir", str(out), "--do_train", "--do_eval", "--num_train_epochs", str(args.epochs),
                   "--per_device_train_batch_size", str(args.batch_size), "--per_device_eval_batch_size", "64",
                   "--max_seq_length", str(args.max_seq_length), "--head_learning_rate", str(args.head_learning_rate),
                   "--seed", str(args.seed), "--save_strategy", "no", "--report_to", "none", "--logging_steps", "100",
                   "--disable_tqdm", "true"]
        if method == "lora":
            command += ["--learning_rate", str(args.lora_learning_rate), "--lora", "--lora_r", str(args.lora_r),
                        "--lora_alpha", str(args.lora_alpha), "--lora_dropout", str(args.lora_dropout)]
        else:
            command += ["--learning_rate", str(args.learning_rate)]
        print("running:", " ".join(command), flush=True)
        wall_s, peak_rss_mib = run_recipe(command)
        metrics = json.loads((out / "all_results.json").read_text())
        trainable, total = parameter_counts(encoder, method == "lora", args)
        results["runs"][method] = {
            "dev_f1": metrics["eval_f1"], "test_f1": metrics.get("test_f1"),
            "dev_precision": metrics["eval_precision"], "dev_recall": metrics["eval_recall"],
            "trainable_parameters": trainable, "total_parameters": total,
            "peak_rss_mib": round(peak_rss_mib, 1),
            "train_samples_per_second": metrics.get("train_samples_per_second"),
            "train_runtime_s": metrics.get("train_runtime"), "wall_s": round(wall_s, 1),
            "command": command,
        }

    print("\nCoNLL-2003, MiniLM + CRF: full fine-tune vs LoRA (strict entity F1, seqeval IOB2)")
    print(f"{'method':8} {'dev F1':>8} {'test F1':>8} {'trainable':>12} {'peak RSS MiB':>13} {'samples/s':>10}")
    for method, run in results["runs"].items():
        test_f1 = f"{100 * run['test_f1']:8.2f}" if run["test_f1"] is not None else f"{'-':>8}"
        print(f"{method:8} {100 * run['dev_f1']:8.2f} {test_f1} {run['trainable_parameters']:12,d} "
              f"{run['peak_rss_mib']:13.0f} {run['train_samples_per_second'] or float('nan'):10.1f}")
    common.write_json(args.output, results)


if __name__ == "__main__":
    main()
