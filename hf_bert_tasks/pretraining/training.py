"""Masked-LM training: cheap adaptation and a trainer that runs the MLM head at the masked positions only.

- **Cheap adaptation.** `lora_with_new_tokens` trains LoRA adapters, the rows of the new tokens (peft's
  `trainable_token_indices`: only those rows get a delta; with a tied decoder, the decoder shares it) and the MLM
  head's transform (random in an encoder-only checkpoint such as MiniLM, so it must learn). The decoder bias stays
  frozen. Its settings are `hf_bert_tasks.lora`'s (`LoraArguments` defaults: r 8, alpha 16, dropout 0.1, the
  encoder family's attention and feed-forward layers), and the target names are anchored at the encoder as
  `apply_lora` anchors them, so a head layer of the same name (BERT's `cls.predictions.transform.dense`, trained in
  full) never gets an adapter.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from transformers import Trainer

from ..vocab import (
    EXPANSION_REPORT_FILE,
)


def parse_token_ids(spec: str) -> list[int]:
    """`"5,7,30522-30600"` -> the ids (ranges inclusive)."""
    ids = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                low, high = (int(x) for x in part.split("-", 1))
                if high < low:
                    raise ValueError
                ids.extend(range(low, high + 1))
            else:
                ids.append(int(part))
        except ValueError:
            raise ValueError(f"token ids must be integers or ranges like 30522-30600, got {part!r}") from None
    return ids


def expanded_token_ids(folder: str | Path) -> list[int]:
    """Ids of the tokens `python -m hf_bert_tasks.vocab expand` added (its `vocab_expansion.json`)."""
    path = Path(folder) / EXPANSION_REPORT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass the new token ids explicitly, or expand the vocabulary "
                                "with `python -m hf_bert_tasks.vocab expand`, which writes it")
    return [entry["id"] for entry in json.loads(path.read_text(encoding="utf-8"))["added"]]


def mlm_head_modules(model) -> list[str]:
    """Names of the MLM head's modules other than the decoder (`cls.predictions.transform` for BERT): the largest
    submodules outside the encoder that do not contain the output embeddings."""
    decoder = model.get_output_embeddings()
    base = model.base_model
    if base is model:
        return []
    names = []

    def visit(module, prefix):
        for name, child in module.named_children():
            path = f"{prefix}{name}"
            if child is base or child is decoder or not any(True for _ in child.parameters()):
                continue
            if decoder is not None and any(m is decoder for m in child.modules()):
                visit(child, path + ".")
            else:
                names.append(path)

    visit(model, "")
    return names


def lora_with_new_tokens(model, token_ids: Sequence[int], *, r: int = 8, alpha: float = 16.0, dropout: float = 0.1,
                         target_modules: Sequence[str] | None = None):
    """A peft model training LoRA adapters on `target_modules` of the encoder (default: the family's attention and
    feed-forward layers, `hf_bert_tasks.lora.default_target_modules`), the embedding rows `token_ids` (and the tied
    decoder's, which share them) and the MLM head's transform; everything else frozen."""
    from peft import LoraConfig, get_peft_model

    from ..lora import encoder_targets

    if not token_ids:
        raise ValueError("no token ids to train: LoRA adaptation here is for the rows of new tokens")
    rows = model.get_input_embeddings().weight.shape[0]
    bad = [i for i in token_ids if not 0 <= i < rows]
    if bad:
        raise ValueError(f"token ids {bad[:5]} are outside the embedding matrix ({rows} rows)")
    _, pattern = encoder_targets(model, target_modules)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=pattern,
                        trainable_token_indices=sorted(set(token_ids)), modules_to_save=mlm_head_modules(model))
    return get_peft_model(model, config)


class MaskedPositionsTrainer(Trainer):
    """A `Trainer` that runs the MLM head only at the masked positions.

    Masked-LM models score every position against the whole vocabulary, though only the masked ~15% carry a label:
    with MiniLM plus 4,300 appended characters that head is most of a CPU step. Here a forward hook on the encoder
    keeps the hidden states of the labelled positions only (as one sequence of length `n_masked`) and the model's own
    head and loss run on those, so the loss and its gradients are the full computation's (tests check both) and the
    model class needs no changes: every BERT-family masked LM feeds `encoder_outputs[0]` to its head.
    Outputs returned with the loss hold logits of the masked positions only, so evaluation keeps the loss alone
    (`prediction_loss_only`).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.args.prediction_loss_only = True
        self._selected = None
        unwrapped = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        unwrapped.base_model.register_forward_hook(self._keep_selected)

    def _keep_selected(self, module, args, output):
        if self._selected is None:
            return output
        kept = output[0][self._selected].unsqueeze(0)
        if isinstance(output, tuple):
            return (kept, *output[1:])
        output[next(iter(output.keys()))] = kept
        return output

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        selected = inputs["labels"] != -100
        if not selected.any():  # nothing to score: the full computation gives the (nan) loss it always gave
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        self._selected = selected
        try:
            return super().compute_loss(model, {**inputs, "labels": inputs["labels"][selected].unsqueeze(0)},
                                        return_outputs, num_items_in_batch)
        finally:
            self._selected = None
