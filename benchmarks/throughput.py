#!/usr/bin/env python
"""Training throughput of BERT+CRF under three ways of batching, and NerPredictor's inference speed, on the CPU.

    python benchmarks/throughput.py                 # CoNLL-2003 + MSRA training, then inference
    python benchmarks/throughput.py --smoke         # a few steps on a few hundred sentences: proves it runs

Training: the MiniLM encoder with a CRF head (`BertCrfForTokenClassification.from_encoder`), AdamW, batch 32, on
the training windows of CoNLL-2003 (eng.train, IOB1 converted to BIO) and MSRA (characters, BIO), encoded once by
`features.encode_words` with windows of at most 256 tokens. Only the batching differs:

- `pad_to_max_length`: random batches, every window padded to 256 (the classic `pad_to_max_length=True`);
- `dynamic_padding`: the same random batches, padded to the longest window of the batch (`WindowCollator`);
- `length_grouped`: transformers' `LengthGroupedSampler` (what `--train_sampling_strategy group_by_length` gives
  the Trainer): random mega-batches of 50 batches, sorted by length inside, then padded as above.

The padding fraction of a whole epoch is computed exactly for each (it needs only the lengths). The timed steps are
`--steps` batches drawn at random from that epoch (the same draw for the first two, which share their batches), so
that a short run is not biased by where an epoch starts (`LengthGroupedSampler` puts its longest batch first). The
strategies take turns step by step, so a change in machine load hits all three alike. A step is forward, backward
and optimizer step; tokens/s counts real (non-pad) tokens, [CLS] and [SEP] included.

Inference: texts/s of `NerPredictor` (CRF decoding and marginal scores included) against
`transformers.pipeline("token-classification", aggregation_strategy="simple")` on the same encoder with a softmax
head, for short texts (30 words) and long ones (2,000 characters) from CoNLL-2003's dev set, one text per call
("batch 1") and 32 per call ("batch 32"). Both cut long texts into the same windows: 128 tokens, 32 of overlap
(the pipeline through `stride`). The models are untrained: speed does not depend on the weights.

Results go to benchmarks/results/throughput.json (`--output`; `--smoke`: 2 steps on 300 sentences, batch 8, 4
inference texts, 1 repeat). Timings mean something only on an otherwise idle machine; the load average before and
after goes into the JSON.
"""

import copy
import random
import statistics
import time
from pathlib import Path

import torch

import common

STRATEGIES = ("pad_to_max_length", "dynamic_padding", "length_grouped")


def parse_arguments(argv: list[str] | None = None):
    parser = common.parser(__doc__, "throughput")
    parser.add_argument("--datasets", nargs="+", choices=["conll", "msra"], default=["conll", "msra"],
                        help="training data sets")
    parser.add_argument("--steps", type=int, default=40, help="timed training steps per batching strategy and data set")
    parser.add_argument("--warmup_steps", type=int, default=3, help="untimed training steps first (per strategy)")
    parser.add_argument("--batch_size", type=int, default=32, help="windows per training batch")
    parser.add_argument("--max_length", type=int, default=256, help="window length in tokens (the pad-to length)")
    parser.add_argument("--learning_rate", type=float, default=5e-5, help="AdamW learning rate")
    parser.add_argument("--max_sentences", type=int, default=None, help="use only the first N training sentences")
    parser.add_argument("--inference_texts", type=int, default=128, help="texts per inference case (short and long)")
    parser.add_argument("--inference_repeats", type=int, default=3,
                        help="timed passes per inference case (median kept)")
    parser.add_argument("--skip_training", action="store_true", help="only the inference part")
    parser.add_argument("--skip_inference", action="store_true", help="only the training part")
    parser.add_argument("--conll_train", type=Path, default=common.data_path("conll2003", "eng.train"),
                        help="CoNLL-2003 training file (IOB1)")
    parser.add_argument("--conll_dev", type=Path, default=common.data_path("conll2003", "eng.testa"),
                        help="CoNLL-2003 dev file: the source of the inference texts")
    parser.add_argument("--msra_train", type=Path, default=common.data_path("msra_ner", "msra_train_bio"),
                        help="MSRA training file (character per line, BIO)")
    parser.add_argument("--encoder", default=None, help="encoder folder (default: the offline MiniLM)")
    args = common.parse(parser, argv)
    # --smoke: 2 steps on 300 sentences, batch 8, 4 inference texts, 1 repeat
    common.shrink_for_smoke(args, steps=2, warmup_steps=1, batch_size=8, max_sentences=300, inference_texts=4,
                            inference_repeats=1)
    if args.steps < 1 or args.batch_size < 1:
        raise SystemExit("--steps and --batch_size must be positive")
    return args


# -- training ------------------------------------------------------------------------------------------------------


def epoch_batches(lengths: list[int], strategy: str, batch_size: int, seed: int) -> list[list[int]]:
    """One epoch of batches (window indices) as the strategy orders them."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    generator = torch.Generator().manual_seed(seed)
    if strategy == "length_grouped":
        order = list(LengthGroupedSampler(batch_size, lengths=lengths, generator=generator))
    else:  # the Trainer's default RandomSampler order
        order = torch.randperm(len(lengths), generator=generator).tolist()
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def padded_width(batch_lengths: list[int], strategy: str, max_length: int) -> int:
    return max_length if strategy == "pad_to_max_length" else max(batch_lengths)


def train_step(model, optimizer, batch: dict) -> float:
    """Seconds of forward + backward + optimizer step."""
    start = time.perf_counter()
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def benchmark_training(name: str, args, encoder: str, tokenizer) -> dict:
    from hf_bert_tasks import BertCrfForTokenClassification
    from hf_bert_tasks.modeling.windows import WindowCollator

    path, source_scheme = (args.conll_train, "IOB1") if name == "conll" else (args.msra_train, "BIO")
    words, tags, labels = common.load_sentences(path, source_scheme, args.max_sentences)
    windows = common.encode_training_windows(tokenizer, words, tags, labels, args.max_length)
    lengths = [len(w["input_ids"]) for w in windows]
    print(f"{name}: {len(words)} sentences, {len(windows)} windows, mean {statistics.mean(lengths):.1f} tokens, "
          f"max {max(lengths)}")

    torch.manual_seed(args.seed)
    base = BertCrfForTokenClassification.from_encoder(encoder, labels)
    pad_id = tokenizer.pad_token_id or 0
    collators = {"pad_to_max_length": WindowCollator(pad_id, pad_to_multiple_of=args.max_length)}
    collators["dynamic_padding"] = collators["length_grouped"] = WindowCollator(pad_id)
    runs = {}
    draw = random.Random(args.seed)
    total_steps = args.warmup_steps + args.steps
    for strategy in STRATEGIES:
        batches = epoch_batches(lengths, strategy, args.batch_size, args.seed)
        real = sum(lengths)
        padded = sum(len(b) * padded_width([lengths[i] for i in b], strategy, args.max_length) for b in batches)
        if strategy != "dynamic_padding":  # dynamic padding reuses pad_to_max_length's batches and draw
            picks = [draw.randrange(len(batches)) for _ in range(total_steps)]
        model = copy.deepcopy(base).train()
        runs[strategy] = {
            "model": model, "optimizer": torch.optim.AdamW(model.parameters(), lr=args.learning_rate),
            "batches": [collators[strategy]([windows[i] for i in batches[p]]) for p in picks],
            "times": [], "epoch": {"batches": len(batches), "real_tokens": real, "padded_tokens": padded},
        }
    del base
    for step in range(total_steps):
        for strategy, run in runs.items():
            seconds = train_step(run["model"], run["optimizer"], run["batches"][step])
            if step >= args.warmup_steps:
                run["times"].append(seconds)
        print(f"  step {step + 1}/{total_steps}: "
              + ", ".join(f"{s} {r['times'][-1] if r['times'] else float('nan'):.2f}s" for s, r in runs.items()))

    results = {"sentences": len(words), "windows": len(windows), "labels": labels,
               "mean_window_tokens": statistics.mean(lengths), "strategies": {}}
    for strategy, run in runs.items():
        timed = run["batches"][args.warmup_steps :]
        real = sum(int(b["attention_mask"].sum()) for b in timed)
        padded = sum(b["attention_mask"].numel() for b in timed)
        seconds = sum(run["times"])
        epoch = run["epoch"]
        results["strategies"][strategy] = {
            "steps": args.steps,
            "seconds": seconds,
            "median_step_seconds": statistics.median(run["times"]),
            "real_tokens": real,
            "padded_tokens": padded,
            "tokens_per_second": real / seconds,
            "padded_tokens_per_second": padded / seconds,
            "padding_fraction_timed_steps": 1 - real / padded,
            "padding_fraction_epoch": 1 - epoch["real_tokens"] / epoch["padded_tokens"],
            "epoch_batches": epoch["batches"],
            "projected_epoch_seconds": epoch["real_tokens"] / (real / seconds),
        }
    reference = results["strategies"]["pad_to_max_length"]["tokens_per_second"]
    for strategy in STRATEGIES:
        entry = results["strategies"][strategy]
        entry["speedup_vs_pad_to_max_length"] = entry["tokens_per_second"] / reference
    return results


# -- inference -----------------------------------------------------------------------------------------------------


def inference_texts(dev_file: str, count: int) -> dict[str, list[str]]:
    """`count` short texts (30 consecutive dev words) and `count` long ones (consecutive dev words up to 2,000
    characters), cycling through the dev set if needed."""
    words, _, _ = common.load_sentences(dev_file, "IOB1")
    stream = [w for sentence in words for w in sentence]
    short, long, position = [], [], 0

    def take(n):
        nonlocal position
        taken = [stream[(position + i) % len(stream)] for i in range(n)]
        position += n
        return taken

    for _ in range(count):
        short.append(" ".join(take(30)))
    for _ in range(count):
        text = ""
        while True:
            word = take(1)[0]
            if len(text) + 1 + len(word) > 2000:
                position -= 1
                break
            text = f"{text} {word}" if text else word
        long.append(text)
    return {"short_30_words": short, "long_2000_chars": long}


def time_calls(call, texts: list[str], batch: int) -> float:
    """Seconds to run `call` over `texts`, `batch` texts per call."""
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        call(texts[i] if batch == 1 else texts[i : i + batch])
    return time.perf_counter() - start


def benchmark_inference(args, encoder: str, tokenizer) -> dict:
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    from hf_bert_tasks import BertCrfForTokenClassification
    from hf_bert_tasks.ner.predictor import NerPredictor

    labels = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    torch.manual_seed(args.seed)
    crf_model = BertCrfForTokenClassification.from_encoder(encoder, labels).eval()
    predictor = NerPredictor(crf_model, tokenizer, batch_size=32)  # windows of 128 tokens, stride 32
    softmax_model = AutoModelForTokenClassification.from_pretrained(
        encoder, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}).eval()
    pipeline_tokenizer = AutoTokenizer.from_pretrained(encoder, model_max_length=predictor.max_length)
    tagger = pipeline("token-classification", model=softmax_model, tokenizer=pipeline_tokenizer,
                      aggregation_strategy="simple", stride=predictor.stride, device="cpu")

    # name -> texts per call -> function of a text (1) or a list of texts (32)
    systems = {
        "NerPredictor_crf": {1: predictor, 32: predictor},
        "pipeline_softmax": {1: tagger, 32: lambda texts: tagger(texts, batch_size=32)},
    }
    texts = inference_texts(args.conll_dev, args.inference_texts)
    results = {}
    # No inference_mode here: NerPredictor's marginal scores take a gradient (it runs under no_grad itself).
    for kind, case_texts in texts.items():
        for batch in (1, 32):
            case = f"{kind}_batch_{batch}"
            for calls in systems.values():  # warm-up: one call each
                calls[batch](case_texts[0] if batch == 1 else case_texts[:batch])
            seconds = {name: [] for name in systems}
            for _ in range(args.inference_repeats):  # the systems take turns
                for name, calls in systems.items():
                    seconds[name].append(time_calls(calls[batch], case_texts, batch))
            entry = {"texts": len(case_texts), "mean_characters": statistics.mean(map(len, case_texts))}
            for name in systems:
                entry[f"{name}_texts_per_second"] = len(case_texts) / statistics.median(seconds[name])
            entry["ratio_crf_over_pipeline"] = (entry["NerPredictor_crf_texts_per_second"]
                                                / entry["pipeline_softmax_texts_per_second"])
            results[case] = entry
            print(f"{case}: NerPredictor {entry['NerPredictor_crf_texts_per_second']:.1f} texts/s, pipeline "
                  f"{entry['pipeline_softmax_texts_per_second']:.1f} texts/s")
    return results


def main():
    args = parse_arguments()
    common.quiet_transformers()
    from transformers import AutoTokenizer

    encoder = args.encoder or common.minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    report = {"arguments": vars(args), "machine_before": common.machine_info(), "training": {}, "inference": None}
    if not args.skip_training:
        for name in args.datasets:
            report["training"][name] = benchmark_training(name, args, encoder, tokenizer)
    if not args.skip_inference:
        report["inference"] = benchmark_inference(args, encoder, tokenizer)
    report["machine_after"] = common.machine_info()
    for name, result in report["training"].items():
        print(f"\n{name}: {result['windows']} windows, batch {args.batch_size}, {args.steps} timed steps")
        print(f"{'strategy':<20}{'tokens/s':>10}{'padding':>9}{'(epoch)':>9}{'vs pad':>8}{'epoch s':>9}")
        for strategy, r in result["strategies"].items():
            print(f"{strategy:<20}{r['tokens_per_second']:>10.0f}{r['padding_fraction_timed_steps']:>9.1%}"
                  f"{r['padding_fraction_epoch']:>9.1%}{r['speedup_vs_pad_to_max_length']:>7.2f}x"
                  f"{r['projected_epoch_seconds']:>9.0f}")
    print(f"load average {report['machine_before']['load_average'][0]:.2f} -> "
          f"{report['machine_after']['load_average'][0]:.2f}")
    common.write_json(args.output, report)


if __name__ == "__main__":
    main()
