"""The recipe contract: what every recipe (``recipes/ner.py``, ``classify.py``, ``qa.py``, ``pretrain.py``,
``distill.py``) shares, written once.

- Arguments: flags or one JSON file (:func:`parse_recipe_arguments`); :class:`FineTuneArguments` for the new layers'
  learning rate (``--head_learning_rate``; ``--crf_learning_rate`` is its deprecated alias) and the staged
  fine-tune (``--freeze_encoder_epochs``); ``--max_{train,eval,predict}_samples`` through :func:`limit_samples`.
- Evaluation in data order under any sampler (:class:`OrderedEvalTrainer`): every recipe maps predictions back to
  its examples by position, so ``--train_sampling_strategy group_by_length`` may group training batches only.
- Train / evaluate / predict bookkeeping (:func:`train_and_save`, :func:`log_and_save`, :func:`end_processes`) and
  the settings a pushed model's card lists (:func:`card_settings`).
- What every run checks and sets before it trains (:class:`RecipeChecks`), below.

A recipe makes these calls for its checks::

    checks = RecipeChecks(training_args, data_args, run_args)     # first, before any model is loaded
    checks.data_read(raw)                                         # once the data are read
    checks.check_training_answers(raw, count, where, what)        # NER and classification: more than one answer
    checks.check_max_seq_length(data_args.max_seq_length, model.config)   # before the data is tokenized
    checks.attach(trainer, **extra_metrics)                       # once the Trainer exists

Decisions:

- **Run arguments.** Checked before anything else (:func:`check_run_arguments`): ``--do_train``, ``--do_eval`` and
  ``--do_predict`` each need their data (``--do_predict`` without a test file used to train, save, then fail with
  ``KeyError: 'test'``), one of them must be given, and ``--max_*_samples`` must be at least 1 (0 ended in the
  Trainer's message about columns). An ``--output_dir`` that holds a trained model or checkpoints is refused, naming
  them, unless ``--overwrite_output_dir`` (:class:`RunArguments`; transformers 5 dropped the flag and its check, and
  a run replaced a 5-label model by a 9-label one without a word) or ``--resume_from_checkpoint``. A validation or
  test file that is the training file (the same path, or the same bytes) gets a
  :class:`ScoredOnTrainingDataWarning`: its scores are training scores.
- **One answer.** Training data whose texts all have one label, or NER data without an entity, are refused
  (:func:`check_training_answers`): the model could only ever give that answer (numpy's "Mean of empty slice"
  while scoring was the only sign).
- **Progress bars.** Only for long work (``hf_bert_tasks/progress.py``): transformers' loading and saving bars after
  two seconds, datasets' bars when a split has 10,000 rows or more; the Trainer's bars stay.
- **Per-type scores.** Beyond ``MAX_LOGGED_TYPES`` (10) types, per-type F1 scores go to the results files only and
  the log names the lowest five (:func:`log_and_save`).

- **Positions.** ``--max_seq_length`` above the encoder's ``max_position_embeddings`` fails at the first long batch
  with "The size of tensor a (1024) must match the size of tensor b (512)" (and passes silently when the data happen
  to be short), so it is refused up front with the limit. RoBERTa-family encoders start their position ids after the
  padding index, so two of their 514 positions are not usable.
- **Unknown tokens.** ``attach`` counts the ``[UNK]`` pieces among the word pieces of the training features
  (special tokens left out; pieces repeated by overlapping windows or document context counted each time, as the
  model sees them; a streamed corpus is not counted). The share goes to the log and to ``all_results.json`` as ``train_unk_share``
  (with ``train_unk_tokens`` and ``train_tokens``); above 5% an :class:`UnknownTokensWarning` points to
  ``python -m hf_bert_tasks.vocab`` (MiniLM, an English tokenizer, turns about 60% of Chinese characters into
  ``[UNK]``).
- **Logging steps.** transformers logs the training loss every 500 steps by default, so a short run never logs it.
  When the command line (or the JSON file of options) sets no ``--logging_steps``, the loss is logged about 50 times
  per run: every ``ceil(max_steps / 50)`` steps, and at least every 500.
- **First-run noise.** On a machine without an accelerator ``dataloader_pin_memory`` is turned off (torch would warn
  at every data loader that pinning needs an accelerator; pinning does nothing there anyway). The encoder's pooler
  weights are left out of transformers' load reports (UNEXPECTED: the token-classification and QA heads have no
  pooler, so they are never used), and a report with nothing else is not printed; its other rows (a new head's
  weights, MISSING) are kept. The model config's
  PAD/BOS/EOS ids are aligned with the tokenizer's before the Trainer does it, without its warning: an encoder
  uses only the padding id, and the tokenizer's is the one the data were padded with.
"""

from __future__ import annotations

import filecmp
import json
import logging
import math
import os
import re
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import SequentialSampler
from transformers import HfArgumentParser, Trainer, TrainerCallback

from .card_facts import write_card_facts
from .checkpoints import IncompleteCheckpointWarning, checkpoints, resume_checkpoint
from .help_cache import asks_for_help, save_help
from .hub import write_endpoint_files
from .progress import quiet_short_bars, quiet_small_data_bars



def head_and_encoder_parameter_groups(
    model: torch.nn.Module, learning_rate: float, head_learning_rate: float | None, weight_decay: float
) -> list[dict]:
    """AdamW parameter groups: encoder vs new layers (everything outside `model.base_model`: emission layer,
    BiLSTM, CRF, classifier), each split into decayed and undecayed (biases, norms) parameters.

    Groups carry a `"name"` ("encoder" or "head") that `FreezeEncoderCallback` uses.
    """
    encoder_ids = {id(p) for p in model.base_model.parameters()}
    groups = {(part, decay): [] for part in ("encoder", "head") for decay in (True, False)}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = "encoder" if id(param) in encoder_ids else "head"
        no_decay = param.ndim < 2 or "norm" in name.lower() or name.endswith(".bias")
        groups[(part, not no_decay)].append(param)
    rates = {"encoder": learning_rate, "head": head_learning_rate or learning_rate}
    return [
        {"name": part, "params": params, "lr": rates[part], "weight_decay": weight_decay if decay else 0.0}
        for (part, decay), params in groups.items()
        if params
    ]


def build_optimizer(model: torch.nn.Module, training_args, head_learning_rate: float | None) -> torch.optim.Optimizer:
    """The optimizer `TrainingArguments` asks for (`--optim`, betas, eps, ...), over the groups above: the encoder at
    `--learning_rate`, the new layers at `head_learning_rate` (default: the same)."""
    groups = head_and_encoder_parameter_groups(model, training_args.learning_rate, head_learning_rate,
                                               training_args.weight_decay)
    optimizer_class, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(training_args, model)
    optimizer_kwargs.pop("lr", None)
    return optimizer_class(groups, **optimizer_kwargs)


class FreezeEncoderCallback(TrainerCallback):
    """The classic staged fine-tune: for the first `epochs` epochs only the new layers learn, then everything.

    The encoder's optimizer groups get a learning rate of 0 before each optimizer step (the scheduler restores it
    after the step). Parameters keep `requires_grad=True`, so DistributedDataParallel sees the same graph in both
    stages; the price is that the encoder's backward still runs in the first stage.
    """

    def __init__(self, epochs: float):
        self.epochs = epochs

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        if optimizer is None or state.epoch is None or state.epoch >= self.epochs:
            return
        for group in optimizer.param_groups:
            if group.get("name") == "encoder":
                group["lr"] = 0.0


class OrderedEvalTrainer(Trainer):
    """The `Trainer` of every recipe: evaluation and prediction keep the data set's order under any training sampler.

    With `--train_sampling_strategy group_by_length`, transformers 5 sorts the evaluation batches by length too
    (one setting serves both samplers), while the recipes map predictions back to examples, sentences and
    documents by position. Here only training batches are grouped (the speed-up measured in
    `benchmarks/throughput.py`); evaluation is sequential in one process and, with several, accelerate's in-order
    shards (the default when the sampler is None), gathered back in order."""

    def _get_eval_sampler(self, eval_dataset):
        if eval_dataset is None or not hasattr(eval_dataset, "__len__"):
            return None
        return SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None


@dataclass
class FineTuneArguments:
    """How the new layers train beside the pretrained encoder (shared by every recipe)."""

    head_learning_rate: float | None = field(default=None, metadata={
        "help": "Learning rate of the new layers (NER: emission layer, BiLSTM and CRF; classification: the "
                "classifier; QA: the span layer); default: --learning_rate."})
    crf_learning_rate: float | None = field(default=None, metadata={
        "help": "Deprecated alias of --head_learning_rate (warns)."})
    freeze_encoder_epochs: float = field(default=0.0, metadata={
        "help": "Train only the new layers for this many epochs, then everything (the staged fine-tune)."})

    def __post_init__(self):
        if self.crf_learning_rate is not None:
            warnings.warn("--crf_learning_rate is deprecated; use --head_learning_rate (the same setting)",
                          FutureWarning, stacklevel=2)
            if self.head_learning_rate is not None and self.head_learning_rate != self.crf_learning_rate:
                raise ValueError(f"--crf_learning_rate {self.crf_learning_rate} and --head_learning_rate "
                                 f"{self.head_learning_rate} disagree; pass only --head_learning_rate")
            self.head_learning_rate, self.crf_learning_rate = self.crf_learning_rate, None

    def optimizer(self, model: torch.nn.Module, training_args) -> torch.optim.Optimizer | None:
        """The optimizer for training (None without `--do_train`: the Trainer then needs none)."""
        return build_optimizer(model, training_args, self.head_learning_rate) if training_args.do_train else None

    def callbacks(self) -> list[TrainerCallback]:
        return [FreezeEncoderCallback(self.freeze_encoder_epochs)] if self.freeze_encoder_epochs else []

    def settings(self) -> dict:
        """What a model card lists."""
        return {"head_learning_rate": self.head_learning_rate, "freeze_encoder_epochs": self.freeze_encoder_epochs}


@dataclass
class RunArguments:
    """What every recipe run takes besides ``TrainingArguments`` (transformers 5 dropped ``--overwrite_output_dir``)."""

    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Train into an --output_dir that holds a trained model or checkpoints, replacing them; without it "
                "such a run is refused (resuming with --resume_from_checkpoint needs no such flag)."})


def parse_recipe_arguments(*dataclass_types):
    """The dataclasses from the command line's flags, or from its one argument when that is a `.json` file.

    ``--bf16`` on a machine without an accelerator implies ``--use_cpu``: transformers refuses bf16 there unless told
    to train on the CPU, where autocast to bf16 runs (faster on CPUs with bf16 instructions)."""
    parser = HfArgumentParser(dataclass_types)
    argv = sys.argv[1:]
    if asks_for_help(argv):
        text = parser.format_help()
        save_help(text)
        sys.stdout.write(text)
        sys.exit(0)
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(os.path.abspath(argv[0]))
    flags = {argument.split("=")[0] for argument in argv}
    if "--bf16" in flags and "--use_cpu" not in flags and not _has_accelerator():
        argv = [*argv, "--use_cpu"]
    return parser.parse_args_into_dataclasses(args=argv)


def limit_samples(raw, limits: dict[str, int | None]) -> None:
    """Keep the first N examples of each split named in `limits` (in place; None keeps all)."""
    for split, limit in limits.items():
        if limit is not None and split in raw:
            raw[split] = raw[split].select(range(min(limit, len(raw[split]))))


def log_and_save(trainer: Trainer, split: str, metrics: dict) -> None:
    """Print the split's metrics and write `{split}_results.json` (merged into `all_results.json`).

    Per-type scores (`{split}_{TYPE}_f1`) of more than `MAX_LOGGED_TYPES` types go to the files only: the log gets
    one line saying how many there are and which are lowest (300 entity types made 300 lines per split)."""
    per_type = {key: value for key, value in metrics.items() if _per_type_key(split, key)}
    shown = metrics
    if len(per_type) > MAX_LOGGED_TYPES:
        shown = {key: value for key, value in metrics.items() if key not in per_type}
        lowest = sorted(per_type.items(), key=lambda item: item[1])[:5]
        shown[f"{split}_per_type_f1"] = (
            f"{len(per_type)} types, in {split}_results.json; lowest: "
            + ", ".join(f"{key[len(split) + 1:-3]} {value:.4f}" for key, value in lowest))
    trainer.log_metrics(split, shown)
    trainer.save_metrics(split, metrics)


MAX_LOGGED_TYPES = 10
_AVERAGED_F1 = ("macro", "micro", "weighted")


def _per_type_key(split: str, key: str) -> bool:
    """Whether ``key`` is a per-type score, ``{split}_{TYPE}_f1`` (not the overall or an averaged F1)."""
    name = key[len(split) + 1 : -3] if key.startswith(f"{split}_") and key.endswith("_f1") else ""
    return bool(name) and name not in _AVERAGED_F1


def train_and_save(trainer: Trainer, training_args, lora_args, lora_model, **extra_metrics) -> None:
    """Train, save the model (merged or adapter with `--lora`; a task model with its Inference Endpoints handler,
    `hub.write_endpoint_files`), its metrics and state.

    `--resume_from_checkpoint PATH` continues from that checkpoint; `--resume_from_checkpoint last` from the newest
    complete one in `--output_dir`, skipping (and naming) any cut off while being written
    (:func:`hf_bert_tasks.checkpoints.resume_checkpoint`)."""
    resume = resume_checkpoint(training_args.output_dir, training_args.resume_from_checkpoint)
    result = trainer.train(resume_from_checkpoint=resume)
    lora_args.save(trainer, lora_model)
    if trainer.is_world_process_zero():
        write_endpoint_files(training_args.output_dir)  # deployable as an Inference Endpoint as it is
    log_and_save(trainer, "train", {**result.metrics, **extra_metrics})
    trainer.save_state()


def card_settings(training_args, finetune_args: FineTuneArguments, lora_args=None, **task_settings) -> dict:
    """The training settings a pushed model's card lists, in one order for every recipe: the task's own
    (``task_settings``), the learning rates, epochs, batch size, ``--lora`` (recipes that take it) and the seed."""
    settings = {**task_settings, "learning_rate": training_args.learning_rate, **finetune_args.settings(),
                "num_train_epochs": training_args.num_train_epochs,
                "per_device_train_batch_size": training_args.per_device_train_batch_size}
    if lora_args is not None:
        settings["lora"] = lora_args.lora
    settings["seed"] = training_args.seed
    return settings


def end_processes() -> None:
    """Close the process group of a multi-process run (`accelerate launch`) before the interpreter exits.

    Left open, its gloo threads are torn down during interpreter shutdown; a two-process CPU run of
    `recipes/pretrain.py --streaming` was seen to abort there ("terminate called without an active exception",
    SIGABRT) after it had trained and saved. Closing the group first made that rarer, not impossible (it happened
    again in one of three full test runs), so a multi-process run then leaves without the interpreter's shutdown:
    logs and streams flushed, everything written, exit status 0. Every recipe calls this last; a no-op in a single
    process."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


# ---------------------------------------------------------------------------------------------------------- checks

UNK_WARNING_SHARE = 0.05
MAX_LOGGING_STEPS = 500
LOGS_PER_RUN = 50

# Encoders whose position ids start after the padding index (transformers' create_position_ids_from_input_ids).
_PADDING_OFFSET_MODEL_TYPES = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text",
                               "longformer", "roberta-prelayernorm"}


class UnknownTokensWarning(UserWarning):
    """Much of the training text is ``[UNK]`` to the tokenizer."""


# --------------------------------------------------------------------------------------------------------- positions


def position_limit(config) -> int | None:
    """The longest input, in tokens, the encoder's position embeddings allow; None when it has no absolute ones.

    ``config`` is a model config; a config with an ``encoder`` sub-config (``BertCrfConfig``) is read through it."""
    encoder = getattr(config, "encoder", None)
    if encoder is not None and hasattr(encoder, "model_type"):
        config = encoder
    positions = getattr(config, "max_position_embeddings", None)
    if not positions or getattr(config, "position_biased_input", True) is False:  # DeBERTa: relative positions only
        return None
    if config.model_type in _PADDING_OFFSET_MODEL_TYPES:
        padding_index = getattr(config, "pad_token_id", None)
        positions -= (1 if padding_index is None else padding_index) + 1
    return positions


def check_max_seq_length(max_seq_length: int, config, flag: str = "--max_seq_length") -> None:
    """Refuse a window longer than the encoder's position embeddings, saying the limit (``ValueError``)."""
    limit = position_limit(config)
    if limit is not None and max_seq_length > limit:
        encoder = getattr(config, "encoder", config)
        name = getattr(config, "name_or_path", "") or getattr(encoder, "model_type", "the encoder")
        raise ValueError(
            f"{flag} {max_seq_length} is longer than the encoder can read: {name} has {limit} positions "
            f"(max_position_embeddings {encoder.max_position_embeddings}). Use {flag} {limit} or less; longer "
            "texts are cut into windows"
        )


# A span model's training step per span score (types x T x T per window): the score, its gradient and the loss's
# intermediates. The most measured above the CRF's step by benchmarks/span_memory.py was 44 bytes (5 types, T = 256).
SPAN_STEP_BYTES = 48


def memory_of(device: torch.device) -> int:
    """Bytes of memory the device has: the accelerator's own, or the machine's."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_span_memory(config, max_seq_length: int, batch_size: int, memory: int) -> None:
    """Refuse training a span model whose span scores for one batch of windows would need more than half of
    ``memory`` bytes (``ValueError`` with the estimate and what to lower); other models pass."""
    if getattr(config, "model_type", None) != "bert_global_pointer":
        return
    need = batch_size * config.num_labels * max_seq_length**2 * SPAN_STEP_BYTES
    if need > memory / 2:
        raise ValueError(
            f"a training step of this span model needs about {need / 2**30:.1f} GB for its span scores "
            f"({config.num_labels} types x {max_seq_length} x {max_seq_length} per window, "
            f"--per_device_train_batch_size {batch_size}, about {SPAN_STEP_BYTES} bytes each), more than half of the "
            f"{memory / 2**30:.1f} GB here. Lower --per_device_train_batch_size (raising "
            "--gradient_accumulation_steps keeps the batch) or --max_seq_length"
        )


# ---------------------------------------------------------------------------------------------------- unknown tokens


def _flat_ids(rows) -> np.ndarray:
    """All token ids of a column of id lists (a ``datasets.Dataset`` is read through Arrow, without Python loops)."""
    if hasattr(rows, "data") and hasattr(rows, "column_names"):  # a datasets.Dataset
        import pyarrow.compute as pc

        column = rows.data.column("input_ids")
        return pc.list_flatten(column).to_numpy(zero_copy_only=False) if len(column) else np.zeros(0, np.int64)
    return np.fromiter((i for row in rows for i in row), dtype=np.int64)


def unknown_token_share(tokenizer, rows) -> dict[str, float | int]:
    """``{"train_unk_share", "train_unk_tokens", "train_tokens"}`` of ``rows`` (a Dataset with ``input_ids`` or a
    list of id lists): ``[UNK]`` pieces over all pieces, special tokens left out."""
    ids = _flat_ids(rows)
    special = [i for i in tokenizer.all_special_ids if i != tokenizer.unk_token_id]
    ids = ids[~np.isin(ids, special)]
    unknown = int(np.count_nonzero(ids == tokenizer.unk_token_id)) if tokenizer.unk_token_id is not None else 0
    total = int(ids.size)
    return {"train_unk_share": unknown / total if total else 0.0, "train_unk_tokens": unknown, "train_tokens": total}


def _warn_unknown_tokens(counts: dict, tokenizer) -> None:
    if counts["train_unk_share"] <= UNK_WARNING_SHARE:
        return
    name = getattr(tokenizer, "name_or_path", "") or "the tokenizer"
    warnings.warn(UnknownTokensWarning(
        f"{100 * counts['train_unk_share']:.1f}% of the training word pieces are [UNK] ({counts['train_unk_tokens']} "
        f"of {counts['train_tokens']}): {name} lacks many of the data's characters or words, and the model cannot "
        f"tell them apart. `python -m hf_bert_tasks.vocab mine --tokenizer {name} --files TRAIN_FILE --format "
        "ner|classification|squad|lines --output tokens.txt` lists what is missing and `python -m "
        "hf_bert_tasks.vocab expand` adds it (docs/vocabulary.md)"), stacklevel=3)


# ----------------------------------------------------------------------------------------------------- logging steps


def logging_steps_given(argv: Sequence[str] | None = None) -> bool:
    """Whether the command line sets ``--logging_steps`` (also ``--logging-steps``, or the key of the one JSON file
    of options a recipe may take instead of flags)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 1 and argv[0].endswith(".json"):
        options = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
        return "logging_steps" in options
    return any(re.match(r"--logging[_-]steps(=|$)", arg) for arg in argv)


def default_logging_steps(max_steps: int) -> int:
    """About ``LOGS_PER_RUN`` logs per run, at least one every ``MAX_LOGGING_STEPS`` steps."""
    return max(1, min(MAX_LOGGING_STEPS, math.ceil(max_steps / LOGS_PER_RUN)))


class LoggingStepsCallback(TrainerCallback):
    """Log the training loss every :func:`default_logging_steps` steps (the user set no ``--logging_steps``)."""

    def on_train_begin(self, args, state, control, **kwargs):
        if state.max_steps and state.max_steps > 0:
            state.logging_steps = default_logging_steps(state.max_steps)


# ------------------------------------------------------------------------------------------------------ quiet loading

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_POOLER_KEY = re.compile(r"(^|\.)pooler\.")


def _without_unused_pooler(message: str) -> str | None:
    """A transformers load report without its rows of pooler weights marked UNEXPECTED (and without the note on
    UNEXPECTED when no such row is left); None when nothing is left to report. Other messages come back as they are."""
    text = _ANSI.sub("", message)
    if "LOAD REPORT" not in text:
        return message
    lines = text.splitlines()

    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in line.split("|")]

    def unused_pooler(line: str) -> bool:
        row = cells(line)
        return "|" in line and len(row) > 1 and bool(_POOLER_KEY.search(row[0])) and row[1] == "UNEXPECTED"

    if not any(unused_pooler(line) for line in lines):
        return message
    kept = [line for line in lines if not unused_pooler(line)]
    rows = [line for line in kept if "|" in line and cells(line)[0] != "Key"]
    if not rows:
        return None
    if not any(cells(line)[1] == "UNEXPECTED" for line in rows):
        kept = [line for line in kept if not line.startswith("- UNEXPECTED:")]
    return "\n".join(kept)


class _DropUnusedPoolerReport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        shorter = _without_unused_pooler(message)
        if shorter is None:
            return False
        if shorter is not message:
            record.msg, record.args = shorter, None
        return True


class _DropMessage(logging.Filter):
    def __init__(self, start: str):
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.start)


def quiet_loading_reports() -> None:
    """Leave the encoder's unused pooler weights out of transformers' load reports, and a report of nothing else
    out of the log (idempotent, process-wide)."""
    logger = logging.getLogger("transformers.modeling_utils")
    if not any(isinstance(f, _DropUnusedPoolerReport) for f in logger.filters):
        logger.addFilter(_DropUnusedPoolerReport())


def _align_special_tokens_quietly(model, tokenizer) -> None:
    """transformers' own alignment of the config's PAD/BOS/EOS ids with the tokenizer, without its warning."""
    from transformers.trainer_utils import align_special_tokens

    logger = logging.getLogger("transformers.trainer_utils")
    quiet = _DropMessage("The tokenizer has new PAD/BOS/EOS tokens")
    logger.addFilter(quiet)
    try:
        align_special_tokens(model, tokenizer)
    finally:
        logger.removeFilter(quiet)


def _has_accelerator() -> bool:
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and hasattr(accelerator, "is_available"):
        return accelerator.is_available()
    return torch.cuda.is_available()


# ------------------------------------------------------------------------------------------------------ run arguments

# Files of a trained model in a folder (the weights of a full model or of a LoRA adapter).
_MODEL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors",
                  "pytorch_model.bin")


class ScoredOnTrainingDataWarning(UserWarning):
    """The data a run scores on is its training data."""


def _check_splits_given(training_args, data_args) -> None:
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        raise ValueError("nothing to do: give --do_train, --do_eval or --do_predict")
    hub = getattr(data_args, "dataset_name", None)
    for flag, split, names in (("do_train", "training", ("train_file", "train_files")),
                               ("do_eval", "validation", ("validation_file",)),
                               ("do_predict", "test", ("test_file",))):
        if not getattr(training_args, flag):
            continue
        flags = [name for name in names if hasattr(data_args, name)]
        if not flags:
            raise ValueError(f"--{flag}: this recipe reads no {split} data (it has no --{names[0]})")
        if not hub and not any(getattr(data_args, name) for name in flags):
            raise ValueError(f"--{flag} needs {split} data: give --{flags[0]} (or --dataset_name)")


def _check_sample_limits(data_args) -> None:
    for name in ("max_train_samples", "max_eval_samples", "max_predict_samples"):
        value = getattr(data_args, name, None)
        if value is not None and value < 1:
            raise ValueError(f"--{name} {value} leaves no example: give 1 or more (or leave it out for all)")


def _same_file(first, second) -> bool:
    first, second = Path(first), Path(second)
    if not (first.is_file() and second.is_file()):
        return False
    return first.samefile(second) or filecmp.cmp(first, second, shallow=False)


def _warn_scored_on_training_data(training_args, data_args) -> None:
    train = getattr(data_args, "train_file", None) or getattr(data_args, "train_files", None)
    if not training_args.do_train or not train:
        return
    train_files = [train] if isinstance(train, str) else list(train)
    for flag, split, scores in (("validation_file", "do_eval", "eval"), ("test_file", "do_predict", "test")):
        other = getattr(data_args, flag, None)
        if not other or not getattr(training_args, split):
            continue
        same = next((path for path in train_files if _same_file(path, other)), None)
        if same is not None:
            warnings.warn(ScoredOnTrainingDataWarning(
                f"--{flag} {other} is the training file {same}: the {scores} scores are scores on the data the "
                "model was trained on, not on unseen data"), stacklevel=4)


def _describe_model(folder: Path, weights: list[str]) -> str:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    parts = list((config.get("architectures") or [])[:1])
    if config.get("id2label"):
        parts.append(f"{len(config['id2label'])} labels")
    return ", ".join(parts + weights)


def _check_output_dir(training_args, overwrite_output_dir: bool) -> None:
    """Refuse to train into a folder that holds a trained model or checkpoints, unless asked to or resuming."""
    folder = Path(training_args.output_dir)
    if not training_args.do_train or overwrite_output_dir or training_args.resume_from_checkpoint is not None:
        return
    if not folder.is_dir():
        return
    weights = [name for name in _MODEL_WEIGHTS if (folder / name).is_file()]
    found = [checkpoint.name for checkpoint, _ in reversed(checkpoints(folder))]  # oldest first
    held = []
    if weights:
        held.append(f"a trained model ({_describe_model(folder, weights)})")
    if found:
        shown = ", ".join(found) if len(found) <= 5 else f"{', '.join(found[:2])}, ..., {', '.join(found[-2:])}"
        held.append(f"{len(found)} checkpoint{'s' if len(found) > 1 else ''} ({shown})")
    if held:
        raise ValueError(
            f"--output_dir {folder} holds {' and '.join(held)}: training would replace it. Pass "
            "--overwrite_output_dir to replace it, --resume_from_checkpoint last to go on from its newest "
            "checkpoint, or another --output_dir")


def check_run_arguments(training_args, data_args, overwrite_output_dir: bool = False) -> None:
    """Refuse, before any work, the runs that would fail late or mislead (module docstring, "Run arguments")."""
    _check_splits_given(training_args, data_args)
    _check_sample_limits(data_args)
    _check_output_dir(training_args, overwrite_output_dir)
    if training_args.do_train and training_args.resume_from_checkpoint is not None:
        with warnings.catch_warnings():  # the checkpoints skipped are named when training starts
            warnings.simplefilter("ignore", IncompleteCheckpointWarning)
            resume_checkpoint(training_args.output_dir, training_args.resume_from_checkpoint)
    _warn_scored_on_training_data(training_args, data_args)


# ---------------------------------------------------------------------------------------------------------- the data


def check_training_answers(answers: dict[str, int], where: str, what: str) -> None:
    """Refuse training data that hold one answer only (``answers``: how often each answer occurs in the training
    data, e.g. each label, or "O" and each entity type); ``what`` names what was counted ("every training text is
    labelled", "every training word is tagged"). A model trained on them can only ever give that one answer."""
    given = {answer: count for answer, count in answers.items() if count}
    if len(given) < 2:
        (only, count), = given.items() if given else (("nothing", 0),)
        raise ValueError(f"{where}: {what} {only!r} ({count} of them): a model trained on these data can only ever "
                         "answer that; training needs at least two classes (for NER, at least one entity)")


# ------------------------------------------------------------------------------------------------------------ recipes


class RecipeChecks:
    """The checks and quiet defaults of one recipe run (module docstring).

    Args:
        training_args: the run's ``TrainingArguments``; ``dataloader_pin_memory`` is turned off without an
            accelerator.
        data_args: the recipe's data arguments (``train_file`` or ``train_files``, ``validation_file``,
            ``test_file``, ``dataset_name``, ``max_*_samples``, those it has), checked with ``training_args`` by
            :func:`check_run_arguments` before anything else happens.
        run_args: the run's :class:`RunArguments` (``--overwrite_output_dir``).
        argv: the command line (default ``sys.argv[1:]``), read to tell whether ``--logging_steps`` was given.
    """

    def __init__(self, training_args, data_args=None, run_args: RunArguments | None = None,
                 argv: Sequence[str] | None = None):
        self.training_args = training_args
        if data_args is not None:
            check_run_arguments(training_args, data_args, (run_args or RunArguments()).overwrite_output_dir)
        self.default_logging = not logging_steps_given(argv)
        self.metrics: dict = {}
        if training_args.dataloader_pin_memory and not _has_accelerator():
            training_args.dataloader_pin_memory = False
        quiet_loading_reports()
        quiet_short_bars()

    def data_read(self, raw) -> None:
        """Once the data are read (and cut to ``--max_*_samples``): each of ``--do_train``, ``--do_eval``,
        ``--do_predict`` has its split (a Hub data set may lack one), and datasets' progress bars are left on for
        large data only. A training run records what its model card will say of the data, the settings and the
        machine (``card_facts.json``, :mod:`hf_bert_tasks.card_facts`)."""
        for flag, split in (("do_train", "train"), ("do_eval", "validation"), ("do_predict", "test")):
            if getattr(self.training_args, flag) and split not in raw:
                raise ValueError(f"--{flag} needs a {split} split; the data have {', '.join(raw) or 'none'}")
        quiet_small_data_bars(getattr(split, "num_rows", None) for split in raw.values())
        if self.training_args.do_train and self.training_args.should_save and "train" in raw:
            write_card_facts(self.training_args.output_dir, raw, self.training_args)  # what the model card says

    def check_training_answers(self, raw, count, where: str, what: str) -> None:
        """:func:`check_training_answers` of ``count(raw["train"])`` (the answers and how often each occurs), when
        the run trains."""
        if self.training_args.do_train:
            check_training_answers(count(raw["train"]), where, what)

    def check_max_seq_length(self, max_seq_length: int, config, flag: str = "--max_seq_length") -> None:
        """:func:`check_max_seq_length`, and :func:`check_span_memory` when training; call it before tokenizing."""
        check_max_seq_length(max_seq_length, config, flag)
        if self.training_args.do_train:
            check_span_memory(config, max_seq_length, self.training_args.per_device_train_batch_size,
                              memory_of(self.training_args.device))

    def attach(self, trainer, **metrics) -> dict:
        """Finish the run's set-up on its ``trainer``: the default logging steps, the special-token alignment, the
        ``[UNK]`` share of the training features (when training), and ``metrics`` of the data (e.g. repaired tags).
        They are printed and written to ``data_results.json`` and ``all_results.json`` now, so that they are there
        whatever happens next. Returns them."""
        if self.default_logging:
            trainer.add_callback(LoggingStepsCallback())
        tokenizer = trainer.processing_class
        model = getattr(trainer, "model", None)
        if tokenizer is not None and model is not None and hasattr(model, "config"):
            _align_special_tokens_quietly(model, tokenizer)
        self.metrics.update(metrics)
        train = trainer.train_dataset
        # A streamed (iterable) corpus is not read ahead of training to count.
        countable = hasattr(train, "data") and "input_ids" in (getattr(train, "column_names", None) or [])
        if self.training_args.do_train and countable and tokenizer is not None:
            counts = unknown_token_share(tokenizer, train)
            _warn_unknown_tokens(counts, tokenizer)
            self.metrics.update(counts)
        if self.metrics:
            os.makedirs(trainer.args.output_dir, exist_ok=True)
            trainer.log_metrics("data", self.metrics)
            trainer.save_metrics("data", self.metrics)
        return self.metrics
