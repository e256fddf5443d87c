"""BERT + global pointer: every (start word, end word) span scored per entity type, so entities may nest and overlap.

Laid out like a transformers model file: building blocks (rotary positions, the two span heads, the loss), the
`PreTrainedModel` base, then the model. It is copied next to the weights by `save_pretrained` (Hugging Face custom
code), so it imports only torch, transformers and its sibling files (`configuration_bert_global_pointer.py`,
`encoders.py`, and lazily `pipeline_bert_global_pointer.py`).

The global pointer (Su, 2021; bert4keras' `GlobalPointer`/`EfficientGlobalPointer`) scores a span (i, j) of type k
as the dot product of a start vector of token i and an end vector of token j, both turned by rotary position
embeddings so that the score sees the span's length; it is trained with a multi-label categorical cross-entropy that
pushes every gold span above 0 and every other span below 0, and decoded as every span scoring above 0. Spans are
over the first word piece of each word (`tag_mask`), so a span is a run of whole words.
"""

import inspect

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import TokenClassifierOutput

from .configuration_bert_global_pointer import BertGlobalPointerConfig
from .encoders import build_encoder, run_encoder


def rotary_embedding(x: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding (RoFormer), dimension pairs (2i, 2i+1) turned by angle `position * 10000^(-2i/d)`.

    Args:
        x: `(batch, seq_len, ..., d)` with d even; positions are 0..seq_len-1 along dim 1.
    Returns:
        the same shape: the dot product of a turned vector at position m with one at n depends on n - m only.
    """
    seq_len, d = x.shape[1], x.shape[-1]
    frequencies = 10000.0 ** (-torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)
    angles = torch.arange(seq_len, device=x.device, dtype=torch.float32)[:, None] * frequencies  # (seq_len, d/2)
    cos = angles.cos().repeat_interleave(2, dim=-1)
    sin = angles.sin().repeat_interleave(2, dim=-1)
    shape = (1, seq_len) + (1,) * (x.dim() - 3) + (d,)
    turned = torch.stack([-x[..., 1::2], x[..., ::2]], dim=-1).reshape(x.shape)  # (x1, x2) -> (-x2, x1)
    return x * cos.reshape(shape) + turned * sin.reshape(shape)


class GlobalPointer(nn.Module):
    """One start and one end projection per type: `(batch, T, hidden)` -> scores `(batch, num_types, T, T)`."""

    def __init__(self, hidden_size: int, num_types: int, head_size: int, rope: bool):
        super().__init__()
        self.num_types, self.head_size, self.rope = num_types, head_size, rope
        self.dense = nn.Linear(hidden_size, num_types * head_size * 2)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch, seq_len, _ = hidden_states.shape
        projected = self.dense(hidden_states).reshape(batch, seq_len, self.num_types, 2 * self.head_size)
        starts, ends = projected[..., : self.head_size], projected[..., self.head_size :]
        if self.rope:
            starts, ends = rotary_embedding(starts), rotary_embedding(ends)
        return torch.einsum("bmkd,bnkd->bkmn", starts, ends) / self.head_size**0.5


class EfficientGlobalPointer(nn.Module):
    """One start/end projection shared by all types, plus a per-type bias of the start and of the end token:
    `(batch, T, hidden)` -> scores `(batch, num_types, T, T)`."""

    def __init__(self, hidden_size: int, num_types: int, head_size: int, rope: bool):
        super().__init__()
        self.num_types, self.head_size, self.rope = num_types, head_size, rope
        self.dense = nn.Linear(hidden_size, head_size * 2)
        self.type_bias = nn.Linear(head_size * 2, num_types * 2)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        projected = self.dense(hidden_states)  # (batch, T, 2 * head_size)
        starts, ends = projected[..., ::2], projected[..., 1::2]
        if self.rope:
            starts, ends = rotary_embedding(starts), rotary_embedding(ends)
        shared = torch.einsum("bmd,bnd->bmn", starts, ends) / self.head_size**0.5
        bias = self.type_bias(projected).transpose(1, 2) / 2  # (batch, 2 * num_types, T)
        return shared[:, None] + bias[:, 0::2, :, None] + bias[:, 1::2, None, :]


def span_mask(tag_mask: torch.Tensor) -> torch.Tensor:
    """`(batch, T)` bool (the first pieces of the words) -> `(batch, 1, T, T)` bool: the spans (i, j), i <= j, whose
    start and end are both words; everything else is never an entity."""
    pairs = tag_mask[:, :, None] & tag_mask[:, None, :]
    return (pairs & torch.ones_like(pairs[0]).triu())[:, None]


def multilabel_categorical_crossentropy(scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
                                        ) -> torch.Tensor:
    """Multi-label categorical cross-entropy (Su, 2020), per row: log(1 + sum_neg e^s) + log(1 + sum_pos e^-s).

    It equals log(1 + sum_neg e^s + sum_pos e^-s + sum_{neg, pos} e^(s_neg - s_pos)): a softmax cross-entropy that
    ranks every positive above every negative and above the threshold 0 (and every negative below it), however
    many positives there are.

    Args:
        scores: `(rows, n)` float; targets: `(rows, n)` bool, the positives; mask: `(rows, n)` bool, the candidates
            (positives outside the mask are not allowed).
    Returns:
        `(rows,)` the loss of each row (0 for a row without candidates).
    """
    scores = scores.float()
    zeros = torch.zeros_like(scores[:, :1])
    negatives = scores.masked_fill(~(mask & ~targets), float("-inf"))
    positives = (-scores).masked_fill(~targets, float("-inf"))
    return (torch.logsumexp(torch.cat([zeros, negatives], dim=1), dim=1)
            + torch.logsumexp(torch.cat([zeros, positives], dim=1), dim=1))


class BertGlobalPointerPreTrainedModel(PreTrainedModel):
    config_class = BertGlobalPointerConfig
    base_model_prefix = "encoder"
    supports_gradient_checkpointing = True
    # Loaded in bf16 or fp16, the encoder follows and the span head stays float32: it scores in float32 (its T x T
    # products and the loss's exponentials need the range).
    _keep_in_fp32_modules_strict = ["span_head"]

    @torch.no_grad()
    def _init_weights(self, module):
        # The encoder initialises itself; here only the head. The guarded `init` helpers skip loaded parameters.
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=getattr(self.config.encoder, "initializer_range", 0.02))
            if module.bias is not None:
                init.zeros_(module.bias)


class BertGlobalPointerForSpanClassification(BertGlobalPointerPreTrainedModel):
    """Encoder -> dropout -> global pointer (or its efficient variant): a score per entity type and word span."""

    def __init__(self, config: BertGlobalPointerConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.encoder = build_encoder(config.encoder)
        self._encoder_arguments = set(inspect.signature(self.encoder.forward).parameters)
        self.dropout = nn.Dropout(config.classifier_dropout)
        head = EfficientGlobalPointer if config.efficient else GlobalPointer
        self.span_head = head(config.encoder.hidden_size, config.num_labels, config.head_size, config.rope)
        auto_map = getattr(config, "auto_map", None) or {}
        if "AutoModel" not in auto_map:
            config.auto_map = {**auto_map, "AutoModel": f"{__name__.rsplit('.', 1)[-1]}.{type(self).__name__}"}
        self.post_init()

    @staticmethod
    def pipeline_class():
        """The custom pipeline of this model (imported here so that `save_pretrained` ships its file, as for the CRF
        model's `pipeline_class`)."""
        from .pipeline_bert_global_pointer import BertGlobalPointerPipeline

        return BertGlobalPointerPipeline

    @classmethod
    def from_encoder(cls, encoder_name_or_path: str, entity_types: list[str], **config_kwargs):
        """A new model on a pretrained encoder (loaded) with a fresh span head; `config_kwargs` go to the config."""
        encoder = build_encoder(encoder_name_or_path)
        config = BertGlobalPointerConfig(
            encoder=encoder.config, id2label=dict(enumerate(entity_types)),
            label2id={label: i for i, label in enumerate(entity_types)}, **config_kwargs,
        )
        model = cls(config)
        model.encoder = encoder
        return model

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        tag_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> TokenClassifierOutput | tuple:
        r"""
        tag_mask (`torch.BoolTensor` of shape `(batch_size, sequence_length)`, *optional*):
            The positions a span may start and end at (the first piece of each word). Defaults to `attention_mask`.
        labels (`torch.LongTensor` of shape `(batch_size, max_spans, 3)`, *optional*):
            Gold spans `(type id, start position, end position)`, end inclusive, positions in the window; rows
            padded with -100.

        Returns a `TokenClassifierOutput` whose `logits` are the span scores `(batch_size, num_labels,
        sequence_length, sequence_length)` (-1e4 outside `span_mask`, float32) and whose `loss` is the multi-label
        categorical cross-entropy, mean over (row, type). Decode them with [`~decode`].
        """
        outputs = run_encoder(
            self.encoder, self._encoder_arguments, input_ids=input_ids, attention_mask=attention_mask,
            token_type_ids=token_type_ids, position_ids=position_ids, inputs_embeds=inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states,
        )
        hidden_states = self.dropout(outputs.last_hidden_state)
        if tag_mask is None:
            tag_mask = attention_mask if attention_mask is not None else torch.ones(hidden_states.shape[:2])
        mask = span_mask(tag_mask.bool().to(hidden_states.device))
        with torch.autocast(device_type=hidden_states.device.type, enabled=False):
            scores = self.span_head(hidden_states.float())
        loss = None
        if labels is not None:
            targets = span_targets(labels, scores.shape)
            batch, types = scores.shape[:2]
            rows = (batch * types, -1)
            loss = multilabel_categorical_crossentropy(
                scores.reshape(rows), targets.reshape(rows), mask.expand_as(scores).reshape(rows)).mean()
        # A finite "never" (not -inf): exported graphs and half precision keep it; sigmoid(-1e4) is 0.
        logits = scores.masked_fill(~mask, -1e4)
        if return_dict is False:
            output = (logits,) + ((outputs.hidden_states,) if output_hidden_states else ())
            return ((loss,) + output) if loss is not None else output
        return TokenClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                     attentions=outputs.attentions)

    @torch.no_grad()
    def decode(self, logits: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
        """Every span scoring above `threshold` (default: the config's); see `decode_span_scores`."""
        return decode_span_scores(logits, self.config.threshold if threshold is None else threshold)


def span_targets(labels: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """`(batch, max_spans, 3)` gold spans (rows of -100 padding) -> `(batch, num_types, T, T)` bool."""
    targets = torch.zeros(shape, dtype=torch.bool, device=labels.device)
    row, index = (labels[..., 0] >= 0).nonzero(as_tuple=True)
    spans = labels[row, index]
    targets[row, spans[:, 0], spans[:, 1], spans[:, 2]] = True
    return targets


def decode_span_scores(logits, threshold: float = 0.0) -> torch.Tensor:
    """The spans scoring above `threshold` in `(batch, num_types, T, T)` scores (a tensor, or a numpy array from
    ONNX Runtime).

    Returns:
        `(batch, most spans, 4)` float: per row its spans `(type id, start position, end position (inclusive),
        probability)`, sorted by start, end, type, then rows of -1. The probability is the sigmoid of the score.
        A tensor, not lists, so that pipelines and the Trainer slice and gather it by row like any output.
    """
    logits = torch.as_tensor(logits).float()
    row, kind, start, end = (logits > threshold).nonzero(as_tuple=True)
    found = torch.stack([kind.float(), start.float(), end.float(), logits[row, kind, start, end].sigmoid()], dim=1)
    # Sort by (row, start, end, type): the positions are below T and the types below num_types.
    _, num_types, length, _ = logits.shape
    order = torch.argsort(((row * length + start) * length + end) * num_types + kind)
    row, found = row[order], found[order]
    counts = torch.bincount(row, minlength=logits.shape[0])
    most = max(int(counts.max()) if len(counts) else 0, 1)
    packed = torch.full((logits.shape[0], most, 4), -1.0, device=logits.device)
    slot = torch.arange(len(row), device=logits.device) - (counts.cumsum(0) - counts)[row]  # rank within its row
    packed[row, slot] = found
    return packed


__all__ = ["BertGlobalPointerPreTrainedModel", "BertGlobalPointerForSpanClassification"]
