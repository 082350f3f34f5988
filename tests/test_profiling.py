"""Timing and memory helpers: best_time keeps the fastest run and validates its arguments; peak_bytes sees
a tensor allocated inside the step."""

from __future__ import annotations

import time

import pytest
import torch

from llmguide.profiling import best_time, peak_bytes


def test_best_time_is_the_fastest_of_the_runs():
    delays = iter([0.06, 0.01, 0.04])
    calls = []

    def work():
        calls.append(1)
        time.sleep(next(delays))

    best = best_time(work, repeats=3, device="cpu")
    assert len(calls) == 3
    assert 0.01 <= best < 0.04  # the 10 ms run, not the mean (~37 ms) nor the slowest


@pytest.mark.parametrize("repeats", [0, -1, 1.5, True])
def test_best_time_rejects_a_bad_repeat_count(repeats):
    with pytest.raises(ValueError, match=r"repeats must be an int >= 1"):
        best_time(lambda: None, repeats=repeats)


def test_peak_bytes_sees_an_allocation_inside_the_step():
    n = 1_000_000

    def step():
        x = torch.ones(n)  # 4 MB alive until the sum is done
        x.sum()

    assert peak_bytes(step, torch.device("cpu")) >= 4 * n
