"""Trainer pieces shared by the recipes: a separate learning rate for the new layers, and the staged fine-tune."""

import torch
from torch.utils.data import SequentialSampler
from transformers import Trainer, TrainerCallback


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
    """A `Trainer` whose evaluation keeps the data set's order even with `--train_sampling_strategy
    group_by_length` (transformers 5 then sorts evaluation batches by length too): the recipes map predictions back
    to sentences and documents by position. Training batches are still grouped by length, the large speed-up
    measured in `benchmarks/throughput.py`."""

    def _get_eval_sampler(self, eval_dataset):
        if eval_dataset is None or not hasattr(eval_dataset, "__len__"):
            return None
        return SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None
