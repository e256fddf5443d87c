#!/usr/bin/env python
"""Global pointer (span) head vs CRF head through `recipes/ner.py`, same encoder and budget.

    python benchmarks/ner_nested.py --dataset genia        # GENIA test: F1, nested recall; the CRF on outermost
    python benchmarks/ner_nested.py --dataset conll2003    # flat data: GP (--decode flat) vs CRF test F1
    python benchmarks/ner_nested.py --dataset cluener      # CLUENER dev (no labelled test): GP vs CRF
    python benchmarks/ner_nested.py --smoke                # 32 sentences per split, a few steps: proves it runs

Budgets are stated in the results: `--max_steps` optimizer steps of `--batch_size` (default 1 epoch when
`--max_steps` is not given), `--max_train_samples` sentences. The CRF can only learn flat tags: on GENIA it is
trained on the outermost entities (what the reader keeps for flat tags) and its predictions are scored with the same
exact-span scorer as the global pointer (`ner.metrics.span_scores`) against all gold entities and against the
outermost ones. Runs go one after the other; results go to `benchmarks/results/ner_nested_<dataset>.json`.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import common

SPLITS = {  # train, validation, test; CLUENER's test file has no labels, so its dev set is the test
    "genia": ("genia/train.jsonl", "genia/dev.jsonl", "genia/test.jsonl"),
    "conll2003": ("conll2003/eng.train", "conll2003/eng.testa", "conll2003/eng.testb"),
    "cluener": ("cluener2020/train.json", None, "cluener2020/dev.json"),
}


def main():
    parser = common.parser(__doc__, "ner_nested_<dataset>")
    parser.add_argument("--dataset", choices=sorted(SPLITS), default="genia")
    parser.add_argument("--heads", nargs="+", default=["global_pointer", "crf"])
    parser.add_argument("--max_steps", type=int, default=None, help="optimizer steps (default: --epochs)")
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--max_train_samples", type=int, default=None)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--head_learning_rate", type=float, default=1e-3)
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--model_name_or_path", default=None,
                        help="the encoder (default: MiniLM), e.g. MiniLM with CLUENER's characters appended")
    parser.add_argument("--extra", nargs="*", default=[], help="more recipe flags, passed as is")
    parser.add_argument("--score_only", action="store_true",
                        help="score the runs already in the work folder again (no training)")
    args = parser.parse_args()
    args.benchmark = f"ner_nested_{args.dataset}"
    common.setup(args)
    paths = [common.data_path(p) if p else None for p in SPLITS[args.dataset]]
    common.require(*[p for p in paths if p])
    limits = [f"--max_train_samples={args.max_train_samples}"] if args.max_train_samples else []
    if args.smoke:
        args.max_steps, args.batch_size = min(args.max_steps or 4, 4), 4
        limits = [f"--max_{split}_samples=32" for split in ("train", "eval", "predict")]
    budget = ["--max_steps", str(args.max_steps)] if args.max_steps else ["--num_train_epochs", str(args.epochs)]
    work = common.work_dir(args)
    encoder = args.model_name_or_path or common.minilm_path()
    results = {"dataset": args.dataset, "encoder": encoder, "settings": vars(args),
               "machine": common.machine_info(), "runs": {}}
    train, validation, test = paths
    for head in args.heads:
        out = work / head
        files = ["--train_file", str(train), "--test_file", str(test)]
        if validation:
            files += ["--validation_file", str(validation)]
        if args.dataset == "conll2003":
            files += ["--source_scheme", "IOB1"]
        if head == "global_pointer" and args.dataset == "conll2003":
            files += ["--decode", "flat"]  # flat data: the best non-overlapping spans
        command = [sys.executable, str(common.ROOT / "recipes" / "ner.py"), "--model_name_or_path", encoder, *files,
                   "--head", head, "--output_dir", str(out), "--overwrite_output_dir",
                   "--do_train", "--do_predict", *budget, "--per_device_train_batch_size", str(args.batch_size),
                   "--per_device_eval_batch_size", "32", "--learning_rate", str(args.learning_rate),
                   "--head_learning_rate", str(args.head_learning_rate), "--max_seq_length",
                   str(args.max_seq_length), "--seed", str(args.seed), "--save_strategy", "no", "--report_to",
                   "none", "--logging_steps", "50", "--disable_tqdm", "true", *limits, *args.extra]
        started = time.time()
        if not args.score_only:
            print("running:", " ".join(command), flush=True)
            out.mkdir(parents=True, exist_ok=True)
            with open(work / f"{head}.log", "w") as log:
                if subprocess.run(command, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=log,
                                  stderr=subprocess.STDOUT).returncode:
                    sys.exit(f"{head} run failed: see {work / f'{head}.log'}")
        metrics = json.loads((out / "all_results.json").read_text())
        run = {"wall_s": None if args.score_only else round(time.time() - started, 1), "train_samples_per_second":
               metrics.get("train_samples_per_second"), "train_runtime_s": metrics.get("train_runtime"),
               "test_recipe_scores": {k: v for k, v in metrics.items() if k.startswith("test_")}}
        if (out / "test_predictions.jsonl").is_file():
            run.update(span_scores_of(out / "test_predictions.jsonl", test, head,
                                      "IOB1" if args.dataset == "conll2003" else "BIO"))
        else:  # CoNLL's column predictions: the recipe's strict entity scores are exact-span scores of flat data
            run["all_gold"] = {key: metrics[f"test_{key}"] for key in ("precision", "recall", "f1")}
            run["all_gold"]["nested_recall"] = None
        results["runs"][head] = run
    print(f"\n{args.dataset}: exact-span micro F1 on {'dev' if args.dataset == 'cluener' else 'test'}")
    for head, run in results["runs"].items():
        line = f"{head:15} F1 {100 * run['all_gold']['f1']:6.2f}"
        if run["all_gold"]["nested_recall"] is not None:
            line += f"  nested recall {100 * run['all_gold']['nested_recall']:6.2f}"
        if "outermost_gold" in run:
            line += f"  F1 vs outermost {100 * run['outermost_gold']['f1']:6.2f}"
        print(line)
    common.write_json(args.output, results)


def span_scores_of(predictions: Path, test_file: Path, head: str, scheme: str) -> dict:
    """The test predictions scored as spans against all gold entities and, for data with nested ones, against the
    outermost (what a flat tagger can learn); both heads by the same scorer."""
    from hf_bert_tasks.modeling.tagging import tags_to_spans
    from hf_bert_tasks.ner.data import load_ner_dataset
    from hf_bert_tasks.ner.metrics import span_scores

    gold = load_ner_dataset(test_file=test_file, source_scheme=scheme, target_scheme="BIO", nested="keep")["test"]
    tag_names = gold.features["ner_tags"].feature.names
    rows = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    gold = gold.select(range(len(rows)))  # the first sentences, with --max_predict_samples
    if head == "global_pointer":
        found = [[(e["start"], e["end"], e["type"]) for e in row["entities"]] for row in rows]
    else:
        found = [[(s.start, s.end, s.type) for s in tags_to_spans(row["ner_tags"], "BIO")] for row in rows]
    all_gold = [[(e["start"], e["end"], e["type"]) for e in row] for row in gold["entities"]]
    outermost = [[(s.start, s.end, s.type) for s in tags_to_spans([tag_names[t] for t in row], "BIO")]
                 for row in gold["ner_tags"]]
    scores = {"all_gold": span_scores(all_gold, found)}
    if all_gold != outermost:
        scores["outermost_gold"] = span_scores(outermost, found)
    return scores


if __name__ == "__main__":
    main()
