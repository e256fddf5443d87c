#!/usr/bin/env python
"""ONNX Runtime against PyTorch on CoNLL-2003's dev set (eng.testa), CPU: same entities? how fast?

    python benchmarks/onnx_conll.py --model_dir out/conll            # a folder written by recipes/ner.py
    python benchmarks/onnx_conll.py --model_dir out/conll --limit 200 --repeats 1    # a quick look
    python benchmarks/onnx_conll.py --smoke     # 64 sentences, one pass; an untrained model if no --model_dir

The model folder is exported with `hf_bert_tasks.export.export_onnx` (to `--onnx_path`, default
`<model_dir>/onnx/model.onnx`; an existing file is reused unless `--reexport`). Both predictors then tag the dev
set with the same code (`NerPredictor` and `OnnxNerPredictor`: same windows, merging and scheme handling; only the
forward pass and the CRF decoding differ), two ways:

- words: `predict_words` on the dev sentences as tokenized in the file (each sentence alone, or with its
  document as context when the model was trained with `--context_window`); scored against the gold tags (strict
  entity F1, the recipe's metric) and compared word by word;
- text: the words of each sentence joined by spaces, through `predictor(texts)`: entity dicts compared
  (type, start, end, text) and their scores.

Agreement is reported as identical sentences, differing words, and the entity F1 of ONNX's predictions taking
PyTorch's as the reference (1.0 when they agree). Speed: sentences/s of each pass, the two predictors taking turns,
median of `--repeats`; both use `--threads` threads (torch intra-op and ONNX Runtime intra-op). JSON to
benchmarks/results/onnx_conll.json.
"""

import statistics
import time
from pathlib import Path

import torch

import common


def parse_arguments(argv: list[str] | None = None):
    parser = common.parser(__doc__, "onnx_conll")
    parser.add_argument("--model_dir", type=Path, default=None,
                        help="a trained model folder (e.g. the output_dir of recipes/ner.py); with --smoke, an "
                             "untrained MiniLM + CRF written to a temporary folder when not given")
    parser.add_argument("--onnx_path", type=Path, default=None, help="ONNX file (default: <model_dir>/onnx/model.onnx)")
    parser.add_argument("--reexport", action="store_true", help="export again even if the ONNX file exists")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset of the export")
    parser.add_argument("--dev_file", type=Path, default=common.data_path("conll2003", "eng.testa"),
                        help="CoNLL file to tag (IOB1 unless --source_scheme)")
    parser.add_argument("--source_scheme", default="IOB1", help="tag scheme of --dev_file")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N sentences")
    parser.add_argument("--batch_size", type=int, default=32, help="windows per forward pass (both predictors)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per predictor and way (median kept)")
    args = common.parse(parser, argv)
    common.shrink_for_smoke(args, limit=64, repeats=1)  # --smoke: 64 sentences, one pass
    if args.model_dir is None:
        if not args.smoke:
            parser.error("--model_dir is required (a trained model folder)")
        args.model_dir = untrained_model(common.work_dir(args) / "untrained_crf", args.seed)
    return args


def untrained_model(folder: Path, seed: int) -> Path:
    """MiniLM with a fresh CRF head over CoNLL's labels, saved with its tokenizer (smoke runs: the weights do not
    matter for agreement or speed)."""
    from transformers import AutoTokenizer

    from hf_bert_tasks import BertCrfForTokenClassification
    from hf_bert_tasks.modeling.tagging import label_list

    encoder = common.minilm_path()
    torch.manual_seed(seed)
    model = BertCrfForTokenClassification.from_encoder(encoder, label_list("BIO", ["LOC", "MISC", "ORG", "PER"]))
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(encoder).save_pretrained(folder)
    return folder


def entity_set(entities_per_text) -> set:
    return {(i, e["type"], e["start"], e["end"]) for i, entities in enumerate(entities_per_text) for e in entities}


def main():
    args = parse_arguments()
    common.quiet_transformers()
    from hf_bert_tasks.export import OnnxNerPredictor, export_onnx
    from hf_bert_tasks.ner.metrics import entity_scores
    from hf_bert_tasks.ner.predictor import NerPredictor

    threads = torch.get_num_threads()  # --threads, applied by common.parse, or torch's default
    onnx_path = Path(args.onnx_path or Path(args.model_dir) / "onnx" / "model.onnx")
    export_seconds = None
    if args.reexport or not onnx_path.is_file():
        start = time.perf_counter()
        export_onnx(args.model_dir, onnx_path, opset=args.opset)
        export_seconds = time.perf_counter() - start
        print(f"exported {onnx_path} in {export_seconds:.0f} s")

    predictors = {
        "pytorch": NerPredictor.from_pretrained(args.model_dir, batch_size=args.batch_size),
        "onnxruntime": OnnxNerPredictor(onnx_path, args.model_dir, batch_size=args.batch_size, threads=threads),
    }
    scheme = predictors["pytorch"].scheme
    sentences, gold, _ = common.load_sentences(args.dev_file, args.source_scheme, args.limit, scheme=scheme)
    sentences = [list(s) for s in sentences]
    context = getattr(predictors["pytorch"].model.config, "context_window", 0)
    if context:  # the model was trained with document context: give it the dev documents
        from hf_bert_tasks.ner.data import load_ner_dataset

        split = load_ner_dataset(train_file=args.dev_file, source_scheme=args.source_scheme, target_scheme=scheme)
        document_ids = split["train"]["document_id"][: len(sentences)]
    else:
        document_ids = None
    texts = [" ".join(words) for words in sentences]

    passes = {
        "words": lambda predictor: predictor.predict_words(sentences, document_ids=document_ids),
        "text": lambda predictor: predictor(texts),
    }
    outputs, seconds = {}, {}
    for predictor in predictors.values():  # warm-up: first calls allocate (and ONNX Runtime plans its memory)
        predictor.predict_words(sentences[:32])
    for way, run in passes.items():
        seconds[way] = {name: [] for name in predictors}
        for _ in range(args.repeats):
            for name, predictor in predictors.items():
                start = time.perf_counter()
                outputs[(way, name)] = run(predictor)
                seconds[way][name].append(time.perf_counter() - start)
        print(f"{way}: " + ", ".join(f"{name} {len(sentences) / statistics.median(s):.1f} sentences/s"
                                     for name, s in seconds[way].items()))

    torch_tags, torch_scores = outputs[("words", "pytorch")]
    onnx_tags, onnx_scores = outputs[("words", "onnxruntime")]
    differing_words = sum(a != b for x, y in zip(torch_tags, onnx_tags) for a, b in zip(x, y))
    score_difference = max((abs(a - b) for x, y in zip(torch_scores, onnx_scores) for a, b in zip(x, y)),
                           default=0.0)
    torch_entities, onnx_entities = entity_set(outputs[("text", "pytorch")]), entity_set(outputs[("text", "onnxruntime")])
    text_score_difference = max(
        (abs(a["score"] - b["score"]) for x, y in zip(outputs[("text", "pytorch")], outputs[("text", "onnxruntime")])
         for a, b in zip(x, y) if (a["type"], a["start"], a["end"]) == (b["type"], b["start"], b["end"])), default=0.0)
    scores = {name: entity_scores(gold, outputs[("words", name)][0], scheme) for name in predictors}
    agreement = {
        "sentences": len(sentences),
        "words": sum(map(len, sentences)),
        "identical_sentences": sum(x == y for x, y in zip(torch_tags, onnx_tags)),
        "differing_words": differing_words,
        "onnx_f1_against_pytorch": entity_scores(torch_tags, onnx_tags, scheme)["f1"],
        "max_word_score_difference": score_difference,
        "text_entities_pytorch": len(torch_entities),
        "text_entities_onnxruntime": len(onnx_entities),
        "text_entities_only_in_one": len(torch_entities ^ onnx_entities),
        "max_text_entity_score_difference": text_score_difference,
    }
    speed = {
        way: {f"{name}_sentences_per_second": len(sentences) / statistics.median(s) for name, s in times.items()}
        for way, times in seconds.items()
    }
    for way in speed:
        speed[way]["onnx_speedup"] = (speed[way]["onnxruntime_sentences_per_second"]
                                      / speed[way]["pytorch_sentences_per_second"])
    report = {
        "arguments": vars(args), "onnx_path": str(onnx_path), "export_seconds": export_seconds, "threads": threads,
        "dev_f1": {name: {k: v for k, v in s.items() if k != "per_type"} for name, s in scores.items()},
        "agreement": agreement, "speed": speed, "machine": common.machine_info(),
    }
    print(f"\n{len(sentences)} sentences, {threads} threads")
    for name, s in scores.items():
        print(f"{name:<12} dev F1 {s['f1']:.4f}  words {speed['words'][f'{name}_sentences_per_second']:.1f} "
              f"sentences/s  text {speed['text'][f'{name}_sentences_per_second']:.1f} sentences/s")
    print(f"agreement: {agreement['identical_sentences']}/{agreement['sentences']} sentences identical, "
          f"{differing_words} words differ, ONNX F1 against PyTorch {agreement['onnx_f1_against_pytorch']:.4f}, "
          f"{agreement['text_entities_only_in_one']} text entities in only one, largest score difference "
          f"{max(score_difference, text_score_difference):.2e}")
    common.write_json(args.output, report)


if __name__ == "__main__":
    main()
