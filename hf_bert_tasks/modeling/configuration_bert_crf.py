"""Configuration of the BERT(+BiLSTM)+CRF token classifier.

This file is copied next to the weights by `save_pretrained` (Hugging Face custom code), so it imports only
transformers and nothing of `hf_bert_tasks`.
"""

import copy

from transformers import AutoConfig, BertConfig, PreTrainedConfig


# `custom_pipelines`: `pipeline("token-classification", model=..., trust_remote_code=True)` (or without a task) builds
# this class, resolved in the model's folder or Hub repository. pipeline() reads it from the config before it loads
# the model, so the config sets it (when config.json lacks it, as in folders saved before it existed): a CRF model
# never silently gets transformers' argmax pipeline over word pieces.
CUSTOM_PIPELINES = {
    "token-classification": {
        "impl": "pipeline_bert_crf.BertCrfTokenClassificationPipeline",
        "pt": ["AutoModelForTokenClassification"],
        "type": "text",
    }
}


def label_names(config) -> list[str]:
    """The labels of any model config, in id order: ``[config.id2label[0], config.id2label[1], ...]``."""
    return [config.id2label[i] for i in range(config.num_labels)]


class BertCrfConfig(PreTrainedConfig):
    r"""
    Configuration of [`BertCrfForTokenClassification`]: an encoder of the BERT family, an optional BiLSTM, a linear
    emission layer and a linear-chain CRF.

    Args:
        encoder (`dict` or `PreTrainedConfig`, *optional*):
            Configuration of the encoder (any model type `AutoModel` can build: bert, roberta, albert, electra,
            distilbert, ...). A dict needs a `model_type` key. Defaults to a `BertConfig()`.
        use_bilstm (`bool`, *optional*, defaults to `False`):
            Put a bidirectional LSTM between the encoder and the emission layer.
        lstm_hidden_size (`int`, *optional*, defaults to 256):
            Total hidden size of the BiLSTM (both directions together; must be even).
        lstm_layers (`int`, *optional*, defaults to 1):
            Number of stacked BiLSTM layers.
        classifier_dropout (`float`, *optional*, defaults to 0.1):
            Dropout before the emission layer.
        tag_scheme (`str`, *optional*, defaults to `"BIO"`):
            Tag scheme of the labels: `"IOB1"`, `"BIO"`, `"BIOES"` or `"BMES"`. Used to forbid illegal transitions.
        constrain_transitions (`bool`, *optional*, defaults to `True`):
            Give illegal transitions (`O -> I-PER`, start -> `I-x`, ...) probability zero in training and decoding.
        label_strategy (`str`, *optional*, defaults to `"first"`):
            Which word pieces carry labels: `"first"` (first piece of each word), `"all"` (every piece, entity spans
            re-encoded over pieces) or `"x"` (BIOX: later pieces get the label `"X"`, which is not scored).
        max_seq_length (`int`, *optional*, defaults to 128):
            Window length in tokens (special tokens included) used for training and prediction; longer inputs are
            processed in overlapping windows.
        stride (`int`, *optional*, defaults to 32):
            Overlap between consecutive windows, in word pieces.
        context_window (`int`, *optional*, defaults to 0):
            Word pieces of document context (neighbouring words and sentences of the same document) added around
            each window, unlabelled; 0 tags every sentence alone.
    """

    model_type = "bert_crf"
    sub_configs = {"encoder": AutoConfig}

    def __init__(
        self,
        encoder=None,
        use_bilstm: bool = False,
        lstm_hidden_size: int = 256,
        lstm_layers: int = 1,
        classifier_dropout: float = 0.1,
        tag_scheme: str = "BIO",
        constrain_transitions: bool = True,
        label_strategy: str = "first",
        max_seq_length: int = 128,
        stride: int = 32,
        context_window: int = 0,
        **kwargs,
    ):
        if isinstance(encoder, dict):
            encoder = AutoConfig.for_model(**encoder)
        self.encoder = encoder if encoder is not None else BertConfig()
        if lstm_hidden_size % 2:
            raise ValueError(f"lstm_hidden_size must be even (two directions), got {lstm_hidden_size}")
        if label_strategy not in ("first", "all", "x"):
            raise ValueError(f"label_strategy must be 'first', 'all' or 'x', got {label_strategy!r}")
        self.use_bilstm = use_bilstm
        self.lstm_hidden_size = lstm_hidden_size
        self.lstm_layers = lstm_layers
        self.classifier_dropout = classifier_dropout
        self.tag_scheme = tag_scheme
        self.constrain_transitions = constrain_transitions
        self.label_strategy = label_strategy
        self.max_seq_length = max_seq_length
        self.stride = stride
        self.context_window = context_window
        given = {key: kwargs.get(key) for key in ("id2label", "label2id", "num_labels")}
        super().__init__(**kwargs)
        if encoder is not None:  # transformers also builds a bare BertCrfConfig() to diff against: no labels there
            self._check_labels(**given)
            custom_pipelines = dict(getattr(self, "custom_pipelines", None) or {})
            if "token-classification" not in custom_pipelines:
                # A copy: pipeline() replaces the class names in it by the classes themselves.
                self.custom_pipelines = {**custom_pipelines, **copy.deepcopy(CUSTOM_PIPELINES)}

    def _check_labels(self, id2label, label2id, num_labels) -> None:
        """A model's labels are its tags: `id2label` (ids 0..n-1), `label2id` (its inverse) and `num_labels` must
        agree. transformers would otherwise invent `LABEL_0`... names or drop one of them without a word."""

        def inconsistent(what: str) -> ValueError:
            return ValueError(f"the config's labels are inconsistent: {what}. In config.json, id2label (id -> tag), "
                              "label2id (tag -> id) and num_labels must describe the same tags, ids 0..num_labels-1")

        if id2label is None:
            if label2id:
                raise inconsistent(f"label2id is given ({len(label2id)} tags) but id2label is missing")
            n = num_labels if num_labels is not None else self.num_labels
            raise inconsistent(f"id2label and label2id are missing (num_labels {n} alone would name the tags "
                               f"LABEL_0 .. LABEL_{n - 1}, which fit no tag scheme)")
        ids = sorted(int(i) for i in id2label)
        if ids != list(range(len(ids))):
            raise inconsistent(f"the ids of id2label are {ids}, not 0..{len(ids) - 1}")
        if num_labels is not None and num_labels != len(ids):
            raise inconsistent(f"num_labels is {num_labels} but id2label has {len(ids)} tags")
        expected = {tag: int(i) for i, tag in id2label.items()}
        if len(expected) != len(ids):
            raise inconsistent("id2label names a tag twice")
        if label2id is None:
            self.label2id = expected
        elif {tag: int(i) for tag, i in label2id.items()} != expected:
            differ = sorted(set(label2id.items()) ^ set(expected.items()), key=str)[:4]
            raise inconsistent(f"label2id is not the inverse of id2label (differing entries: {differ})")


__all__ = ["BertCrfConfig"]
