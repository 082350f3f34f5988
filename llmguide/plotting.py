"""Plotting helpers (matplotlib + seaborn). Every helper returns the Figure, so a notebook can show it
and a script can save it."""

from __future__ import annotations

import matplotlib

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

PIPELINE = (
    ("data", "collect, clean,\nsplit"),
    ("tokens", "tokenize,\nembed"),
    ("model", "attention,\ntransformer"),
    ("training", "pre-train,\nfine-tune"),
    ("evaluation", "accuracy, F1,\nperplexity"),
    ("deployment", "save, load,\nserve"),
    ("interaction", "demo,\ninterpret"),
)


def set_style() -> None:
    """The one seaborn theme every notebook uses, with fonts that can draw Chinese where installed."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid")
    cjk = [f for f in ("Noto Sans CJK SC", "WenQuanYi Zen Hei", "SimHei", "PingFang SC", "Microsoft YaHei")
           if f in {font.name for font in matplotlib.font_manager.fontManager.ttflist}]
    plt.rcParams["font.sans-serif"] = cjk + plt.rcParams["font.sans-serif"]
    plt.rcParams["axes.unicode_minus"] = False


def pipeline_diagram(stages: tuple[tuple[str, str], ...] = PIPELINE) -> Figure:
    """The guide's pipeline as boxes and arrows: data → tokens → model → training → evaluation → …"""
    fig, ax = plt.subplots(figsize=(1.9 * len(stages), 1.8))
    ax.set_xlim(0, len(stages))
    ax.set_ylim(0, 1)
    ax.axis("off")
    palette = plt.get_cmap("viridis")
    for i, (title, detail) in enumerate(stages):
        colour = palette(0.15 + 0.7 * i / max(1, len(stages) - 1))
        ax.add_patch(matplotlib.patches.FancyBboxPatch((i + 0.08, 0.15), 0.76, 0.7, boxstyle="round,pad=0.02",
                                                       facecolor=colour, alpha=0.25, edgecolor=colour))
        ax.text(i + 0.46, 0.65, title, ha="center", va="center", fontsize=11, weight="bold")
        ax.text(i + 0.46, 0.36, detail, ha="center", va="center", fontsize=8.5)
        if i < len(stages) - 1:
            ax.annotate("", xy=(i + 1.08, 0.5), xytext=(i + 0.86, 0.5),
                        arrowprops=dict(arrowstyle="->", lw=1.5, color="0.3"))
    fig.tight_layout()
    return fig
