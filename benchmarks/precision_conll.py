#!/usr/bin/env python
"""Lower precision on CoNLL-2003 dev (eng.testa), CPU: the accuracy gate of issue 26 for the CRF model, and speed.

    python benchmarks/precision_conll.py --model_dir out/conll --threads 2
    python benchmarks/precision_conll.py --smoke     # 64 sentences, one pass; an untrained model if no --model_dir

The dev sentences go through `predict_words` of each door, with the same windows, merging and CRF:

- `pytorch float32` and `pytorch bfloat16`: `NerPredictor.from_pretrained(model_dir, dtype=...)` (the CRF's own
  scores stay float32);
- `onnx float32`: `OnnxNerPredictor` on `export_onnx`'s file;
- `onnx int8 <operators>`: the same file quantized by `export.quantize_int8` with int8 weights for those operators,
  one scale per output channel (`MatMul+Gather`, the matrix products and the embeddings, the export's choice;
  `MatMul`, the products only; `MatMul per-tensor`, one scale per matrix; `all`, every operator ONNX Runtime
  quantizes).

Reported per door: the strict entity F1 against the gold tags (the recipe's metric), the F1 of its predictions taking
float32 PyTorch's as the reference, its difference to float32 in F1 points (the gate: within 0.3), the file size for
ONNX, and sentences/s (the doors taking turns, median of `--repeats`, `--threads` threads). JSON to
benchmarks/results/precision_conll.json.
"""

import statistics
import time
from pathlib import Path

import torch

import common
from onnx_conll import untrained_model

# name: (operators, a scale per output channel)
INT8_VARIANTS = {"MatMul+Gather": (("MatMul", "Gather"), True), "MatMul": (("MatMul",), True),
                 "MatMul per-tensor": (("MatMul",), False), "all": (None, True)}


def main():
    parser = common.parser(__doc__, "precision_conll")
    parser.add_argument("--model_dir", type=Path, default=None, help="a trained CRF model folder (recipes/ner.py)")
    parser.add_argument("--dev_file", type=Path, default=common.data_path("conll2003", "eng.testa"))
    parser.add_argument("--source_scheme", default="IOB1", help="tag scheme of --dev_file")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N sentences")
    parser.add_argument("--batch_size", type=int, default=32, help="windows per forward pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per door (median kept)")
    args = common.parse(parser)
    common.shrink_for_smoke(args, limit=64, repeats=1)
    if args.model_dir is None:
        if not args.smoke:
            parser.error("--model_dir is required (a trained model folder)")
        args.model_dir = untrained_model(common.work_dir(args) / "untrained_crf", args.seed)
    common.quiet_transformers()
    from hf_bert_tasks.export import OnnxNerPredictor, export_onnx, quantize_int8
    from hf_bert_tasks.ner.metrics import entity_scores
    from hf_bert_tasks.ner.predictor import NerPredictor

    threads = torch.get_num_threads()
    onnx_dir = common.work_dir(args) / "onnx"
    onnx_path = export_onnx(args.model_dir, onnx_dir / "model.onnx")
    files = {"onnx float32": onnx_path}
    for name, (operators, per_channel) in INT8_VARIANTS.items():
        files[f"onnx int8 {name}"] = quantize_int8(onnx_path, onnx_dir / f"model.int8.{name.replace(' ', '_')}.onnx",
                                                   operators, per_channel)
    doors = {f"pytorch {dtype}": NerPredictor.from_pretrained(args.model_dir, dtype=dtype, batch_size=args.batch_size)
             for dtype in ("float32", "bfloat16")}
    doors.update({name: OnnxNerPredictor(path, args.model_dir, batch_size=args.batch_size, threads=threads)
                  for name, path in files.items()})

    scheme = doors["pytorch float32"].scheme
    sentences, gold, _ = common.load_sentences(args.dev_file, args.source_scheme, args.limit, scheme=scheme)
    sentences = [list(s) for s in sentences]
    for door in doors.values():  # warm-up: first calls allocate (and ONNX Runtime plans its memory)
        door.predict_words(sentences[:32])
    tags, seconds = {}, {name: [] for name in doors}
    for _ in range(args.repeats):
        for name, door in doors.items():
            start = time.perf_counter()
            tags[name] = door.predict_words(sentences)[0]
            seconds[name].append(time.perf_counter() - start)

    reference = tags["pytorch float32"]
    results = {}
    for name in doors:
        f1 = entity_scores(gold, tags[name], scheme)["f1"]
        results[name] = {"dev_f1": f1, "f1_against_float32": entity_scores(reference, tags[name], scheme)["f1"],
                         "sentences_per_second": len(sentences) / statistics.median(seconds[name]),
                         "file_mib": files[name].stat().st_size / 2**20 if name in files else None}
    base = results["pytorch float32"]
    print(f"{len(sentences)} sentences, {threads} threads, batch {args.batch_size}")
    for name, result in results.items():
        result["f1_points_from_float32"] = 100 * (result["dev_f1"] - base["dev_f1"])
        result["speedup"] = result["sentences_per_second"] / base["sentences_per_second"]
        size = f"  {result['file_mib']:6.1f} MiB" if result["file_mib"] is not None else ""
        print(f"{name:<24} dev F1 {100 * result['dev_f1']:6.2f} ({result['f1_points_from_float32']:+.2f})  "
              f"F1 vs float32 {100 * result['f1_against_float32']:6.2f}  "
              f"{result['sentences_per_second']:7.1f} sentences/s ({result['speedup']:.2f}x){size}")
    common.write_json(args.output, {"arguments": vars(args), "threads": threads, "sentences": len(sentences),
                                    "results": results, "machine": common.machine_info()})


if __name__ == "__main__":
    main()
