"""Words to model inputs and predictions back to words: windows of whole words, label alignment over word pieces.

Part of the custom code that ships with a CRF model (the standard library and ``.tagging``, hence torch, only): the
pipeline (``pipeline_bert_crf.py``), ``NerPredictor``, the NER recipe and MLM pretraining (``plan_windows``) all use
it.

Nothing is truncated. A sentence (or a whole document) that does not fit the encoder's window is cut into overlapping
windows of whole words (``plan_windows``): each window holds at most `max_length` tokens with special tokens, windows
start at word boundaries and overlap by up to `stride` word pieces. When merging, every word takes its prediction from
the window in which its first piece lies farthest from the window's edges (the most context on both sides), so every
word gets exactly one prediction. The one exception: a single word with more pieces than a window holds keeps its
first `max_length - 2` pieces (its label sits on the first piece, so it is still predicted).

Each window is labelled as a sequence of its own: entity spans are clipped to the window and re-encoded, so a window
that starts inside an entity starts with `B-` (never with an `I-` that a constrained CRF forbids at the start). A
word's prediction comes from a window where it has at least about `stride / 2` pieces on either side, so merging is
exact for entities shorter than that; a longer entity crossing a window seam may come back split in two.
"""

import bisect
import itertools
from collections.abc import Sequence

from .tagging import Span, align_labels, entities_from_words, spans_to_tags, tags_to_spans, word_tags_from_pieces


def check_stride(stride: int, room: int, name: str = "stride", room_parts: str = "") -> None:
    """Refuse an overlap of consecutive windows that is negative or not smaller than a window's room for text
    (``room`` tokens; ``room_parts`` says how it comes about): the windows would hardly advance. The NER, classification
    and QA windows all check their stride here."""
    if not 0 <= stride < room:
        raise ValueError(f"{name} {stride} must be at least 0 and smaller than a window's room for text, {room} "
                         f"tokens{room_parts}: use {name} {max(room // 4, 0)} or so, or longer windows")


def plan_windows(piece_counts: Sequence[int], max_pieces: int, stride: int) -> list[tuple[int, int]]:
    """Word ranges `[start, end)` covering all words, each holding at most `max_pieces` pieces (a longer single word
    gets a window of its own), consecutive windows overlapping by at most `stride` pieces of whole words."""
    if max_pieces < 1:
        raise ValueError(f"windows must hold at least one word piece, got {max_pieces}")
    check_stride(stride, max_pieces)
    windows, start, n = [], 0, len(piece_counts)
    while start < n:
        end, total = start, 0
        while end < n and (end == start or total + piece_counts[end] <= max_pieces):
            total += piece_counts[end]
            end += 1
        windows.append((start, end))
        if end == n:
            break
        next_start, overlap = end, 0
        while next_start - 1 > start and overlap + piece_counts[next_start - 1] <= stride:
            next_start -= 1
            overlap += piece_counts[next_start]
        start = next_start
    return windows


# Windows tokenized at once by `iter_windows` (and words counted at once): memory bounded by these, not by the text.
WINDOW_GROUP = 256
COUNT_GROUP = 4096


def encode_words(
    tokenizer,
    sentences: Sequence[Sequence[str]],
    *,
    max_length: int,
    stride: int,
    scheme: str,
    strategy: str,
    label2id: dict[str, int] | None = None,
    tags: Sequence[Sequence[str]] | None = None,
    document_ids: Sequence[str] | None = None,
    context_window: int = 0,
) -> dict[str, list]:
    """Tokenize word lists into windowed features.

    With `context_window > 0`, each window of a sentence is surrounded by up to `context_window` word pieces of
    context (whole words, split evenly left and right, the rest of one side going to the other, never beyond
    `max_length`): the words around it in its own sentence and in the neighbouring sentences of the same document
    (consecutive sentences with equal `document_ids`; all sentences form one document when it is None). Context
    tokens carry no label and no loss; only the window's own words are tagged.

    Returns columns (one entry per window): `input_ids`, `attention_mask`, `token_type_ids` (when the tokenizer
    makes them), `tag_mask` (1 where a token carries a word's label under `strategy`), `labels` (tag ids, -100
    where no label; only with `tags`), `example_index` (the sentence it came from) and `word_ids` (index of the word
    in its sentence, -1 for special and context tokens). Sentences without words produce no window.
    """
    features: dict[str, list] = {key: [] for key in ("input_ids", "attention_mask", "tag_mask", "example_index",
                                                     "word_ids")}
    if tags is not None:
        features["labels"] = []
    for window in iter_windows(tokenizer, sentences, max_length=max_length, stride=stride, scheme=scheme,
                               strategy=strategy, label2id=label2id, tags=tags, document_ids=document_ids,
                               context_window=context_window):
        for key, value in window.items():
            features.setdefault(key, []).append(value)
    return features


def iter_windows(tokenizer, sentences: Sequence[Sequence[str]], *, max_length: int, stride: int, scheme: str,
                 strategy: str, label2id: dict[str, int] | None = None, tags: Sequence[Sequence[str]] | None = None,
                 document_ids: Sequence[str] | None = None, context_window: int = 0):
    """`encode_words` one window at a time, in the same order: a dict of that window's columns per window. Words
    are counted `COUNT_GROUP` at a time and windows tokenized `WINDOW_GROUP` at a time, so that a long text's
    windows are never all held (the pipeline streams them)."""
    if tags is not None and label2id is None:
        raise ValueError("label2id is needed to encode tags")
    if document_ids is not None and len(document_ids) != len(sentences):
        raise ValueError(f"{len(document_ids)} document ids for {len(sentences)} sentences")
    specials = tokenizer.num_special_tokens_to_add(False)
    budget = max_length - specials
    check_stride(stride, budget, room_parts=f" (max_length {max_length} - {specials} special tokens)")
    counts = _piece_counts(tokenizer, sentences)

    def planned():
        for example_index, words in enumerate(sentences):
            for start, end in plan_windows(counts[example_index], budget, stride):
                room = min(context_window, budget - sum(counts[example_index][start:end]))
                left, right = _context(sentences, counts, document_ids, example_index, start, end, room)
                yield example_index, start, end, left + list(words[start:end]) + right, len(left)

    spans = {}
    plan = planned()
    while chunk := list(itertools.islice(plan, WINDOW_GROUP)):
        encoded = tokenizer([words for _, _, _, words, _ in chunk], is_split_into_words=True, truncation=True,
                            max_length=max_length)
        for i, (example_index, start, end, _, left) in enumerate(chunk):
            length = end - start
            # Word ids relative to the window's own words; context words become None like special tokens.
            local_word_ids = [None if w is None or not left <= w < left + length else w - left
                              for w in encoded.word_ids(i)]
            if tags is None:
                local_tags = ["O"] * length
            else:
                if example_index not in spans:
                    spans[example_index] = tags_to_spans(tags[example_index], scheme)
                clipped = [Span(s.type, max(s.start, start) - start, min(s.end, end) - start)
                           for s in spans[example_index] if s.end > start and s.start < end]
                local_tags = spans_to_tags(clipped, length, scheme)
            aligned = align_labels(local_word_ids, local_tags, scheme, strategy)
            window = {key: encoded[key][i] for key in ("input_ids", "attention_mask", "token_type_ids")
                      if key in encoded}
            window["tag_mask"] = [int(tag is not None) for tag in aligned]
            if tags is not None:
                window["labels"] = [-100 if tag is None else label2id[tag] for tag in aligned]
            window["example_index"] = example_index
            window["word_ids"] = [-1 if w is None else w + start for w in local_word_ids]
            yield window


def _piece_counts(tokenizer, sentences: Sequence[Sequence[str]]) -> list[list[int]]:
    """The number of word pieces of each word, about `COUNT_GROUP` words tokenized at a time (a word's pieces do not
    depend on its neighbours when the words are given pre-split)."""
    counts: list[list[int]] = [[0] * len(words) for words in sentences]
    segments = ((e, start) for e, words in enumerate(sentences) for start in range(0, len(words), COUNT_GROUP))

    def count(batch):
        pieces = tokenizer([list(sentences[e][start:start + COUNT_GROUP]) for e, start in batch],
                           is_split_into_words=True, add_special_tokens=False, return_attention_mask=False,
                           return_token_type_ids=False, verbose=False)
        for k, (e, start) in enumerate(batch):
            for word_id in pieces.word_ids(k):
                counts[e][start + word_id] += 1

    batch, words = [], 0
    for e, start in segments:
        batch.append((e, start))
        words += min(COUNT_GROUP, len(sentences[e]) - start)
        if words >= COUNT_GROUP:
            count(batch)
            batch, words = [], 0
    if batch:
        count(batch)
    return counts


def _context(sentences, counts, document_ids, example_index, start, end, room) -> tuple[list[str], list[str]]:
    """Whole words before and after `sentences[example_index][start:end]` within its document, at most `room`
    pieces in all: half for each side first, then what one side leaves to the other."""
    if room <= 0:
        return [], []

    def same_document(other):
        return document_ids is None or document_ids[other] == document_ids[example_index]

    def stream(step):
        """(word, pieces) moving away from the window: rest of the sentence, then neighbouring sentences."""
        e = example_index
        positions = range(start - 1, -1, -1) if step < 0 else range(end, len(sentences[e]))
        while True:
            for p in positions:
                yield sentences[e][p], counts[e][p]
            e += step
            if not (0 <= e < len(sentences)) or not same_document(e):
                return
            positions = range(len(sentences[e]) - 1, -1, -1) if step < 0 else range(len(sentences[e]))

    taken, used, pending = {-1: [], 1: []}, {-1: 0, 1: 0}, {-1: None, 1: None}
    streams = {-1: stream(-1), 1: stream(1)}

    def take(side, limit):
        while True:
            if pending[side] is None:
                pending[side] = next(streams[side], ())
            if not pending[side] or used[side] + pending[side][1] > limit:
                return
            taken[side].append(pending[side][0])
            used[side] += pending[side][1]
            pending[side] = None

    take(-1, room // 2)
    take(1, room - used[-1])
    take(-1, room - used[1])
    return taken[-1][::-1], taken[1]


def merge_windows(
    word_ids: Sequence[Sequence[int]],
    example_index: Sequence[int],
    piece_tags: Sequence[Sequence[str | None]],
    num_words: Sequence[int],
    *,
    scheme: str,
    strategy: str,
    piece_scores: Sequence[Sequence[float]] | None = None,
) -> tuple[list[list[str]], list[list[float | None]]]:
    """Word-level tags (and scores) per sentence from window-level piece predictions.

    `word_ids`, `example_index` come from `encode_words`; `piece_tags[i][p]` is the predicted tag of token `p` of
    window `i` (None where unlabelled), `piece_scores[i][p]` its score (lists or arrays); `num_words[e]` the length of
    sentence `e`. Each word uses the window in which
    its first piece is farthest from an edge. The returned tags are valid in `scheme` (repaired, see
    `tagging.word_tags_from_pieces`); a word's score is that of its first piece (0.0 when no scores are given).
    A word without pieces (all its characters deleted by the tokenizer: U+FFFD, private use, ...) is no word to the
    model: the tags are read over the other words, the pieceless word belongs to the entity around it (else `O`) and
    its score is None (`entities_of_words` leaves it out of the entity's mean).
    """
    # Per sentence and word: the window it takes, the position of its first piece there and that piece's distance to
    # the nearest window edge (-1: no window yet). Flat lists of ints, a few bytes a word, however long the text.
    best_window = [[-1] * n for n in num_words]
    best_first = [[-1] * n for n in num_words]
    best_distance = [[-1] * n for n in num_words]
    for window, (ids, e) in enumerate(zip(word_ids, example_index)):
        last, previous = len(ids) - 1, -1
        windows_e, firsts_e, distances_e = best_window[e], best_first[e], best_distance[e]
        for p, w in enumerate(ids):
            if w >= 0 and w != previous:  # the first piece of word w in this window (a word's pieces are consecutive)
                distance = min(p, last - p)
                if distance > distances_e[w]:
                    distances_e[w], windows_e[w], firsts_e[w] = distance, window, p
            previous = w
    all_tags, all_scores = [], []
    for e, n in enumerate(num_words):
        seen = [w for w in range(n) if best_window[e][w] >= 0]
        global_word_ids, global_tags, scores = [], [], [None] * n
        for k, w in enumerate(seen):
            window, p = best_window[e][w], best_first[e][w]
            ids, tags = word_ids[window], piece_tags[window]
            scores[w] = 0.0 if piece_scores is None else float(piece_scores[window][p])
            while p < len(ids) and ids[p] == w:
                global_word_ids.append(k)
                global_tags.append(tags[p])
                p += 1
        tags = word_tags_from_pieces(global_word_ids, global_tags, len(seen), scheme, strategy) if seen else []
        if len(seen) < n:
            tags = _spread_over_pieceless(tags, seen, n, scheme)
        all_tags.append(tags)
        all_scores.append(scores)
    return all_tags, all_scores


def _spread_over_pieceless(tags: list[str], seen: list[int], n: int, scheme: str) -> list[str]:
    """Tags of all `n` words from the `tags` of the words `seen` (those with pieces): an entity covers the pieceless
    words between its own, other pieceless words are `O`."""
    spans = [Span(s.type, seen[s.start], seen[s.end - 1] + 1) for s in tags_to_spans(tags, scheme)]
    return spans_to_tags(spans, n, scheme)


def entities_of_words(text: str, words: Sequence[tuple[str, int, int]], tags: Sequence[str],
                      scores: Sequence[float | None], scheme: str) -> list[dict]:
    """`tagging.entities_from_words` over the words the model saw: a word whose score is None (no pieces, see
    `merge_windows`) is left out, so an entity around it still spans it (exact offsets, `text[start:end]`) and its
    score is the mean over its words that have pieces."""
    kept = [i for i, score in enumerate(scores) if score is not None]
    if len(kept) < len(words):
        words, tags, scores = [words[i] for i in kept], [tags[i] for i in kept], [scores[i] for i in kept]
    return entities_from_words(text, list(words), tags, scheme, scores)


class WindowCollator:
    """Pads a list of windows (dicts from `encode_words` columns) to the longest in the batch.

    Pad values: the tokenizer's pad id for `input_ids`, 0 for `attention_mask`/`token_type_ids`/`tag_mask`, -100
    for `labels`; the span model's `labels` (lists of spans from `window_span_labels`) become `(batch, most spans,
    3)`, padded with rows of -100. Other keys (`example_index`, `word_ids`) are
    dropped.
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        self.pad_values = {"input_ids": pad_token_id, "attention_mask": 0, "token_type_ids": 0, "tag_mask": 0,
                           "labels": -100}
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, windows: Sequence[dict]):
        import torch

        width = max(len(w["input_ids"]) for w in windows)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        # The span model's labels are lists of spans (maybe empty), never a tag id per token.
        spans = "labels" in windows[0] and all(not w["labels"] or not isinstance(w["labels"][0], int)
                                               for w in windows)
        batch = {
            key: torch.tensor([list(w[key]) + [pad] * (width - len(w[key])) for w in windows])
            for key, pad in self.pad_values.items()
            if key in windows[0] and not (spans and key == "labels")
        }
        if spans:
            most = max(max(len(w["labels"]) for w in windows), 1)
            batch["labels"] = torch.tensor([[list(span) for span in w["labels"]] + [[-100] * 3] * (most - len(
                w["labels"])) for w in windows]).reshape(len(windows), most, 3)
        return batch


# -- spans (the global pointer model): gold spans per window, and window spans back to sentences ------------------


def window_span_labels(word_ids: Sequence[int], entities: Sequence[tuple[int, int, int]]) -> list[list[int]]:
    """The gold spans of one window as `[type id, start position, end position]` (end inclusive), each end the
    first piece of its word: the entities `(type id, start word, end word exclusive)` of the window's sentence whose
    first and last words both lie in the window (`word_ids` as `encode_words` gives them). An entity cut by the
    window's edge is not there: it is learnt, and predicted, from a window that holds it whole."""
    first: dict[int, int] = {}
    for p, w in enumerate(word_ids):
        if w >= 0 and w not in first:
            first[w] = p
    return [[kind, first[start], first[end - 1]] for kind, start, end in entities
            if start in first and end - 1 in first]


def merge_span_windows(
    word_ids: Sequence[Sequence[int]],
    example_index: Sequence[int],
    window_spans: Sequence[Sequence[tuple]],
    num_sentences: int,
) -> list[list[tuple]]:
    """Sentence-level spans from window-level ones.

    `word_ids`, `example_index` come from `encode_words`; `window_spans[i]` holds the spans found in window `i` as
    `(type, start position, end position (inclusive), score)`. A span is taken from the window in which it has the
    most context: where the smaller of (its first piece's distance to the window's start, its last word's first
    piece's distance to the window's end) is largest, the earlier window on ties. So each (start, end) pair is
    judged by exactly one window, whatever the others said.

    Returns per sentence `(type, start word, end word (exclusive), score)`, sorted by start, end, type.
    """
    ranges: list[list[tuple[int, int, int]]] = [[] for _ in range(num_sentences)]  # (first word, last word, window)
    for window, (ids, e) in enumerate(zip(word_ids, example_index)):
        own = [w for w in ids if w >= 0]
        if own:
            ranges[e].append((own[0], own[-1], window))
    firsts = [[first for first, _, _ in r] for r in ranges]
    positions: dict[int, dict[int, int]] = {}  # window -> word -> its first piece, built for the windows asked

    def context(window: int, start: int, end: int) -> int:
        if window not in positions:
            positions[window] = {}
            for p, w in enumerate(word_ids[window]):
                if w >= 0:
                    positions[window].setdefault(w, p)
        return min(positions[window][start], len(word_ids[window]) - 1 - positions[window][end])

    merged: list[list[tuple]] = [[] for _ in range(num_sentences)]
    for window, spans in enumerate(window_spans):
        e = example_index[window]
        for kind, start_position, end_position, score in spans:
            start, end = word_ids[window][start_position], word_ids[window][end_position]
            # Windows advance through the sentence: those holding both words are a run ending before the first
            # window that starts after `start`.
            candidates, k = [], bisect.bisect_right(firsts[e], start) - 1
            while k >= 0 and ranges[e][k][1] >= end:
                candidates.append(ranges[e][k][2])
                k -= 1
            best = max(candidates, key=lambda w: (context(w, start, end), -w))
            if best == window:
                merged[e].append((kind, start, end + 1, score))
    return [sorted(spans, key=lambda span: (span[1], span[2], span[0])) for spans in merged]
