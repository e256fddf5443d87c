"""Masked-LM inputs: texts to whole-word chunks, and whole-word masking.

Decisions:

- **Words.** A token's word is the tokenizer's own pre-tokenizer word (so WordPiece continuation pieces `##xx` go
  with the piece they continue, and an added multi-character token is one word: an expanded vocabulary's word
  boundaries come for free), merged with the words of an optional segmenter over the raw text (jieba, or a word
  list: Chinese characters of one word are then masked together, the BERT-wwm recipe). Two neighbouring tokens
  belong to one word when they share either, so a segmenter can join pieces but never split a WordPiece word.
  Special tokens, `[UNK]` included (predicting it teaches nothing), belong to no word and are never masked.
- **How many.** Each sequence masks `k` of its `n` words, `k` the stochastic rounding of `mlm_probability * n`
  (`floor(p n + u)`, `u ~ U[0, 1)`: exactly `p n` on average, never more than one off) and at least one, chosen
  uniformly without replacement. Counting words rather than tokens keeps long words from being over-represented.
- **80/10/10 per word.** A chosen word is replaced by `[MASK]` (probability `mask_replace_prob`, 0.8), by random
  tokens (`random_replace_prob`, 0.1; one random token per piece, drawn from the vocabulary without special or
  `[unusedN]` tokens) or kept (the rest); all its pieces share the decision, so a word is never half visible.
  `labels` hold the original ids at every position of a chosen word and -100 elsewhere.
- **Randomness** comes from torch's global generator (which `Trainer` seeds and restores on resuming), or from a
  private generator when the collator is given a `seed` (reproducible draws in tests).
- **Chunks.** A text longer than the window is cut at word boundaries into consecutive chunks
  (`modeling.windows.plan_windows` with no overlap), each with `[CLS]`/`[SEP]` around it; a single word longer than a
  window is truncated to it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..vocab import (
    UNUSED_TOKEN,
    Segmenter,
    get_segmenter,
    segment,
)
from ..modeling.windows import plan_windows


def encode_for_mlm(tokenizer, texts: Sequence[str], *, max_length: int,
                   segmenter: str | Segmenter | None = None) -> dict[str, list]:
    """Texts -> whole-word chunks for masked-LM training.

    Returns columns `input_ids` (with `[CLS]`/`[SEP]`, at most `max_length` long) and `word_ids` (same length: the
    word of each token, numbered from 0 within the chunk, -1 for special and `[UNK]` tokens). Empty texts give no
    chunk; a text longer than `max_length - 2` tokens gives several (cut between words).
    """
    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise ValueError("the tokenizer needs [CLS] and [SEP] tokens (a BERT-family tokenizer)")
    if max_length < 3:
        raise ValueError(f"max_length must leave room for a token between [CLS] and [SEP], got {max_length}")
    segmenter = get_segmenter(segmenter)
    special = set(tokenizer.all_special_ids)
    texts = list(texts)
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, truncation=False,
                        padding=False, verbose=False)
    columns: dict[str, list] = {"input_ids": [], "word_ids": []}
    for i, text in enumerate(texts):
        ids = encoded["input_ids"][i]
        if not ids:
            continue
        groups = token_words(ids, encoded.word_ids(i), encoded["offset_mapping"][i], text, special, segmenter)
        # Units for chunking: the tokens of one word, or a single wordless token.
        units: list[list[int]] = []
        for position, group in enumerate(groups):
            if units and group >= 0 and groups[units[-1][-1]] == group:
                units[-1].append(position)
            else:
                units.append([position])
        for start, end in plan_windows([len(u) for u in units], max_length - 2, 0):
            positions = [p for unit in units[start:end] for p in unit][: max_length - 2]
            renumber: dict[int, int] = {}
            chunk_words = [renumber.setdefault(groups[p], len(renumber)) if groups[p] >= 0 else -1
                           for p in positions]
            columns["input_ids"].append([tokenizer.cls_token_id] + [ids[p] for p in positions]
                                        + [tokenizer.sep_token_id])
            columns["word_ids"].append([-1] + chunk_words + [-1])
    return columns


def token_words(ids: Sequence[int], pre_words: Sequence[int | None], offsets: Sequence[tuple[int, int]], text: str,
                special: set[int], segmenter: Segmenter | None = None) -> list[int]:
    """Word index of each token (-1 for special tokens): neighbours sharing a pre-tokenizer word or a segmenter word
    (the one holding the token's first character) are one word."""
    segment_of_char = None
    if segmenter is not None:
        segment_of_char = []
        for index, word in enumerate(segment(segmenter, text)):
            segment_of_char.extend([index] * len(word))
    groups, current, previous = [], -1, None
    for token, pre_word, (start, _) in zip(ids, pre_words, offsets):
        if token in special:
            groups.append(-1)
            previous = None
            continue
        seg = segment_of_char[start] if segment_of_char is not None and start < len(segment_of_char) else None
        if previous is None or not (pre_word == previous[0] or (seg is not None and seg == previous[1])):
            current += 1
        groups.append(current)
        previous = (pre_word, seg)
    return groups


class WholeWordMaskCollator:
    """Pads `encode_for_mlm` features and masks whole words (see the module docstring).

    Args:
        tokenizer: gives the `[MASK]` and pad ids, the special tokens and the vocabulary for random replacement.
        mlm_probability: share of words to mask per sequence (0.15).
        mask_replace_prob, random_replace_prob: share of the chosen words replaced by `[MASK]` (0.8) and by random
            tokens (0.1); the rest are kept.
        pad_to_multiple_of: pad the length to a multiple of this.
        seed: use a private generator with this seed instead of torch's global one.

    `__call__(features)` takes dicts with `input_ids` and `word_ids` (lists) and returns `input_ids`,
    `attention_mask`, `token_type_ids` and `labels`, each `(batch, length)` long.
    """

    def __init__(self, tokenizer, mlm_probability: float = 0.15, mask_replace_prob: float = 0.8,
                 random_replace_prob: float = 0.1, pad_to_multiple_of: int | None = None, seed: int | None = None):
        if tokenizer.mask_token_id is None:
            raise ValueError("the tokenizer has no mask token")
        for name, value in (("mlm_probability", mlm_probability), ("mask_replace_prob", mask_replace_prob),
                            ("random_replace_prob", random_replace_prob)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if mask_replace_prob + random_replace_prob > 1.0:
            raise ValueError(f"mask_replace_prob + random_replace_prob must be <= 1, got "
                             f"{mask_replace_prob} + {random_replace_prob}")
        self.mlm_probability = mlm_probability
        self.mask_replace_prob = mask_replace_prob
        self.random_replace_prob = random_replace_prob
        self.pad_to_multiple_of = pad_to_multiple_of
        self.mask_token_id = tokenizer.mask_token_id
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        special = set(tokenizer.all_special_ids)
        tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        self.random_ids = torch.tensor([i for i, t in enumerate(tokens)
                                        if i not in special and not UNUSED_TOKEN.match(t or "")])
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        if any("word_ids" not in f for f in features):
            raise ValueError("features need `word_ids` (from `encode_for_mlm`); with Trainer, set "
                             "remove_unused_columns=False so that the column reaches the collator")
        width = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = len(features)
        input_ids = torch.full((batch, width), self.pad_token_id, dtype=torch.long)
        word_ids = torch.full((batch, width), -1, dtype=torch.long)
        attention_mask = torch.zeros((batch, width), dtype=torch.long)
        for row, feature in enumerate(features):
            length = len(feature["input_ids"])
            if len(feature["word_ids"]) != length:
                raise ValueError(f"feature {row}: {length} input_ids but {len(feature['word_ids'])} word_ids")
            input_ids[row, :length] = torch.tensor(feature["input_ids"], dtype=torch.long)
            word_ids[row, :length] = torch.tensor(feature["word_ids"], dtype=torch.long)
            attention_mask[row, :length] = 1
        masked, labels = self.mask(input_ids, word_ids)
        return {"input_ids": masked, "attention_mask": attention_mask,
                "token_type_ids": torch.zeros_like(input_ids), "labels": labels}

    def mask(self, input_ids: torch.Tensor, word_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(batch, length)` ids and word ids (-1: never masked) -> (masked ids, labels with -100 where not
        masked)."""
        masked, labels = input_ids.clone(), torch.full_like(input_ids, -100)
        for row in range(input_ids.shape[0]):
            words = torch.unique(word_ids[row][word_ids[row] >= 0])
            n = words.numel()
            if n == 0:
                continue
            k = min(n, max(1, math.floor(self.mlm_probability * n + self._uniform(1).item())))
            chosen = words[torch.randperm(n, generator=self.generator)[:k]]
            draws = self._uniform(k)
            for word, draw in zip(chosen.tolist(), draws.tolist()):
                positions = (word_ids[row] == word).nonzero().flatten()
                labels[row, positions] = input_ids[row, positions]
                if draw < self.mask_replace_prob:
                    masked[row, positions] = self.mask_token_id
                elif draw < self.mask_replace_prob + self.random_replace_prob:
                    pick = torch.randint(len(self.random_ids), (positions.numel(),), generator=self.generator)
                    masked[row, positions] = self.random_ids[pick]
        return masked, labels

    def _uniform(self, n: int) -> torch.Tensor:
        return torch.rand(n, generator=self.generator)
