#!/usr/bin/env python
"""Inference texts/s of `NerPredictor` with the global pointer model vs the CRF model, one text per call ("batch 1")
and 32 per call ("batch 32"), on CoNLL-2003 dev sentences (their words joined by spaces).

    python benchmarks/span_inference.py --threads 1     # the models ner_nested.py --dataset conll2003 trained
    python benchmarks/span_inference.py --smoke         # 8 texts, 1 repeat

Each case is timed `--repeats` times, heads taking turns so that a change in machine load hits both alike; the best
time counts. Results go to `benchmarks/results/span_inference.json`; the load average before and after is recorded.
"""

import os
import time

import common


def main():
    parser = common.parser(__doc__, "span_inference")
    parser.add_argument("--texts", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work_dir", default=str(common.RUNS_DIR / "ner_nested_conll2003"),
                        help="folder with the trained global_pointer/ and crf/ models")
    args = common.parse(parser)
    if args.smoke:
        args.texts, args.repeats = 8, 1
    common.quiet_transformers()
    from hf_bert_tasks.ner.data import load_ner_dataset
    from hf_bert_tasks.ner.predictor import NerPredictor

    dev = load_ner_dataset(test_file=common.data_path("conll2003", "eng.testa"))["test"]
    texts = [" ".join(tokens) for tokens in dev["tokens"] if len(tokens) > 5][: args.texts]
    predictors = {head: NerPredictor.from_pretrained(os.path.join(args.work_dir, head), batch_size=32)
                  for head in ("global_pointer", "crf")}
    results = {"settings": vars(args), "machine_before": common.machine_info(), "texts": len(texts), "runs": {}}
    best = {}
    for _ in range(args.repeats):
        for head, predictor in predictors.items():
            for batch in (1, 32):
                started = time.perf_counter()
                for i in range(0, len(texts), batch):
                    predictor(texts[i:i + batch])
                seconds = time.perf_counter() - started
                best[(head, batch)] = min(best.get((head, batch), seconds), seconds)
    for (head, batch), seconds in best.items():
        results["runs"].setdefault(head, {})[f"batch_{batch}_texts_per_second"] = round(len(texts) / seconds, 1)
        print(f"{head:15} batch {batch:2}: {len(texts) / seconds:7.1f} texts/s")
    results["machine_after"] = common.machine_info()
    common.write_json(args.output, results)


if __name__ == "__main__":
    main()
