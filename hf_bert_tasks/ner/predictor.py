"""Raw text in, entities with character offsets out: the one prediction path of the recipe, the demo and users.

`NerPredictor` splits text into words (`tagging.split_words`: CJK characters one by one, other text at whitespace
and punctuation), encodes them in overlapping windows (`inputs.encode_words`), decodes every window with the
model's CRF (`model.decode`; argmax for a plain softmax token classifier), merges the windows back to one tag per
word (`inputs.merge_windows`) and returns entities `{type, text, start, end, score}` with `text ==
original[start:end]`. The score of an entity is the mean, over its words, of the CRF marginal probability of the
predicted tag (the softmax probability for a softmax head).
"""

from collections.abc import Sequence

import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

from .inputs import WindowCollator, encode_words, merge_windows
from .tagging import entities_from_words, split_words


class NerPredictor:
    """Predict entities with a token-classification model (CRF or softmax head) and its tokenizer.

    Args:
        model: a `BertCrfForTokenClassification` or any `*ForTokenClassification` model.
        tokenizer: the model's fast tokenizer.
        batch_size: windows per forward pass.
        max_length, stride: window length in tokens and overlap in word pieces; default to the model config's
            `max_seq_length`/`stride` (128/32 when absent).
        scheme, label_strategy: default to the model config's `tag_scheme`/`label_strategy` ("BIO"/"first").
        context_window: word pieces of document context per window (see `inputs.encode_words`); defaults to the
            model config's `context_window` (0 when absent). Used by `predict_document` and `predict_words`.
    """

    def __init__(self, model, tokenizer, *, batch_size: int = 32, max_length: int | None = None,
                 stride: int | None = None, scheme: str | None = None, label_strategy: str | None = None,
                 context_window: int | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        config = model.config
        self.batch_size = batch_size
        self.max_length = max_length or getattr(config, "max_seq_length", None) or 128
        self.stride = stride if stride is not None else getattr(config, "stride", 32)
        self.scheme = scheme or getattr(config, "tag_scheme", "BIO")
        self.label_strategy = label_strategy or getattr(config, "label_strategy", "first")
        self.context_window = context_window if context_window is not None else getattr(config, "context_window", 0)
        self.id2label = {int(k): v for k, v in config.id2label.items()}
        self.collate = WindowCollator(tokenizer.pad_token_id or 0)

    @classmethod
    def from_pretrained(cls, path: str, *, revision: str | None = None, device: str | None = None, **kwargs):
        """Load model and tokenizer from a folder or Hub id (custom code is trusted: the CRF lives in it)."""
        model = AutoModelForTokenClassification.from_pretrained(path, revision=revision, trust_remote_code=True)
        tokenizer = AutoTokenizer.from_pretrained(path, revision=revision, trust_remote_code=True)
        if device is not None:
            model.to(device)
        return cls(model, tokenizer, **kwargs)

    def __call__(self, texts: str | Sequence[str]) -> list[dict] | list[list[dict]]:
        """Entities of one text (a list of dicts) or of each of several texts (a list of lists)."""
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        for i, text in enumerate(batch):
            if not isinstance(text, str):
                raise TypeError(f"text {i} is a {type(text).__name__}, not a str")
        words = [split_words(text) for text in batch]
        tags, scores = self.predict_words([[w for w, _, _ in ws] for ws in words])
        entities = [
            entities_from_words(text, ws, t, self.scheme, s) for text, ws, t, s in zip(batch, words, tags, scores)
        ]
        return entities[0] if single else entities

    def predict_document(self, sentences: Sequence[str]) -> list[list[dict]]:
        """Entities of each sentence of one document, each tagged with the document's other sentences as context
        (when the model was trained with `context_window`); offsets index each sentence's own string."""
        words = [split_words(sentence) for sentence in sentences]
        tags, scores = self.predict_words([[w for w, _, _ in ws] for ws in words], document_ids=[0] * len(words))
        return [entities_from_words(text, ws, t, self.scheme, s)
                for text, ws, t, s in zip(sentences, words, tags, scores)]

    @torch.no_grad()
    def predict_words(self, sentences: Sequence[Sequence[str]], document_ids: Sequence | None = None
                      ) -> tuple[list[list[str]], list[list[float]]]:
        """One tag and one score per word of each sentence (sentences of any length). With `document_ids`, sentences
        of the same document (consecutive, equal ids) are context for each other; without, each stands alone."""
        features = encode_words(
            self.tokenizer, sentences, max_length=self.max_length, stride=self.stride,
            scheme=self.scheme, strategy=self.label_strategy,
            document_ids=document_ids if document_ids is not None else list(range(len(sentences))),
            context_window=self.context_window,
        )
        n = len(features["input_ids"])
        piece_tags: list[list[str | None]] = [[] for _ in range(n)]
        piece_scores: list[list[float]] = [[] for _ in range(n)]
        device = next(self.model.parameters()).device
        # Windows sorted by length so that each batch pads little.
        order = sorted(range(n), key=lambda i: len(features["input_ids"][i]))
        for begin in range(0, n, self.batch_size):
            chunk = order[begin : begin + self.batch_size]
            keys = [key for key in self.collate.pad_values if key in features]
            batch = self.collate([{key: features[key][i] for key in keys} for i in chunk])
            batch = {key: value.to(device) for key, value in batch.items()}
            tag_mask = batch.pop("tag_mask").bool()
            logits = self.model(**batch).logits
            tags, probabilities = self._decode(logits, tag_mask)
            for row, i in enumerate(chunk):
                length = len(features["input_ids"][i])
                piece_tags[i] = [None if t < 0 else self.id2label[t] for t in tags[row, :length].tolist()]
                piece_scores[i] = probabilities[row, :length].tolist()
        return merge_windows(
            features["word_ids"], features["example_index"], piece_tags, [len(s) for s in sentences],
            scheme=self.scheme, strategy=self.label_strategy, piece_scores=piece_scores,
        )

    def _decode(self, logits: torch.Tensor, tag_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if hasattr(self.model, "decode"):
            tags = self.model.decode(logits, tag_mask)
            return tags, self.model.tag_probabilities(logits, tag_mask, tags.clamp(min=0))
        probabilities, tags = logits.float().softmax(-1).max(-1)
        return tags.masked_fill(~tag_mask, -100), probabilities * tag_mask
