#!/usr/bin/env python
"""Distillation (recipes/distill.py): a MiniLM teacher taught to 3- and 2-layer students, against students of the same
layers fine-tuned directly (no teacher), at equal steps, plus distillation on extra unlabelled transfer text.

    python benchmarks/distill.py                               # CoNLL-2003, MiniLM CRF teacher, 3 epochs, batch 32
    python benchmarks/distill.py --task sst2                   # SST-2, MiniLM classifier teacher, 1 epoch
    python benchmarks/distill.py --smoke                       # a few steps of every run, in about two minutes
    python benchmarks/distill.py --gold_sentences 2000 --transfer_sentences 4000 --epochs 1 \
        --output benchmarks/results/distill_conll2003_reduced.json  # a reduced run

Runs, one after the other: the teacher (`recipes/ner.py --head crf` or `recipes/classify.py` on MiniLM, or
`--teacher_dir` to reuse one); then for each `--student_layers` N: `direct` (N evenly spaced teacher layers,
fine-tuned on the gold labels only: `--soft_weight 0`), `distilled` (the recipe's default losses: soft targets + gold,
same data and steps) and `distilled+transfer` (plus `--transfer_sentences` unlabelled training sentences that the
teacher labels; more steps). The labelled data are the first `--gold_sentences` training sentences (default all);
the transfer text is the next `--transfer_sentences` (default: the rest; none when all are gold, and the run is then
skipped): the scenario of "more text than annotated". Dev and test text are never used for transfer. `--variants`
runs some of them only (e.g. one more distilled setting, `--distill_args`, against a recorded direct run).
`--transfer_source squad` takes the CoNLL-2003 transfer text from outside CoNLL instead: the sentences of the SQuAD
v1.1 training paragraphs (Wikipedia), which is how text beyond the annotated set is tried at the full budget;
`--transfer_source mentions` makes it from the gold sentences themselves, their entity mentions swapped for others of
the same type (the recipe's `--augment_mentions`, TinyBERT's data augmentation in its NER form).
`--student_learning_rate` sets the students' encoder rate apart from the teacher's.

Reported per run: dev/test F1 (NER, strict) or accuracy (SST-2), the share of the teacher's test score kept, training
steps, parameters, and predictor sentences/s (`NerPredictor` / `TextClassifier` on raw test sentences) at batch 1
and 32 (median of `--speed_repeats`, after a warm-up), measured in this process right after each run.
"""

import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import common

RECIPES = common.ROOT / "recipes"
VARIANTS = ("direct", "distilled", "distilled+transfer")


def arguments(argv=None):
    parser = common.parser(__doc__, "distill")
    parser.add_argument("--task", choices=["conll2003", "sst2"], default="conll2003")
    parser.add_argument("--epochs", type=float, default=None, help="default: 3 (CoNLL-2003) or 1 (SST-2)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--student_learning_rate", type=float, default=None,
                        help="the students' encoder rate (default --learning_rate): a student whose layers were "
                             "taken apart may want a larger step than the teacher that trained them together")
    parser.add_argument("--head_learning_rate", type=float, default=None,
                        help="the new layers' rate; default 1e-3 for the CRF (as benchmarks/ner_conll.py), none for SST-2")
    parser.add_argument("--student_layers", type=int, nargs="+", default=[3, 2])
    parser.add_argument("--gold_sentences", type=int, default=None, help="labelled training sentences (default all)")
    parser.add_argument("--transfer_sentences", type=int, default=None,
                        help="the next N training sentences, unlabelled, as transfer text (default: the rest)")
    parser.add_argument("--transfer_source", choices=["train", "squad", "mentions"], default="train",
                        help="CoNLL-2003 transfer text: the training sentences after the gold ones (train), the "
                             "sentences of the SQuAD v1.1 training paragraphs (squad: Wikipedia, no CoNLL text), or "
                             "the gold sentences with their entity mentions swapped (mentions: the recipe's "
                             "--augment_mentions, TinyBERT-style augmentation)")
    parser.add_argument("--mention_passes", type=int, default=1,
                        help="with --transfer_source mentions: the recipe's --augment_mentions passes")
    parser.add_argument("--max_eval_samples", type=int, default=None, help="dev and test sentences (default all)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS),
                        help="which student runs (default all; distilled+transfer needs transfer text)")
    parser.add_argument("--distill_args", default="", help="extra flags for recipes/distill.py (e.g. '--temperature 2')")
    parser.add_argument("--teacher_dir", type=Path, default=None, help="reuse a trained teacher folder")
    parser.add_argument("--speed_sentences", type=int, default=256, help="test sentences timed per batch size")
    parser.add_argument("--speed_repeats", type=int, default=3)
    parser.add_argument("--keep_models", action="store_true", help="keep the students' weights after timing")
    parser.add_argument("--speed_only", action="store_true",
                        help="no training: time the --teacher_dir model against students cut from it "
                             "(--student_layers), interleaved round by round, so that a shared machine's load "
                             "affects all alike; speed does not depend on the weights")
    parser.add_argument("--data_dir", type=Path, default=common.DATA_DIR)
    args = common.parse(parser, argv)
    if args.epochs is None:
        args.epochs = 3.0 if args.task == "conll2003" else 1.0
    if args.student_learning_rate is None:
        args.student_learning_rate = args.learning_rate
    if args.head_learning_rate is None and args.task == "conll2003":
        args.head_learning_rate = 1e-3
    common.shrink_for_smoke(args, gold_sentences=48, transfer_sentences=48, max_eval_samples=24, epochs=1,
                            speed_sentences=16, speed_repeats=1)
    return args


# -- data ------------------------------------------------------------------------------------------------------------


def conll_files(args, work: Path):
    """Recipe flags for the gold data and for the transfer text (None without any), the speed texts and the sizes.
    The transfer text (`--transfer_source`): CoNLL tokens of the training sentences after the gold ones, with their
    documents (tags written as O: the recipe ignores them); the SQuAD sentences; or the recipe's own
    `--augment_mentions` passes over the gold sentences."""
    from hf_bert_tasks.distillation import mention_swap_sentences
    from hf_bert_tasks.ner.data import load_ner_dataset

    folder = args.data_dir / "conll2003"
    common.require(folder / "eng.train", folder / "eng.testa", folder / "eng.testb")
    train = load_ner_dataset(train_file=str(folder / "eng.train"), source_scheme="IOB1", target_scheme="BIO")["train"]
    gold = min(args.gold_sentences or len(train), len(train))
    transfer_flags = None
    rest = len(train) - gold if args.transfer_sentences is None else min(args.transfer_sentences, len(train) - gold)
    if args.transfer_source == "squad":
        transfer, rest = squad_transfer_text(args, work)
        transfer_flags = ["--transfer_file", transfer, "--transfer_format", "text"]
    elif args.transfer_source == "mentions":
        labelled, names = train.select(range(gold)), train.features["ner_tags"].feature.names
        tags = [[names[tag] for tag in sentence] for sentence in labelled["ner_tags"]]
        rest = len(mention_swap_sentences(labelled["tokens"], tags, "BIO", passes=args.mention_passes)[0])
        transfer_flags = ["--augment_mentions", args.mention_passes]
    elif rest > 0:
        lines, document = [], None
        for row in train.select(range(gold, gold + rest)):
            if row["document_id"] != document:
                lines += ["-DOCSTART- O", ""]
                document = row["document_id"]
            lines += [f"{token} O" for token in row["tokens"]] + [""]
        work.mkdir(parents=True, exist_ok=True)
        transfer = work / "transfer.conll"
        transfer.write_text("\n".join(lines) + "\n", encoding="utf-8")
        transfer_flags = ["--transfer_file", transfer, "--transfer_format", "conll"]
    flags = ["--train_file", folder / "eng.train", "--validation_file", folder / "eng.testa", "--test_file",
             folder / "eng.testb", "--source_scheme", "IOB1", "--max_train_samples", gold]
    test = load_ner_dataset(train_file=str(folder / "eng.testb"), source_scheme="IOB1", target_scheme="BIO")["train"]
    speed_texts = [" ".join(tokens) for tokens in test["tokens"][: args.speed_sentences]]
    return flags, transfer_flags, speed_texts, {"gold": gold, "transfer": rest}


def squad_transfer_text(args, work: Path):
    """Raw text for NER transfer: the SQuAD v1.1 training paragraphs (Wikipedia), split after ., ! or ? followed by
    a space and a capital or quote, a sentence per line and a blank line between articles; the first
    `--transfer_sentences` (default all). Returns (the file, its sentence count)."""
    source = args.data_dir / "squad_v1.1" / "train-v1.1.subset_44articles.json"
    common.require(source)
    boundary = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
    lines, count, limit = [], 0, args.transfer_sentences
    for article in json.loads(source.read_text(encoding="utf-8"))["data"]:
        sentences = [s.strip() for p in article["paragraphs"] for s in boundary.split(p["context"]) if s.strip()]
        sentences = sentences[: None if limit is None else limit - count]
        if not sentences:
            break
        lines += sentences + [""]
        count += len(sentences)
    work.mkdir(parents=True, exist_ok=True)
    transfer = work / "transfer_squad.txt"
    transfer.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return transfer, count


def sst2_files(args, work: Path):
    """As conll_files for SST-2: the transfer file holds one training sentence per line."""
    folder = args.data_dir / "sst2"
    common.require(folder / "train.tsv", folder / "dev.tsv", folder / "test.tsv")
    rows = [line.split("\t", 1)[1] for line in (folder / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    gold = min(args.gold_sentences or len(rows), len(rows))
    rest = len(rows) - gold if args.transfer_sentences is None else min(args.transfer_sentences, len(rows) - gold)
    transfer_flags = None
    if rest > 0:
        transfer = work / "transfer.txt"
        work.mkdir(parents=True, exist_ok=True)
        transfer.write_text("\n".join(rows[gold:gold + rest]) + "\n", encoding="utf-8")
        transfer_flags = ["--transfer_file", transfer, "--transfer_format", "text"]
    flags = ["--train_file", folder / "train.tsv", "--validation_file", folder / "dev.tsv", "--test_file",
             folder / "test.tsv", "--max_train_samples", gold]
    tests = [line.split("\t", 1)[1] for line in (folder / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    return flags, transfer_flags, tests[: args.speed_sentences], {"gold": gold, "transfer": rest}


# -- runs ------------------------------------------------------------------------------------------------------------


def run_recipe(args, name: str, recipe: str, flags: list, out: Path, learning_rate: float) -> dict:
    common_flags = ["--output_dir", out, "--do_train", "--do_eval", "--do_predict", "--num_train_epochs", args.epochs,
                    "--per_device_train_batch_size", args.batch_size, "--per_device_eval_batch_size", 64,
                    "--learning_rate", learning_rate, "--seed", args.seed, "--save_strategy", "no",
                    "--report_to", "none", "--logging_steps", 50, "--disable_tqdm", "true"]
    if args.head_learning_rate is not None:
        common_flags += ["--head_learning_rate", args.head_learning_rate]
    if args.max_eval_samples is not None:
        common_flags += ["--max_eval_samples", args.max_eval_samples, "--max_predict_samples", args.max_eval_samples]
    command = [sys.executable, str(RECIPES / recipe), *map(str, flags), *map(str, common_flags)]
    print(f"\n[{name}] " + " ".join(command), flush=True)
    started = time.time()
    subprocess.run(command, check=True)
    metrics = json.loads((out / "all_results.json").read_text())
    state = json.loads((out / "trainer_state.json").read_text())
    return {"run": name, "wall_s": round(time.time() - started, 1), "train_runtime_s": metrics.get("train_runtime"),
            "steps": state.get("global_step"), "metrics": metrics}


def scores(args, metrics: dict) -> dict:
    key = "f1" if args.task == "conll2003" else "accuracy"
    return {"dev": metrics.get(f"eval_{key}"), "test": metrics.get(f"test_{key}"), "metric": key}


def predictor_speed(args, folder: Path, texts: list[str]) -> dict:
    """Sentences/s of the task's predictor on `texts` at batch 1 and 32 (median of the repeats), and parameters."""
    if args.task == "conll2003":
        from hf_bert_tasks.ner.predictor import NerPredictor as Predictor
    else:
        from hf_bert_tasks.classification.predictor import TextClassifier as Predictor
    result = {}
    for batch in (1, 32):
        predictor = Predictor.from_pretrained(str(folder), batch_size=batch, device="cpu")
        predictor(texts[:4])  # warm-up
        times = []
        for _ in range(args.speed_repeats):
            started = time.perf_counter()
            predictor(texts)
            times.append(time.perf_counter() - started)
        result[f"sentences_per_second_batch{batch}"] = round(len(texts) / statistics.median(times), 1)
    result["parameters"] = predictor.model.num_parameters()
    return result


def write_report(args, rows: list[dict], sizes: dict, complete: bool) -> dict:
    """Scores, share of the teacher's test score and speed-ups against the teacher (row 0), written as JSON."""
    teacher_scores = scores(args, rows[0]["metrics"])
    for row in rows:
        row["scores"] = scores(args, row["metrics"])
        if teacher_scores["test"] and row["scores"]["test"] is not None:
            row["share_of_teacher_test"] = round(row["scores"]["test"] / teacher_scores["test"], 4)
        for batch in (1, 32):
            key = f"sentences_per_second_batch{batch}"
            row[f"speedup_batch{batch}"] = round(row[key] / rows[0][key], 2)
    report = {"complete": complete, "settings": vars(args), "machine": common.machine_info(), "sentences": sizes,
              "runs": rows}
    common.write_json(args.output, report)
    return report


def interleaved_speed(args, work: Path, speed_texts: list[str]) -> None:
    """--speed_only: teacher and fresh students (same architecture as trained ones) timed in alternation."""
    from hf_bert_tasks.distillation import load_teacher, student_from_teacher

    if args.teacher_dir is None:
        sys.exit("--speed_only needs --teacher_dir")
    teacher, tokenizer, _ = load_teacher(str(args.teacher_dir))
    folders = {"teacher": args.teacher_dir}
    for layers in args.student_layers:
        folders[f"{layers}-layer"] = work / f"speed_student{layers}"
        student, _ = student_from_teacher(teacher, layers)
        student.save_pretrained(folders[f"{layers}-layer"])
        tokenizer.save_pretrained(folders[f"{layers}-layer"])
    if args.task == "conll2003":
        from hf_bert_tasks.ner.predictor import NerPredictor as Predictor
    else:
        from hf_bert_tasks.classification.predictor import TextClassifier as Predictor
    times = {(name, batch): [] for name in folders for batch in (1, 32)}
    predictors = {(name, batch): Predictor.from_pretrained(str(folder), batch_size=batch, device="cpu")
                  for name, folder in folders.items() for batch in (1, 32)}
    for predictor in predictors.values():
        predictor(speed_texts[:4])  # warm-up
    for _ in range(args.speed_repeats):
        for key, predictor in predictors.items():
            started = time.perf_counter()
            predictor(speed_texts)
            times[key].append(time.perf_counter() - started)
    rows = []
    for name in folders:
        row = {"model": name, "parameters": predictors[(name, 1)].model.num_parameters()}
        for batch in (1, 32):
            row[f"sentences_per_second_batch{batch}"] = round(len(speed_texts) / statistics.median(times[(name, batch)]), 1)
            row[f"speedup_batch{batch}"] = round(statistics.median(times[("teacher", batch)])
                                                 / statistics.median(times[(name, batch)]), 2)
        rows.append(row)
        print(row, flush=True)
    common.write_json(args.output, {"settings": vars(args), "machine": common.machine_info(),
                                    "speed_sentences": len(speed_texts), "interleaved_speed": rows})


def main():
    args = arguments()
    common.quiet_transformers()
    work = common.work_dir(args) / args.task
    prepare = conll_files if args.task == "conll2003" else sst2_files
    data_flags, transfer_flags, speed_texts, sizes = prepare(args, work)
    if args.speed_only:
        interleaved_speed(args, work, speed_texts)
        return
    teacher_recipe = "ner.py" if args.task == "conll2003" else "classify.py"
    rows = []
    teacher = args.teacher_dir
    if teacher is None:
        teacher = work / "teacher"
        head = ["--head", "crf"] if args.task == "conll2003" else []
        rows.append(run_recipe(args, "teacher", teacher_recipe,
                               ["--model_name_or_path", common.minilm_path(), *head, *data_flags], teacher,
                               args.learning_rate))
    else:
        metrics = json.loads((teacher / "all_results.json").read_text())
        rows.append({"run": "teacher", "reused": str(teacher), "metrics": metrics})
    rows[0].update(layers=6, **predictor_speed(args, teacher, speed_texts))
    write_report(args, rows, sizes, complete=False)

    extra = args.distill_args.split()
    for layers in args.student_layers:
        variants = [("direct", ["--soft_weight", "0"]), ("distilled", extra)]
        if transfer_flags is not None:
            variants.append(("distilled+transfer", [*extra, *transfer_flags]))
        for variant, flags in [(name, flags) for name, flags in variants if name in args.variants]:
            name = f"{layers}-layer {variant}"
            out = work / f"student{layers}_{variant.replace('+', '_')}"
            row = run_recipe(args, name, "distill.py", ["--teacher_name_or_path", teacher, "--student_layers", layers,
                                                        *data_flags, *flags], out, args.student_learning_rate)
            row.update(layers=layers, variant=variant, **predictor_speed(args, out, speed_texts))
            if not args.keep_models:
                for weights in out.glob("*.safetensors"):
                    weights.unlink()
            rows.append(row)
            write_report(args, rows, sizes, complete=False)  # partial results survive an interrupted run

    report = write_report(args, rows, sizes, complete=True)
    print(f"\n{'run':<28}{'dev':>8}{'test':>8}{'kept':>8}{'steps':>7}{'params':>12}{'s/s b1':>9}{'s/s b32':>9}")
    for row in report["runs"]:
        s = row["scores"]
        print(f"{row['run']:<28}{s['dev'] or 0:>8.4f}{s['test'] or 0:>8.4f}{row.get('share_of_teacher_test', 1):>8.3f}"
              f"{row.get('steps') or 0:>7}{row['parameters']:>12,}{row['sentences_per_second_batch1']:>9.1f}"
              f"{row['sentences_per_second_batch32']:>9.1f}")


if __name__ == "__main__":
    main()
