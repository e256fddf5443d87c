"""LoRA fine-tuning of the task models (peft): which layers get adapters, what is trained in full, how it is saved.

Decisions:

- **Adapters go inside the encoder only.** The defaults per encoder family are the attention projections (query,
  key, value, output) and the two feed-forward layers, named as each family names them (`ENCODER_TARGET_MODULES`).
  The names are turned into one pattern anchored at the encoder (`encoder.` for the CRF model, `bert.`/`roberta.`
  ... for a transformers head), so a layer of the same name in a head (RoBERTa's `classifier.dense`) is never
  adapted. A name that matches nothing in the encoder is an error, not a silent no-op.
- **The new layers are trained in full.** Everything outside the encoder (the emission layer `classifier`, the
  `bilstm`, the `crf`; `classifier`/`qa_outputs`/`score` of other heads) goes into `modules_to_save`. peft adds only
  `classifier`/`score` on its own for token classification: without this a CRF and a BiLSTM would stay at their
  random initialisation and be missing from the adapter file.
- **Two ways to save.** `save_adapter` writes the adapter (LoRA matrices plus the new layers, a small fraction of
  the model) with the task model's `config.json` and the tokenizer; it loads on top of the base encoder with
  `load_adapter`. `save_merged` folds the LoRA matrices into the encoder weights (`merge_and_unload`) and writes an
  ordinary model folder: safetensors, custom code and `auto_map`, loadable with
  `AutoModelForTokenClassification.from_pretrained(path, trust_remote_code=True)` and `NerPredictor` where neither
  this package nor peft is installed. The merge happens on a copy, so the adapted model stays usable.
"""

import copy
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from transformers import (
    AutoConfig,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    PreTrainedConfig,
    PreTrainedModel,
)

logger = logging.getLogger(__name__)

_BERT_LIKE = ["query", "key", "value", "dense"]  # self-attention q/k/v, attention output, FFN in and out
ENCODER_TARGET_MODULES: dict[str, list[str]] = {
    "bert": _BERT_LIKE,
    "roberta": _BERT_LIKE,
    "xlm-roberta": _BERT_LIKE,
    "camembert": _BERT_LIKE,
    "electra": _BERT_LIKE,
    # ALBERT's one shared layer: attention q/k/v and output `dense`, FFN `ffn` and `ffn_output`.
    "albert": ["query", "key", "value", "dense", "ffn", "ffn_output"],
    "distilbert": ["q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"],
}

# Head class name suffix -> (peft task type, the Auto class that rebuilds the base model of an adapter).
# Question answering gets no task type, so the plain PeftModel, which passes every input on: peft's
# PeftModelForQuestionAnswering (0.21) drops `token_type_ids`, and BERT would train and answer without its segments.
_TASKS = {
    "ForTokenClassification": (TaskType.TOKEN_CLS, AutoModelForTokenClassification),
    "ForSpanClassification": (TaskType.TOKEN_CLS, AutoModelForTokenClassification),  # the global pointer model
    "ForSequenceClassification": (TaskType.SEQ_CLS, AutoModelForSequenceClassification),
    "ForQuestionAnswering": (None, AutoModelForQuestionAnswering),
}
_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")


@dataclass
class LoraArguments:
    """The recipes' `--lora*` flags (an `HfArgumentParser` dataclass shared by ner, classify and qa)."""
    lora: bool = field(default=False, metadata={"help": "Train LoRA adapters in the encoder (peft) instead of all its "
                                                        "weights; the task layers (classifier, CRF, BiLSTM, QA "
                                                        "outputs) train in full."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: float = field(default=16.0, metadata={"help": "LoRA alpha: the update is scaled by alpha / r."})
    lora_dropout: float = field(default=0.1, metadata={"help": "Dropout on the input of the LoRA matrices."})
    lora_target_modules: list[str] | None = field(default=None, metadata={
        "help": "Encoder layers to adapt, by name (space or comma separated); default: attention and feed-forward "
                "layers of the encoder family (BERT-like: query key value dense)."})
    lora_save: str = field(default="merged", metadata={
        "help": "merged: the output folder is an ordinary model (adapters merged in); adapter: the adapter alone "
                "(load with hf_bert_tasks.lora.load_adapter); both: merged, plus the adapter in output_dir/adapter."})

    def __post_init__(self):
        if self.lora_save not in ("merged", "adapter", "both"):
            raise ValueError(f"--lora_save must be merged, adapter or both, got {self.lora_save!r}")
        if self.lora_target_modules:
            self.lora_target_modules = [n for item in self.lora_target_modules for n in item.split(",") if n]

    def apply(self, model: PreTrainedModel) -> "PeftModel | None":
        """`apply_lora` with these settings when `--lora` is on (the model is adapted in place), else None."""
        if not self.lora:
            return None
        return apply_lora(model, r=self.lora_r, alpha=self.lora_alpha, dropout=self.lora_dropout,
                          target_modules=self.lora_target_modules)

    def save(self, trainer, peft_model: "PeftModel | None") -> None:
        """Save the trained model in the trainer's output folder: as the Trainer does without LoRA, else as
        `--lora_save` says (`save_lora_outputs`, on the main process only)."""
        if peft_model is None:
            trainer.save_model()
        elif trainer.is_world_process_zero():
            save_lora_outputs(peft_model, trainer.args.output_dir, trainer.processing_class, self.lora_save)


def encoder_model_type(model: PreTrainedModel) -> str:
    """`model_type` of the encoder: `config.encoder.model_type` for the CRF model, `config.model_type` otherwise."""
    encoder_config = getattr(model.config, "encoder", None)
    if isinstance(encoder_config, PreTrainedConfig):
        return encoder_config.model_type
    return model.config.model_type


def default_target_modules(model: PreTrainedModel) -> list[str]:
    """Names (last component) of the encoder's attention and feed-forward linear layers, by encoder family."""
    model_type = encoder_model_type(model)
    if model_type not in ENCODER_TARGET_MODULES:
        raise ValueError(
            f"no default LoRA target modules for encoder type {model_type!r} (known: "
            f"{', '.join(sorted(ENCODER_TARGET_MODULES))}); pass the names of its linear layers with "
            f"--lora_target_modules (target_modules=[...]), e.g. {linear_layer_names(model)}"
        )
    return list(ENCODER_TARGET_MODULES[model_type])


def encoder_prefix(model: PreTrainedModel) -> str:
    """Attribute name of the encoder inside the task model (`base_model_prefix`: "encoder", "bert", ...)."""
    prefix = model.base_model_prefix
    if not prefix or getattr(model, prefix, None) is not model.base_model or model.base_model is model:
        raise ValueError(f"{type(model).__name__} is not a task model with an encoder under `{prefix}`: LoRA here "
                         f"adapts the encoder of a model that has a task head")
    return prefix


def linear_layer_names(model: PreTrainedModel) -> list[str]:
    """Distinct last-component names of the `nn.Linear` layers inside the encoder."""
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.base_model.named_modules()
                   if isinstance(module, torch.nn.Linear)})


def new_layer_names(model: PreTrainedModel) -> list[str]:
    """Children of the model outside the encoder that hold parameters: the layers a task adds (trained in full)."""
    prefix = encoder_prefix(model)
    return [name for name, module in model.named_children()
            if name != prefix and any(True for _ in module.parameters())]


def encoder_targets(model: PreTrainedModel, target_modules: Sequence[str] | None = None) -> tuple[list[str], str]:
    """The linear layers to adapt (``target_modules``, else the encoder family's defaults), checked to exist in the
    encoder, and one regular expression anchored at the encoder that selects them (peft matches a string target with
    ``re.fullmatch`` on the module path, so heads outside the encoder are never adapted)."""
    names = list(target_modules) if target_modules else default_target_modules(model)
    available = linear_layer_names(model)
    missing = [name for name in names if name not in available]
    if missing:
        raise ValueError(f"LoRA target modules {missing} match no linear layer inside the encoder "
                         f"({encoder_model_type(model)}); its linear layers are named {available}")
    pattern = rf"{re.escape(encoder_prefix(model))}\.(.*\.)?({'|'.join(re.escape(name) for name in names)})"
    return names, pattern


def apply_lora(
    model: PreTrainedModel,
    r: int = 8,
    alpha: float = 16,
    dropout: float = 0.1,
    target_modules: Sequence[str] | None = None,
    trainable_token_indices: Sequence[int] | None = None,
) -> PeftModel:
    """Wrap a task model (CRF or a transformers head) with LoRA adapters in its encoder.

    Args:
        model: `BertCrfForTokenClassification` or a `*ForTokenClassification` / `*ForSequenceClassification` /
            `*ForQuestionAnswering` model. It is modified in place (peft injects the adapter layers); keep using the
            returned `PeftModel` for training and saving.
        r, alpha, dropout: LoRA rank, scaling numerator (the update is scaled by `alpha / r`) and dropout on the
            adapter input.
        target_modules: last-component names of encoder layers to adapt; default `default_target_modules(model)`.
        trainable_token_indices: token ids whose input embedding rows are trained (tokens added to the vocabulary
            are otherwise frozen at their initialisation); the rest of the embedding matrix stays frozen.
    Returns:
        The `PeftModel`: LoRA matrices and the new layers (`new_layer_names`) trainable, everything else frozen.
    """
    if isinstance(model, PeftModel):
        raise ValueError("the model already has peft adapters; apply_lora takes the plain task model")
    if not isinstance(r, int) or r <= 0:
        raise ValueError(f"LoRA rank r must be a positive integer, got {r!r}")
    if alpha <= 0:
        raise ValueError(f"LoRA alpha must be positive, got {alpha!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"LoRA dropout must be in [0, 1), got {dropout!r}")
    names, pattern = encoder_targets(model, target_modules)
    new_layers = new_layer_names(model)
    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=pattern, bias="none",
        modules_to_save=new_layers, task_type=task_type(model),
        trainable_token_indices=list(trainable_token_indices) if trainable_token_indices else None,
    )
    peft_model = get_peft_model(model, config)
    # peft appends its own defaults for the task type ("classifier", "score"; 0.22 adds "pre_classifier"): keep each
    # name once.
    config.modules_to_save = list(dict.fromkeys(config.modules_to_save))
    trainable, total = trainable_parameters(peft_model)
    logger.info("LoRA r=%d on %s of the %s encoder, new layers %s in full: %s of %s parameters trainable", r, names,
                encoder_model_type(model), new_layers, f"{trainable:,}", f"{total:,}")
    return peft_model


def task_type(model: PreTrainedModel) -> TaskType | None:
    """peft's task type for the model's head (recorded in `adapter_config.json`); None for an unknown head."""
    for suffix, (task, _) in _TASKS.items():
        if type(model).__name__.endswith(suffix):
            return task
    return None


def trainable_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts, each parameter counted once. For a `PeftModel` the total includes the
    LoRA matrices and the frozen originals that peft keeps next to each trained copy of a new layer."""
    trainable = total = 0
    for param in model.parameters():
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
    return trainable, total


def save_adapter(peft_model: PeftModel, directory: str | os.PathLike, tokenizer=None) -> Path:
    """Write the adapter (`adapter_config.json`, `adapter_model.safetensors`: LoRA matrices and the new layers), the
    task model's `config.json` (labels, tag scheme, CRF/BiLSTM settings) and the tokenizer, if given."""
    directory = Path(directory)
    peft_model.save_pretrained(directory, safe_serialization=True)
    base = peft_model.get_base_model()
    config = copy.deepcopy(base.config)
    config.architectures = [type(base).__name__]  # `load_adapter` picks the Auto class from it
    config.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory


def save_merged(peft_model: PeftModel, directory: str | os.PathLike, tokenizer=None) -> Path:
    """Write an ordinary model folder with the adapters merged into the encoder weights.

    The merge runs on a copy (the caller's `peft_model` keeps its adapters). Adapter files left in the folder by an
    earlier save are removed: transformers would otherwise read the folder as an adapter and look for its base.
    """
    directory = Path(directory)
    merged = copy.deepcopy(peft_model).merge_and_unload()
    leftovers = [key for key in merged.state_dict() if "lora_" in key or "modules_to_save" in key
                 or "original_module" in key or "base_layer" in key]
    if leftovers:  # would load as missing/unexpected keys, i.e. silently random layers
        raise RuntimeError(f"merging left peft wrapper weights in the model: {leftovers[:5]}")
    directory.mkdir(parents=True, exist_ok=True)
    for name in _ADAPTER_FILES:
        (directory / name).unlink(missing_ok=True)
    merged.save_pretrained(directory, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory


def save_lora_outputs(peft_model: PeftModel, output_dir: str | os.PathLike, tokenizer, how: str = "merged") -> None:
    """The recipe's final save. `merged`: `output_dir` is an ordinary model folder. `adapter`: `output_dir` holds
    the adapter (see `save_adapter`). `both`: the merged model in `output_dir`, the adapter in `output_dir/adapter`."""
    if how not in ("merged", "adapter", "both"):
        raise ValueError(f"--lora_save must be merged, adapter or both, got {how!r}")
    output_dir = Path(output_dir)
    if how in ("merged", "both"):
        save_merged(peft_model, output_dir, tokenizer)
    if how == "adapter":
        save_adapter(peft_model, output_dir, tokenizer)
    elif how == "both":
        save_adapter(peft_model, output_dir / "adapter", tokenizer)


def load_adapter(base: str | os.PathLike | PreTrainedModel, adapter_dir: str | os.PathLike,
                 is_trainable: bool = False) -> PeftModel:
    """The adapter of `adapter_dir` on top of a base model.

    Args:
        base: the model the adapter was trained on, or a folder/Hub id: the pretrained encoder (the task model is
            rebuilt from the adapter's `config.json` with the encoder's weights; its new layers come from the
            adapter) or a saved task model with the same labels whose encoder is that encoder (not a merged folder:
            its weights already contain the adapter).
        adapter_dir: a folder written by `save_adapter`.
        is_trainable: load for further training (otherwise the adapter is frozen, in inference mode).
    """
    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{adapter_dir} has no adapter_config.json: not an adapter folder (save_adapter)")
    if not isinstance(base, torch.nn.Module):
        from .modeling import register_auto_classes

        register_auto_classes()  # a CRF adapter's config and base load as this package's model
        config = AutoConfig.from_pretrained(adapter_dir, trust_remote_code=True)
        head_class = next((auto for suffix, (_, auto) in _TASKS.items()
                           if any(name.endswith(suffix) for name in config.architectures or [])),
                          AutoModelForTokenClassification)
        # The encoder's weights from `base`, the architecture and labels from the adapter's config.
        base = head_class.from_pretrained(str(base), config=config, trust_remote_code=True)
    return PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=is_trainable)


__all__ = [
    "ENCODER_TARGET_MODULES",
    "LoraArguments",
    "apply_lora",
    "default_target_modules",
    "encoder_model_type",
    "load_adapter",
    "new_layer_names",
    "save_adapter",
    "save_lora_outputs",
    "save_merged",
    "trainable_parameters",
]
