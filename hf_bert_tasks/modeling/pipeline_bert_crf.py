"""The token-classification pipeline that ships with every CRF model: `pipeline(..., trust_remote_code=True)`.

```python
from transformers import pipeline

ner = pipeline("token-classification", model="ORG/NAME", trust_remote_code=True, aggregation_strategy="simple")
ner("Angela Weber flew from Dublin to Toronto.")
# [{'entity_group': 'PER', 'score': 0.99, 'word': 'Angela Weber', 'start': 0, 'end': 12}, ...]
```

`save_pretrained` copies this file (and `tagging.py`, `windows.py`, `texts.py`, which it imports) next to the weights,
and the config names it in `custom_pipelines` for the task `token-classification`; so `pipeline("token-classification",
model=FOLDER_OR_HUB_ID, trust_remote_code=True)` and `pipeline(model=..., trust_remote_code=True)` build this class,
on a machine without `hf_bert_tasks`. Like the model files it imports only torch, transformers, the standard library
and its siblings.

What it does differently from transformers' `TokenClassificationPipeline` (which takes the argmax of each piece):

- **Words, then windows.** Raw text is split into words (`tagging.split_words`: CJK characters one by one, other text
  at whitespace and punctuation; offsets index the original string), the words into the overlapping windows the model
  was trained on (`windows.encode_words`: `max_seq_length`, `stride`, `context_window` from the config). Text of any
  length is tagged whole, never truncated; each word is predicted once, from the window where it has most context.
- **Viterbi, not argmax.** Each window is decoded by the CRF (`model.decode`) over the positions the model was trained
  to label (`label_strategy` first, all or x); windows are merged back to one tag per word (`windows.merge_windows`).
  A model without a CRF (a plain softmax head) falls back to the argmax of each labelled position.
- **Scores are CRF marginals**: a word's score is p(its tag | text) under the CRF (`model.tag_probabilities`); an
  entity's score is the mean over its words.

`aggregation_strategy`:

- `"none"` (the default, as in transformers): one dict per word tagged other than `O`: `entity` (the tag, e.g.
  `B-PER`), `score`, `index` (the word's position among the text's words), `word`, `start`, `end`. The standard
  pipeline returns one dict per word *piece* here; a CRF tags words, so words are what there is to return.
- `"simple"`, `"first"`, `"average"`, `"max"`: entities, `entity_group` (the type), `score`, `word`, `start`, `end`.
  The four give the same result: `first`/`average`/`max` differ in the standard pipeline only in how they settle a
  word whose pieces got different labels, and a CRF path gives every word exactly one tag, so there is nothing to
  settle. `word` is the text itself, `text[start:end]` (the standard pipeline decodes word pieces, which loses case
  and spacing with uncased tokenizers).

`ignore_labels` (default `["O"]`) drops tags (with `"none"`) or entity types (otherwise). `batch_size` counts
windows per forward pass (a long text is several windows; windows of several texts share a batch); `device` works as
for any pipeline. `is_split_into_words=True` takes a list of words (or a list of such lists) instead of text;
`start`/`end` then index the words joined by `delimiter` (default `" "`).

Bad input is checked by `texts.py`, the rules every door of `hf_bert_tasks` shares: a text that is not a `str` raises
`TypeError` naming the type received, one with a lone surrogate `ValueError` naming its position; an empty or blank
text, or one of characters the tokenizer deletes, gives `[]`.

`NerPredictor` (in the `hf_bert_tasks` package) is built on this class: its `__call__`, `predict_document` and
`predict_words` run here, with several sentences (and their document context) as one input.
"""

import itertools
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers.pipelines.base import ChunkPipeline

from .tagging import split_words
from .texts import check_text, check_texts
from .windows import entities_of_words, iter_windows, merge_windows

AGGREGATION_STRATEGIES = ("none", "simple", "first", "average", "max")
SORT_BLOCK = 1024  # windows sorted by length together (batches of similar lengths pad little)


@dataclass(frozen=True)
class WordSequences:
    """One pipeline input of several word sequences (what `NerPredictor` sends): `sentences` (lists of words),
    and `document_ids` (consecutive sentences with equal ids are context for each other when the model uses
    `context_window`; None: each sentence alone). Its output is `(tags, scores)`, one tag and score per word."""

    sentences: Sequence[Sequence[str]]
    document_ids: Sequence | None = None


@dataclass
class _Item:
    """Everything postprocess needs about one input; shared by all its windows."""

    sentences: list[list[str]]
    scheme: str
    strategy: str
    text: str | None = None  # raw-text inputs only
    words: list[tuple[str, int, int]] = field(default_factory=list)  # (word, start, end) of a raw-text input
    word_ids: list = field(default_factory=list)  # per window (in `iter_windows` order), as `encode_words` gives
    example_index: list[int] = field(default_factory=list)  # per window: its sentence


def decode_emissions(model, logits: torch.Tensor, tag_mask: torch.Tensor, return_probabilities: bool = True):
    """Tag ids `(batch, length)` (-100 where `tag_mask` is False) and the probability of each: the CRF's Viterbi path
    and marginals for a model with a CRF (`decode(..., return_probabilities=True)`), the softmax argmax otherwise.

    The one decoding rule of the pipeline, `NerPredictor` and the recipes' evaluation; with `return_probabilities`
    False, the tag ids alone (what an evaluation keeps: no marginals computed)."""
    if hasattr(model, "decode"):
        return model.decode(logits, tag_mask, return_probabilities=return_probabilities)
    if not return_probabilities:
        return logits.argmax(-1).masked_fill(~tag_mask, -100)
    probabilities, tags = logits.float().softmax(-1).max(-1)
    return tags.masked_fill(~tag_mask, -100), probabilities * tag_mask


class BertCrfTokenClassificationPipeline(ChunkPipeline):
    """Named entities with the CRF's Viterbi path, for text of any length (see the module docstring).

    Call parameters (also accepted by `pipeline(...)` and the constructor): `aggregation_strategy`, `ignore_labels`,
    `is_split_into_words`, `delimiter`, and the window settings `max_length` (tokens per window), `stride`
    (overlap in word pieces), `context_window`, `scheme`, `label_strategy`, which default to the model config's
    `max_seq_length`, `stride`, `context_window`, `tag_scheme`, `label_strategy` (128, 32, 0, BIO, first when absent).
    """

    def _sanitize_parameters(self, aggregation_strategy=None, ignore_labels=None, is_split_into_words=None,
                             delimiter=None, max_length=None, stride=None, context_window=None, scheme=None,
                             label_strategy=None):
        preprocess, postprocess = {}, {}
        for key, value in (("max_length", max_length), ("stride", stride), ("context_window", context_window),
                           ("scheme", scheme), ("label_strategy", label_strategy), ("delimiter", delimiter),
                           ("is_split_into_words", is_split_into_words)):
            if value is not None:
                preprocess[key] = value
        if aggregation_strategy is not None:
            name = getattr(aggregation_strategy, "value", aggregation_strategy)  # transformers' AggregationStrategy
            name = str(name).lower()
            if name not in AGGREGATION_STRATEGIES:
                raise ValueError(f"aggregation_strategy must be one of {AGGREGATION_STRATEGIES}, "
                                 f"got {aggregation_strategy!r}")
            postprocess["aggregation_strategy"] = name
        if ignore_labels is not None:
            postprocess["ignore_labels"] = list(ignore_labels)
        return preprocess, {}, postprocess

    def __call__(self, inputs, **kwargs):
        """Entities of one text (a list of dicts) or of each text of a list (a list of lists); see the module
        docstring for the keys. Texts that are not `str` raise `TypeError` before anything runs.

        A list is run in order of its texts' lengths in word pieces (the results come back in the list's order), so
        that the windows that share a batch have similar lengths and pad little (on 30-word texts at batch 32, input
        order padded batches by a third); generators and data sets stream in their own order."""
        if isinstance(inputs, (list, tuple)) and not inputs:
            return []
        if kwargs.get("is_split_into_words", self._preprocess_params.get("is_split_into_words")):
            if isinstance(inputs, (list, tuple)) and all(isinstance(w, str) for w in inputs):
                return super().__call__([list(inputs)], **kwargs)[0]  # one pre-split text
            if isinstance(inputs, (list, tuple)):
                return self._by_length([list(words) for words in inputs], kwargs, is_split_into_words=True)
        elif isinstance(inputs, (list, tuple)):
            return self._by_length(check_texts(inputs)[0], kwargs)
        return super().__call__(inputs, **kwargs)

    def _by_length(self, inputs: list, kwargs, is_split_into_words: bool = False) -> list:
        pieces = self.tokenizer(inputs, add_special_tokens=False, is_split_into_words=is_split_into_words)["input_ids"]
        order = sorted(range(len(inputs)), key=lambda i: len(pieces[i]))
        results = [None] * len(inputs)
        for i, result in zip(order, super().__call__([inputs[i] for i in order], **kwargs)):
            results[i] = result
        return results

    # -- settings -----------------------------------------------------------------------------------------------

    def _config(self, name: str, default):
        value = getattr(self.model.config, name, None)
        return default if value is None else value

    def window_settings(self, max_length=None, stride=None, context_window=None, scheme=None, label_strategy=None):
        """The resolved window and tag settings: explicit values, else the model config's, else the defaults."""
        return {
            "max_length": max_length or self._config("max_seq_length", 128),
            "stride": stride if stride is not None else self._config("stride", 32),
            "context_window": context_window if context_window is not None else self._config("context_window", 0),
            "scheme": scheme or self._config("tag_scheme", "BIO"),
            "label_strategy": label_strategy or self._config("label_strategy", "first"),
        }

    # -- the three stages ---------------------------------------------------------------------------------------

    def preprocess(self, inputs, is_split_into_words=False, delimiter=" ", **settings):
        """One input -> its windows (shortest first within blocks of `SORT_BLOCK`, so that batches pad little), each a
        dict of `(1, length)` tensors plus `window` (its index, -1 for the placeholder of an input without words),
        `item` and `is_last`."""
        settings = self.window_settings(**settings)
        if isinstance(inputs, WordSequences):
            sentences = [list(s) for s in inputs.sentences]
            for i, sentence in enumerate(sentences):
                for j, word in enumerate(sentence):
                    check_text(word, f"word {j} of sentence {i}")
            item = _Item(sentences, settings["scheme"], settings["label_strategy"])
            document_ids = (list(inputs.document_ids) if inputs.document_ids is not None
                            else list(range(len(sentences))))
        elif is_split_into_words:
            if not isinstance(inputs, (list, tuple)):
                raise TypeError(f"with is_split_into_words=True, pass a list of words, got {type(inputs).__name__}")
            words, start = [], 0
            for i, word in enumerate(inputs):
                check_text(word, f"word {i}")
                words.append((word, start, start + len(word)))
                start += len(word) + len(delimiter)
            item = _Item([[w for w, _, _ in words]], settings["scheme"], settings["label_strategy"],
                         text=delimiter.join(inputs), words=words)
            document_ids = [0]
        else:
            text = check_text(inputs)
            words = split_words(text)
            item = _Item([[w for w, _, _ in words]], settings["scheme"], settings["label_strategy"],
                         text=text, words=words)
            document_ids = [0]
        windows = iter_windows(
            self.tokenizer, item.sentences, max_length=settings["max_length"], stride=settings["stride"],
            scheme=item.scheme, strategy=item.strategy, document_ids=document_ids,
            context_window=settings["context_window"],
        )
        # Streamed: windows are tokenized a group at a time and sorted by length within blocks of SORT_BLOCK, so that
        # a long text's windows are never all held; only their word ids stay for postprocess (4 bytes a token).
        pending = None
        while block := list(itertools.islice(windows, SORT_BLOCK)):
            indexed = []
            for window in block:
                indexed.append((len(item.word_ids), window))
                item.word_ids.append(array("i", window.pop("word_ids")))
                item.example_index.append(window.pop("example_index"))
            for i, window in sorted(indexed, key=lambda pair: len(pair[1]["input_ids"])):
                if pending is not None:
                    yield {**pending, "is_last": False}
                pending = {**{k: torch.tensor([v]) for k, v in window.items()}, "window": i, "item": item}
        if pending is not None:
            yield {**pending, "is_last": True}
            return
        # No words: one placeholder window ([CLS] [SEP], nothing to tag) so that the input still has an output.
        empty = self.tokenizer("", return_tensors="pt")
        window = {k: empty[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in empty}
        window["tag_mask"] = torch.zeros_like(window["input_ids"])
        yield {**window, "window": -1, "item": item, "is_last": True}

    def _forward(self, model_inputs):
        """A batch of windows -> tag ids and their probabilities `(batch, length)`; the encoder runs once."""
        meta = {key: model_inputs.pop(key) for key in ("window", "item", "is_last")}
        tag_mask = model_inputs.pop("tag_mask").bool()
        logits = self.model(**model_inputs).logits
        tags, probabilities = decode_emissions(self.model, logits, tag_mask)
        return {"tags": tags, "probabilities": probabilities, "attention_mask": model_inputs["attention_mask"], **meta}

    def postprocess(self, all_outputs, aggregation_strategy="none", ignore_labels=None):
        """The windows of one input -> one tag per word (`windows.merge_windows`) -> entities (or, for
        `WordSequences`, the `(tags, scores)` per word)."""
        item: _Item = all_outputs[0]["item"]
        id2label = self.model.config.id2label
        n = len(item.word_ids)
        piece_tags: list[list] = [[] for _ in range(n)]
        piece_scores: list = [[] for _ in range(n)]
        for output in all_outputs:
            if output["window"] < 0:
                continue
            real = output["attention_mask"][0].bool()  # the window's own tokens, wherever the padding went
            tags = output["tags"][0][real].tolist()
            piece_tags[output["window"]] = [None if t < 0 else id2label[t] for t in tags]
            piece_scores[output["window"]] = output["probabilities"][0][real].numpy()  # no Python float per piece
        word_tags, word_scores = merge_windows(
            item.word_ids, item.example_index, piece_tags,
            [len(s) for s in item.sentences], scheme=item.scheme, strategy=item.strategy, piece_scores=piece_scores,
        )
        if item.text is None:
            return word_tags, word_scores
        ignore = set(["O"] if ignore_labels is None else ignore_labels)
        tags, scores = word_tags[0], word_scores[0]
        if aggregation_strategy == "none":
            return [
                {"entity": tag, "score": score, "index": i, "word": word, "start": start, "end": end}
                for i, ((word, start, end), tag, score) in enumerate(zip(item.words, tags, scores))
                if tag not in ignore and score is not None  # None: characters the tokenizer deletes, no word
            ]
        return [
            {"entity_group": e["type"], "score": e["score"], "word": e["text"], "start": e["start"], "end": e["end"]}
            for e in entities_of_words(item.text, item.words, tags, scores, item.scheme)
            if e["type"] not in ignore
        ]


__all__ = ["BertCrfTokenClassificationPipeline", "WordSequences", "decode_emissions"]
