#!/usr/bin/env python
"""Lower precision on SST-2 dev (accuracy) and SQuAD 1.1 dev (EM/F1), CPU: the accuracy gate of issue 26 for the
classification and QA models (the CRF model's is `precision_conll.py`).

    python benchmarks/precision_tasks.py --task sst2 --model_dir runs/sst2 --threads 2
    python benchmarks/precision_tasks.py --task squad --model_dir runs/squad --threads 2
    python benchmarks/precision_tasks.py --task squad --smoke   # 32 questions; MiniLM with an untrained head

Every dev example goes through each door, with the same windows and decoding:

- `pytorch float32` and `pytorch bfloat16`: `TextClassifier` / `QuestionAnswerer.from_pretrained(model_dir,
  dtype=...)`;
- `onnx float32` and `onnx int8`: `OnnxTextClassifier` / `OnnxQuestionAnswerer` on `export_onnx`'s file and on its
  `quantize_int8` (the export's choice: int8 weights of the matrix products and the embeddings, a scale per output
  channel, the task's `FLOAT_PRODUCTS` left float32);
- `onnx int8, every product`: the same with every matrix product in int8 (what NER's export does).

Reported per door: the dev score (accuracy; EM and F1), its difference to float32 in points (the gate: within 0.3),
the share of examples whose label (answer span) is float32 PyTorch's, and examples/s (one timed pass per door after a
warm-up, `--threads` threads). JSON to benchmarks/results/precision_<task>.json.
"""

import csv
import time
from pathlib import Path

import torch

import common


def untrained_model(task: str, folder: Path, seed: int) -> Path:
    """The offline MiniLM with a fresh head of the task (for --smoke)."""
    from transformers import AutoModelForQuestionAnswering, AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    if task == "sst2":
        model = AutoModelForSequenceClassification.from_pretrained(
            common.minilm_path(), num_labels=2, id2label={0: "0", 1: "1"}, label2id={"0": 0, "1": 1})
    else:
        model = AutoModelForQuestionAnswering.from_pretrained(common.minilm_path())
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(common.minilm_path()).save_pretrained(folder)
    return folder


def sst2_dev(path: Path, limit: int | None):
    """(texts, gold labels) of SST-2's `label<TAB>text` file with its header line."""
    with open(path, encoding="utf-8", newline="") as file:
        rows = list(csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    rows = rows[:limit] if limit else rows
    return [text for _, text in rows], [label for label, _ in rows]


def main():
    parser = common.parser(__doc__, "precision_tasks")
    parser.add_argument("--task", choices=["sst2", "squad"], required=True)
    parser.add_argument("--model_dir", type=Path, default=None,
                        help="a trained model folder (recipes/classify.py on SST-2, recipes/qa.py on SQuAD)")
    parser.add_argument("--data_dir", type=Path, default=common.DATA_DIR)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N dev examples")
    parser.add_argument("--batch_size", type=int, default=32, help="windows per forward pass")
    args = common.parse(parser)
    common.shrink_for_smoke(args, limit=32)
    if args.output == common.RESULTS_DIR / "precision_tasks.json":
        args.output = common.RESULTS_DIR / f"precision_{args.task}.json"
    if args.model_dir is None:
        if not args.smoke:
            parser.error("--model_dir is required (a trained model folder)")
        args.model_dir = untrained_model(args.task, common.work_dir(args) / f"untrained_{args.task}", args.seed)
    common.quiet_transformers()
    from hf_bert_tasks.classification.predictor import TextClassifier
    from hf_bert_tasks.export import OnnxQuestionAnswerer, OnnxTextClassifier, export_onnx, quantize_int8
    from hf_bert_tasks.qa.data import read_squad_json
    from hf_bert_tasks.qa.metrics import qa_scores
    from hf_bert_tasks.qa.predictor import QuestionAnswerer

    threads = torch.get_num_threads()
    onnx_dir = common.work_dir(args) / f"onnx_{args.task}"
    onnx_path = export_onnx(args.model_dir, onnx_dir / "model.onnx")
    files = {"onnx float32": onnx_path, "onnx int8": quantize_int8(onnx_path, onnx_dir / "model.int8.onnx"),
             "onnx int8, every product": quantize_int8(onnx_path, onnx_dir / "model.int8_all.onnx", keep_float=())}
    torch_class, onnx_class = (TextClassifier, OnnxTextClassifier) if args.task == "sst2" else \
        (QuestionAnswerer, OnnxQuestionAnswerer)
    doors = {f"pytorch {dtype}": torch_class.from_pretrained(str(args.model_dir), dtype=dtype,
                                                            batch_size=args.batch_size)
             for dtype in ("float32", "bfloat16")}
    doors.update({name: onnx_class(path, args.model_dir, batch_size=args.batch_size, threads=threads)
                  for name, path in files.items()})

    if args.task == "sst2":
        texts, gold = sst2_dev(args.data_dir / "sst2" / "dev.tsv", args.limit)

        def predict(door, n=None):  # one key per example: the label
            return [record["label"] for record in door(texts[:n])]

        def score(keys):
            return {"accuracy": 100 * sum(k == g for k, g in zip(keys, gold)) / len(gold)}
    else:
        dev = read_squad_json(args.data_dir / "squad_v1.1" / "dev-v1.1.json")
        dev = dev.select(range(min(args.limit, len(dev)))) if args.limit else dev
        references = {i: answers["text"] for i, answers in zip(dev["id"], dev["answers"])}

        def predict(door, n=None):  # one key per question: the answer's (start, end) and text
            questions, contexts = dev["question"][:n], dev["context"][:n]
            predicted = door.predict(questions, contexts)
            return [(p["start"], p["end"], p["answer"]) for p in (predicted[str(i)] for i in range(len(questions)))]

        def score(keys):
            return qa_scores({i: key[2] for i, key in zip(dev["id"], keys)}, references, "en")
    examples = len(texts) if args.task == "sst2" else len(dev)

    keys, seconds = {}, {}
    for name, door in doors.items():
        predict(door, 16)  # warm-up: the first calls allocate (and ONNX Runtime plans its memory)
        start = time.perf_counter()
        keys[name] = predict(door)
        seconds[name] = time.perf_counter() - start
        print(f"{name}: {seconds[name]:.1f} s", flush=True)

    reference = keys["pytorch float32"]
    results = {}
    for name in doors:
        results[name] = {**score(keys[name]),
                         "same_as_float32": sum(a == b for a, b in zip(keys[name], reference)) / examples,
                         "examples_per_second": examples / seconds[name],
                         "file_mib": files[name].stat().st_size / 2**20 if name in files else None}
    metric = "accuracy" if args.task == "sst2" else "f1"
    base = results["pytorch float32"]
    print(f"{args.task}: {examples} dev examples, {threads} threads, batch {args.batch_size}")
    for name, result in results.items():
        result["points_from_float32"] = result[metric] - base[metric]
        result["speedup"] = result["examples_per_second"] / base["examples_per_second"]
        em = f"EM {result['exact_match']:6.2f}  " if args.task == "squad" else ""
        print(f"{name:<25} {em}{metric} {result[metric]:6.2f} ({result['points_from_float32']:+.2f})  "
              f"same as float32 {100 * result['same_as_float32']:6.2f}%  "
              f"{result['examples_per_second']:7.1f} examples/s ({result['speedup']:.2f}x)")
    common.write_json(args.output, {"arguments": vars(args), "threads": threads, "examples": examples,
                                    "metric": metric, "results": results, "machine": common.machine_info()})


if __name__ == "__main__":
    main()
