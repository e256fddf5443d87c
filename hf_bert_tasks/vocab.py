"""Vocabulary expansion for BERT-family (WordPiece) models: mine the tokens a corpus lacks, add them, initialise them.

An English checkpoint such as MiniLM knows about 39% of the distinct characters of MSRA's NER test set; the others
become `[UNK]` (about 60% of the characters of the text). `mine_tokens` finds what an in-domain corpus loses
(characters mapped to `[UNK]`, words split into many pieces), ranked by frequency, with the corpus `[UNK]` rate and
pieces per word before and after; `expand_vocabulary` adds the tokens to the tokenizer and the model and initialises
their embeddings.

Decisions:

- **Where a new token lives in the tokenizer.** BERT's normalizer pads every CJK ideograph with spaces and the
  pre-tokenizer splits at whitespace and punctuation, so WordPiece only ever sees single ideographs or runs of
  letters/digits. A token that survives pre-tokenization as one piece (a character, an English word) goes into the
  WordPiece vocabulary itself and is produced wherever WordPiece would produce it (greedy longest match, so
  "covid" also yields "covid" + "##s"). A token that the pre-tokenizer would split (a multi-character Chinese word
  such as "北京", "covid-19") can never come out of WordPiece; it is registered as an *added token* as well (it
  keeps its vocabulary id), matched in the text before the model runs. Ideographic words are matched on the raw
  text (`normalized=False`: the normalizer only pads ideographs, so raw and normalized matching agree, and the
  token strings stay clean); other words on the normalized text (so an uncased tokenizer matches any casing),
  as whole words (`single_word=True`, so "covid-19" does not fire inside "precovid-19"). Changing the
  pre-tokenizer instead (no CJK padding) would let WordPiece produce words, but would change how every existing
  character is tokenized (a run of known characters would need "##" continuation pieces the pretrained vocabulary
  lacks, and one unknown character would turn the whole run into `[UNK]`); and `BertTokenizer` rebuilds its
  normalizer and pre-tokenizer from its settings on loading, so such an edit would not survive `from_pretrained`.
  Note that word-level NER input (`is_split_into_words`, one character per word in Chinese) never matches a
  multi-character added token: words help raw-text tasks and pretraining, characters help character-level NER.
- **Modes.** `unused` renames `[unusedN]` slots (lowest N first): the embedding matrix keeps its shape. `append`
  gives new ids after the last one and grows the input embeddings, and with them a tied MLM decoder and its bias
  (or an untied decoder separately). The tokenizer is rewritten through its own serialisation (tokenizer.json) and
  loaded back with its own class, so the expanded tokenizer in memory is exactly what `from_pretrained` will load.
  Only fast WordPiece tokenizers are supported; a saved folder holds `tokenizer.json` (no `vocab.txt`).
- **Initialisation** of the new rows (input embeddings, an untied decoder, the decoder bias):
  `truncated_normal`: the classic BERT initialiser, N(0, std) truncated at 2 std, bias 0. `std=None` takes the
  standard deviation of the matrix's existing rows (0.02 is the scale of a model *before* pretraining; MiniLM's
  trained word rows have 0.056). 0.02 stays the default: on MSRA the matched scale did not do better
  (`benchmarks/README.md`).
  `piece_mean`: the mean of the rows of the pieces the *old* tokenizer produced for the token (and the mean of
  their biases). A character the old tokenizer mapped to `[UNK]` starts as the `[UNK]` row, so the expanded model
  initially computes exactly what the old one did on such text; training separates the characters.
  `mean_resizing`: transformers' own rule (`resize_token_embeddings(mean_resizing=True)`: every new row the mean of
  the old rows, with a 1e-9-scaled covariance; the bias the mean of the old biases, its rule for a resized untied
  head, written here for a tied decoder, whose bias transformers pads with zeros); in `unused` mode the same rule
  over the rows that are not being filled.
  With the other two, `resize_token_embeddings(..., mean_resizing=False)` grows the matrices and the rows are then
  written here.
- **Configs.** The vocabulary size is updated in every config that carries one, including the encoder sub-config
  of `BertCrfConfig` (which `resize_token_embeddings` does not know about): the expanded folder loads with
  `from_pretrained`, and with `trust_remote_code=True` where this package is not installed.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tokenizers import AddedToken

if TYPE_CHECKING:
    import torch  # imported where tensors are made: mining and `--help` need not load torch

UNUSED_TOKEN = re.compile(r"^\[unused\d+\]$")
INITIALISERS = ("truncated_normal", "piece_mean", "mean_resizing")
MODES = ("unused", "append")
EXPANSION_REPORT_FILE = "vocab_expansion.json"

Segmenter = Callable[[str], list[str]]


# ----------------------------------------------------------------------------------------------------------- segmenters


class DictionarySegmenter:
    """Forward maximum matching over a word list: at each position the longest listed word, else a run of ASCII
    letters and digits, else one character.

    A segmenter without dependencies, for texts whose words you know (e.g. the words mined from a corpus, or the
    multi-character tokens of an expanded vocabulary). `segmenter(text)` returns words that concatenate to `text`.
    """

    def __init__(self, words: Iterable[str]):
        self.words = {w for w in words if len(w) > 1}
        self.max_length = max((len(w) for w in self.words), default=1)

    def __call__(self, text: str) -> list[str]:
        words, i = [], 0
        while i < len(text):
            for length in range(min(self.max_length, len(text) - i), 1, -1):
                if text[i:i + length] in self.words:
                    break
            else:
                length = 1
                while i + length < len(text) and _is_ascii_alnum(text[i]) and _is_ascii_alnum(text[i + length]):
                    length += 1
            words.append(text[i:i + length])
            i += length
        return words


def _is_ascii_alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def jieba_segmenter() -> Segmenter:
    """jieba's default mode (`jieba.lcut`, with its HMM for unknown words); install with `pip install
    'hf_bert_tasks[zh]'`."""
    try:
        import jieba
    except ImportError as error:
        raise ImportError("Chinese word segmentation needs jieba: pip install 'hf_bert_tasks[zh]' "
                          "(or pass a DictionarySegmenter / a word list file instead)") from error
    import logging

    jieba.setLogLevel(logging.WARNING)
    return jieba.lcut


def get_segmenter(spec: str | Segmenter | None) -> Segmenter | None:
    """`None`/`"none"`: no segmenter; `"jieba"`; a path to a word list (one word per line, a `DictionarySegmenter`);
    or a callable `text -> list[str]` (returned as is)."""
    if spec is None or callable(spec):
        return spec
    if spec in ("none", ""):
        return None
    if spec == "jieba":
        return jieba_segmenter()
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"segmenter must be 'none', 'jieba' or a word list file; {spec!r} is neither")
    return DictionarySegmenter(line.strip() for line in path.read_text(encoding="utf-8").splitlines())


def segment(segmenter: Segmenter, text: str) -> list[str]:
    """`segmenter(text)`, checked: the words must concatenate back to the text (offsets are computed from them)."""
    words = list(segmenter(text))
    if "".join(words) != text:
        raise ValueError(f"the segmenter's words do not concatenate to the text: {text[:50]!r} -> {words[:10]!r}")
    return words


# ---------------------------------------------------------------------------------------------------------- statistics


def _backend(tokenizer):
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise TypeError(f"{type(tokenizer).__name__} is not a fast (tokenizers-backed) tokenizer; "
                        "vocabulary expansion needs one")
    return backend


def _normalize(tokenizer, text: str) -> str:
    normalizer = _backend(tokenizer).normalizer
    return normalizer.normalize_str(text) if normalizer is not None else text


def _pre_tokens(tokenizer, normalized: str) -> list[str]:
    pre_tokenizer = _backend(tokenizer).pre_tokenizer
    if pre_tokenizer is None:
        return normalized.split()
    return [piece for piece, _ in pre_tokenizer.pre_tokenize_str(normalized)]


def tokenization_stats(tokenizer, texts: Sequence[str] | Sequence[Sequence[str]], *,
                       is_split_into_words: bool = False, batch_size: int = 1000) -> dict:
    """`[UNK]` rate and pieces per word of a corpus, without special tokens.

    `texts` are strings (words: the tokenizer's pre-tokenizer words) or, with `is_split_into_words`, lists of words
    (words: the list entries, as the NER recipe feeds them). Returns `num_words`, `num_pieces`, `num_unk`,
    `unk_rate` (`[UNK]` pieces / pieces) and `pieces_per_word`.
    """
    unk_id = tokenizer.unk_token_id
    words = pieces = unknown = 0
    for start in range(0, len(texts), batch_size):
        batch = [list(t) if is_split_into_words else t for t in texts[start:start + batch_size]]
        batch = [t for t in batch if len(t)]
        if not batch:
            continue
        encoded = tokenizer(batch, add_special_tokens=False, is_split_into_words=is_split_into_words,
                            truncation=False, padding=False, verbose=False)
        for i, ids in enumerate(encoded["input_ids"]):
            pieces += len(ids)
            unknown += sum(1 for t in ids if t == unk_id)
            words += len(batch[i]) if is_split_into_words else len({w for w in encoded.word_ids(i) if w is not None})
    return {"num_words": words, "num_pieces": pieces, "num_unk": unknown,
            "unk_rate": unknown / pieces if pieces else 0.0, "pieces_per_word": pieces / words if words else 0.0}


# -------------------------------------------------------------------------------------------------------------- mining


@dataclass
class MiningReport:
    """What `mine_tokens` found. `tokens` is ranked by frequency; `counts[t]` is its corpus frequency and
    `pieces[t]` what the tokenizer made of it. The `before`/`after` dicts are `tokenization_stats` of the corpus with
    the tokenizer as is and as if `tokens` were added (words: the pre-tokenizer's words for `level="char"`, the
    segmenter's words for `level="word"`)."""

    level: str
    tokens: list[str]
    counts: dict[str, int]
    pieces: dict[str, list[str]]
    num_texts: int
    num_candidates: int
    before: dict
    after: dict

    def to_dict(self) -> dict:
        return asdict(self)

    def write_tokens(self, path: str | Path) -> None:
        """One token per line, ranked: the input of `expand` (`--tokens`)."""
        Path(path).write_text("".join(t + "\n" for t in self.tokens), encoding="utf-8")


def mine_tokens(
    texts: Sequence[str],
    tokenizer,
    *,
    min_freq: int = 2,
    max_tokens: int | None = None,
    level: str = "char",
    segmenter: str | Segmenter | None = None,
    min_pieces: int = 2,
) -> MiningReport:
    """Find the tokens an in-domain corpus needs.

    `level="char"`: every character (of the normalized text: lowercased/accent-stripped as the tokenizer does) that
    the tokenizer maps to `[UNK]`. This is what fixes Chinese text, where every ideograph is a word of its own; in
    alphabetic scripts an unknown character inside a word needs a `##` piece too, so mine words there.
    `level="word"`: every word that the tokenizer maps to pieces containing `[UNK]` or to at least `min_pieces`
    pieces. Words come from `segmenter` (`"jieba"`, a word list file, a callable; see `get_segmenter`) or, without
    one, from the tokenizer's pre-tokenizer (right for English; for Chinese pass a segmenter, since the
    pre-tokenizer makes every ideograph a word).

    Candidates seen fewer than `min_freq` times are dropped; the rest are ranked by frequency (ties: by code point)
    and cut to `max_tokens`. The `after` statistics come from the tokenizer actually expanded with the tokens.
    """
    if level not in ("char", "word"):
        raise ValueError(f"level must be 'char' or 'word', got {level!r}")
    if min_freq < 1 or min_pieces < 2:
        raise ValueError(f"min_freq must be >= 1 and min_pieces >= 2, got {min_freq} and {min_pieces}")
    texts = [t for t in texts if t and not t.isspace()]
    segmenter = get_segmenter(segmenter)
    vocab = tokenizer.get_vocab()
    unk = tokenizer.unk_token

    counts: Counter[str] = Counter()
    word_lists = None
    if level == "char":
        for text in texts:
            counts.update(ch for ch in _normalize(tokenizer, text) if not ch.isspace())
        candidates = [ch for ch in counts if ch not in vocab and tokenizer.tokenize(ch) == [unk]]
    else:
        word_lists = []
        for text in texts:
            if segmenter is not None:
                words = [w for w in segment(segmenter, text) if w.strip()]
            else:
                words = _pre_tokens(tokenizer, _normalize(tokenizer, text))
            word_lists.append(words)
            # The vocabulary form of a word: normalized, without the spaces the normalizer puts around ideographs.
            # A segmenter's unit with whitespace inside can never be one token: counted in the stats only.
            counts.update("".join(_normalize(tokenizer, w).split()) for w in words
                          if not any(ch.isspace() for ch in w))
        counts.pop("", None)
        candidates = []
        for word in counts:
            if word in vocab:
                continue
            pieces = tokenizer.tokenize(word)
            if unk in pieces or len(pieces) >= min_pieces:
                candidates.append(word)
    frequent = sorted((w for w in candidates if counts[w] >= min_freq), key=lambda w: (-counts[w], w))
    tokens = frequent[:max_tokens] if max_tokens is not None else frequent

    def stats(tok):
        if level == "char":
            return tokenization_stats(tok, texts)
        return tokenization_stats(tok, word_lists, is_split_into_words=True)

    before = stats(tokenizer)
    after = stats(expand_tokenizer(tokenizer, tokens, mode="append")[0]) if tokens else dict(before)
    return MiningReport(
        level=level, tokens=tokens, counts={t: counts[t] for t in tokens},
        pieces={t: tokenizer.tokenize(t) for t in tokens}, num_texts=len(texts), num_candidates=len(candidates),
        before=before, after=after,
    )


# ----------------------------------------------------------------------------------------------------- the tokenizer


@dataclass
class PlannedToken:
    """One token to add: its id, whether WordPiece produces it (`"piece"`) or it is an added token matched before
    the model (`"added"`), the `[unusedN]` slot it replaced (unused mode) and the old tokenizer's pieces for it."""

    token: str
    id: int
    kind: str
    old_pieces: list[str]
    replaced: str | None = None


def _check_tokens(tokenizer, tokens: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """(new tokens in order, tokens already in the vocabulary, duplicates); raises on tokens that cannot be added."""
    if isinstance(tokens, str):
        raise TypeError("tokens must be a list of strings, not one string")
    vocab = tokenizer.get_vocab()
    new, present, duplicates, seen = [], [], [], set()
    for token in tokens:
        if not isinstance(token, str):
            raise TypeError(f"tokens must be strings, got {token!r} ({type(token).__name__})")
        if token == "":
            raise ValueError("empty string in tokens")
        if any(ch.isspace() for ch in token):
            raise ValueError(f"token {token!r} contains whitespace: the pre-tokenizer splits there, so it could "
                             "never be produced; add its parts separately")
        if token in seen:
            duplicates.append(token)
            continue
        seen.add(token)
        if token in vocab:
            present.append(token)
            continue
        prefix = getattr(_backend(tokenizer).model, "continuing_subword_prefix", None)
        if prefix and token.startswith(prefix):
            raise ValueError(f"token {token!r} starts with the continuation prefix {prefix!r}; add whole words")
        normalized = "".join(_normalize(tokenizer, token).split())
        if normalized != token:
            raise ValueError(f"token {token!r} would never be produced: the tokenizer's normalizer turns it into "
                             f"{normalized!r} (lowercasing, accent stripping or control characters); "
                             f"pass {normalized!r} instead")
        new.append(token)
    return new, present, duplicates


def _is_ideographic(tokenizer, token: str) -> bool:
    """True when the normalizer treats every character as a CJK ideograph (pads it with spaces)."""
    return all(_normalize(tokenizer, ch) == f" {ch} " for ch in token)


def expand_tokenizer(tokenizer, tokens: Sequence[str], mode: str = "append"):
    """The tokenizer with `tokens` added (see the module docstring): `(new_tokenizer, planned, present, duplicates)`.

    `planned` lists a `PlannedToken` per new token; `present` the tokens already in the vocabulary and
    `duplicates` the repeated ones (both skipped). The input tokenizer is not modified.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    backend = _backend(tokenizer)
    state = json.loads(backend.to_str())
    if state["model"].get("type") != "WordPiece":
        raise ValueError(f"vocabulary expansion supports WordPiece tokenizers (the BERT family); this one is "
                         f"{state['model'].get('type')}")
    new, present, duplicates = _check_tokens(tokenizer, tokens)
    model_vocab: dict[str, int] = state["model"]["vocab"]

    if mode == "unused":
        slots = sorted((i, t) for t, i in model_vocab.items() if UNUSED_TOKEN.match(t))
        if not slots:
            raise ValueError("the tokenizer has no [unusedN] tokens to fill; use mode='append'")
        if len(new) > len(slots):
            raise ValueError(f"{len(new)} new tokens but only {len(slots)} [unusedN] slots; use mode='append' or "
                             f"add at most {len(slots)} tokens")
        assignments = [(token, i, name) for token, (i, name) in zip(new, slots)]
    else:
        size = len(tokenizer)
        if size != len(model_vocab) or max(model_vocab.values(), default=-1) != size - 1:
            raise ValueError(f"append mode needs ids 0..{size - 1} to be the WordPiece vocabulary; this tokenizer "
                             f"has {size} tokens but a WordPiece vocabulary of {len(model_vocab)} (added tokens "
                             "outside it)")
        assignments = [(token, size + k, None) for k, token in enumerate(new)]

    planned = []
    for token, token_id, replaced in assignments:
        kind = "piece" if len(_pre_tokens(tokenizer, _normalize(tokenizer, token))) == 1 else "added"
        planned.append(PlannedToken(token, token_id, kind, tokenizer.tokenize(token), replaced))
    replaced_names = {p.replaced for p in planned if p.replaced}
    for p in planned:
        if p.replaced:
            del model_vocab[p.replaced]
        model_vocab[p.token] = p.id
    # An [unusedN] slot that was registered as an added (special) token must go too, or it would keep its id.
    state["added_tokens"] = [t for t in state.get("added_tokens", []) if t["content"] not in replaced_names]

    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)
        (Path(folder) / "tokenizer.json").write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
        config_path = Path(folder) / "tokenizer_config.json"
        if config_path.exists():
            config = json.loads(config_path.read_text(encoding="utf-8"))
            decoder = config.get("added_tokens_decoder") or {}
            config["added_tokens_decoder"] = {k: v for k, v in decoder.items()
                                              if v.get("content") not in replaced_names}
            config_path.write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
        expanded = type(tokenizer).from_pretrained(folder)
    expanded.name_or_path = tokenizer.name_or_path
    words = [p for p in planned if p.kind == "added"]
    if words:
        expanded.add_tokens([
            AddedToken(p.token, normalized=not _is_ideographic(tokenizer, p.token),
                       single_word=not any(_is_ideographic(tokenizer, ch) for ch in p.token))
            for p in words
        ])
    for p in planned:
        ids = expanded(p.token, add_special_tokens=False)["input_ids"]
        if ids != [p.id]:  # a bug here, not bad input
            raise RuntimeError(f"expanded tokenizer maps {p.token!r} to {ids}, expected [{p.id}]")
    return expanded, planned, present, duplicates


# ---------------------------------------------------------------------------------------------------------- the model


@dataclass
class ExpansionReport:
    """What `expand_vocabulary` did. `added` has one dict per new token (`token`, `id`, `kind`, `old_pieces`,
    `replaced`); `output_embeddings` is `"tied"`, `"untied"` or `"none"` (no MLM head)."""

    mode: str
    init: str
    added: list[dict]
    skipped_in_vocabulary: list[str]
    skipped_duplicates: list[str]
    tokenizer_size_before: int
    tokenizer_size_after: int
    embedding_rows_before: int
    embedding_rows_after: int
    output_embeddings: str
    std: float | None = None
    seed: int | None = None
    unk_initialised: list[str] = field(default_factory=list)

    @property
    def new_token_ids(self) -> list[int]:
        return [a["id"] for a in self.added]

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / EXPANSION_REPORT_FILE
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
        return path


def _output_embeddings(model):
    output = model.get_output_embeddings()
    if output is None:
        return None, "none"
    tied = output.weight is model.get_input_embeddings().weight
    return output, "tied" if tied else "untied"


def _resolved_std(weight: torch.Tensor, std: float | None) -> float:
    """`std`, or when None the standard deviation of `weight`'s existing rows."""
    return weight.detach().float().std().item() if std is None else std


def std_argument(value: str) -> float | None:
    """Command-line `--std`: a number, or `matched` (None: the existing rows' scale)."""
    return None if value == "matched" else float(value)


def _new_rows(weight: torch.Tensor, planned: Sequence[PlannedToken], piece_ids: list[list[int]], init: str,
              std: float, generator: torch.Generator | None) -> torch.Tensor:
    """`(len(planned), hidden)` float32 rows for the new tokens, from the old matrix `weight` `(rows, hidden)`."""
    import torch

    old = weight.detach().float()
    if init == "truncated_normal":
        rows = torch.empty(len(planned), old.shape[1])
        return torch.nn.init.trunc_normal_(rows, mean=0.0, std=std, a=-2 * std, b=2 * std, generator=generator)
    if init == "piece_mean":
        return torch.stack([old[ids].mean(0) for ids in piece_ids])
    # mean_resizing: the mean of the rows that are not being filled.
    return old[_kept_rows(old.shape[0], planned)].mean(0, keepdim=True).expand(len(planned), -1)


def _new_bias(bias: torch.Tensor, planned, piece_ids, init: str) -> torch.Tensor:
    import torch

    old = bias.detach().float()
    if init == "truncated_normal":
        return torch.zeros(len(planned))
    if init == "piece_mean":
        return torch.stack([old[ids].mean() for ids in piece_ids])
    return old[_kept_rows(old.shape[0], planned)].mean().expand(len(planned))


def _kept_rows(rows: int, planned: Sequence[PlannedToken]) -> torch.Tensor:
    import torch

    keep = torch.ones(rows, dtype=torch.bool)
    keep[[p.id for p in planned if p.id < rows]] = False
    return keep


def _set_vocab_size(model, size: int) -> None:
    """Every config that carries a vocabulary size: the model's, its sub-models' and nested sub-configs (the
    encoder config inside `BertCrfConfig`)."""
    from transformers import PreTrainedConfig, PreTrainedModel

    configs = [model.config] + [m.config for m in model.modules() if isinstance(m, PreTrainedModel)]
    for config in list(configs):
        for name in getattr(config, "sub_configs", None) or {}:
            sub = getattr(config, name, None)
            if isinstance(sub, PreTrainedConfig):
                configs.append(sub)
    for config in {id(c): c for c in configs}.values():
        if getattr(config, "vocab_size", None) is not None:
            config.vocab_size = size


def expand_vocabulary(
    model,
    tokenizer,
    tokens: Sequence[str],
    mode: str = "unused",
    init: str = "truncated_normal",
    std: float | None = 0.02,
    seed: int | None = None,
):
    """Add `tokens` to `tokenizer` and `model`: `(model, new_tokenizer, ExpansionReport)`.

    `model` is any transformers model whose `get_input_embeddings()` is the tokenizer's embedding matrix: a plain
    encoder (`AutoModel`), an `AutoModelForMaskedLM` (a tied decoder and its bias grow with the embeddings; an
    untied decoder is resized and initialised on its own), a `BertCrfForTokenClassification`. It is modified in
    place and returned. `mode`: `"unused"` (fill `[unusedN]` slots) or `"append"`. `init`: `"truncated_normal"`
    (std `std`, or that of the existing rows when None), `"piece_mean"` or `"mean_resizing"` (see the module
    docstring); `seed` makes the truncated normal reproducible. Tokens already in the vocabulary and repeats are
    skipped and reported; empty strings, tokens with whitespace, tokens the normalizer would change, too few
    `[unusedN]` slots are errors.
    """
    import torch

    with torch.no_grad():  # the new rows are written into parameters in place
        if init not in INITIALISERS:
            raise ValueError(f"init must be one of {INITIALISERS}, got {init!r}")
        if std is not None and std <= 0:
            raise ValueError(f"std must be positive (or None: the existing rows' std), got {std}")
        embeddings = model.get_input_embeddings()
        if embeddings is None or not hasattr(embeddings, "weight"):
            raise TypeError(f"{type(model).__name__} has no input embedding matrix")
        rows_before = embeddings.weight.shape[0]
        if rows_before < len(tokenizer):
            raise ValueError(f"the model has {rows_before} embedding rows but the tokenizer has {len(tokenizer)} "
                             "tokens: they do not belong together")
        expanded, planned, present, duplicates = expand_tokenizer(tokenizer, tokens, mode)
        output, output_kind = _output_embeddings(model)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        unk_id = tokenizer.unk_token_id
        piece_ids = [tokenizer(p.token, add_special_tokens=False)["input_ids"] for p in planned]

        # Rows are computed from the old matrices, before anything grows.
        input_std = _resolved_std(embeddings.weight, std)
        input_rows = _new_rows(embeddings.weight, planned, piece_ids, init, input_std, generator) if planned else None
        output_rows = bias_rows = None
        if planned and output is not None:
            if output_kind == "untied":
                output_rows = _new_rows(output.weight, planned, piece_ids, init, _resolved_std(output.weight, std),
                                        generator)
            if getattr(output, "bias", None) is not None:
                bias_rows = _new_bias(output.bias, planned, piece_ids, init)

        new_size = max(rows_before, len(expanded))
        if new_size > rows_before:
            owner = model if output is not None else model.base_model
            owner.resize_token_embeddings(new_size, mean_resizing=init == "mean_resizing")
            _set_vocab_size(model, new_size)
        embeddings = model.get_input_embeddings()
        output, kind_after = _output_embeddings(model)
        if kind_after != output_kind:
            raise RuntimeError(f"resizing changed the output embeddings from {output_kind} to {kind_after}")

        # transformers initialised the rows it appended with mean_resizing; everything else is written here. The bias
        # always is: with a tied decoder transformers pads it with zeros whatever mean_resizing says.
        if planned:
            ids = torch.tensor([p.id for p in planned])
            fill = torch.tensor([not (init == "mean_resizing" and p.id >= rows_before) for p in planned])
            embeddings.weight[ids[fill]] = input_rows[fill].to(embeddings.weight.dtype)
            if output_rows is not None:
                output.weight[ids[fill]] = output_rows[fill].to(output.weight.dtype)
            if bias_rows is not None:
                output.bias[ids] = bias_rows.to(output.bias.dtype)

        report = ExpansionReport(
            mode=mode, init=init, added=[asdict(p) for p in planned], skipped_in_vocabulary=present,
            skipped_duplicates=duplicates, tokenizer_size_before=len(tokenizer), tokenizer_size_after=len(expanded),
            embedding_rows_before=rows_before, embedding_rows_after=embeddings.weight.shape[0],
            output_embeddings=output_kind, std=input_std if init == "truncated_normal" else None,
            seed=seed if init == "truncated_normal" else None,
            unk_initialised=[p.token for p, ids in zip(planned, piece_ids) if init == "piece_mean"
                             and all(i == unk_id for i in ids)],
        )
        return model, expanded, report


def save_expanded(model, tokenizer, report: ExpansionReport, folder: str | Path) -> None:
    """Model (safetensors, custom code copied where the model has it), tokenizer and `vocab_expansion.json`."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    report.save(folder)


# ------------------------------------------------------------------------------------------------------ command line


NER_FORMATS = {"ner": "auto", "conll": "conll", "char": "char", "cluener": "cluener", "ner_jsonl": "jsonl"}
CLASSIFICATION_FORMATS = {"classification": "auto", "label_text": "label_text", "text_label": "text_label",
                          "tsv": "tsv", "csv": "csv", "jsonl": "jsonl"}
TEXT_FORMATS = ("lines", *NER_FORMATS, *CLASSIFICATION_FORMATS, "squad")


def read_texts(paths: Sequence[str | Path], column: int | None = None, format: str = "lines") -> list[str]:
    """The texts of data files, for mining: every format the task readers read, read by those readers.

    ``format``:

    - ``lines``: non-empty lines of UTF-8 text files (one document or sentence per line; read by
      ``pretraining.data.text_lines``, the package's plain-text reader); with ``column``, that tab-separated field of
      each line, counting from 0 (1 for ``label<TAB>text``).
    - NER files: ``ner`` (detected per file, as the NER recipe does), ``conll``, ``char``, ``cluener``,
      ``ner_jsonl`` (``{"tokens", "ner_tags"}``). A sentence's tokens are joined with nothing when every token of
      the file is one character (character-per-line and CLUENER files: the original text), else with spaces.
    - classification files: ``classification`` (by suffix, as the classification recipe does), ``label_text``,
      ``text_label``, ``tsv``, ``csv``, ``jsonl``; the text and, for sentence pairs, the second text.
    - ``squad``: SQuAD/CMRC2018 JSON; every context once, and every question.

    Malformed files raise the readers' errors, which name the file and the line.
    """
    if format not in TEXT_FORMATS:
        raise ValueError(f"unknown format {format!r}; expected one of {', '.join(TEXT_FORMATS)}")
    if column is not None and format != "lines":
        raise ValueError(f"column is for --format lines; {format} files are read by their task's reader")
    texts = []
    for path in paths:
        if format == "lines":
            from .pretraining.data import text_lines

            texts += text_lines(path, column)
        elif format in NER_FORMATS:
            from .ner.data import load_ner_dataset

            sentences = load_ner_dataset(test_file=path, format=NER_FORMATS[format])["test"]["tokens"]
            glue = "" if all(len(token) == 1 for tokens in sentences for token in tokens) else " "
            texts += [glue.join(tokens) for tokens in sentences]
        elif format in CLASSIFICATION_FORMATS:
            from .classification.data import read_classification_file

            rows = read_classification_file(path, require_labels=False, format=CLASSIFICATION_FORMATS[format])
            texts += rows["text"]
            if "text_pair" in rows.column_names:
                texts += rows["text_pair"]
        else:
            from .qa.data import read_squad_json

            rows = read_squad_json(path, version_2_with_negative=True)
            texts += list(dict.fromkeys(rows["context"])) + list(rows["question"])
    return [text for text in texts if text.strip()]


def load_model_for_expansion(path: str):
    """The model class named in the folder's config (`BertModel`, `BertForMaskedLM`, ...), or `AutoModel` with
    custom code (the CRF model)."""
    import transformers
    from transformers import AutoConfig, AutoModel

    from .modeling import register_auto_classes

    register_auto_classes()  # a CRF folder loads as this package's model, and saving it copies its code
    config = AutoConfig.from_pretrained(path, trust_remote_code=True)
    architecture = (getattr(config, "architectures", None) or [None])[0]
    model_class = getattr(transformers, architecture, None) if architecture else None
    if model_class is not None:
        return model_class.from_pretrained(path)
    return AutoModel.from_pretrained(path, trust_remote_code=True)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m hf_bert_tasks.vocab mine|expand ...` (see `--help` of each)."""
    parser = argparse.ArgumentParser(prog="python -m hf_bert_tasks.vocab", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    defaults = argparse.ArgumentDefaultsHelpFormatter
    mine = commands.add_parser("mine", help="rank the characters/words a corpus needs; write them one per line",
                               formatter_class=defaults)
    mine.add_argument("--tokenizer", required=True, help="tokenizer (or model) folder or Hub id")
    mine.add_argument("--files", nargs="+", required=True,
                      help="UTF-8 data files: text lines, or the files of a task (see --format)")
    mine.add_argument("--format", choices=TEXT_FORMATS, default="lines",
                      help="lines: one document or sentence a line; ner (detected as the NER recipe does), conll, "
                           "char, cluener, ner_jsonl: NER files, sentences rebuilt from their tokens; "
                           "classification (by suffix), label_text, text_label, tsv, csv, jsonl: the texts of "
                           "classification files; squad: SQuAD/CMRC2018 contexts and questions")
    mine.add_argument("--column", type=int, default=None,
                      help="--format lines: read this tab-separated field of each line, counting from 0 "
                           "(1 for label<TAB>text); default: the whole line")
    mine.add_argument("--level", choices=["char", "word"], default="char",
                      help="char: characters the tokenizer maps to [UNK]; word: words it splits or loses")
    mine.add_argument("--segmenter", default=None, help="word level: 'jieba' or a word list file")
    mine.add_argument("--min_freq", type=int, default=2, help="drop candidates seen fewer times")
    mine.add_argument("--max_tokens", type=int, default=None, help="keep at most this many (default: all)")
    mine.add_argument("--min_pieces", type=int, default=2, help="word level: a word with this many pieces is mined")
    mine.add_argument("--output", required=True, help="tokens file to write (one per line, ranked)")
    mine.add_argument("--report", default=None, help="JSON report to write (counts, pieces, before/after stats)")

    expand = commands.add_parser("expand", help="add tokens to a model + tokenizer folder and save the result",
                                 formatter_class=defaults)
    expand.add_argument("--model", required=True, help="model folder (encoder, masked LM or bert_crf)")
    expand.add_argument("--tokens", default=None, help="tokens file, one per line (e.g. from `mine`)")
    expand.add_argument("--token", nargs="*", default=[], help="tokens given on the command line")
    expand.add_argument("--mode", choices=MODES, default="unused",
                        help="unused: fill [unusedN] slots; append: new ids, the embeddings grow")
    expand.add_argument("--init", choices=INITIALISERS, default="truncated_normal",
                        help="new rows: truncated normal, mean of the old pieces' rows, or transformers' mean")
    expand.add_argument("--std", type=std_argument, default=0.02,
                        help="truncated normal standard deviation, or 'matched': that of the existing rows")
    expand.add_argument("--seed", type=int, default=None, help="seed of the truncated normal draws")
    expand.add_argument("--output_dir", required=True)
    args = parser.parse_args(argv)
    from .progress import quiet_short_bars

    quiet_short_bars()  # no "Loading weights" bar for a load of a second

    from transformers import AutoTokenizer

    if args.command == "mine":
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer, trust_remote_code=True)
        if args.column is not None and args.format != "lines":
            parser.error(f"--column is for --format lines; {args.format} files are read by their task's reader")
        report = mine_tokens(read_texts(args.files, args.column, args.format), tokenizer, min_freq=args.min_freq,
                             max_tokens=args.max_tokens, level=args.level, segmenter=args.segmenter,
                             min_pieces=args.min_pieces)
        report.write_tokens(args.output)
        if args.report:
            Path(args.report).write_text(json.dumps(report.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
        print(f"{len(report.tokens)} tokens (of {report.num_candidates} candidates) -> {args.output}")
        for name in ("before", "after"):
            s = getattr(report, name)
            print(f"{name:6}: [UNK] rate {100 * s['unk_rate']:.2f}%, {s['pieces_per_word']:.3f} pieces per word")
        return

    tokens = []
    if args.tokens:
        tokens = [line for line in Path(args.tokens).read_text(encoding="utf-8").splitlines() if line]
    tokens += args.token
    if not tokens:
        parser.error("expand needs --tokens FILE or --token T ...")
    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=True)
    model = load_model_for_expansion(args.model)
    model, tokenizer, report = expand_vocabulary(model, tokenizer, tokens, mode=args.mode, init=args.init,
                                                 std=args.std, seed=args.seed)
    save_expanded(model, tokenizer, report, args.output_dir)
    print(f"added {len(report.added)} tokens ({args.mode}, {args.init}); skipped {len(report.skipped_in_vocabulary)} "
          f"already in the vocabulary and {len(report.skipped_duplicates)} repeats; tokenizer "
          f"{report.tokenizer_size_before} -> {report.tokenizer_size_after}; saved to {args.output_dir}")


if __name__ == "__main__":
    main()
