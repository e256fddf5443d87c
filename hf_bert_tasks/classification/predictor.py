"""Classification decisions and prediction: pooled window logits to labels, raw text to records, and the model a
recipe trains (:func:`load_classifier`).


Prediction: :class:`TextClassifier` / :func:`classify_texts` take raw strings (any length, the model's long-text
settings) to ``{label, score, probabilities}``; the recipe's ``--do_predict`` writes the same records to TSV or
JSON lines (``data.write_prediction_file``). Input checks are every door's (``modeling/texts.py``): one ``str`` is
one text (a list of them, several); other types raise ``TypeError`` naming the argument, a lone surrogate ``ValueError``. A text without tokens (empty,
blank, or only characters the tokenizer deletes) gets no prediction: ``None`` in place of its record, where the model
would otherwise classify an empty input with confidence. Single-label: softmax over the (pooled) logits, ``label`` is the argmax and ``score`` its probability.
Multi-label: sigmoid per label, ``label`` the list of labels whose probability reaches ``threshold`` (default 0.5),
most probable first, ``score`` their probabilities.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..modeling.configuration_bert_crf import label_names
from ..modeling.texts import check_texts, texts_without_tokens
from .inputs import DEFAULT_LONG_TEXT, encode_texts, long_text_settings

DEFAULT_THRESHOLD = 0.5
# What the recipe stores in a trained classifier's config.json, so that TextClassifier predicts as training did.
SAVED_SETTINGS = (*DEFAULT_LONG_TEXT, "classification_threshold", "sentence_pairs")

# ---------------------------------------------------------------------------------------------------------------
# Pooling and decisions


def pool_window_logits(logits, example_index: Sequence[int], num_examples: int) -> np.ndarray:
    """Mean of the window logits of each example: ``(W, L)`` window logits and their ``(W,)`` example indices ->
    ``(num_examples, L)``. Every example must have at least one window."""
    if isinstance(logits, tuple):  # Trainer predictions of a model that also returns hidden states
        logits = logits[0]
    logits = np.asarray(logits.detach().float().cpu() if hasattr(logits, "detach") else logits, dtype=np.float64)
    example_index = np.asarray(example_index, dtype=np.int64)
    if logits.ndim != 2 or len(logits) != len(example_index):
        raise ValueError(f"expected ({len(example_index)}, num_labels) window logits, got shape {logits.shape}")
    counts = np.bincount(example_index, minlength=num_examples)
    if len(counts) > num_examples or (counts == 0).any():
        missing = np.flatnonzero(counts[:num_examples] == 0)[:5].tolist()
        raise ValueError(f"window example indices do not cover 0..{num_examples - 1} exactly (no window: {missing})")
    sums = np.zeros((num_examples, logits.shape[1]))
    np.add.at(sums, example_index, logits)
    return sums / counts[:, None]


def probabilities_from_logits(logits: np.ndarray, multi_label: bool) -> np.ndarray:
    """Softmax over labels, or an independent sigmoid per label for multi-label; ``(N, L)`` -> ``(N, L)``."""
    logits = np.asarray(logits, dtype=np.float64)
    if multi_label:
        return 0.5 * (1.0 + np.tanh(0.5 * logits))  # the sigmoid, without overflow for large |x|
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def resolve_threshold(config=None, threshold: float | None = None) -> float:
    """The multi-label decision threshold: ``threshold`` when given, else the one a trained model's config records
    (``classification_threshold``, 0.0 included), else 0.5. One rule for the recipe and :class:`TextClassifier`."""
    if threshold is not None:
        return float(threshold)
    saved = getattr(config, "classification_threshold", None) if config is not None else None
    return DEFAULT_THRESHOLD if saved is None else float(saved)


def predicted_label_ids(logits: np.ndarray, multi_label: bool, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Argmax ids ``(N,)``, or multi-hot ``(N, L)`` of the labels whose sigmoid probability reaches ``threshold``."""
    logits = np.asarray(logits)
    if multi_label:
        return (probabilities_from_logits(logits, True) >= threshold).astype(np.int64)
    return logits.argmax(axis=-1)


def prediction_records(logits: np.ndarray, labels: Sequence[str], multi_label: bool,
                       threshold: float = DEFAULT_THRESHOLD) -> list[dict]:
    """``{label, score, probabilities}`` per row of pooled logits ``(N, L)`` (see the module docstring)."""
    probabilities = probabilities_from_logits(logits, multi_label)
    records = []
    for row in probabilities:
        by_label = {label: float(p) for label, p in zip(labels, row)}
        if multi_label:
            chosen = [i for i in np.argsort(-row, kind="stable") if row[i] >= threshold]
            records.append({"label": [labels[i] for i in chosen], "score": [float(row[i]) for i in chosen],
                            "probabilities": by_label})
        else:
            best = int(row.argmax())
            records.append({"label": labels[best], "score": float(row[best]), "probabilities": by_label})
    return records

# ---------------------------------------------------------------------------------------------------------------
# Model and predictor


def is_trained_classifier(config) -> bool:
    """Whether ``config`` is a sequence classifier with real label names (not an encoder, nor transformers'
    placeholder ``LABEL_0``...), whose labels a fine-tune or a prediction must keep."""
    if not any(name.endswith("ForSequenceClassification") for name in getattr(config, "architectures", None) or []):
        return False
    names = label_names(config)
    return names != [f"LABEL_{i}" for i in range(config.num_labels)]


def load_classifier(model_name_or_path: str, labels: Sequence[str], *, multi_label: bool,
                    revision: str | None = None):
    """``AutoModelForSequenceClassification`` for ``labels``: a trained classifier as it is (its labels must be
    ``labels``, in order), an encoder with a new head whose config carries ``id2label``/``label2id`` and the
    ``problem_type`` (``multi_label_classification`` makes transformers use a BCE loss)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(model_name_or_path, revision=revision)
    problem_type = "multi_label_classification" if multi_label else "single_label_classification"
    if is_trained_classifier(config):
        model_labels = label_names(config)
        if list(labels) != model_labels:
            raise ValueError(f"{model_name_or_path} is a classifier for {model_labels}, not {list(labels)}")
        if (config.problem_type or "single_label_classification") != problem_type:
            raise ValueError(f"{model_name_or_path} was trained for {config.problem_type}, not {problem_type}")
        return AutoModelForSequenceClassification.from_pretrained(model_name_or_path, revision=revision)
    labels = list(labels)
    return AutoModelForSequenceClassification.from_pretrained(
        model_name_or_path, revision=revision, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}, problem_type=problem_type,
        ignore_mismatched_sizes=True,  # an encoder saved with another head
    )


class TextClassifier:
    """Classify raw strings of any length with a sequence-classification model and its (fast) tokenizer.

    Long-text settings (``long_text``, ``max_length``, ``stride``, ``head_tokens``) and the multi-label
    ``threshold`` default to what the model's config records (the recipe stores what it trained with), else to
    truncation at 128 tokens and 0.5. Calling returns one ``{label, score, probabilities}`` per text (or pair:
    ``text_pairs``, cut by the rule of :func:`~.inputs.pair_tokens_kept`, as in training). ``sentence_pairs`` says
    whether the model was trained on pairs (the recipe records it), so that a caller such as the Space asks for the
    second text.
    """

    def __init__(self, model, tokenizer, *, batch_size: int = 32, long_text: str | None = None,
                 max_length: int | None = None, stride: int | None = None, head_tokens: int | None = None,
                 threshold: float | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        config = model.config
        settings = long_text_settings(config, long_text=long_text, max_seq_length=max_length, stride=stride,
                                      head_tokens=head_tokens)
        self.long_text, self.max_length = settings["long_text"], settings["max_seq_length"]
        self.stride, self.head_tokens = settings["stride"], settings["head_tokens"]
        self.multi_label = config.problem_type == "multi_label_classification"
        self.threshold = resolve_threshold(config, threshold)
        self.sentence_pairs = bool(getattr(config, "sentence_pairs", False))
        self.labels = label_names(config)

    @classmethod
    def from_pretrained(cls, path: str, *, revision: str | None = None, device: str | None = None,
                        dtype=None, **kwargs):
        """Load model and tokenizer from a folder or Hub id (keyword arguments as for the constructor); ``dtype``
        (e.g. ``torch.bfloat16`` or ``"bfloat16"``) is the model's, the softmax runs in float64."""
        from ..files import load_tokenizer
        from ..predictor.auto import load_model

        model = load_model("classification", path, revision, dtype)  # names another kind of model, a damaged file
        tokenizer = load_tokenizer(path, revision=revision)  # names missing files
        if device is not None:
            model.to(device)
        return cls(model, tokenizer, **kwargs)

    def logits(self, texts: Sequence[str], text_pairs: Sequence[str] | None = None) -> np.ndarray:
        """Pooled logits ``(len(texts), num_labels)``: the mean over each text's windows."""
        import torch

        texts, _ = check_texts(texts)
        if text_pairs is not None:
            text_pairs, _ = check_texts(text_pairs, "text_pairs", "text pair")
        features = encode_texts(self.tokenizer, texts, text_pairs, max_length=self.max_length,
                                long_text=self.long_text, stride=self.stride, head_tokens=self.head_tokens)
        example_index = features.pop("example_index")
        features.pop("truncated_tokens")
        n = len(example_index)
        window_logits = np.zeros((n, len(self.labels)))
        device = self.model.device  # an ONNX Runtime model (export.OnnxModel) has no parameters
        order = sorted(range(n), key=lambda i: len(features["input_ids"][i]))  # similar lengths pad little
        with torch.no_grad():
            for begin in range(0, n, self.batch_size):
                chunk = order[begin : begin + self.batch_size]
                batch = self.tokenizer.pad([{k: v[i] for k, v in features.items()} for i in chunk],
                                           return_tensors="pt")
                logits = self.model(**{k: v.to(device) for k, v in batch.items()}).logits
                window_logits[chunk] = logits.float().cpu().numpy()
        return pool_window_logits(window_logits, example_index, len(texts))

    def __call__(self, texts: str | Sequence[str], text_pairs: str | Sequence[str] | None = None):
        """``{label, score, probabilities}`` for one text, or a list of them for a list of texts; ``None`` for a
        text (or pair) without tokens."""
        batch, single = check_texts(texts)
        pairs = None if text_pairs is None else check_texts(text_pairs, "text_pairs", "text pair")[0]
        if pairs is not None and len(pairs) != len(batch):
            raise ValueError(f"{len(batch)} texts but {len(pairs)} text pairs")
        empty = set(texts_without_tokens(self.tokenizer, batch))
        empty.update(texts_without_tokens(self.tokenizer, pairs or []))
        kept = [i for i in range(len(batch)) if i not in empty]
        records: list[dict | None] = [None] * len(batch)
        if kept:
            logits = self.logits([batch[i] for i in kept], None if pairs is None else [pairs[i] for i in kept])
            for i, record in zip(kept, prediction_records(logits, self.labels, self.multi_label, self.threshold)):
                records[i] = record
        return records[0] if single else records


def classify_texts(model_or_path, texts: str | Sequence[str], text_pairs: str | Sequence[str] | None = None, *,
                   tokenizer=None, **kwargs) -> list[dict | None] | dict | None:
    """Classify raw strings as :class:`TextClassifier` does (a list of records for a list of texts, one record for
    one ``str``): ``model_or_path`` is a folder / Hub id, or a loaded model (then ``tokenizer`` too, or it is loaded
    from the model's ``name_or_path``). Keyword arguments go to :class:`TextClassifier`."""
    check_texts(texts)  # before anything loads
    if isinstance(model_or_path, (str, os.PathLike)):
        classifier = TextClassifier.from_pretrained(str(model_or_path), **kwargs)
    else:
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(model_or_path.config.name_or_path)
        classifier = TextClassifier(model_or_path, tokenizer, **kwargs)
    return classifier(texts, text_pairs)
