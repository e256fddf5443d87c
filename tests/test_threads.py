"""Torch's threads in a predicting process (hf_bert_tasks/modeling/threads.py); the doors that use them are tested
with their doors: the command line (test_predictor_cli.py), the Space (test_demo.py), the endpoint handler
(test_endpoint.py)."""

import pytest
import torch

from hf_bert_tasks.modeling.threads import share_threads, usable_cores, whole_number_variable


def test_threads_are_shared_among_workers_unless_given(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert share_threads(1) == 1 and torch.get_num_threads() == 1
        assert share_threads(None) == 1  # one worker: the current setting stands
        assert share_threads(None, workers=2) == max(1, usable_cores() // 2) == torch.get_num_threads()
        assert share_threads(None, workers=10 * usable_cores()) == 1
        torch.set_num_threads(3)
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        assert share_threads(None, workers=2) == 3  # the user's OMP_NUM_THREADS stands
        with pytest.raises(ValueError, match="threads must be at least 1, got 0"):
            share_threads(0)
    finally:
        torch.set_num_threads(before)


def test_a_thread_variable_is_a_whole_number_of_at_least_one(monkeypatch):
    monkeypatch.delenv("THREADS", raising=False)
    assert whole_number_variable("THREADS", "the Space") is None
    for value, expected in (("", None), ("  ", None), (" 3 ", 3)):
        monkeypatch.setenv("THREADS", value)
        assert whole_number_variable("THREADS", "the Space") == expected
    for bad in ("0", "-1", "two", "1.5", "\u00b2"):  # "²" is a digit to str.isdigit, not a number to int()
        monkeypatch.setenv("THREADS", bad)
        with pytest.raises(ValueError, match=f"^the endpoint variable THREADS must be a whole number of at least 1, "
                                             f"got '{bad}'$"):
            whole_number_variable("THREADS", "the endpoint")
