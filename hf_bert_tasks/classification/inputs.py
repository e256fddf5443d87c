"""Classification model inputs: texts to token windows (truncate, head + tail, windows).

absent for unlabelled files).

Model inputs (:func:`encode_texts`). ``max_length`` counts special tokens; the "room" for text is ``max_length``
minus the special tokens; a second text (``text_pair``) is kept whole when it fits in half the room, else its head
fills that half; the first text gets what is left (the "budget"). Token type ids are the tokenizer's own (0 for the
first segment, 1 for the pair in BERT). ``long_text`` says what happens to a first text longer than the budget:

``truncate``
    its first ``budget`` tokens (the classic recipe).
``head_tail``
    its first ``head_tokens`` tokens and its last ``budget - head_tokens`` tokens (Sun et al. 2019, "How to
    Fine-Tune BERT for Text Classification": head 128 + tail 382 at length 512). ``head_tokens`` defaults to a
    quarter of the budget, rounded down (127 + 383 at length 512).
``windows``
    windows of ``budget`` tokens, consecutive windows overlapping by ``stride`` tokens (capped at half the budget
    when a long pair leaves little room), so every token is in some window. Each window is an input of its own
    carrying ``example_index``, the text it came from. Training uses every window with its document's label (the
    simplest sound choice: no custom model, and each window's loss is that of an ordinary BERT classifier; longer
    documents weigh more, in proportion to their windows). Evaluation and prediction average the logits of a
    document's windows (:func:`pool_window_logits`, the mean of logits, not of probabilities) and decide on the
    mean. Texts that fit give one window in every mode, so the modes differ only on long texts.

All three modes cut the token sequence with the tokenizers library (``Encoding.truncate``, with a stride for
windows: the mechanism behind ``return_overflowing_tokens``) and add the special tokens with the tokenizer's own
post-processor, so the inputs are exactly what the tokenizer makes for that token sequence (a fast tokenizer is
required): truncation and windows equal ``tokenizer(text, pair, truncation="only_first", max_length=...,
stride=..., return_overflowing_tokens=True)`` whenever the pair fits in half the room (the tests check this), and
head + tail needs the same pieces, which is why one mechanism serves all three.
"""

from __future__ import annotations

from collections.abc import Sequence

from datasets import Dataset

from .data import label_names_of

LONG_TEXT_MODES = ("truncate", "head_tail", "windows")
# Used where neither the caller nor the model's config says otherwise.
DEFAULT_LONG_TEXT = {"long_text": "truncate", "max_seq_length": 128, "stride": 32, "head_tokens": None}

# ---------------------------------------------------------------------------------------------------------------
# Model inputs: truncation, head + tail, windows


def _check_long_text(long_text: str, max_length: int, stride: int, head_tokens: int | None, specials: int) -> None:
    if long_text not in LONG_TEXT_MODES:
        raise ValueError(f"long_text must be one of {', '.join(LONG_TEXT_MODES)}, got {long_text!r}")
    room = max_length - specials
    if room < 2:
        raise ValueError(f"max_length={max_length} leaves no room for text after {specials} special tokens")
    if long_text == "windows" and not 0 <= stride < room:
        raise ValueError(f"stride ({stride}) must be at least 0 and smaller than the window ({room} tokens of text)")
    if long_text == "head_tail" and head_tokens is not None and not 0 <= head_tokens <= room:
        raise ValueError(f"head_tokens ({head_tokens}) must be between 0 and the room for text ({room})")


def _cut(encoding, budget: int, long_text: str, stride: int, head_tokens: int | None) -> list:
    """The token sequences (tokenizers ``Encoding``s, no special tokens) one text becomes."""
    from tokenizers import Encoding

    if len(encoding) <= budget:
        return [encoding]
    if long_text == "truncate":
        encoding.truncate(budget)
        return [encoding]
    if long_text == "head_tail":
        head = budget // 4 if head_tokens is None else min(head_tokens, budget)
        first = Encoding.merge([encoding])  # merging one encoding copies it; truncate works in place
        first.truncate(head)
        last = Encoding.merge([encoding])
        last.truncate(budget - head, direction="left")
        return [Encoding.merge([first, last], growing_offsets=False)]
    encoding.truncate(budget, stride=min(stride, budget // 2) if stride >= budget else stride)
    return [encoding, *encoding.overflowing]


def encode_texts(
    tokenizer,
    texts: Sequence[str],
    text_pairs: Sequence[str] | None = None,
    *,
    max_length: int = 128,
    long_text: str = "truncate",
    stride: int = 32,
    head_tokens: int | None = None,
) -> dict[str, list]:
    """Model inputs for ``texts`` (and ``text_pairs``), one row per window (see the module docstring).

    Returns lists with one entry per window: the tokenizer's model inputs (``input_ids``, ``attention_mask``,
    ``token_type_ids`` when it makes them; unpadded, at most ``max_length`` long) and ``example_index`` (the text
    each window came from, ascending). Every text gives at least one window.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{type(tokenizer).__name__} is not a fast tokenizer; long-text inputs need one")
    if text_pairs is not None and len(text_pairs) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(text_pairs)} text pairs")
    _check_long_text(long_text, max_length, stride, head_tokens, tokenizer.num_special_tokens_to_add(False))
    names = [name for name in tokenizer.model_input_names if name in ("input_ids", "attention_mask", "token_type_ids")]
    features: dict[str, list] = {name: [] for name in names}
    features["example_index"] = []
    if not len(texts):
        return features
    # No special tokens and no truncation here: the windows are cut from the whole token sequence.
    encodings = tokenizer(list(texts), add_special_tokens=False, verbose=False).encodings
    pairs = tokenizer(list(text_pairs), add_special_tokens=False, verbose=False).encodings if text_pairs is not None \
        else [None] * len(encodings)
    processor = tokenizer.backend_tokenizer.post_processor
    for example_index, (encoding, pair) in enumerate(zip(encodings, pairs)):
        room = max_length - tokenizer.num_special_tokens_to_add(pair is not None)
        if pair is not None and len(pair) > room // 2:
            pair.truncate(room // 2)
        budget = room - (len(pair) if pair is not None else 0)
        for piece in _cut(encoding, budget, long_text, stride, head_tokens):
            window = processor.process(piece, pair, True) if processor is not None else piece
            values = {"input_ids": window.ids, "attention_mask": window.attention_mask,
                      "token_type_ids": window.type_ids}
            for name in names:
                features[name].append(list(values[name]))
            features["example_index"].append(example_index)
    return features


def long_text_settings(config=None, **overrides) -> dict:
    """``long_text``, ``max_seq_length``, ``stride``, ``head_tokens``: each from ``overrides`` when not None, else
    from ``config`` (what a trained model was trained with), else the defaults (truncate, 128, 32, a quarter)."""
    settings = {}
    for key, default in DEFAULT_LONG_TEXT.items():
        value = overrides.get(key)
        if value is None and config is not None:
            value = getattr(config, key, None)
        settings[key] = default if value is None else value
    return settings


def encode_dataset(dataset: Dataset, tokenizer, *, multi_label: bool, long_text: str, max_seq_length: int,
                   stride: int, head_tokens: int | None) -> Dataset:
    """Windows of a dataset from :func:`load_classification_dataset`: model inputs, ``labels`` (the text's label
    id, or a multi-hot float vector for multi-label; only for labelled data) and ``example_index`` (row in
    ``dataset``)."""
    has_pair = "text_pair" in dataset.column_names
    labelled = "label" in dataset.column_names
    num_labels = len(label_names_of(dataset)) if labelled else 0

    def encode(batch, indices):
        windows = encode_texts(tokenizer, batch["text"], batch["text_pair"] if has_pair else None,
                               max_length=max_seq_length, long_text=long_text, stride=stride, head_tokens=head_tokens)
        if labelled:
            if multi_label:
                vectors = [[0.0] * num_labels for _ in batch["label"]]
                for vector, ids in zip(vectors, batch["label"]):
                    for i in ids:
                        vector[i] = 1.0
                windows["labels"] = [vectors[i] for i in windows["example_index"]]
            else:
                windows["labels"] = [batch["label"][i] for i in windows["example_index"]]
        windows["example_index"] = [indices[i] for i in windows["example_index"]]  # batch-relative -> dataset-wide
        return windows

    return dataset.map(encode, batched=True, with_indices=True, remove_columns=dataset.column_names,
                       desc="tokenizing")
