"""Plotting helpers (matplotlib + seaborn). Every helper returns the Figure, so a notebook can show it
and a script can save it."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import matplotlib
import matplotlib.font_manager
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

# The CJK font every figure falls back to for Chinese. Neither matplotlib, a bare Linux nor Colab has one, so
# the guide ships it through the `mplfonts` package (a main dependency), which carries Noto Sans CJK SC
# (Adobe/Google, SIL Open Font License 1.1, stated in the font file's own name table).
CJK_FONT_PACKAGE = "mplfonts"
CJK_FONT_FILE = "fonts/NotoSansCJKsc-Regular.otf"

PIPELINE = (
    ("数据 data", "collect, clean,\nsplit"),
    ("词元 tokens", "tokenize,\nembed"),
    ("模型 model", "attention,\ntransformer"),
    ("训练 training", "pre-train,\nfine-tune"),
    ("评估 evaluation", "accuracy, F1,\nperplexity"),
    ("部署 deployment", "save, load,\nserve"),
    ("交互 interaction", "demo,\ninterpret"),
)


def cjk_font_path() -> Path:
    """The Noto Sans CJK SC font file inside the installed ``mplfonts`` package.

    Returns:
        the path of the .otf file.
    Raises:
        ImportError: ``mplfonts`` is not installed (it is a main dependency: ``pip install -e .`` or
            ``pip install mplfonts``).
    """
    # find_spec locates the package without importing it: we need its data file, not its code (whose
    # `mplfonts init` would rewrite the user's matplotlibrc).
    spec = importlib.util.find_spec(CJK_FONT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"figures draw Chinese with the font in the {CJK_FONT_PACKAGE!r} package, which is not "
                          f"installed: pip install {CJK_FONT_PACKAGE} (or pip install -e . in the repository)")
    path = Path(next(iter(spec.submodule_search_locations))) / CJK_FONT_FILE
    if not path.is_file():
        raise ImportError(f"{path} is missing from the installed {CJK_FONT_PACKAGE}; reinstall it: "
                          f"pip install --force-reinstall {CJK_FONT_PACKAGE}")
    return path


def _no_bold_cjk_notice(record: logging.LogRecord) -> bool:
    # The package ships the regular weight only; bold Chinese is drawn regular, which matplotlib reports
    # on stderr for every bold title ("Failed to find font weight bold"). That notice is expected here.
    return "Failed to find font weight" not in record.getMessage()


def register_cjk_font() -> str:
    """Add the shipped CJK font to matplotlib's font manager for this process only (no config file changes).

    Returns:
        the font's family name ("Noto Sans CJK SC"), to put in ``font.sans-serif``.
    """
    path = cjk_font_path()
    manager = matplotlib.font_manager.fontManager
    if not any(Path(entry.fname) == path for entry in manager.ttflist):  # once per process
        manager.addfont(path)
        logging.getLogger("matplotlib.font_manager").addFilter(_no_bold_cjk_notice)
    return matplotlib.font_manager.FontProperties(fname=path).get_name()


def set_style() -> None:
    """The one seaborn theme every notebook uses, with Chinese drawn by the shipped Noto Sans CJK SC.

    matplotlib falls back glyph by glyph along ``font.family`` (not along the ``font.sans-serif`` list, where
    only the first installed family is used), so the CJK font goes second there: Latin text keeps the
    sans-serif font (DejaVu Sans here), and any glyph it lacks (Chinese) comes from the CJK font. Only this
    process's rcParams change; no matplotlibrc is written.
    """
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid")
    cjk = register_cjk_font()
    plt.rcParams["font.family"] = ["sans-serif", cjk]


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


# ------------------------------------------------------------------- tokens and embeddings (notebook 01)

def grouped_bars(table, title: str = "", ylabel: str = "", fmt: str = "{:.2f}") -> Figure:
    """Grouped bar chart of a DataFrame: one group per row (the index), one colour per column.

    Args:
        table: DataFrame of numbers, e.g. chars per token with text sets as rows and tokenizers as columns.
        title, ylabel: labels; ``fmt`` formats the value written above each bar.
    Returns:
        the Figure.
    """
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(table) * max(1, len(table.columns)) / 2, 3.6))
    table.plot.bar(ax=ax, rot=0, width=0.8)
    for container in ax.containers:
        ax.bar_label(container, labels=[fmt.format(v) for v in container.datavalues], fontsize=8, padding=2)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("")
    ax.margins(y=0.15)
    ax.legend(title=table.columns.name, fontsize=9)
    fig.tight_layout()
    return fig


def heatmap(values, xlabels=None, ylabels=None, title: str = "", annot: bool = False, cmap: str = "viridis",
            vmin: float | None = None, vmax: float | None = None, xlabel: str = "", ylabel: str = "",
            figsize: tuple[float, float] = (6.5, 5.0)) -> Figure:
    """A labelled heatmap of a 2-D array (numpy or a CPU tensor), e.g. a similarity matrix.

    Args:
        values: (rows, columns) numbers.
        xlabels, ylabels: tick labels (None: automatic numbering); Chinese draws once set_style() ran.
        annot: write each value (two decimals) in its cell.
    Returns:
        the Figure.
    """
    import numpy as np
    import seaborn as sns

    fig, ax = plt.subplots(figsize=figsize)
    sns.heatmap(np.asarray(values, dtype=float), ax=ax, cmap=cmap, vmin=vmin, vmax=vmax, annot=annot, fmt=".2f",
                annot_kws={"fontsize": 7}, square=False,
                xticklabels="auto" if xlabels is None else list(xlabels),
                yticklabels="auto" if ylabels is None else list(ylabels))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    return fig


def positions_figure(pe, title: str = "positional embeddings") -> Figure:
    """Two panels for a (T, C) table of position vectors: the table itself, and the cosine similarity of
    every pair of positions (T, T), which shows whether nearby positions look alike.

    Returns:
        the Figure.
    """
    import numpy as np
    import seaborn as sns

    pe = np.asarray(pe, dtype=float)
    unit = pe / np.linalg.norm(pe, axis=1, keepdims=True).clip(1e-12)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    sns.heatmap(pe, ax=left, cmap="RdBu_r", center=0, xticklabels=max(1, pe.shape[1] // 8),
                yticklabels=max(1, pe.shape[0] // 8))
    left.set(title=f"{title}: value", xlabel="dimension", ylabel="position")
    sns.heatmap(unit @ unit.T, ax=right, cmap="viridis", vmin=-1, vmax=1, xticklabels=max(1, pe.shape[0] // 8),
                yticklabels=max(1, pe.shape[0] // 8))
    right.set(title=f"{title}: cosine similarity of positions", xlabel="position", ylabel="position")
    fig.tight_layout()
    return fig


def scatter_2d(points, labels, styles=None, title: str = "", legend_title: str = "label") -> Figure:
    """A 2-D scatter plot (e.g. a PCA projection of embeddings) coloured by ``labels``.

    Args:
        points: (N, 2) coordinates.
        labels: N category names (colours); ``styles``: optional N names for marker shapes (e.g. language).
    Returns:
        the Figure.
    """
    import numpy as np
    import seaborn as sns

    points = np.asarray(points, dtype=float)
    fig, ax = plt.subplots(figsize=(6.5, 5.0))
    sns.scatterplot(x=points[:, 0], y=points[:, 1], hue=list(labels), style=None if styles is None else list(styles),
                    s=70, ax=ax)
    ax.set(title=title, xlabel="component 1", ylabel="component 2")
    ax.legend(title=legend_title, fontsize=9, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------- training curves (notebook 04)

def training_curves(history, smooth: int = 10, title: str = "") -> Figure:
    """Two panels from a :func:`llmguide.train.train` history: the losses, and the learning rate.

    Args:
        history: DataFrame with ``step``, ``train_loss``, ``val_loss`` (NaN between evaluations) and ``lr``.
        smooth: the training loss is also drawn as a moving average over this many steps (1: off).
    Returns:
        the Figure.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [2, 1]})
    left.plot(history.step, history.train_loss, color="C0", alpha=0.3 if smooth > 1 else 1, lw=1,
              label="train (each step)" if smooth > 1 else "train")
    if smooth > 1:
        left.plot(history.step, history.train_loss.rolling(smooth, min_periods=1).mean(), color="C0",
                  label=f"train ({smooth}-step mean)")
    val = history.dropna(subset=["val_loss"])
    left.plot(val.step, val.val_loss, "o-", color="C1", label="validation")
    left.set(title=title or "loss (cross-entropy, nats per token)", xlabel="step", ylabel="loss")
    left.legend()
    right.plot(history.step, history.lr, color="C2")
    right.set(title="learning-rate schedule", xlabel="step", ylabel="learning rate")
    right.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    fig.tight_layout()
    return fig


def compare_runs(histories, column: str = "val_loss", title: str = "", ylabel: str = "validation loss",
                 ylim: tuple[float, float] | None = None, x: str = "step", xscale: str = "linear") -> Figure:
    """One line per run of the same ``column`` against the step, e.g. validation loss for several learning rates.

    Args:
        histories: ``{run name: history DataFrame}``.
        ylim: the y range (None: automatic), e.g. to keep a diverging run from squashing the others.
        x: the history column on the x axis: "step", or "tokens" to compare runs with different batch sizes.
        xscale: "linear" or "log".
    Returns:
        the Figure.
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, history in histories.items():
        rows = history.dropna(subset=[column])
        ax.plot(rows[x], rows[column], "o-" if len(rows) < 30 else "-", label=str(name), ms=4)
    ax.set(title=title, xlabel=x, ylabel=ylabel, xscale=xscale)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.legend()
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------- fine-tuning and evaluation (notebooks 05, 06)

def learning_curves(histories, title: str = "", smooth: int = 10) -> Figure:
    """One panel per run, side by side and on the same axes: training loss (smoothed) and validation loss.

    Args:
        histories: ``{run name: history DataFrame}`` from :func:`llmguide.train.train` (``step``,
            ``train_loss``, ``val_loss`` with NaN between evaluations).
        smooth: moving-average window for the training loss.
    Returns:
        the Figure.
    """
    fig, axes = plt.subplots(1, len(histories), figsize=(4.2 * len(histories), 3.6), sharey=True, squeeze=False)
    for ax, (name, h) in zip(axes[0], histories.items(), strict=True):
        ax.plot(h.step, h.train_loss, color="C0", alpha=0.25, lw=1)
        ax.plot(h.step, h.train_loss.rolling(smooth, min_periods=1).mean(), color="C0", label="train")
        val = h.dropna(subset=["val_loss"])
        ax.plot(val.step, val.val_loss, "o-", color="C1", label="validation")
        ax.set(title=str(name), xlabel="step")
    axes[0][0].set_ylabel("loss (cross-entropy)")
    axes[0][0].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_heatmap(confusion, labels, normalize: bool = False, title: str = "confusion matrix") -> Figure:
    """The confusion matrix as an annotated heatmap (rows = true class, columns = predicted class).

    Args:
        confusion: (K, K) counts.
        labels: K class names.
        normalize: show each row as fractions of the true class (recall on the diagonal).
    Returns:
        the Figure.
    """
    import numpy as np
    import seaborn as sns

    values = np.asarray(confusion, dtype=float)
    if normalize:
        values = values / values.sum(1, keepdims=True).clip(1)
    fig, ax = plt.subplots(figsize=(1.3 * len(labels) + 2.2, 1.1 * len(labels) + 1.6))
    sns.heatmap(values, annot=True, fmt=".2f" if normalize else ".0f", cmap="Blues", cbar=False, ax=ax,
                xticklabels=list(labels), yticklabels=list(labels), square=True)
    ax.set(title=title, xlabel="predicted", ylabel="true")
    fig.tight_layout()
    return fig


def precision_recall_figure(precision, recall, points=None, title: str = "precision-recall curve") -> Figure:
    """A precision-recall curve, with chosen operating points marked.

    Args:
        precision, recall: arrays from ``sklearn.metrics.precision_recall_curve``.
        points: ``{name: (recall, precision)}`` to mark, e.g. the threshold 0.5 and a tuned threshold.
    Returns:
        the Figure.
    """
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    ax.plot(recall, precision, color="C0")
    for i, (name, (r, p)) in enumerate((points or {}).items()):
        ax.plot([r], [p], "o", color=f"C{i + 1}", ms=8, label=name)
    ax.set(title=title, xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.01))
    if points:
        ax.legend(loc="lower left")
    fig.tight_layout()
    return fig


def reliability_diagram(curves, title: str = "reliability diagram") -> Figure:
    """Calibration: the observed frequency of the positive class against the predicted probability, per bin.

    Args:
        curves: ``{name: (mean predicted probability per bin, observed frequency per bin)}``, e.g. from
            ``sklearn.calibration.calibration_curve``. A calibrated model lies on the diagonal.
    Returns:
        the Figure.
    """
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.plot([0, 1], [0, 1], "--", color="0.5", label="perfectly calibrated")
    for name, (predicted, observed) in curves.items():
        ax.plot(predicted, observed, "o-", label=str(name))
    ax.set(title=title, xlabel="predicted probability (bin mean)", ylabel="observed frequency",
           xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig
