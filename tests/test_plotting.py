"""Plot helpers draw the data they are given (checked on the returned Figure, without showing it)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from llmguide.plotting import compare_runs  # noqa: E402


def history(batch: int, steps: int) -> pd.DataFrame:
    step = np.arange(1, steps + 1)
    val = np.where(step % 2 == 0, 5.0 - step / steps, np.nan)  # evaluated every other step
    return pd.DataFrame({"step": step, "tokens": step * batch * 128, "val_loss": val})


def test_compare_runs_plots_each_run_against_the_chosen_column():
    runs = {"small batch": history(4, 10), "large batch": history(16, 6)}
    fig = compare_runs(runs, x="tokens", xscale="log", title="t")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == list(runs)
    for line, h in zip(ax.lines, runs.values(), strict=True):
        evaluated = h.dropna(subset=["val_loss"])
        np.testing.assert_array_equal(line.get_xdata(), evaluated.tokens)
        np.testing.assert_array_equal(line.get_ydata(), evaluated.val_loss)
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "tokens"
    by_step = compare_runs(runs).axes[0]
    np.testing.assert_array_equal(by_step.lines[0].get_xdata(), [2, 4, 6, 8, 10])
    assert by_step.get_xscale() == "linear"
