"""The recipe contract: what every recipe (``recipes/ner.py``, ``classify.py``, ``qa.py``, ``pretrain.py``,
``distill.py``) shares.

- Arguments: flags or one JSON file (:func:`parse_recipe_arguments`); :class:`FineTuneArguments` for the new layers'
  learning rate (``--head_learning_rate``; ``--crf_learning_rate`` is its deprecated alias) and the staged
  fine-tune (``--freeze_encoder_epochs``); ``--max_{train,eval,predict}_samples`` through :func:`limit_samples`.
- Evaluation in data order under any sampler (:class:`OrderedEvalTrainer`): every recipe maps predictions back to
  its examples by position, so ``--train_sampling_strategy group_by_length`` may group training batches only.
- Train / evaluate / predict bookkeeping written once (:func:`train_and_save`, :func:`log_and_save`).
"""

import os
import sys
import warnings
from dataclasses import dataclass, field

import torch
from torch.utils.data import SequentialSampler
from transformers import HfArgumentParser, Trainer, TrainerCallback

from .checkpoints import resume_checkpoint


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


def parse_recipe_arguments(*dataclass_types):
    """The dataclasses from the command line's flags, or from its one argument when that is a `.json` file."""
    parser = HfArgumentParser(dataclass_types)
    if len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
        return parser.parse_json_file(os.path.abspath(sys.argv[1]))
    return parser.parse_args_into_dataclasses()


def limit_samples(raw, limits: dict[str, int | None]) -> None:
    """Keep the first N examples of each split named in `limits` (in place; None keeps all)."""
    for split, limit in limits.items():
        if limit is not None and split in raw:
            raw[split] = raw[split].select(range(min(limit, len(raw[split]))))


def log_and_save(trainer: Trainer, split: str, metrics: dict) -> None:
    """Print the split's metrics and write `{split}_results.json` (merged into `all_results.json`)."""
    trainer.log_metrics(split, metrics)
    trainer.save_metrics(split, metrics)


def train_and_save(trainer: Trainer, training_args, lora_args, lora_model, **extra_metrics) -> None:
    """Train, save the model (merged or adapter with `--lora`), its metrics and state.

    `--resume_from_checkpoint PATH` continues from that checkpoint; `--resume_from_checkpoint last` from the newest
    complete one in `--output_dir`, skipping (and naming) any cut off while being written
    (:func:`hf_bert_tasks.checkpoints.resume_checkpoint`)."""
    resume = resume_checkpoint(training_args.output_dir, training_args.resume_from_checkpoint)
    result = trainer.train(resume_from_checkpoint=resume)
    lora_args.save(trainer, lora_model)
    log_and_save(trainer, "train", {**result.metrics, **extra_metrics})
    trainer.save_state()


def end_processes() -> None:
    """Close the process group of a multi-process run (`accelerate launch`) before the interpreter exits.

    Left open, its gloo threads are torn down during interpreter shutdown; a two-process CPU run of
    `recipes/pretrain.py --streaming` was seen to abort there ("terminate called without an active exception",
    SIGABRT) after it had trained and saved. Every recipe calls this last; a no-op in a single process."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
