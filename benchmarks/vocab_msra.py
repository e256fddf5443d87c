#!/usr/bin/env python
"""Does vocabulary expansion help an English encoder on Chinese NER? MSRA, BERT+CRF, the same budget for each model.

    python benchmarks/vocab_msra.py --max_train_samples 4000 --max_eval_samples 1000 --epochs 2   # ~70 min
    python benchmarks/vocab_msra.py --smoke     # 32 sentences per split, 500 corpus texts, 2 MLM steps: proves it runs

That is the measured budget (benchmarks/README.md); every model, MiniLM or random, fine-tunes at the same learning
rate, 2e-4: at BERT's usual 5e-5 the MiniLM configurations barely moved in 250 steps (MiniLM + characters: dev F1
26.5 at 5e-5, 42.6 at 2e-4) and the comparison measured the rate, not the vocabulary.

Configurations (`--configs`, all by default), each fine-tuned with `recipes/ner.py --head crf`:

1. `minilm`: MiniLM as is (about 60% of MSRA's characters are [UNK]).
2. `minilm_chars_normal`: MiniLM + the characters it lacks, appended (`hf_bert_tasks.vocab`, mined from the
   pretraining corpus below with `--min_freq`), rows drawn from a truncated normal (std 0.02, or `--init_std`).
3. `minilm_chars_piece_mean`: the same characters, rows = the mean of the old pieces' rows (the [UNK] row).
4. `minilm_chars_pretrained`: 2 (or 3, `--pretrain_init`) + continued masked-LM pretraining (`recipes/pretrain.py`,
   whole-word masking with jieba when installed) for `--pretrain_steps` on MSRA's training sentences and news text
   (cnews documents, THUCNews titles) from the data folder. Its pretraining time is reported on its own.
5. `char_bert_scratch`: a small randomly initialised BERT with a character vocabulary (the characters of MSRA train
   seen at least twice; `benchmarks/ner_conll.py` builds it and the split), learning rate `--scratch_learning_rate`.

MSRA has no dev split: the last 3,000 training sentences are dev (shared with `ner_conll.py`). The test set is the
official one. Reported per configuration: [UNK] rate of the dev and test characters (as the NER recipe tokenizes
them, one character per word), strict entity F1 (seqeval IOB2) on dev and test, fine-tuning time and wall time.
Results: `benchmarks/results/vocab_msra.json`. Runs go one after another so they share the machine equally.
"""

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import common

CONFIGS = ["minilm", "minilm_chars_normal", "minilm_chars_piece_mean", "minilm_chars_pretrained",
           "char_bert_scratch"]


def pretraining_corpus(data_dir: Path, msra_train: list[list[str]], limit: int | None, seed: int) -> list[str]:
    """MSRA training sentences (the train part of the split only) + cnews documents + THUCNews titles."""
    from hf_bert_tasks.vocab import read_texts

    texts = ["".join(chars) for chars in msra_train]
    texts += read_texts([data_dir / "cnews" / "cnews.val.txt"], column=1)
    texts += read_texts([data_dir / "thucnews_titles" / "dev.txt", data_dir / "thucnews_titles" / "test.txt"],
                        column=0)
    if limit is not None and limit < len(texts):
        texts = random.Random(seed).sample(texts, limit)
    return texts


def ner_command(encoder: str, files: list[str], out: Path, args, learning_rate: float) -> list[str]:
    command = [sys.executable, str(common.ROOT / "recipes" / "ner.py"), "--model_name_or_path", encoder, *files,
               "--head", "crf", "--output_dir", str(out), "--do_train", "--do_eval", "--do_predict",
               "--num_train_epochs", str(args.epochs), "--per_device_train_batch_size", str(args.batch_size),
               "--per_device_eval_batch_size", "64", "--learning_rate", str(learning_rate),
               "--head_learning_rate", str(args.head_learning_rate), "--max_seq_length", str(args.max_seq_length),
               "--seed", str(args.seed), "--save_strategy", "no", "--report_to", "none", "--logging_steps", "100",
               "--disable_tqdm", "true"]
    for flag in ("max_train_samples", "max_eval_samples"):
        if getattr(args, flag) is not None:
            command += [f"--{flag}", str(getattr(args, flag))]
    return command


def run(command: list[str]) -> float:
    print("running:", " ".join(command), flush=True)
    started = time.time()
    subprocess.run(command, check=True)  # offline, quiet, --threads: common.setup
    return round(time.time() - started, 1)


def main():
    from hf_bert_tasks.vocab import (expand_vocabulary, jieba_segmenter, mine_tokens, save_expanded, std_argument,
                                     tokenization_stats)

    parser = common.parser(__doc__, "vocab_msra")
    parser.add_argument("--data_dir", type=Path, default=common.DATA_DIR)
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=CONFIGS)
    parser.add_argument("--max_train_samples", type=int, default=None, help="first N training sentences")
    parser.add_argument("--max_eval_samples", type=int, default=None, help="first N dev sentences")
    parser.add_argument("--max_test_samples", type=int, default=None, help="first N test sentences")
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=2e-4,
                        help="MiniLM configurations (the same as --scratch_learning_rate by default)")
    parser.add_argument("--head_learning_rate", "--crf_learning_rate", type=float, default=1e-3,
                        help="the CRF head's new layers")
    parser.add_argument("--scratch_learning_rate", type=float, default=2e-4,
                        help="encoder learning rate of the randomly initialised character BERT")
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--min_freq", type=int, default=2, help="mined characters: seen at least this often")
    parser.add_argument("--max_corpus_texts", type=int, default=None,
                        help="random sample of the pretraining/mining corpus (all of it by default)")
    parser.add_argument("--init_std", type=std_argument, default=0.02,
                        help="truncated-normal std of the appended rows, or 'matched': that of MiniLM's rows")
    parser.add_argument("--pretrain_init", choices=["truncated_normal", "piece_mean"], default="truncated_normal")
    parser.add_argument("--pretrain_steps", type=int, default=500)
    parser.add_argument("--pretrain_batch_size", type=int, default=32)
    parser.add_argument("--pretrain_learning_rate", type=float, default=1e-4)
    parser.add_argument("--pretrain_max_seq_length", type=int, default=128)
    parser.add_argument("--pretrain_adaptation", choices=["full", "lora"], default="full")
    parser.add_argument("--hidden", type=int, default=256, help="char_bert_scratch: hidden size")
    parser.add_argument("--layers", type=int, default=4, help="char_bert_scratch: layers")
    parser.add_argument("--work_dir", type=Path, default=None,
                        help="the runs' folders (default: runs/benchmarks/vocab_msra)")
    args = common.parse(parser)
    common.shrink_for_smoke(args, max_train_samples=32, max_eval_samples=32, max_test_samples=32, epochs=1,
                            batch_size=8, max_corpus_texts=500, pretrain_steps=2, pretrain_batch_size=8)
    common.require(args.data_dir)
    args.work_dir = args.work_dir or common.work_dir(args)
    from transformers import AutoTokenizer, BertModel

    from hf_bert_tasks.ner.data import read_char_bio

    work = args.work_dir
    files, char_bert = common.prepare_msra(args.data_dir, work, args.hidden, args.layers, args.seed)
    test_file = args.data_dir / "msra_ner" / "msra_test_bio"
    if args.max_test_samples is not None:
        blocks = [b for b in test_file.read_text(encoding="utf-8").replace("\r\n", "\n").split("\n\n") if b.strip()]
        test_file = work / "test_subset.txt"
        test_file.write_text("\n\n".join(blocks[: args.max_test_samples]) + "\n", encoding="utf-8")
    files[files.index("--test_file") + 1] = str(test_file)
    train = read_char_bio(work / "train.txt")["tokens"]
    dev = read_char_bio(work / "dev.txt")["tokens"][: args.max_eval_samples]
    test = read_char_bio(test_file)["tokens"]

    results = {"settings": vars(args), "machine": common.machine_info(), "runs": {}}
    base = common.minilm_path()
    base_tokenizer = AutoTokenizer.from_pretrained(base)
    encoders = {"minilm": base, "char_bert_scratch": char_bert}
    need_chars = {"minilm_chars_normal", "minilm_chars_piece_mean", "minilm_chars_pretrained"} & set(args.configs)
    if need_chars:
        corpus = pretraining_corpus(args.data_dir, train, args.max_corpus_texts, args.seed)
        (work / "corpus.txt").write_text("\n".join(corpus) + "\n", encoding="utf-8")
        started = time.time()
        mined = mine_tokens(corpus, base_tokenizer, level="char", min_freq=args.min_freq)
        results["mining"] = {"corpus_texts": len(corpus), "tokens": len(mined.tokens), "before": mined.before,
                             "after": mined.after, "seconds": round(time.time() - started, 1)}
        print(f"mined {len(mined.tokens)} characters; corpus [UNK] rate {100 * mined.before['unk_rate']:.2f}% -> "
              f"{100 * mined.after['unk_rate']:.2f}%", flush=True)
        inits = {"minilm_chars_normal": "truncated_normal", "minilm_chars_piece_mean": "piece_mean"}
        for init in {"truncated_normal", "piece_mean"} & ({inits.get(c) for c in need_chars} | {args.pretrain_init}):
            model, tokenizer, report = expand_vocabulary(BertModel.from_pretrained(base), base_tokenizer,
                                                         mined.tokens, mode="append", init=init, std=args.init_std,
                                                         seed=args.seed)
            save_expanded(model, tokenizer, report, work / f"expanded_{init}")
        for config, init in inits.items():
            encoders[config] = str(work / f"expanded_{init}")
    if "minilm_chars_pretrained" in args.configs:
        out = work / "pretrained"
        try:
            jieba_segmenter()
            segmenter = "jieba"
        except ImportError:
            segmenter = "none"
        command = [sys.executable, str(common.ROOT / "recipes" / "pretrain.py"), "--model_name_or_path",
                   str(work / f"expanded_{args.pretrain_init}"), "--train_files", str(work / "corpus.txt"),
                   "--output_dir", str(out), "--do_train", "--max_steps", str(args.pretrain_steps),
                   "--per_device_train_batch_size", str(args.pretrain_batch_size), "--learning_rate",
                   str(args.pretrain_learning_rate), "--warmup_steps", str(max(1, args.pretrain_steps // 10)),
                   "--max_seq_length", str(args.pretrain_max_seq_length), "--word_segmenter", segmenter,
                   "--seed", str(args.seed), "--save_strategy", "no", "--report_to", "none", "--logging_steps", "50",
                   "--disable_tqdm", "true", *(["--lora"] if args.pretrain_adaptation == "lora" else [])]
        wall = run(command)
        metrics = json.loads((out / "all_results.json").read_text())
        results["pretraining"] = {"wall_s": wall, "train_loss": metrics.get("train_loss"),
                                  "train_runtime_s": metrics.get("train_runtime"), "segmenter": segmenter,
                                  "init": args.pretrain_init}
        encoders["minilm_chars_pretrained"] = str(out)

    for config in args.configs:
        encoder = encoders[config]
        tokenizer = AutoTokenizer.from_pretrained(encoder)
        out = work / config
        learning_rate = args.scratch_learning_rate if config == "char_bert_scratch" else args.learning_rate
        wall = run(ner_command(encoder, files, out, args, learning_rate))
        metrics = json.loads((out / "all_results.json").read_text())
        results["runs"][config] = {
            "vocab_size": len(tokenizer),
            "dev_unk_rate": tokenization_stats(tokenizer, dev, is_split_into_words=True)["unk_rate"],
            "test_unk_rate": tokenization_stats(tokenizer, test, is_split_into_words=True)["unk_rate"],
            "dev_f1": metrics["eval_f1"], "test_f1": metrics["test_f1"],
            "test_precision": metrics["test_precision"], "test_recall": metrics["test_recall"],
            "train_runtime_s": metrics.get("train_runtime"),
            "train_samples_per_second": metrics.get("train_samples_per_second"), "wall_s": wall,
        }
        common.write_json(args.output, results)  # after each run: partial results

    print("\nMSRA NER, BERT+CRF: [UNK] rate of the test characters, strict entity F1 (seqeval IOB2), time")
    print(f"{'configuration':26} {'vocab':>7} {'test UNK':>9} {'dev F1':>7} {'test F1':>8} {'train s':>8} "
          f"{'wall s':>7}")
    for config, r in results["runs"].items():
        print(f"{config:26} {r['vocab_size']:7d} {100 * r['test_unk_rate']:8.2f}% {100 * r['dev_f1']:7.2f} "
              f"{100 * r['test_f1']:8.2f} {r['train_runtime_s'] or float('nan'):8.0f} {r['wall_s']:7.0f}")
    if "pretraining" in results:
        print(f"pretraining ({args.pretrain_steps} steps): {results['pretraining']['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
