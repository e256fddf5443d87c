#!/usr/bin/env python
"""Text classification on real data: accuracy and macro-F1 of `recipes/classify.py`, and `truncate` vs `windows`.

    python benchmarks/classify.py                                  # everything below (hours on 2 CPU cores)
    python benchmarks/classify.py --tasks cnews --encoders char_bert --folds_to_run 2

Tasks (`--tasks`):

thucnews
    THUCNews titles, 10 classes: train on dev.txt (10,000 titles), evaluate on test.txt (10,000), class.txt names
    the ids. Titles are short, so only `truncate` runs (at `--thucnews_max_length`).
cnews
    the 1,000-document cnews file (10 classes, 1,013 characters on average, median 744; 884 are longer than a
    256-token window, and a document makes 4.9 windows on average): stratified k-fold cross-validation
    (`--cnews_folds`, each fold's test part about 1/k of every class), each `--cnews_modes` long-text mode at the
    same window length (`--cnews_max_length`). Reported per fold and as mean and sample standard deviation over
    folds (the folds' test parts are disjoint; their training parts overlap, so the spread understates the variance
    of a fresh sample), or with `--folds_to_run 1` (a stratified 80/20 split) with the binomial standard error of
    the accuracy. The test documents longer than one window (by the encoder's tokenizer) are also scored on their
    own (`long_accuracy`): the modes differ only on them. `windows` trains on every window, about 5 times the
    text of `truncate` per epoch, and costs that much more time.
sst2
    SST-2 (English, 2 classes): train on train.tsv, evaluate on dev.tsv and on the labelled test.tsv. MiniLM only
    (the English encoder for the English set).

Encoders (`--encoders`): `minilm`, the offline all-MiniLM-L6-v2 weights (uncased English WordPiece; it has no entry
for most Chinese characters: 62% of its tokens of cnews are [UNK]; the Chinese numbers show what that costs), and `char_bert`, a
randomly initialised BERT (`--hidden`, `--layers`) over a character vocabulary built from the training split
alone (characters seen at least twice; also their `##` continuation forms for non-Chinese characters). The random
encoder trains with `--char_learning_rate`, MiniLM with `--learning_rate` (and `--head_learning_rate` for the new
classifier layer, when given).

Every configuration runs the recipe in a subprocess, one after the other, with dynamic padding and randomly drawn
batches (`--train_sampling_strategy group_by_length` groups them by length; the recipe scores in data order either
way). Results go to `benchmarks/results/classify.json` (or `--output`) and a table is printed;
`train_samples_per_second` counts windows, not documents. Model weights of finished runs are deleted unless
`--keep_models`. `--smoke` runs every requested task and encoder on 32 texts (cnews: one fold, the first mode),
batch 8, one epoch; `--max_train_samples`/`--max_eval_samples` and a fractional `--epochs` make other short runs.
"""

import json
import math
import random
import shutil
import statistics
import subprocess
import sys
import time
import unicodedata
from collections import Counter
from pathlib import Path

import common

RECIPE = common.ROOT / "recipes" / "classify.py"


def build_char_bert(texts: list[str], folder: Path, hidden: int, layers: int, seed: int) -> str:
    """A random BERT whose vocabulary is the characters of `texts` seen at least twice (lower-cased), and the `##`
    continuation forms of the non-Chinese ones."""
    counts = Counter(ch for text in texts for ch in text.lower() if not ch.isspace())
    chars = sorted(ch for ch, n in counts.items() if n >= 2 and unicodedata.category(ch)[0] != "C")
    continuations = [f"##{ch}" for ch in chars if not ("\u4e00" <= ch <= "\u9fff")]
    return common.save_random_bert([*chars, *continuations], folder, hidden, layers, seed)


def stratified_folds(labels: list[str], k: int, seed: int) -> list[int]:
    """Fold number of each example: every class shuffled (seeded) and dealt round-robin, continuing where the
    previous class stopped, so fold sizes differ by at most one and class shares by at most one example."""
    rng = random.Random(seed)
    folds, dealt = [0] * len(labels), 0
    for label in sorted(set(labels)):
        members = [i for i, lab in enumerate(labels) if lab == label]
        rng.shuffle(members)
        for i in members:
            folds[i] = dealt % k
            dealt += 1
    return folds


def run(args, name: str, encoder: str, files: list[str], extra: list[str], out: Path) -> dict:
    """One recipe run; returns its scores and timing from all_results.json."""
    is_char = "char_bert" in name
    command = [sys.executable, str(RECIPE), "--model_name_or_path", encoder, *files, "--output_dir", str(out),
               "--do_train", "--do_eval", "--num_train_epochs", str(args.epochs),
               "--per_device_train_batch_size", str(args.batch_size), "--per_device_eval_batch_size", "64",
               "--learning_rate", str(args.char_learning_rate if is_char else args.learning_rate),
               "--warmup_steps", str(args.warmup_steps), "--seed", str(args.seed), "--save_strategy", "no",
               "--report_to", "none", "--logging_steps", "50", "--disable_tqdm", "true",
               "--train_sampling_strategy", args.train_sampling_strategy, *extra]
    if not is_char and args.head_learning_rate is not None:
        command += ["--head_learning_rate", str(args.head_learning_rate)]
    for flag in ("max_train_samples", "max_eval_samples"):
        if getattr(args, flag) is not None:
            command += [f"--{flag}", str(getattr(args, flag))]
            if flag == "max_eval_samples":
                command += ["--max_predict_samples", str(args.max_eval_samples)]
    print(f"\n[{name}] " + " ".join(command), flush=True)
    started = time.time()
    subprocess.run(command, check=True)  # offline, quiet, --threads: the environment common.setup prepared
    metrics = json.loads((out / "all_results.json").read_text())
    if not args.keep_models:
        for weights in out.glob("*.safetensors"):
            weights.unlink()
    result = {"wall_s": round(time.time() - started, 1), "train_runtime_s": metrics.get("train_runtime"),
              "train_samples_per_second": metrics.get("train_samples_per_second"),
              "train_loss": metrics.get("train_loss"), "eval_loss": metrics.get("eval_loss"),
              "accuracy": metrics["eval_accuracy"], "macro_f1": metrics["eval_macro_f1"]}
    if "test_accuracy" in metrics:
        result.update(test_accuracy=metrics["test_accuracy"], test_macro_f1=metrics["test_macro_f1"])
    print(f"[{name}] accuracy {result['accuracy']:.4f}  macro-F1 {result['macro_f1']:.4f}  ({result['wall_s']} s)",
          flush=True)
    return result


def encoder_for(args, name: str, train_texts: list[str], folder: Path) -> str:
    if name == "minilm":
        return common.minilm_path()
    return build_char_bert(train_texts, folder, args.hidden, args.layers, args.seed)


def read_texts(path: Path, text_first: bool) -> list[str]:
    lines = [line for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    return [line.rsplit("\t", 1)[0] if text_first else line.split("\t", 1)[1] for line in lines]


def limited(name: str, limit: int | None) -> str:
    return name if limit is None else f"{name} (the first {limit})"


def thucnews(args, work: Path) -> list[dict]:
    folder = args.data_dir / "thucnews_titles"
    files = ["--train_file", str(folder / "dev.txt"), "--validation_file", str(folder / "test.txt"),
             "--data_format", "text_label", "--label_names_file", str(folder / "class.txt")]
    rows = []
    for encoder_name in args.encoders:
        encoder = encoder_for(args, encoder_name, read_texts(folder / "dev.txt", True), work / "thucnews_char_bert")
        name = f"thucnews/{encoder_name}"
        result = run(args, name, encoder, files, ["--max_seq_length", str(args.thucnews_max_length)],
                     work / "thucnews" / encoder_name)
        rows.append({"task": "thucnews", "encoder": encoder_name, "long_text": "truncate",
                     "train": limited("dev.txt", args.max_train_samples),
                     "evaluated_on": limited("test.txt", args.max_eval_samples), **result})
    return rows


def cnews(args, work: Path) -> list[dict]:
    from transformers import AutoTokenizer

    lines = [line for line in (args.data_dir / "cnews" / "cnews.val.txt").read_text(encoding="utf-8").split("\n")
             if line.strip()]
    labels = [line.split("\t", 1)[0] for line in lines]
    folds = stratified_folds(labels, args.cnews_folds, args.seed)
    rows = []
    for fold in range(min(args.folds_to_run or args.cnews_folds, args.cnews_folds)):
        fold_dir = work / "cnews" / f"fold{fold}"
        fold_dir.mkdir(parents=True, exist_ok=True)
        train = [line for line, f in zip(lines, folds) if f != fold]
        test = [line for line, f in zip(lines, folds) if f == fold]
        random.Random(args.seed + fold).shuffle(train)  # --max_train_samples then takes a mix of classes
        (fold_dir / "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
        (fold_dir / "test.txt").write_text("\n".join(test) + "\n", encoding="utf-8")
        files = ["--train_file", str(fold_dir / "train.txt"), "--validation_file", str(fold_dir / "test.txt")]
        for encoder_name in args.encoders:
            encoder = encoder_for(args, encoder_name, [line.split("\t", 1)[1] for line in train],
                                  fold_dir / "char_bert")
            # The test documents that do not fit one window, by this encoder's tokenizer, are also scored on their
            # own (as the recipe's test split): the modes differ only on them.
            tokenizer = AutoTokenizer.from_pretrained(encoder)
            scored = test[:args.max_eval_samples] if args.max_eval_samples else test
            long = [line for line in scored if len(tokenizer(line.split("\t", 1)[1], add_special_tokens=False)
                                                   ["input_ids"]) > args.cnews_max_length - 2]
            long_file = fold_dir / f"test_long_{encoder_name}.txt"
            long_file.write_text("\n".join(long) + "\n", encoding="utf-8")
            for mode in args.cnews_modes:
                name = f"cnews/fold{fold}/{encoder_name}/{mode}"
                extra = ["--long_text", mode, "--max_seq_length", str(args.cnews_max_length),
                         "--stride", str(args.stride)]
                if long:
                    extra += ["--do_predict", "--test_file", str(long_file)]
                result = run(args, name, encoder, files, extra, fold_dir / f"{encoder_name}_{mode}")
                if long:
                    result["long_accuracy"] = result.pop("test_accuracy")
                    result["long_macro_f1"] = result.pop("test_macro_f1")
                rows.append({"task": "cnews", "encoder": encoder_name, "long_text": mode, "fold": fold,
                             "train_documents": min(len(train), args.max_train_samples or len(train)),
                             "test_documents": len(scored), "long_test_documents": len(long), **result})
    return rows


def sst2(args, work: Path) -> list[dict]:
    if "minilm" not in args.encoders:
        return []
    folder = args.data_dir / "sst2"
    files = ["--train_file", str(folder / "train.tsv"), "--validation_file", str(folder / "dev.tsv"),
             "--test_file", str(folder / "test.tsv"), "--do_predict"]
    result = run(args, "sst2/minilm", common.minilm_path(), files, ["--max_seq_length", str(args.sst2_max_length)],
                 work / "sst2" / "minilm")
    return [{"task": "sst2", "encoder": "minilm", "long_text": "truncate", "evaluated_on": "dev.tsv (accuracy, "
             "macro_f1) and test.tsv (test_*)", **result}]


def summarize(rows: list[dict]) -> list[dict]:
    """Mean and sample standard deviation over folds, per (task, encoder, long_text); for a single run, the
    binomial standard error of its accuracy, sqrt(p (1 - p) / n) over its n test documents, instead."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["encoder"], row["long_text"]), []).append(row)
    summary = []
    for (task, encoder, mode), members in groups.items():
        entry = {"task": task, "encoder": encoder, "long_text": mode, "runs": len(members)}
        for key in ("accuracy", "macro_f1", "test_accuracy", "test_macro_f1", "long_accuracy", "long_macro_f1"):
            values = [m[key] for m in members if key in m]
            if values:
                entry[f"{key}_mean"] = statistics.fmean(values)
                entry[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else None
        if len(members) == 1 and "test_documents" in members[0]:
            accuracy, n = members[0]["accuracy"], members[0]["test_documents"]
            entry["accuracy_standard_error"] = math.sqrt(accuracy * (1 - accuracy) / n)
        summary.append(entry)
    return summary


def main():
    parser = common.parser(__doc__, "classify")
    parser.add_argument("--tasks", nargs="+", choices=["thucnews", "cnews", "sst2"],
                        default=["thucnews", "cnews", "sst2"])
    parser.add_argument("--encoders", nargs="+", choices=["minilm", "char_bert"], default=["minilm", "char_bert"])
    parser.add_argument("--data_dir", type=Path, default=common.DATA_DIR)
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=5e-5, help="MiniLM encoder")
    # Rates from one-epoch probes on THUCNews titles that learned (benchmarks/README.md); untuned otherwise.
    parser.add_argument("--head_learning_rate", type=float, default=None,
                        help="MiniLM's new classifier layer (default: --learning_rate)")
    parser.add_argument("--char_learning_rate", type=float, default=1e-4, help="the random char_bert (all layers)")
    parser.add_argument("--warmup_steps", type=float, default=0.06, help="a fraction (<1) or a number of steps")
    parser.add_argument("--train_sampling_strategy", choices=["random", "group_by_length"], default="random",
                        help="training batches: drawn at random, or grouped by length (the recipe evaluates in data "
                             "order either way)")
    parser.add_argument("--thucnews_max_length", type=int, default=48)
    parser.add_argument("--cnews_max_length", type=int, default=256)
    parser.add_argument("--cnews_modes", nargs="+", choices=["truncate", "head_tail", "windows"],
                        default=["truncate", "windows"])
    parser.add_argument("--stride", type=int, default=32, help="cnews windows: overlap in tokens")
    parser.add_argument("--cnews_folds", type=int, default=5)
    parser.add_argument("--folds_to_run", type=int, default=None, help="only the first N folds (default: all)")
    parser.add_argument("--sst2_max_length", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=256, help="char_bert hidden size")
    parser.add_argument("--layers", type=int, default=4, help="char_bert layers")
    parser.add_argument("--max_train_samples", type=int, default=None, help="first N training texts")
    parser.add_argument("--max_eval_samples", type=int, default=None, help="first N evaluated texts")
    parser.add_argument("--keep_models", action="store_true", help="keep the trained weights of every run")
    parser.add_argument("--work_dir", type=Path, default=None,
                        help="the runs' folders (default: runs/benchmarks/classify; emptied first)")
    args = common.parse(parser)
    # --smoke: every requested task and encoder, one fold, the first cnews mode, 32 texts, batch 8, one epoch
    common.shrink_for_smoke(args, max_train_samples=32, max_eval_samples=32, folds_to_run=1, batch_size=8, epochs=1)
    if args.smoke:
        args.cnews_modes = args.cnews_modes[:1]
    common.require(args.data_dir)
    if args.cnews_folds < 2:
        sys.exit("--cnews_folds must be at least 2")
    args.work_dir = args.work_dir or common.work_dir(args)
    if args.work_dir.exists():
        shutil.rmtree(args.work_dir)  # stale fold files or models must not leak into this run
    args.work_dir.mkdir(parents=True)

    started = time.time()
    rows = []
    for task in args.tasks:
        rows += {"thucnews": thucnews, "cnews": cnews, "sst2": sst2}[task](args, args.work_dir)
    results = {
        "settings": vars(args),
        "machine": common.machine_info(),
        "total_wall_s": round(time.time() - started, 1),
        "summary": summarize(rows),
        "runs": rows,
    }

    def cell(entry, key):
        mean, std = entry.get(f"{key}_mean"), entry.get(f"{key}_std")
        if key == "accuracy" and std is None:
            std = entry.get("accuracy_standard_error")
        if mean is None:
            return f"{'-':>15}"
        return f"{100 * mean:7.2f}" + (f" ± {100 * std:5.2f}" if std is not None else " " * 8)

    keys = ("accuracy", "macro_f1", "test_accuracy", "test_macro_f1", "long_accuracy")
    print(f"\n{'task':9} {'encoder':10} {'long_text':10} {'runs':>4} " + " ".join(f"{key:>15}" for key in keys))
    for entry in results["summary"]:
        print(f"{entry['task']:9} {entry['encoder']:10} {entry['long_text']:10} {entry['runs']:4} "
              + " ".join(cell(entry, key) for key in keys))
    print("(in %: mean ± sample standard deviation over folds; for one run, accuracy ± its binomial standard error;"
          f" long_accuracy: the test documents longer than one window; {results['total_wall_s']} s in all)")
    common.write_json(args.output, results)


if __name__ == "__main__":
    main()
