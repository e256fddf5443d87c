"""Configuration of the BERT + global pointer span classifier (nested and overlapping entities).

This file is copied next to the weights by `save_pretrained` (Hugging Face custom code), so it imports only
transformers and nothing of `hf_bert_tasks`.
"""

import copy

from transformers import AutoConfig, BertConfig, PreTrainedConfig

# As for the CRF model: `pipeline("token-classification", model=..., trust_remote_code=True)` builds this class,
# named in the config because pipeline() reads the config before it loads the model.
CUSTOM_PIPELINES = {
    "token-classification": {
        "impl": "pipeline_bert_global_pointer.BertGlobalPointerPipeline",
        "pt": ["AutoModelForTokenClassification"],
        "type": "text",
    }
}
DECODINGS = ("nested", "flat")


class BertGlobalPointerConfig(PreTrainedConfig):
    r"""
    Configuration of [`BertGlobalPointerForSpanClassification`]: an encoder of the BERT family and a global pointer
    head that scores every (start word, end word) span once per entity type.

    The labels are the entity types (`id2label = {0: "DNA", 1: "protein", ...}`, no `O`, no `B-`/`I-` prefixes).

    Args:
        encoder (`dict` or `PreTrainedConfig`, *optional*):
            Configuration of the encoder (any model type `AutoModel` can build). A dict needs a `model_type` key.
            Defaults to a `BertConfig()`.
        head_size (`int`, *optional*, defaults to 64):
            Size of the start and end vectors each span score is the dot product of.
        efficient (`bool`, *optional*, defaults to `False`):
            The efficient global pointer (Su, 2021): one start/end projection shared by all types plus a per-type
            bias of the start and of the end word, instead of one projection pair per type (fewer parameters when
            there are many types).
        rope (`bool`, *optional*, defaults to `True`):
            Rotary position embedding on the start and end vectors, so that a span's score knows its length.
        classifier_dropout (`float`, *optional*, defaults to 0.1):
            Dropout on the encoder states before the head.
        threshold (`float`, *optional*, defaults to 0.0):
            A span is an entity when its score is above this (0: the multi-label cross-entropy's decision point).
        decode (`str`, *optional*, defaults to `"nested"`):
            `"nested"`: every span above the threshold; `"flat"`: the non-overlapping spans above it whose
            scores sum highest (for flat data sets).
        max_seq_length (`int`, *optional*, defaults to 128):
            Window length in tokens (special tokens included); longer inputs are processed in overlapping windows.
            The span matrix holds `num_labels * max_seq_length**2` scores per window.
        stride (`int`, *optional*, defaults to 32):
            Overlap between consecutive windows, in word pieces.
        context_window (`int`, *optional*, defaults to 0):
            Word pieces of document context added around each window, unlabelled.
    """

    model_type = "bert_global_pointer"
    sub_configs = {"encoder": AutoConfig}

    def __init__(
        self,
        encoder=None,
        head_size: int = 64,
        efficient: bool = False,
        rope: bool = True,
        classifier_dropout: float = 0.1,
        threshold: float = 0.0,
        decode: str = "nested",
        max_seq_length: int = 128,
        stride: int = 32,
        context_window: int = 0,
        **kwargs,
    ):
        if isinstance(encoder, dict):
            encoder = AutoConfig.for_model(**encoder)
        self.encoder = encoder if encoder is not None else BertConfig()
        if head_size % 2:
            raise ValueError(f"head_size must be even (rotary positions turn pairs of dimensions), got {head_size}")
        if decode not in DECODINGS:
            raise ValueError(f"decode must be one of {DECODINGS}, got {decode!r}")
        self.head_size = head_size
        self.efficient = efficient
        self.rope = rope
        self.classifier_dropout = classifier_dropout
        self.threshold = threshold
        self.decode = decode
        self.max_seq_length = max_seq_length
        self.stride = stride
        self.context_window = context_window
        super().__init__(**kwargs)
        if encoder is not None:  # transformers also builds a bare config to diff against: no labels there
            if any(str(label).startswith(("B-", "I-", "E-", "S-", "M-")) or label == "O"
                   for label in self.id2label.values()):
                raise ValueError(f"the labels of a span model are entity types, not tags: {self.id2label}")
            custom_pipelines = dict(getattr(self, "custom_pipelines", None) or {})
            if "token-classification" not in custom_pipelines:
                self.custom_pipelines = {**custom_pipelines, **copy.deepcopy(CUSTOM_PIPELINES)}


__all__ = ["BertGlobalPointerConfig"]
