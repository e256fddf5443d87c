"""BERT(+BiLSTM)+CRF for token classification.

Laid out like a transformers model file: building blocks, the `PreTrainedModel` base, then the head. It is copied next
to the weights by `save_pretrained` (Hugging Face custom code), so it imports only torch, transformers and its sibling
files `configuration_bert_crf.py`, `crf.py`, `encoders.py` and `schemes.py` (and, lazily, `pipeline_bert_crf.py`: the
custom pipeline that ships with every model; see `BertCrfForTokenClassification.pipeline_class`).
"""

import inspect

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import TokenClassifierOutput

from .configuration_bert_crf import BertCrfConfig, label_names
from .crf import LinearChainCRF
from .encoders import build_encoder, run_encoder
from .schemes import allowed_transitions

def compact_positions(tag_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-align the labelled positions of each row, keeping their order.

    Args:
        tag_mask: `(batch, seq_len)` bool, True where a token carries a label.
    Returns:
        `index` `(batch, n)` long: `index[b, t]` is the position of the t-th labelled token of row b (arbitrary where
        `mask` is False); `mask` `(batch, n)` bool, right-padded. `n` is the largest count in the batch (at least 1).
    """
    counts = tag_mask.sum(dim=1)
    width = max(int(counts.max()), 1) if tag_mask.numel() else 1
    # A stable sort of "not labelled" puts the labelled positions first, in their original order.
    index = torch.argsort((~tag_mask).to(torch.int8), dim=1, stable=True)[:, :width]
    mask = torch.arange(width, device=tag_mask.device)[None, :] < counts[:, None]
    return index, mask


class BiLstm(nn.Module):
    """Bidirectional LSTM over the encoder states; padded positions are packed away so they never leak in."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size // 2, num_layers=num_layers, batch_first=True, bidirectional=True)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """`(batch, seq_len, input_size)` -> `(batch, seq_len, hidden_size)`; attention_mask is right-padded."""
        lengths = attention_mask.sum(dim=1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(hidden_states, lengths, batch_first=True, enforce_sorted=False)
        output, _ = self.lstm(packed)
        output, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True, total_length=hidden_states.shape[1])
        return output


class BertCrfPreTrainedModel(PreTrainedModel):
    config_class = BertCrfConfig
    base_model_prefix = "encoder"
    supports_gradient_checkpointing = True
    # Loaded in bf16 or fp16, the encoder follows and the transition scores stay float32 (rounded to bf16 they would
    # move the best path); the CRF computes in float64 from them whatever the emissions' dtype. The scores only: the
    # CRF's boolean masks must stay bool.
    _keep_in_fp32_modules_strict = ["crf.start_transitions", "crf.transitions", "crf.end_transitions"]

    @torch.no_grad()
    def _init_weights(self, module):
        # The encoder is a PreTrainedModel of its own and initialises itself; here only the new layers. The guarded
        # `init` helpers skip parameters that were loaded from a checkpoint (transformers 5 runs this after loading).
        std = getattr(self.config.encoder, "initializer_range", 0.02)
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LSTM):
            for name, param in module.named_parameters():
                if "weight" in name:
                    init.xavier_uniform_(param)
                else:
                    init.zeros_(param)
        elif isinstance(module, LinearChainCRF):
            for param in (module.start_transitions, module.end_transitions, module.transitions):
                init.uniform_(param, -0.1, 0.1)
            start, transition, end = self._allowed_transitions()
            init.copy_(module.start_allowed, start)
            init.copy_(module.transition_allowed, transition)
            init.copy_(module.end_allowed, end)

    def _allowed_transitions(self):
        labels = label_names(self.config)
        if self.config.constrain_transitions:
            return allowed_transitions(labels, self.config.tag_scheme)
        k = len(labels)
        return torch.ones(k, dtype=torch.bool), torch.ones(k, k, dtype=torch.bool), torch.ones(k, dtype=torch.bool)


class BertCrfForTokenClassification(BertCrfPreTrainedModel):
    """Encoder -> dropout -> (BiLSTM) -> linear emissions -> CRF.

    The CRF runs over the labelled positions only (`tag_mask`, or `labels != -100`): they are gathered to the left so
    that the CRF sequence of each row starts at 0 and holds words, not word pieces (with `label_strategy="first"`).
    """

    def __init__(self, config: BertCrfConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.encoder = build_encoder(config.encoder)
        self._encoder_arguments = set(inspect.signature(self.encoder.forward).parameters)
        hidden_size = config.encoder.hidden_size
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.bilstm = BiLstm(hidden_size, config.lstm_hidden_size, config.lstm_layers) if config.use_bilstm else None
        self.classifier = nn.Linear(config.lstm_hidden_size if config.use_bilstm else hidden_size, config.num_labels)
        self.crf = LinearChainCRF(config.num_labels, allowed=self._allowed_transitions())
        # A class registers for one auto class; list AutoModel too so both resolve from the saved folder.
        auto_map = getattr(config, "auto_map", None) or {}
        if "AutoModel" not in auto_map:
            config.auto_map = {**auto_map, "AutoModel": f"{__name__.rsplit('.', 1)[-1]}.{type(self).__name__}"}
        self.post_init()

    @staticmethod
    def pipeline_class():
        """The custom pipeline of this model, `pipeline_bert_crf.BertCrfTokenClassificationPipeline`.

        The import sits in this function so that loading the model does not import transformers' pipelines; transformers
        still sees it (it scans a model file for relative imports), so `save_pretrained` copies `pipeline_bert_crf.py`
        and the files it imports next to the weights, and `trust_remote_code=True` fetches them with the model.
        """
        from .pipeline_bert_crf import BertCrfTokenClassificationPipeline

        return BertCrfTokenClassificationPipeline

    @classmethod
    def from_encoder(cls, encoder_name_or_path: str, labels: list[str], **config_kwargs):
        """A new model on a pretrained encoder: the encoder's weights are loaded, the BiLSTM, emission layer and
        CRF are freshly initialised. `labels` is the ordered tag list; `config_kwargs` go to `BertCrfConfig`."""
        encoder = build_encoder(encoder_name_or_path)
        config = BertCrfConfig(
            encoder=encoder.config,
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            **config_kwargs,
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
        labels: torch.Tensor | None = None,
        tag_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> TokenClassifierOutput | tuple:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Tag ids; -100 marks positions without a label (special tokens, later word pieces, padding).
        tag_mask (`torch.BoolTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Positions the CRF scores. Defaults to `labels != -100`, or to `attention_mask` when there are no labels.

        Returns a `TokenClassifierOutput` whose `loss` is the CRF negative log-likelihood (mean over the rows that
        have labelled positions) and whose `logits` are the emission scores `(batch_size, sequence_length, num_labels)`.
        Decode them with [`~BertCrfForTokenClassification.decode`].
        """
        outputs = run_encoder(
            self.encoder, self._encoder_arguments, input_ids=input_ids, attention_mask=attention_mask,
            token_type_ids=token_type_ids, position_ids=position_ids, inputs_embeds=inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states,
        )
        hidden_states = self.dropout(outputs.last_hidden_state)
        if self.bilstm is not None:
            if attention_mask is None:
                attention_mask = torch.ones(hidden_states.shape[:2], dtype=torch.long, device=hidden_states.device)
            hidden_states = self.dropout(self.bilstm(hidden_states, attention_mask))
        emissions = self.classifier(hidden_states)

        loss = None
        if labels is not None:
            if tag_mask is None:
                tag_mask = labels != -100
            loss = self.crf_loss(emissions, labels, tag_mask.bool())

        if return_dict is False:
            output = (emissions,) + ((outputs.hidden_states,) if output_hidden_states else ())
            return ((loss,) + output) if loss is not None else output
        return TokenClassifierOutput(
            loss=loss, logits=emissions, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )

    def crf_loss(self, emissions: torch.Tensor, labels: torch.Tensor, tag_mask: torch.Tensor) -> torch.Tensor:
        """Mean CRF negative log-likelihood over rows with at least one labelled position (0 if there are none)."""
        if bool((labels[tag_mask] < 0).any()):
            raise ValueError("tag_mask marks positions whose label is -100")
        with torch.autocast(device_type=emissions.device.type, enabled=False):
            # The CRF computes in float64 whatever the emissions' dtype; under autocast its products would not.
            labelled = labelled_emissions(tag_mask, emissions)
            if labelled is None:
                return emissions.sum() * 0.0  # keeps the graph (and DDP's bookkeeping) intact
            rows, index, mask, gathered = labelled
            tags = (labels if rows is None else labels[rows]).gather(1, index).masked_fill(~mask, 0)
            return -self.crf.log_likelihood(gathered, tags, mask).mean()

    @torch.no_grad()
    def decode(self, logits: torch.Tensor, tag_mask: torch.Tensor, return_probabilities: bool = False):
        """Best tag path (Viterbi) over the labelled positions.

        Args:
            logits: emissions `(batch_size, sequence_length, num_labels)` from `forward`.
            tag_mask: `(batch_size, sequence_length)` bool, the positions to tag.
            return_probabilities: also return each tag's marginal probability, as `tag_probabilities` of the path
                (one compaction of the positions serves both: what a predictor wants per window).
        Returns:
            `(batch_size, sequence_length)` long tag ids at labelled positions, -100 elsewhere; with
            `return_probabilities`, `(tags, probabilities)`, the probabilities float and 0 elsewhere.
        """
        tag_mask = tag_mask.bool()
        tags = torch.full(tag_mask.shape, -100, dtype=torch.long, device=logits.device)
        probabilities = torch.zeros(tag_mask.shape, device=logits.device) if return_probabilities else None
        with torch.autocast(device_type=logits.device.type, enabled=False):
            labelled = labelled_emissions(tag_mask, logits)
            if labelled is not None:
                _, _, mask, gathered = labelled
                path = self.crf.decode(gathered, mask)
                # Boolean indexing walks both masks in row-major order, and the compaction kept each row's order.
                tags[tag_mask] = path[mask]
                if return_probabilities:
                    probabilities[tag_mask] = self._path_probabilities(gathered, mask, path.clamp(min=0))
        return tags if probabilities is None else (tags, probabilities)

    @torch.no_grad()
    def tag_probabilities(self, logits: torch.Tensor, tag_mask: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        """Marginal probability p(y_t = tags_t | x) under the CRF (`crf.marginals`), `(batch_size, sequence_length)`
        float, 0 elsewhere."""
        tag_mask = tag_mask.bool()
        probabilities = torch.zeros(tag_mask.shape, device=logits.device)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            labelled = labelled_emissions(tag_mask, logits)
            if labelled is not None:
                rows, index, mask, gathered = labelled
                row_tags = (tags if rows is None else tags[rows]).gather(1, index).masked_fill(~mask, 0)
                probabilities[tag_mask] = self._path_probabilities(gathered, mask, row_tags)
        return probabilities

    def _path_probabilities(self, gathered: torch.Tensor, mask: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        """p(y_t = tags_t | x) at the compacted positions where `mask` is on, flat, in row-major order."""
        marginals = self.crf.marginals(gathered, mask)
        return marginals.gather(2, tags[..., None]).squeeze(2)[mask].float().clamp(0.0, 1.0)


def labelled_emissions(tag_mask: torch.Tensor, *scores: torch.Tensor):
    """The CRF's input: float32 emissions of the labelled positions, left-aligned (`compact_positions`), for the
    rows with at least one (the CRF needs a position per row); several `scores` (e.g. a student's and its
    teacher's) share one compaction.

    Returns:
        None if no row has a labelled position, else `(rows, index, mask, *gathered)`: `rows` `(batch,)` bool, the
        rows kept, or None when all are (the usual case, which then costs no copy); `index`, `mask` as from
        `compact_positions` for the kept rows; one `(kept, n, num_labels)` float32 tensor per `scores`.
    """
    index, mask = compact_positions(tag_mask)
    rows = mask[:, 0]  # a row has a labelled position exactly when its first compacted slot is on
    if bool(rows.all()):
        rows = None
    elif not bool(rows.any()):
        return None
    else:
        index, mask = index[rows], mask[rows]
        scores = [x[rows] for x in scores]
    gather = index[..., None].expand(-1, -1, scores[0].shape[-1])
    return (rows, index, mask, *(x.float().gather(1, gather) for x in scores))


__all__ = ["BertCrfPreTrainedModel", "BertCrfForTokenClassification"]
