"""Windows of whole words over text longer than the model's window, shared by NER inputs and MLM pretraining.

Nothing is truncated: a text longer than one window is cut into overlapping windows that start and end at word
boundaries; each task says how it merges the windows' predictions (``ner.inputs.merge_windows``).
"""

from collections.abc import Sequence


def plan_windows(piece_counts: Sequence[int], max_pieces: int, stride: int) -> list[tuple[int, int]]:
    """Word ranges `[start, end)` covering all words, each holding at most `max_pieces` pieces (a longer single word
    gets a window of its own), consecutive windows overlapping by at most `stride` pieces of whole words."""
    if max_pieces < 1:
        raise ValueError(f"windows must hold at least one word piece, got {max_pieces}")
    if stride >= max_pieces:
        raise ValueError(f"stride ({stride}) must be smaller than the window ({max_pieces} pieces)")
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
