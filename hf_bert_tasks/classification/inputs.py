"""Classification model inputs: texts to token windows (truncate, head + tail, windows).

Model inputs (:func:`encode_texts`). ``max_length`` counts special tokens; the "room" for text is ``max_length``
minus the special tokens. Token type ids are the tokenizer's own (0 for the first segment, 1 for the pair in BERT).

Sentence pairs (``text_pairs``; :func:`pair_tokens_kept`, the one rule the recipe, :class:`TextClassifier`, the
Space and any other caller of :func:`encode_texts` share). A pair that fits in the room is never cut. One that does
not is cut as BERT's ``run_classifier.py`` (``_truncate_seq_pair``) and the tokenizer's default ``longest_first``
cut it: tokens come off the end of the longer text, one at a time, until the pair fits (so a short first text keeps
all its tokens and the second text gets the rest of the room; when both are long each gets half, the odd token to
the second when they are equally long, to the longer one otherwise, as the tokenizers library does). With ``windows``
the first text is not cut but read in windows: the second text keeps all its tokens when the pair fits, else as many
as leave the first text its own tokens or half the room, whichever is more (at most half the room when the first
text is long), and the first text is windowed over what is left (the "budget").

``long_text`` says what happens to a first text longer than its budget:

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
required): ``truncate`` equals ``tokenizer(text, pair, truncation="longest_first", max_length=...)`` for pairs of
every length mix and ``truncation=True`` for single texts, windows equal the tokenizer's overflowing windows
(``truncation="only_first", stride=..., return_overflowing_tokens=True``) whenever the second text fits in half
the room (the tests check these), and head + tail needs the same pieces, which is why one mechanism serves all three.

What was cut (:func:`truncation_counts`). Every window also carries ``truncated_tokens``: how many tokens of its
text (pair) are in none of its windows (``truncate`` and ``head_tail``: the tokens cut from either text;
``windows``: only those cut from the second text, as windows lose none of the first). The recipe counts the texts
(pairs) of each split that lost tokens and the tokens lost, logs them, writes them to ``data_results.json`` and
``all_results.json`` (``train_truncated_texts``, ``train_truncated_share``, ``train_truncated_tokens``; ``eval_*``,
``test_*``), and warns (:class:`TruncationWarning`) when more than 5% of a split's texts were cut.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np
from datasets import Dataset

from ..modeling.windows import check_stride
from .data import label_names_of

LONG_TEXT_MODES = ("truncate", "head_tail", "windows")
# Used where neither the caller nor the model's config says otherwise.
DEFAULT_LONG_TEXT = {"long_text": "truncate", "max_seq_length": 128, "stride": 32, "head_tokens": None}
# Above this share of a split's texts cut, the recipe warns (as for the [UNK] share).
TRUNCATION_WARNING_SHARE = 0.05

logger = logging.getLogger(__name__)


class TruncationWarning(UserWarning):
    """Many texts of a split lost tokens to the window length."""

# ---------------------------------------------------------------------------------------------------------------
# Model inputs: truncation, head + tail, windows


def _check_long_text(long_text: str, max_length: int, stride: int, head_tokens: int | None, specials: int) -> None:
    if long_text not in LONG_TEXT_MODES:
        raise ValueError(f"long_text must be one of {', '.join(LONG_TEXT_MODES)}, got {long_text!r}")
    room = max_length - specials
    if room < 2:
        raise ValueError(f"max_length={max_length} leaves no room for text after {specials} special tokens")
    if long_text == "windows":
        check_stride(stride, room, room_parts=f" (max_length {max_length} - {specials} special tokens)")
    if long_text == "head_tail" and head_tokens is not None and not 0 <= head_tokens <= room:
        raise ValueError(f"head_tokens ({head_tokens}) must be between 0 and the room for text ({room})")


def pair_tokens_kept(first: int, second: int, room: int, long_text: str) -> int:
    """How many tokens of the second text of a pair stay (its head), given the token counts of both texts and the
    room for text (module docstring); the first text's budget is ``room`` minus that. All of ``second`` when the
    pair fits; ``truncate``/``head_tail``: the tokenizer's ``longest_first``; ``windows``: all of it up to half the
    room, more when the first text is short."""
    if first + second <= room:
        return second
    if long_text == "windows":
        return min(second, max(room // 2, room - first))
    if 2 * min(first, second) <= room:  # only the longer text is cut, to what the shorter one leaves
        return second if second < first else room - first
    half = room // 2  # both are cut to half the room; the odd token goes as in the tokenizers library
    return half if first > second else half + room % 2


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
    ``token_type_ids`` when it makes them; unpadded, at most ``max_length`` long), ``example_index`` (the text
    each window came from, ascending) and ``truncated_tokens`` (tokens of that text, or pair, in none of its
    windows). Every text gives at least one window.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{type(tokenizer).__name__} is not a fast tokenizer; long-text inputs need one")
    if text_pairs is not None and len(text_pairs) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(text_pairs)} text pairs")
    _check_long_text(long_text, max_length, stride, head_tokens,
                     tokenizer.num_special_tokens_to_add(text_pairs is not None))
    names = [name for name in tokenizer.model_input_names if name in ("input_ids", "attention_mask", "token_type_ids")]
    features: dict[str, list] = {name: [] for name in names}
    features["example_index"], features["truncated_tokens"] = [], []
    if not len(texts):
        return features
    # No special tokens and no truncation here: the windows are cut from the whole token sequence.
    encodings = tokenizer(list(texts), add_special_tokens=False, verbose=False).encodings
    pairs = tokenizer(list(text_pairs), add_special_tokens=False, verbose=False).encodings if text_pairs is not None \
        else [None] * len(encodings)
    processor = tokenizer.backend_tokenizer.post_processor
    for example_index, (encoding, pair) in enumerate(zip(encodings, pairs)):
        room = max_length - tokenizer.num_special_tokens_to_add(pair is not None)
        first, second = len(encoding), len(pair) if pair is not None else 0
        kept = pair_tokens_kept(first, second, room, long_text)
        if pair is not None and kept < second:
            pair.truncate(kept)
        budget = room - kept
        lost = second - kept + (max(0, first - budget) if long_text != "windows" else 0)
        for piece in _cut(encoding, budget, long_text, stride, head_tokens):
            window = processor.process(piece, pair, True) if processor is not None else piece
            values = {"input_ids": window.ids, "attention_mask": window.attention_mask,
                      "token_type_ids": window.type_ids}
            for name in names:
                features[name].append(list(values[name]))
            features["example_index"].append(example_index)
            features["truncated_tokens"].append(lost)
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
    id, or a multi-hot float vector for multi-label; only for labelled data), ``example_index`` (row in
    ``dataset``) and ``truncated_tokens`` (see :func:`encode_texts`)."""
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


def truncation_counts(windows, num_examples: int, prefix: str) -> dict[str, float | int]:
    """``{prefix}_truncated_texts`` (texts, or pairs, that lost tokens), ``{prefix}_truncated_share`` (of the
    ``num_examples`` texts) and ``{prefix}_truncated_tokens`` (tokens lost in all) of the windows of one split (a
    Dataset from :func:`encode_dataset` or the dict of :func:`encode_texts`). Logged; a :class:`TruncationWarning`
    when the share is above 5%."""
    example_index = np.asarray(windows["example_index"], dtype=np.int64)
    truncated = np.asarray(windows["truncated_tokens"], dtype=np.int64)
    _, first_windows = np.unique(example_index, return_index=True)  # a text's windows all carry its count
    lost = truncated[first_windows]
    texts, tokens = int(np.count_nonzero(lost)), int(lost.sum())
    share = texts / num_examples if num_examples else 0.0
    counts = {f"{prefix}_truncated_texts": texts, f"{prefix}_truncated_share": share,
              f"{prefix}_truncated_tokens": tokens}
    logger.info("%s: %d of %d texts (%.1f%%) cut to the window length, %d tokens lost", prefix, texts, num_examples,
                100 * share, tokens)
    if share > TRUNCATION_WARNING_SHARE:
        warnings.warn(TruncationWarning(
            f"{100 * share:.1f}% of the {prefix} texts ({texts} of {num_examples}) lost tokens to the window length "
            f"({tokens} tokens in all): raise --max_seq_length, or read long texts in --long_text windows"),
            stacklevel=2)
    return counts
