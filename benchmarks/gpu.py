#!/usr/bin/env python
"""BERT-base-shaped BERT+CRF on one GPU: step time, tokens/s, MFU, the CRF's share, eager and torch.compile, and
inference in float32 and bf16.

    python benchmarks/gpu.py                     # on the GPU machine: under 8 minutes, no network
    python benchmarks/gpu.py --smoke             # tiny sizes, a few steps, runs on the CPU (proves the script)

Model: `BertCrfForTokenClassification` on a randomly initialised BERT-base-shaped encoder (12 layers, hidden 768,
12 heads, feed-forward 3072, vocabulary 30,522; nothing is downloaded), 9 labels (CoNLL-2003's in BIO). Input:
random token ids, batch 128 x sequence length 128, no padding; the labelled positions are every token but [CLS]
and [SEP] (CRF sequences of 126), with legal BIO tag sequences drawn at random. A step is forward + backward +
AdamW step (fused on CUDA) under bf16 autocast; the CRF itself always runs in float32 inside (the model disables
autocast there).

Heads: `crf` is the model's own loss; `softmax` the same model with the CRF replaced by cross-entropy over the
same positions. Each is timed eager and under `torch.compile(model)` (inductor, default mode: the whole model, as
`TrainingArguments(torch_compile=True)` does; the CRF's data-dependent checks break the graph, and the number of
breaks is reported). The CRF's share of a step is
measured directly (the CRF loss forward + backward alone on emissions of the step's shape, over the CRF step) and
by difference (CRF step minus softmax step).

MFU = 6 x parameters x tokens / step time / peak dense bf16 FLOP/s, with the peak from a table keyed by the device
name (H100 and H200: 989 TFLOP/s, A100: 312) or `--peak_tflops`; the name and the peak used are printed and saved.
"Parameters" counts every parameter (embeddings too); the attention score products (12 x layers x length x hidden
FLOPs per token, about 2% here) are not in 6N and are reported apart.

The CRF alone at each of `--crf_tags` (default 9 and 73 tags: CoNLL's BIO labels, OntoNotes' 18 types in BIOES):
log-likelihood forward + backward and Viterbi decoding on random float32 emissions of the step's shape (batch x
sequence length, rows of random lengths between half and all of it), ours and pytorch-crf 0.7.2 where it is
installed. Ours computes on the host in numpy whatever the device (Viterbi's many-tag loop in torch on the CPU), a
choice measured on a CPU only: these figures are its check on a GPU.

Inference: the CRF model's forward pass and Viterbi decoding on the same batch without gradients, with float32
weights and with bf16 weights (the CRF's own scores float32, as the predictors' `dtype="bfloat16"` loads them):
tokens/s, the speed-up, and the share of labelled positions whose decoded tag is the same.

A time budget (`--time_budget_seconds`) skips what would not fit, and the JSON (benchmarks/results/gpu.json, or
`--output`; `--smoke`: {tmp}/hf_bert_tasks_smoke/gpu.json) is rewritten after every measurement, so a run cut short
still leaves what it measured.
"""

import platform
import statistics
import time

import torch
from transformers import BertConfig
from transformers.hf_argparser import string_to_bool

import common
from hf_bert_tasks import BertCrfConfig, BertCrfForTokenClassification

LABELS = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
# Dense bf16 peak FLOP/s (no sparsity), matched as a substring of torch.cuda.get_device_name().
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12}


def parse_arguments(argv: list[str] | None = None):
    parser = common.parser(__doc__, "gpu", seed=0)
    parser.add_argument("--batch_size", "--batch-size", type=int, default=128, help="sequences per step")
    parser.add_argument("--seq_len", "--seq-len", type=int, default=128, help="tokens per sequence (no padding)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per configuration")
    parser.add_argument("--warmup_steps", "--warmup-steps", type=int, default=5,
                        help="untimed steps first (compilation happens here)")
    parser.add_argument("--crf_repeats", "--crf-repeats", type=int, default=30,
                        help="timed calls of the CRF loss alone")
    parser.add_argument("--compile", type=string_to_bool, nargs="?", const=True, default=True,
                        help="also time torch.compile(model)")
    parser.add_argument("--no_compile", "--no-compile", dest="compile", action="store_false",
                        help="eager only (the same as --compile false)")
    parser.add_argument("--compile_backend", "--compile-backend", default="inductor",
                        help="torch.compile backend (inductor generates kernels; aot_eager only captures graphs)")
    parser.add_argument("--peak_tflops", "--peak-tflops", type=float, default=None,
                        help="peak dense bf16 TFLOP/s for the MFU (default: from the device name's table entry)")
    parser.add_argument("--time_budget_seconds", "--time-budget-seconds", type=float, default=420.0,
                        help="skip configurations that would start after this many seconds (the run must end in 8 "
                             "minutes)")
    parser.add_argument("--crf_tags", "--crf-tags", default="9,73",
                        help="comma-separated tag counts at which the CRF alone is timed (forward + backward and "
                             "decoding)")
    args = common.parse(parser, argv)
    # --smoke: a tiny model (encoder_config), batch 4 x 32 tokens, 2 steps, compiled with aot_eager (graph capture
    # and graph breaks without minutes of C++ code generation on a CPU), on whatever device there is
    common.shrink_for_smoke(args, batch_size=4, seq_len=32, steps=2, warmup_steps=1, crf_repeats=2)
    if args.smoke:
        args.compile_backend = "aot_eager"
    return args


def encoder_config(smoke: bool) -> BertConfig:
    if smoke:
        return BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=128)
    return BertConfig()  # BERT-base: 12 x 768, 12 heads, 3072, vocabulary 30,522


def random_batch(batch: int, length: int, vocab_size: int, device, generator: torch.Generator) -> dict:
    """Token ids, a full attention mask, the labelled positions (all but [CLS]/[SEP]) and legal BIO tags there."""
    input_ids = torch.randint(1000 if vocab_size > 2000 else 5, vocab_size, (batch, length), generator=generator)
    tag_mask = torch.ones(batch, length, dtype=torch.bool)
    tag_mask[:, 0] = tag_mask[:, -1] = False
    # Legal BIO: each position is O or B-x at random, or continues the previous entity with I-x.
    labels = torch.zeros(batch, length, dtype=torch.long)
    draw = torch.rand(batch, length, generator=generator)
    types = torch.randint(4, (batch, length), generator=generator)
    for t in range(1, length - 1):
        previous = labels[:, t - 1]
        inside = previous > 0
        begin = 1 + 2 * types[:, t]
        continued = previous + (previous % 2)  # B-x (odd) -> I-x, I-x (even) stays
        labels[:, t] = torch.where(inside & (draw[:, t] < 0.5), continued,
                                   torch.where(draw[:, t] < 0.8, 0, begin))
    labels = labels.masked_fill(~tag_mask, -100)
    values = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "tag_mask": tag_mask,
              "labels": labels}
    return {k: v.to(device) for k, v in values.items()}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(model, optimizer, head: str):
    def step(batch):
        with torch.autocast(device_type=batch["input_ids"].device.type, dtype=torch.bfloat16):
            if head == "crf":
                loss = model(**batch).loss
            else:
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                positions = batch["tag_mask"]
                loss = torch.nn.functional.cross_entropy(logits[positions].float(), batch["labels"][positions])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def time_calls(call, count: int, device) -> list[float]:
    times = []
    for _ in range(count):
        synchronize(device)
        start = time.perf_counter()
        call()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def peak_flops(device: torch.device, override_tflops: float | None) -> tuple[str, float | None]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    if override_tflops is not None:
        return name, override_tflops * 1e12
    for key, value in PEAK_BF16_FLOPS.items():
        if key in name:
            return name, value
    return name, None


def measure(config, head: str, compiled: bool, batch: dict, args, device, peak, generator) -> dict:
    """Step time, throughput and MFU of one configuration (a fresh model and optimizer), and for the CRF head
    the CRF loss alone."""
    torch.manual_seed(args.seed)
    model = BertCrfForTokenClassification(config).to(device).train()
    parameters = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    runner = model
    if compiled:
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        runner = torch.compile(model, backend=args.compile_backend)
    step = make_step(runner, optimizer, head)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    warmup = time_calls(lambda: step(batch), args.warmup_steps, device)
    seconds = statistics.median(time_calls(lambda: step(batch), args.steps, device))
    tokens = batch["input_ids"].numel()
    flops = 6 * parameters * tokens
    encoder = config.encoder
    attention_flops = 12 * encoder.num_hidden_layers * args.seq_len * encoder.hidden_size * tokens
    entry = {
        "parameters": parameters,
        "first_step_seconds": warmup[0] if warmup else None,  # compilation included when compiled
        "median_step_seconds": seconds,
        "tokens_per_second": tokens / seconds,
        "model_tflops_per_second": flops / seconds / 1e12,
        "mfu": flops / seconds / peak if peak else None,
        "mfu_with_attention": (flops + attention_flops) / seconds / peak if peak else None,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    }
    if compiled:
        breaks = torch._dynamo.utils.counters["graph_break"]
        entry["graph_breaks"] = sum(breaks.values())
        entry["graph_break_reasons"] = sorted({reason.splitlines()[0] for reason in breaks})
    if head == "crf":
        # The CRF alone: its loss forward + backward (float32, as inside the model) on emissions of the step's shape.
        emissions = torch.randn(args.batch_size, args.seq_len, config.num_labels, generator=generator).to(device)

        def crf_alone():
            leaf = emissions.clone().requires_grad_(True)
            model.crf_loss(leaf, batch["labels"], batch["tag_mask"]).backward()

        time_calls(crf_alone, 2, device)
        entry["crf_loss_forward_backward_seconds"] = statistics.median(time_calls(crf_alone, args.crf_repeats, device))
        entry["crf_share_of_step"] = entry["crf_loss_forward_backward_seconds"] / seconds
    return entry


def measure_inference(config, batch: dict, args, device) -> dict:
    """Inference of the CRF model (forward + Viterbi over the labelled positions, no gradient) with float32 weights
    and with bf16 weights (the CRF's scores kept float32, as `from_pretrained(..., dtype=torch.bfloat16)` loads
    them): time per batch, tokens/s, and the share of tags both decode alike."""
    torch.manual_seed(args.seed)
    model = BertCrfForTokenClassification(config).to(device).eval()
    inputs = {key: batch[key] for key in ("input_ids", "attention_mask")}
    entry, paths = {}, {}
    for dtype in ("float32", "bfloat16"):
        if dtype == "bfloat16":
            model.to(torch.bfloat16)
            model.crf.float()

        def infer():
            with torch.no_grad():
                return model.decode(model(**inputs).logits, batch["tag_mask"])

        time_calls(infer, 2, device)
        seconds = statistics.median(time_calls(infer, args.steps, device))
        paths[dtype] = infer()
        entry[dtype] = {"median_batch_seconds": seconds, "tokens_per_second": batch["input_ids"].numel() / seconds}
    entry["bf16_speedup"] = entry["float32"]["median_batch_seconds"] / entry["bfloat16"]["median_batch_seconds"]
    same = paths["float32"] == paths["bfloat16"]  # (batch, length), -100 outside the labelled positions
    entry["same_tags_share"] = float(same[batch["tag_mask"].bool()].float().mean())
    return entry


def measure_crf_alone(tags: int, args, device) -> dict:
    """The CRF alone at `tags` tags on (batch, seq_len) emissions: ours and, if installed, pytorch-crf."""
    from hf_bert_tasks import LinearChainCRF

    generator = torch.Generator().manual_seed(args.seed)
    b, t = args.batch_size, args.seq_len
    emissions = torch.randn(b, t, tags, generator=generator).to(device)
    gold = torch.randint(tags, (b, t), generator=generator).to(device)
    lengths = torch.randint(max(1, t // 2), t + 1, (b,), generator=generator)
    lengths[0] = t
    mask = (torch.arange(t)[None, :] < lengths[:, None]).to(device)
    implementations = {"ours": LinearChainCRF(tags).to(device)}
    try:
        import torchcrf

        implementations["pytorch_crf"] = torchcrf.CRF(tags, batch_first=True).to(device)
    except ImportError:
        pass
    entry = {}
    for name, crf in implementations.items():
        leaf = emissions.clone().requires_grad_(True)

        def forward_backward(crf=crf, leaf=leaf):
            leaf.grad = None
            crf.zero_grad(set_to_none=True)
            (-crf(leaf, gold, mask, reduction="sum")).backward()

        def decode(crf=crf):
            with torch.no_grad():
                crf.decode(emissions, mask)

        time_calls(forward_backward, 2, device)
        time_calls(decode, 2, device)
        entry[name] = {
            "forward_backward_ms": 1e3 * statistics.median(time_calls(forward_backward, args.crf_repeats, device)),
            "decode_ms": 1e3 * statistics.median(time_calls(decode, args.crf_repeats, device)),
        }
    if "pytorch_crf" in entry:
        entry["speedup"] = {m: entry["pytorch_crf"][m] / entry["ours"][m] for m in entry["ours"]}
    from hf_bert_tasks.modeling.crf import choose_viterbi

    entry["decode_algorithm"] = choose_viterbi(b, t, tags)
    return entry


def main():
    args = parse_arguments()
    began = time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    device_name, peak = peak_flops(device, args.peak_tflops)
    print(f"device {device} ({device_name}); peak dense bf16 used for MFU: "
          + (f"{peak / 1e12:.0f} TFLOP/s" if peak else "unknown (no MFU; pass --peak_tflops)"))

    torch.manual_seed(args.seed)
    config = BertCrfConfig(encoder=encoder_config(args.smoke), id2label=dict(enumerate(LABELS)),
                           label2id={label: i for i, label in enumerate(LABELS)})
    generator = torch.Generator().manual_seed(args.seed)
    batch = random_batch(args.batch_size, args.seq_len, config.encoder.vocab_size, device, generator)
    encoder = config.encoder
    report = {
        "arguments": vars(args), "machine": common.machine_info(),
        "device": str(device), "device_name": device_name,
        "peak_bf16_flops": peak, "peak_source": "--peak_tflops" if args.peak_tflops else "table by device name",
        "torch": torch.__version__, "tokens_per_step": args.batch_size * args.seq_len,
        "attention_flops_per_token": 12 * encoder.num_hidden_layers * args.seq_len * encoder.hidden_size,
        "configurations": {}, "crf_alone": {}, "skipped": [],
    }

    def save():
        common.write_json(args.output, report)

    def out_of_time(what: str) -> bool:
        if time.perf_counter() - began > args.time_budget_seconds:
            report["skipped"].append(what)
            print(f"skipped {what}: time budget of {args.time_budget_seconds:.0f} s spent")
            save()
            return True
        return False

    for compiled in ([False, True] if args.compile else [False]):
        for head in ("softmax", "crf"):
            mode = "compiled" if compiled else "eager"
            name = f"{head}_{mode}"
            if out_of_time(name):
                continue
            softmax = report["configurations"].get(f"softmax_{mode}")
            entry = measure(config, head, compiled, batch, args, device, peak, generator)
            if head == "crf" and softmax:
                entry["crf_share_by_difference"] = 1 - softmax["median_step_seconds"] / entry["median_step_seconds"]
            report["configurations"][name] = entry
            print(f"{name}: step {entry['median_step_seconds'] * 1e3:.1f} ms, "
                  f"{entry['tokens_per_second']:.0f} tokens/s"
                  + (f", MFU {entry['mfu']:.1%}" if entry["mfu"] is not None else "")
                  + (f", CRF {entry['crf_share_of_step']:.1%} of the step" if head == "crf" else "")
                  + (f", {entry['graph_breaks']} graph breaks, first step {entry['first_step_seconds']:.0f} s"
                     if compiled else ""))
            save()

    if not out_of_time("inference"):
        entry = measure_inference(config, batch, args, device)
        report["inference"] = entry
        print(f"inference, {args.batch_size} x {args.seq_len}: float32 {entry['float32']['tokens_per_second']:.0f} "
              f"tokens/s, bf16 weights {entry['bfloat16']['tokens_per_second']:.0f} ({entry['bf16_speedup']:.2f}x), "
              f"same tags {entry['same_tags_share']:.2%}")
        save()

    for tags in (int(k) for k in args.crf_tags.split(",") if k.strip()):
        if out_of_time(f"crf_alone_tags{tags}"):
            continue
        entry = measure_crf_alone(tags, args, device)
        report["crf_alone"][f"tags_{tags}"] = entry
        print(f"CRF alone, {tags} tags, {args.batch_size} x {args.seq_len}: "
              + ", ".join(f"{name} forward+backward {v['forward_backward_ms']:.2f} ms, decode {v['decode_ms']:.2f} ms"
                          for name, v in entry.items() if name in ("ours", "pytorch_crf")))
        save()

    configurations = report["configurations"]
    for head in ("softmax", "crf"):
        eager, compiled = configurations.get(f"{head}_eager"), configurations.get(f"{head}_compiled")
        if eager and compiled:
            report[f"compile_speedup_{head}"] = eager["median_step_seconds"] / compiled["median_step_seconds"]
            print(f"torch.compile, {head} head: {report[f'compile_speedup_{head}']:.2f}x the eager step")
    report["total_seconds"] = time.perf_counter() - began
    save()
    print(f"{report['total_seconds']:.0f} s in all")


if __name__ == "__main__":
    main()
