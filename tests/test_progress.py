"""hf_bert_tasks.progress: the bars of long work only (transformers' loading and saving bars after a delay, datasets'
bars off for small data), checked on what a real load, save and map print."""

import contextlib
import io
import time

import datasets
import pytest
from transformers import BertModel
from transformers.utils import logging as transformers_logging

from conftest import tiny_bert_config
from hf_bert_tasks.progress import LONG_WORK_SECONDS, SMALL_DATA_ROWS, quiet_short_bars, quiet_small_data_bars


@pytest.fixture
def restore_bars():
    """The libraries' own settings before and after (a recipe run in this process changes them)."""
    transformers_logging.set_tqdm_hook(None)
    datasets.enable_progress_bars()
    yield
    transformers_logging.set_tqdm_hook(None)
    datasets.enable_progress_bars()


def printed(work) -> str:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        work()
    return err.getvalue()


def test_loading_and_saving_a_model_draw_no_bar(tmp_path, restore_bars):
    model = BertModel(tiny_bert_config())
    transformers_logging.enable_progress_bar()
    assert "Writing model shards" in printed(lambda: model.save_pretrained(tmp_path / "before"))
    assert "Loading weights" in printed(lambda: BertModel.from_pretrained(tmp_path / "before"))
    quiet_short_bars()
    assert printed(lambda: model.save_pretrained(tmp_path / "after")) == ""
    assert "Loading weights" not in printed(lambda: BertModel.from_pretrained(tmp_path / "after"))


def test_a_transformers_bar_still_shows_for_long_work(restore_bars):
    quiet_short_bars()

    def slow():
        for _ in transformers_logging.tqdm(range(3), desc="slow work"):
            time.sleep(LONG_WORK_SECONDS / 2 + 0.1)

    assert "slow work" in printed(slow)
    assert printed(lambda: list(transformers_logging.tqdm(range(3), desc="quick work"))) == ""


def test_datasets_bars_only_for_large_data(restore_bars):
    small = datasets.Dataset.from_dict({"x": list(range(10))})
    assert "Map" in printed(lambda: small.map(lambda row: row))
    quiet_small_data_bars([SMALL_DATA_ROWS])  # one large split: bars stay
    assert "Map" in printed(lambda: small.map(lambda row: row))
    quiet_small_data_bars([None, 10])  # a streamed split counts as large
    assert "Map" in printed(lambda: small.map(lambda row: row))
    quiet_small_data_bars([10, SMALL_DATA_ROWS - 1])
    assert printed(lambda: small.map(lambda row: row)) == ""
