"""Plot helpers draw the data they are given (checked on the returned Figure, without showing it), and every
figure can draw Chinese with the font the package ships."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.font_manager  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from llmguide.plotting import (  # noqa: E402
    cjk_font_path,
    compare_runs,
    confusion_heatmap,
    heatmap,
    register_cjk_font,
    set_style,
)

CHINESE = "注意力"  # attention
TOKENS = ["猫", "坐", "在", "垫子", "上"]  # the cat sat on the mat


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


# ------------------------------------------------------------------- Chinese in figures

@pytest.fixture
def style():
    """set_style() for one test; rcParams return to what they were afterwards."""
    with matplotlib.rc_context():
        yield set_style()
    plt.close("all")


def chinese_figure():
    """A figure with Chinese in the title, the tick labels, the axis labels and a heatmap's labels."""
    fig = heatmap(np.eye(len(TOKENS)), xlabels=TOKENS, ylabels=TOKENS, title=f"{CHINESE} attention",
                  xlabel="键 key", ylabel="查询 query")
    return fig


def missing_glyphs(make_figure) -> list[str]:
    """Build a figure with ``make_figure()``, draw it, and return matplotlib's "Glyph ... missing from
    font(s) ..." warnings (the helpers' tight_layout() already lays text out, so building is watched too)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = make_figure()
        fig.canvas.draw()
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def test_the_shipped_font_is_noto_sans_cjk_under_the_ofl():
    path = cjk_font_path()
    assert path.suffix == ".otf" and path.stat().st_size > 10_000_000  # a full CJK font, not a subset
    font = matplotlib.ft2font.FT2Font(str(path))
    assert font.family_name == "Noto Sans CJK SC"
    licence = {key[3]: value for key, value in font.get_sfnt().items() if key[:3] == (1, 0, 0)}[13]  # name ID 13
    assert b"SIL Open Font License" in licence
    for char in CHINESE + "".join(TOKENS) + "正面负面":
        assert font.get_char_index(ord(char)) != 0, char  # glyph 0 is .notdef, the empty box


def test_chinese_draws_without_missing_glyphs_after_set_style(style):
    assert plt.rcParams["font.family"] == ["sans-serif", "Noto Sans CJK SC"]
    assert chinese_figure().axes[0].get_xticklabels()[0].get_text() == "猫"
    assert missing_glyphs(chinese_figure) == []
    assert missing_glyphs(lambda: confusion_heatmap([[700, 133], [141, 692]], ["负面", "正面"],
                                                    title="混淆矩阵 confusion matrix")) == []
    # Latin text keeps the sans-serif font (DejaVu Sans here, Arial on a Mac): the CJK font is only the fallback.
    # _find_fonts_by_props is the (private) lookup matplotlib's text drawing uses for its fallback chain.
    manager, props = matplotlib.font_manager.fontManager, matplotlib.font_manager.FontProperties
    first, fallback = manager._find_fonts_by_props(props(family=plt.rcParams["font.family"]))
    assert Path(first) == Path(manager.findfont(props(family=["sans-serif"]))) != cjk_font_path()
    # The fallback is Noto Sans CJK SC: the copy mplfonts carries, or the system's when one is installed under
    # the same name (Debian's fonts-noto-cjk, which CI installs for the browser test); both draw every glyph above.
    names = {f.name for f in manager.ttflist if Path(f.fname) == Path(fallback)}
    assert "Noto Sans CJK SC" in names, (fallback, names)


def test_the_check_fails_with_a_latin_only_font(style):
    # The same figure with the CJK font taken out of the fallback list must warn: the check above can fail.
    with matplotlib.rc_context({"font.family": ["sans-serif"]}):
        missing = missing_glyphs(chinese_figure)
    assert missing and all("DejaVu Sans" in message for message in missing)
    assert any(f"({CHINESE[0]!r})" in m or "CJK UNIFIED IDEOGRAPH-6CE8" in m for m in missing), missing


def test_set_style_changes_no_matplotlib_config_file(style):
    def snapshot() -> dict[str, float]:
        folders = {Path(matplotlib.get_configdir()), Path(matplotlib.get_cachedir()), Path(matplotlib.get_data_path())}
        return {str(f): f.stat().st_mtime for d in folders if d.is_dir() for f in d.rglob("*") if f.is_file()}

    before = snapshot()
    set_style()
    register_cjk_font()  # a second registration adds nothing either
    assert snapshot() == before
    entries = [e for e in matplotlib.font_manager.fontManager.ttflist if Path(e.fname) == cjk_font_path()]
    assert len(entries) == len({(e.name, e.weight) for e in entries})  # registered once, not once per call


def test_a_missing_font_package_names_the_fix(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install mplfonts"):
        cjk_font_path()
