"""Configuration of the BERT(+BiLSTM)+CRF token classifier.

This file is copied next to the weights by `save_pretrained` (Hugging Face custom code), so it imports only
transformers and nothing of `hf_bert_tasks`.
"""

from transformers import AutoConfig, BertConfig, PreTrainedConfig


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
        super().__init__(**kwargs)


__all__ = ["BertCrfConfig"]
