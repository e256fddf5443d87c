"""Which progress bars the package's programs (the recipes, the predictor command line, the Space) show: the bars of
long work only.

transformers 5 draws a bar for every model it loads ("Loading weights 45/45") and every one it saves ("Writing model
shards"), and datasets one per split for every ``map`` ("Map"), however short the work. :func:`quiet_short_bars`
gives transformers' bars a delay of :data:`LONG_WORK_SECONDS` (a bar appears only once its work has lasted that
long, as tqdm's ``delay`` does), and :func:`quiet_small_data_bars` turns datasets' bars off for small data. The
Trainer's own training and evaluation bars and the Hub's download bars are left as they are. Process-wide: the
programs call these, the library's classes never do.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["LONG_WORK_SECONDS", "SMALL_DATA_ROWS", "quiet_short_bars", "quiet_small_data_bars"]

LONG_WORK_SECONDS = 2.0
# Below this many rows in every split, datasets' work (map, cast, filter) takes a second or so: no bars.
SMALL_DATA_ROWS = 10_000


def _delayed(factory, args, kwargs):
    return factory(*args, **{"delay": LONG_WORK_SECONDS, **kwargs})


def quiet_short_bars() -> None:
    """transformers' own bars (loading and saving weights) appear only for work lasting over
    :data:`LONG_WORK_SECONDS` (idempotent)."""
    from transformers.utils import logging

    logging.set_tqdm_hook(_delayed)


def quiet_small_data_bars(split_sizes: Iterable[int | None]) -> None:
    """datasets' progress bars off when every split has fewer than :data:`SMALL_DATA_ROWS` rows (a split of unknown
    size, a streamed one, counts as large)."""
    import datasets

    if all(size is not None and size < SMALL_DATA_ROWS for size in split_sizes):
        datasets.disable_progress_bars()
