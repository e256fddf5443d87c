#!/usr/bin/env python
"""The CRF's transformers pipeline against NerPredictor: texts per second, CPU, one interleaved run.

    python benchmarks/pipeline_speed.py                                   # MiniLM + CRF head, CoNLL-2003 dev text
    python benchmarks/pipeline_speed.py --model_dir runs/conll_minilm_crf  # a trained folder (same speed)
    python benchmarks/pipeline_speed.py --smoke                            # a few texts, one round

The pipeline is built the way users build it, `transformers.pipeline("token-classification", model=FOLDER,
trust_remote_code=True, aggregation_strategy="simple")`, from a folder saved with the current code (so its class is
the shipped `pipeline_bert_crf.py`). `NerPredictor` is built on that same pipeline class; what differs is how a batch
of texts goes through it: the pipeline takes each text as one input (transformers batches the windows of consecutive
texts, `batch_size` windows per forward pass), `NerPredictor` sends all its texts as one input (their words tokenized
together, windows sorted by length before batching). Speed does not depend on the weights, so without `--model_dir`
the model is MiniLM with an untrained CRF head over CoNLL's nine labels.

Three cases, from the words of CoNLL-2003's dev set (eng.testa) in order:

- `short_batch1`: 30-word texts, one call per text (`ner(text)`, `predictor(text)`);
- `short_batch32`: the same texts in one call, 32 windows per forward pass (`ner(texts, batch_size=32)`,
  `NerPredictor(batch_size=32)(texts)`);
- `long_batch32`: 2,000-character texts (several windows of 128 tokens each), in one call, batch 32.

The machine is shared: the two take turns within each round (which one goes first alternates), and the ratio
pipeline/predictor is computed per round, from wall time and from this process's CPU time (`time.process_time`,
which other jobs on the machine disturb far less; run with `--threads 1` so that it counts work, not threads
spinning). The JSON reports each side's median texts/s and the median ratios, in
benchmarks/results/pipeline_speed.json.
"""

import statistics
import time
from pathlib import Path

import common


def parse_arguments(argv=None):
    parser = common.parser(__doc__, "pipeline_speed")
    parser.add_argument("--model_dir", type=Path, default=None,
                        help="a model folder (default: MiniLM + an untrained CRF head, written to the work folder)")
    parser.add_argument("--dev_file", type=Path, default=common.data_path("conll2003", "eng.testa"),
                        help="CoNLL file whose words make the texts")
    parser.add_argument("--short_texts", type=int, default=128, help="number of 30-word texts")
    parser.add_argument("--long_texts", type=int, default=32, help="number of 2,000-character texts")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians over them)")
    args = common.parse(parser, argv)
    common.shrink_for_smoke(args, short_texts=8, long_texts=2, rounds=1)
    return args


def untrained_model(folder: Path, seed: int) -> Path:
    import torch
    from transformers import AutoTokenizer

    from hf_bert_tasks import BertCrfForTokenClassification
    from hf_bert_tasks.modeling.tagging import label_list

    torch.manual_seed(seed)
    encoder = common.minilm_path()
    model = BertCrfForTokenClassification.from_encoder(encoder, label_list("BIO", ["LOC", "MISC", "ORG", "PER"]))
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(encoder).save_pretrained(folder)
    return folder


def texts_from(dev_file: Path, short: int, long: int) -> tuple[list[str], list[str]]:
    from hf_bert_tasks.ner.data import read_conll

    common.require(dev_file)
    words = [w for sentence in read_conll(dev_file)["tokens"] for w in sentence]
    short_texts = [" ".join(words[i * 30:(i + 1) * 30]) for i in range(short)]
    long_texts, start = [], 0
    for _ in range(long):
        text = ""
        while len(text) < 2000:
            text += words[start % len(words)] + " "
            start += 1
        long_texts.append(text[:2000])
    return short_texts, long_texts


def timed(call) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of `call()`."""
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None):
    args = parse_arguments(argv)
    common.quiet_transformers()
    from transformers import AutoTokenizer, pipeline

    from hf_bert_tasks.ner.predictor import NerPredictor

    source = args.model_dir or untrained_model(common.work_dir(args) / "untrained_crf", args.seed)
    predictor = NerPredictor.from_pretrained(str(source), batch_size=32)
    folder = common.work_dir(args) / "pipeline_model"  # saved with the current code: ships the current pipeline
    predictor.model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    ner = pipeline("token-classification", model=str(folder), trust_remote_code=True, aggregation_strategy="simple",
                   device="cpu")
    short_texts, long_texts = texts_from(args.dev_file, args.short_texts, args.long_texts)
    cases = {
        "short_batch1": (short_texts, lambda: [ner(t) for t in short_texts],
                         lambda: [predictor(t) for t in short_texts]),
        "short_batch32": (short_texts, lambda: ner(short_texts, batch_size=32), lambda: predictor(short_texts)),
        "long_batch32": (long_texts, lambda: ner(long_texts, batch_size=32), lambda: predictor(long_texts)),
    }
    # Same entities, or the comparison means nothing.
    for name, (texts, run_pipeline, run_predictor) in cases.items():
        got = [[(e["entity_group"], e["start"], e["end"]) for e in r] for r in run_pipeline()]
        want = [[(e["type"], e["start"], e["end"]) for e in r] for r in run_predictor()]
        assert got == want, f"{name}: the pipeline and NerPredictor disagree"
    results = {}
    for name, (texts, run_pipeline, run_predictor) in cases.items():
        rates = {(side, clock): [] for side in ("pipeline", "predictor") for clock in ("wall", "cpu")}
        ratios = {"wall": [], "cpu": []}
        for round_ in range(args.rounds):
            order = [("pipeline", run_pipeline), ("predictor", run_predictor)]
            if round_ % 2:
                order.reverse()
            seconds = {side: dict(zip(("wall", "cpu"), timed(run))) for side, run in order}
            for (side, clock), values in rates.items():
                values.append(len(texts) / seconds[side][clock])
            for clock, values in ratios.items():
                values.append(rates["pipeline", clock][-1] / rates["predictor", clock][-1])
        results[name] = {"texts": len(texts), "characters_per_text": statistics.mean(map(len, texts))}
        for clock in ("wall", "cpu"):
            results[name][clock] = {
                "pipeline_texts_per_s": statistics.median(rates["pipeline", clock]),
                "predictor_texts_per_s": statistics.median(rates["predictor", clock]),
                "ratio_pipeline_over_predictor": statistics.median(ratios[clock]), "ratios": ratios[clock],
            }
        print(name + ": " + "; ".join(
            f"{clock} time: pipeline {r['pipeline_texts_per_s']:.1f} texts/s, NerPredictor "
            f"{r['predictor_texts_per_s']:.1f}, ratio {r['ratio_pipeline_over_predictor']:.3f}"
            for clock, r in ((clock, results[name][clock]) for clock in ("wall", "cpu"))))
    common.write_json(args.output, {"settings": vars(args), "model": str(source), "machine": common.machine_info(),
                                    "results": results})


if __name__ == "__main__":
    main()
