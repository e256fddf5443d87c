#!/usr/bin/env python
"""Corpus prediction throughput: CoNLL-2003 train (14,041 sentences) re-tagged by a CoNLL model, sentences/s in one
process, against a plain loop over `pipeline()` calls.

    python benchmarks/corpus_predict.py --model_dir runs/conll_minilm_crf --threads 2
    python benchmarks/corpus_predict.py --model_dir runs/conll_minilm_crf --smoke      # 64 sentences

Three ways over the sentences of eng.train (words as the file gives them, `-DOCSTART-` lines skipped):

- `pipeline_loop`: what a user writes without this package's corpus path, one `pipeline()` call per sentence,
  `ner(words, is_split_into_words=True)` with `pipeline("token-classification", model=FOLDER,
  trust_remote_code=True, aggregation_strategy="simple")`, on the first `--loop_sentences` sentences (a rate: the
  loop over all of them would take as long as the rest of the benchmark);
- `corpus_fp32`: `python -m hf_bert_tasks.predictor MODEL --input eng.train --input_format conll --output
  OUT.conll` in this process (`read_records` -> `ChunkPredictor` -> `predict_corpus`: chunks of `--chunk_size`
  sentences, windows sorted by length, `--batch_size` windows per forward pass, written in input order);
- `corpus_bf16`: the same under `torch.autocast("cpu", dtype=torch.bfloat16)` (the encoder's matrix products in
  bf16; the CRF decodes in float64 either way), with the share of tags that differ from fp32.

Speed does not depend on how well the model was trained, only on its shape (MiniLM: 6 layers, hidden 384). Results:
benchmarks/results/corpus_predict.json.
"""

import time
from pathlib import Path

import common


def main() -> None:
    parser = common.parser(__doc__, "corpus_predict")
    parser.add_argument("--model_dir", required=True, help="a trained CoNLL NER folder (recipes/ner.py output)")
    parser.add_argument("--loop_sentences", type=int, default=1000)
    parser.add_argument("--chunk_size", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_sentences", type=int, default=None, help="the first N sentences of eng.train")
    args = common.parse(parser)
    common.shrink_for_smoke(args, loop_sentences=32, max_sentences=64)
    common.quiet_transformers()
    import torch
    from transformers import pipeline

    from hf_bert_tasks.ner.predictor import NerPredictor
    from hf_bert_tasks.predictor.corpus import ChunkPredictor, predict_corpus, read_records

    source = common.data_path("conll2003", "eng.train")
    sentences = [r["tokens"] for r in read_records(str(source), "conll")][: args.max_sentences]
    out = common.work_dir(args)
    out.mkdir(parents=True, exist_ok=True)
    report = {"machine": common.machine_info(), "sentences": len(sentences), "words": sum(map(len, sentences)),
              "chunk_size": args.chunk_size, "batch_size": args.batch_size}

    ner = pipeline("token-classification", model=args.model_dir, trust_remote_code=True,
                   aggregation_strategy="simple")
    loop = sentences[: args.loop_sentences]
    start = time.perf_counter()
    for words in loop:
        ner(words, is_split_into_words=True)
    seconds = time.perf_counter() - start
    report["pipeline_loop"] = {"sentences": len(loop), "seconds": seconds, "sentences_per_s": len(loop) / seconds}
    print("pipeline_loop", report["pipeline_loop"])

    predictor = NerPredictor.from_pretrained(args.model_dir, batch_size=args.batch_size)
    tags = {}
    for name, precision in (("corpus_fp32", None), ("corpus_bf16", torch.bfloat16)):
        path = Path(out) / f"{name}.conll"
        records = ({"tokens": words} for words in sentences)
        with torch.autocast("cpu", dtype=precision, enabled=precision is not None):
            start = time.perf_counter()
            predict_corpus(records, ChunkPredictor(predictor, "ner"), str(path), chunk_size=args.chunk_size,
                           progress=False)
            seconds = time.perf_counter() - start
        tags[name] = [line.split()[1] for line in path.read_text(encoding="utf-8").splitlines() if line]
        report[name] = {"sentences": len(sentences), "seconds": seconds, "sentences_per_s": len(sentences) / seconds}
        print(name, report[name])
    report["corpus_bf16"]["tags_differing_from_fp32"] = sum(
        a != b for a, b in zip(tags["corpus_fp32"], tags["corpus_bf16"])) / len(tags["corpus_fp32"])
    for name in ("corpus_fp32", "corpus_bf16"):
        report[name]["speedup_over_pipeline_loop"] = (report[name]["sentences_per_s"]
                                                      / report["pipeline_loop"]["sentences_per_s"])
    report["load_average_after"] = list(__import__("os").getloadavg())
    common.write_json(args.output, report)


if __name__ == "__main__":
    main()
