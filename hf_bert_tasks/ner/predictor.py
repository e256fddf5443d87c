"""Raw text in, entities with character offsets out: the one prediction path of the recipe, the demo and users.

`NerPredictor` is built on the custom pipeline that ships with every CRF model
(`hf_bert_tasks/modeling/pipeline_bert_crf.py`, what `transformers.pipeline(..., trust_remote_code=True)` builds), so
that both give the same entities by the same code: text is split into words (`tagging.split_words`), the words into
overlapping windows (`windows.encode_words`), every window is decoded by the model's CRF (`model.decode`; argmax for a
plain softmax token classifier), the windows are merged back to one tag per word (`windows.merge_windows`), and
entities `{type, text, start, end, score}` come out with `text == original[start:end]`. The score of an entity is the
mean, over its words, of the CRF marginal probability of the predicted tag (the softmax probability for a softmax
head). What `NerPredictor` adds: several texts (or a document's sentences, with document context) go through the
pipeline as one input, so their windows are tokenized together and batched by length; and its entity dicts.

:func:`load_tagger` builds the model ``recipes/ner.py`` trains (a new CRF or softmax head on an encoder, or a saved CRF
model as it is).

Input checks (`modeling/texts.py`, shared by every door): one `str` or a list of them; anything else raises
`TypeError` naming the type received, a lone surrogate `ValueError` naming its position; an empty or blank text, or
one of characters the tokenizer deletes, has no entities (`[]`).
"""

from collections.abc import Sequence

from ..files import load_tokenizer
from ..modeling.pipeline_bert_crf import BertCrfTokenClassificationPipeline, WordSequences
from ..modeling.texts import check_texts
from ..modeling.tagging import label_list, split_tag, split_words
from ..modeling.windows import entities_of_words
from ..predictor.auto import load_model


class NerPredictor:
    """Predict entities with a token-classification model (CRF, softmax or global pointer head) and its tokenizer.

    Args:
        model: a `BertCrfForTokenClassification`, a `BertGlobalPointerForSpanClassification` (entities may nest and
            overlap; the same entity dicts, sorted by start, then end) or any `*ForTokenClassification` model; it
            stays on its device.
        tokenizer: the model's fast tokenizer.
        batch_size: windows per forward pass.
        max_length, stride: window length in tokens and overlap in word pieces; default to the model config's
            `max_seq_length`/`stride` (128/32 when absent).
        scheme, label_strategy: default to the model config's `tag_scheme`/`label_strategy` ("BIO"/"first").
        context_window: word pieces of document context per window (see `windows.encode_words`); defaults to the
            model config's `context_window` (0 when absent). Used by `predict_document` and `predict_words`.

    `self.pipeline` is the pipeline doing the work: the model's own (`model.pipeline_class()`), else
    `BertCrfTokenClassificationPipeline`.
    """

    def __init__(self, model, tokenizer, *, batch_size: int = 32, max_length: int | None = None,
                 stride: int | None = None, scheme: str | None = None, label_strategy: str | None = None,
                 context_window: int | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        pipeline_class = model.pipeline_class() if hasattr(model, "pipeline_class") else \
            BertCrfTokenClassificationPipeline
        self.pipeline = pipeline_class(model=self.model, tokenizer=tokenizer, device=model.device,
                                       batch_size=batch_size)
        self.spans = getattr(model.config, "model_type", None) == "bert_global_pointer"
        settings = self.pipeline.window_settings(max_length, stride, context_window, scheme, label_strategy)
        self.max_length, self.stride = settings["max_length"], settings["stride"]
        self.context_window = settings["context_window"]
        self.scheme, self.label_strategy = settings["scheme"], settings["label_strategy"]
        self._settings = settings
        self.id2label = {int(k): v for k, v in model.config.id2label.items()}

    @classmethod
    def from_pretrained(cls, path: str, *, revision: str | None = None, device: str | None = None,
                        dtype=None, **kwargs):
        """Load model and tokenizer from a folder or Hub id (custom code is trusted: the CRF lives in it); ``dtype``
        (e.g. ``torch.bfloat16`` or ``"bfloat16"``) is the encoder's, the CRF stays float32 (see ``load_model``)."""
        model = load_model("ner", path, revision, dtype)  # names another kind of model, a damaged file
        tokenizer = load_tokenizer(path, revision=revision, trust_remote_code=True)  # names missing files
        if device is not None:
            model.to(device)
        return cls(model, tokenizer, **kwargs)

    def __call__(self, texts: str | Sequence[str]) -> list[dict] | list[list[dict]]:
        """Entities of one text (a list of dicts) or of each of several texts (a list of lists)."""
        batch, single = check_texts(texts)
        entities = self._entities(batch)
        return entities[0] if single else entities

    def predict_document(self, sentences: Sequence[str]) -> list[list[dict]]:
        """Entities of each sentence of one document, each tagged with the document's other sentences as context
        (when the model was trained with `context_window`); offsets index each sentence's own string."""
        if isinstance(sentences, str):
            raise TypeError("predict_document takes the document's sentences (a list of str), got one str; "
                            "call the predictor itself on a single text")
        sentences, _ = check_texts(sentences, "sentences", "sentence")
        return self._entities(sentences, document_ids=[0] * len(sentences))

    def _entities(self, texts: list[str], document_ids: Sequence | None = None) -> list[list[dict]]:
        """Entities of each checked text: its words (`split_words`), their tags and scores, back to offsets."""
        words = [split_words(text) for text in texts]
        if self.spans:
            found = self.predict_words([[w for w, _, _ in ws] for ws in words], document_ids=document_ids)
            return [[{"type": kind, "text": text[ws[start][1]:ws[end - 1][2]], "start": ws[start][1],
                      "end": ws[end - 1][2], "score": score} for kind, start, end, score in spans]
                    for text, ws, spans in zip(texts, words, found)]
        tags, scores = self.predict_words([[w for w, _, _ in ws] for ws in words], document_ids=document_ids)
        return [entities_of_words(text, ws, t, s, self.scheme) for text, ws, t, s in zip(texts, words, tags, scores)]

    def predict_words(self, sentences: Sequence[Sequence[str]], document_ids: Sequence | None = None
                      ) -> tuple[list[list[str]], list[list[float]]]:
        """One tag and one score per word of each sentence (sentences of any length). With `document_ids`, sentences
        of the same document (consecutive, equal ids) are context for each other; without, each stands alone. A word
        the tokenizer deletes entirely (U+FFFD, private use, ...) has score None and the tag of the entity around it,
        else `O` (`windows.merge_windows`). A span model gives instead, per sentence, its entities as `(type, start
        word, end word (exclusive), score)`."""
        if not len(sentences):
            return [] if self.spans else ([], [])
        for i, sentence in enumerate(sentences):
            if isinstance(sentence, str):
                raise TypeError(f"sentence {i} is a str: predict_words takes lists of words (split_words(text))")
        return self.pipeline(WordSequences(sentences, document_ids), **self._settings)


def load_tagger(model_name_or_path: str, tag_names: Sequence[str], *, head: str = "crf", bilstm: bool = False,
                lstm_hidden_size: int = 256, classifier_dropout: float = 0.1, constrain_transitions: bool = True,
                scheme: str = "BIO", label_strategy: str = "first", max_seq_length: int = 128, stride: int = 32,
                context_window: int = 0, head_size: int = 64, efficient_global_pointer: bool = False,
                decode: str = "nested"):
    """The model ``recipes/ner.py`` trains: a saved ``bert_crf`` or ``bert_global_pointer`` folder as it is (with
    its labels), else an encoder with a new head (``head``: ``crf``, ``BertCrfForTokenClassification``; ``softmax``,
    the encoder's own ``AutoModelForTokenClassification``; ``global_pointer``,
    ``BertGlobalPointerForSpanClassification``, whose labels are the entity types). A tagger's labels are every tag
    of ``scheme`` for the entity types of ``tag_names`` (plus "X" for the ``x`` label strategy), so that e.g. an
    I-PER absent from training is no error. The window settings go into its config, where the predictors and the
    pipelines read them."""
    from transformers import AutoConfig, AutoModelForTokenClassification

    from ..modeling import register_auto_classes
    from ..modeling.modeling_bert_crf import BertCrfForTokenClassification
    from ..modeling.modeling_bert_global_pointer import BertGlobalPointerForSpanClassification

    register_auto_classes()  # a saved CRF folder loads as this package's model; a new one saves with its code
    entity_types = sorted({split_tag(tag)[1] for tag in tag_names if tag != "O"})
    labels = label_list(scheme, entity_types, with_x=label_strategy == "x")
    config = AutoConfig.from_pretrained(model_name_or_path, trust_remote_code=True)
    if config.model_type in ("bert_crf", "bert_global_pointer"):
        return AutoModelForTokenClassification.from_pretrained(model_name_or_path, trust_remote_code=True)
    if head == "crf":
        return BertCrfForTokenClassification.from_encoder(
            model_name_or_path, labels, use_bilstm=bilstm, lstm_hidden_size=lstm_hidden_size,
            classifier_dropout=classifier_dropout, tag_scheme=scheme, constrain_transitions=constrain_transitions,
            label_strategy=label_strategy, max_seq_length=max_seq_length, stride=stride,
            context_window=context_window,
        )
    if head == "global_pointer":
        return BertGlobalPointerForSpanClassification.from_encoder(
            model_name_or_path, entity_types, head_size=head_size, efficient=efficient_global_pointer,
            classifier_dropout=classifier_dropout, decode=decode, max_seq_length=max_seq_length, stride=stride,
            context_window=context_window,
        )
    if head != "softmax":
        raise ValueError(f"--head must be crf, softmax or global_pointer, got {head!r}")
    model = AutoModelForTokenClassification.from_pretrained(
        model_name_or_path, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    # The predictor reads these, as it does from a CRF model's config.
    model.config.tag_scheme, model.config.label_strategy = scheme, label_strategy
    model.config.max_seq_length, model.config.stride = max_seq_length, stride
    model.config.context_window = context_window
    return model
