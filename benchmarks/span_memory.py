#!/usr/bin/env python
"""Peak memory of one training step (forward, backward) of the global pointer head vs the CRF head at growing
window lengths: the span matrix holds num_types x T x T scores per window.

    python benchmarks/span_memory.py                  # T = 128, 256, 512; batch 8; 5 and 10 entity types
    python benchmarks/span_memory.py --smoke          # T = 32, batch 2

Each configuration runs in a fresh subprocess (MiniLM's architecture, random weights, random ids, a few gold spans)
that reports its peak resident memory (`ru_maxrss`) above what it held after building the model and the batch,
and the seconds of the step. CPU; results go to `benchmarks/results/span_memory.json`.
"""

import json
import subprocess
import sys

import common

STEP = r"""
import json, resource, sys, time
import torch
from transformers import AutoConfig
from hf_bert_tasks import (BertCrfConfig, BertCrfForTokenClassification, BertGlobalPointerConfig,
                           BertGlobalPointerForSpanClassification)
head, length, batch, types, encoder = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
torch.manual_seed(0)
names = [f"T{i}" for i in range(types)]
if head == "global_pointer":
    config = BertGlobalPointerConfig(encoder=AutoConfig.from_pretrained(encoder), id2label=dict(enumerate(names)),
                                     label2id={n: i for i, n in enumerate(names)})
    model = BertGlobalPointerForSpanClassification(config)
    labels = torch.tensor([[[i % types, 1 + i, 3 + i] for i in range(4)]] * batch)
else:
    tags = ["O"] + [f"{p}-{n}" for n in names for p in "BI"]
    config = BertCrfConfig(encoder=AutoConfig.from_pretrained(encoder), id2label=dict(enumerate(tags)),
                           label2id={t: i for i, t in enumerate(tags)})
    model = BertCrfForTokenClassification(config)
    labels = torch.randint(0, len(tags), (batch, length)) * 0
ids = torch.randint(1000, 20000, (batch, length))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss.backward()
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_above_start_mb": round((peak - before) / 1024, 1), "step_s": round(seconds, 2)}))
"""


def main():
    parser = common.parser(__doc__, "span_memory")
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--types", type=int, nargs="+", default=[5, 10])
    args = common.parse(parser)
    if args.smoke:
        args.lengths, args.batch_size, args.types = [32], 2, [5]
    results = {"settings": vars(args), "machine": common.machine_info(), "encoder": common.minilm_path(),
               "runs": []}
    for types in args.types:
        for length in args.lengths:
            for head in ("global_pointer", "crf"):
                done = subprocess.run([sys.executable, "-c", STEP, head, str(length), str(args.batch_size),
                                       str(types), common.minilm_path()], capture_output=True, text=True,
                                      cwd=common.ROOT)
                if done.returncode:
                    sys.exit(done.stderr[-2000:])
                run = {"head": head, "types": types, "length": length, "batch_size": args.batch_size,
                       **json.loads(done.stdout.splitlines()[-1])}
                # The span scores alone: num_types x T x T floats per window (the loss keeps a few such tensors).
                run["span_matrix_mb"] = round(types * length**2 * args.batch_size * 4 / 2**20, 1) \
                    if head == "global_pointer" else None
                print(run, flush=True)
                results["runs"].append(run)
    common.write_json(args.output, results)


if __name__ == "__main__":
    main()
