"""Fine-tuning a pre-trained GPT for text classification (Radford et al. 2018, "Improving Language
Understanding by Generative Pre-Training"; Howard & Ruder 2018, "Universal Language Model Fine-tuning").

Recipe: take a language model pre-trained on unlabelled text, replace its next-token head by a small
fresh head over the classes (:class:`llmguide.model.GPTClassifier`), and train on the labelled
examples with the same :func:`llmguide.train.train` loop, either the whole network ("all") or only the
new head ("head", the body frozen).

The data side:

* :class:`ClassificationDataset` encodes and checks the texts and labels once: an empty dataset, an
  empty text or a label outside the label set raises ``ValueError``; texts longer than the model's
  context are cut to their first ``block_size`` tokens and *counted* (``n_truncated``, and a warning).
* :func:`collate` pads a batch on the **right** and returns an ``attention_mask``. In a causal model a
  token only sees the tokens before it, so with right padding the real tokens get exactly the positions
  and hidden states they would have alone, and the classifier reads the last real one (the last 1 of the
  mask): padding cannot change the prediction.

Shapes: B batch, T longest text in the batch (<= block_size), K classes.

Why one module of ~430 lines: encoding texts, the dataset with its checks on labels and files, batching and
the classifier's training are one path from a CSV to a trained head; the recipe that wires it is
:mod:`llmguide.finetune`.
"""

from __future__ import annotations

import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from llmguide.data import REVIEW_LABELS, assign_splits, load_reviews, read_csv
from llmguide.folder import (
    LABELS,
    save_folder,
)
from llmguide.model import GPT, GPTClassifier
from llmguide.profiles import FINETUNE_SETTINGS
from llmguide.runtime import evenly_spaced
from llmguide.tokenizer import Tokenizer
from llmguide.train import train

# A public GPT-2 pre-trained on Chinese text (CLUECorpusSmall; Zhao et al. 2019, "UER"), for the
# hub row of the results table when online.
HUB_MODEL = "uer/gpt2-chinese-cluecorpussmall"
PADDING_SIDES = ("right", "left")
TRAINABLE = ("all", "head")
LABELS_FILE = LABELS  # the old name
FINETUNE_PRESETS = FINETUNE_SETTINGS  # the old name


def pad_id(tokenizer: Tokenizer) -> int:
    """The tokenizer's pad id, else 0: the value never matters, the attention mask hides padding."""
    for name in ("pad_id", "pad_token_id"):
        value = getattr(tokenizer, name, None)
        if isinstance(value, int):
            return value
    return 0


def label_ids(labels: Sequence[Any], label_names: Sequence[str]) -> list[int]:
    """Labels given as names or as ids -> ids; anything outside the label set raises ValueError."""
    index = {name: i for i, name in enumerate(label_names)}
    ids = []
    for i, label in enumerate(labels):
        if isinstance(label, str):
            if label not in index:
                raise ValueError(f"label {label!r} of example {i} is not in the label set {list(label_names)}: "
                                 "fix the data or add the label to label_names")
            ids.append(index[label])
        elif hasattr(label, "__index__") and not isinstance(label, bool) and 0 <= int(label) < len(label_names):
            ids.append(int(label))
        else:
            raise ValueError(f"label {label!r} of example {i} is not in the label set {list(label_names)} "
                             f"(ids 0..{len(label_names) - 1}): fix the data or the label names")
    return ids


def encode_texts(texts: Sequence[str], tokenizer: Tokenizer, block_size: int, end_id: int | None = None,
                 warn: bool = True) -> tuple[list[Tensor], list[bool]]:
    """Encode texts, keeping the first tokens of longer ones, and flag the cut ones.

    Args:
        texts: N non-empty strings.
        tokenizer: has ``encode(str) -> list[int]``.
        block_size: the model's context.
        end_id: a token appended to every text (e.g. the end-of-document token the model was
            pre-trained with), so the classifier reads the position where the model has "seen the whole
            text and expects what comes next"; texts are then cut to ``block_size - 1`` tokens first.
        warn: also emit a ``UserWarning`` with the count when some texts were cut.
    Returns:
        ``(ids, truncated)``: N long tensors (L_i,) with ``1 <= L_i <= block_size``, and N flags (True: cut).
    """
    if block_size < 1 + (end_id is not None):
        raise ValueError(f"block_size must be >= {1 + (end_id is not None)}, got {block_size}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"text {i} is a {type(text).__name__} ({text!r:.40}), not a str: pass strings")
        if not text.strip():
            raise ValueError(f"text {i} is empty ({text!r}): drop it or fill it in")
    keep = block_size - (end_id is not None)
    encoded = [tokenizer.encode(text) for text in texts]
    truncated = [len(e) > keep for e in encoded]
    tail = [] if end_id is None else [end_id]
    ids = [torch.tensor(e[:keep] + tail, dtype=torch.long) for e in encoded]
    empty = [i for i, e in enumerate(encoded) if len(e) == 0]
    if empty:
        raise ValueError(f"text {empty[0]} ({texts[empty[0]]!r}) encodes to no tokens: check the tokenizer")
    n_truncated = sum(truncated)
    if warn and n_truncated:
        warnings.warn(f"{n_truncated} of {len(texts)} texts are longer than {keep} tokens (block_size={block_size}"
                      f"{' with the end token' if tail else ''}) and were cut to their first {keep} tokens",
                      stacklevel=3)
    return ids, truncated


class ClassificationDataset(torch.utils.data.Dataset):
    """Texts and labels, encoded once and checked; ``ds[i]`` is ``{"idx": (L_i,), "labels": ()}``.

    Args:
        texts: N non-empty strings (any language).
        labels: N labels, as names from ``label_names`` or as ids ``0..K-1``.
        tokenizer: has ``encode(str) -> list[int]`` (``pad_id`` is used when present).
        label_names: the K class names, in id order.
        block_size: the model's context; longer texts keep their first ``block_size`` tokens.
        end_id: a token id appended to every text (see :func:`encode_texts`), or None.
        warn: emit a ``UserWarning`` that says how many texts were truncated (the count is always in
            ``n_truncated``).
    """

    def __init__(self, texts: Sequence[str], labels: Sequence[Any], tokenizer: Tokenizer, label_names: Sequence[str],
                 block_size: int, end_id: int | None = None, warn: bool = True):
        texts, labels = list(texts), list(labels)
        if len(texts) == 0:
            raise ValueError("the dataset is empty: pass at least one text and its label")
        if len(texts) != len(labels):
            raise ValueError(f"got {len(texts)} texts but {len(labels)} labels: they must pair up one to one")
        if len(label_names) < 2 or len(set(label_names)) != len(label_names):
            raise ValueError(f"label_names must hold at least 2 distinct names, got {list(label_names)}")
        self.label_names = [str(name) for name in label_names]
        self.labels = torch.tensor(label_ids(labels, self.label_names), dtype=torch.long)  # (N,)
        self.texts, self.block_size, self.pad_id, self.end_id = texts, block_size, pad_id(tokenizer), end_id
        self.ids, truncated = encode_texts(texts, tokenizer, block_size, end_id, warn=warn)
        self.truncated = torch.tensor(truncated)  # (N,) bool: the text was longer than block_size
        self.lengths = torch.tensor([len(ids) for ids in self.ids])  # (N,) after truncation

    @property
    def n_truncated(self) -> int:
        """How many texts were cut to their first ``block_size`` tokens."""
        return int(self.truncated.sum())

    def subset(self, indices: Sequence[int]) -> ClassificationDataset:
        """The examples at ``indices`` as a new dataset (nothing is encoded again)."""
        indices = [int(i) for i in indices]
        if not indices:
            raise ValueError("the subset is empty: pass at least one index")
        out = ClassificationDataset.__new__(ClassificationDataset)
        out.label_names, out.block_size, out.pad_id, out.end_id = (self.label_names, self.block_size, self.pad_id,
                                                                   self.end_id)
        out.texts = [self.texts[i] for i in indices]
        out.ids = [self.ids[i] for i in indices]
        out.labels, out.truncated, out.lengths = self.labels[indices], self.truncated[indices], self.lengths[indices]
        return out

    @classmethod
    def from_frame(cls, df: pd.DataFrame, tokenizer: Tokenizer, label_names: Sequence[str], block_size: int,
                   label_column: str = "label", end_id: int | None = None,
                   warn: bool = True) -> ClassificationDataset:
        """Build from a DataFrame with a ``text`` column and a label column (names or ids)."""
        for column in ("text", label_column):
            if column not in df.columns:
                raise ValueError(f"the data has no {column!r} column (columns: {list(df.columns)})")
        return cls(df["text"].tolist(), df[label_column].tolist(), tokenizer, label_names, block_size, end_id, warn)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"idx": self.ids[i], "labels": self.labels[i]}

    def get_batch(self, indices: Tensor | Sequence[int]) -> dict[str, Tensor]:
        """The examples at ``indices``, padded on the right to the longest of them (see :func:`collate`)."""
        return collate([self[int(i)] for i in indices], pad_id=self.pad_id)

    def summary(self) -> dict[str, Any]:
        """Counts worth printing: examples per class, lengths, how many were truncated."""
        counts = torch.bincount(self.labels, minlength=len(self.label_names)).tolist()
        return {"examples": len(self), "per_class": dict(zip(self.label_names, counts, strict=True)),
                "mean_tokens": round(self.lengths.float().mean().item(), 1),
                "max_tokens": int(self.lengths.max()), "block_size": self.block_size,
                "truncated": self.n_truncated}


def collate(examples: Sequence[Mapping[str, Tensor]], pad_id: int = 0,
            padding_side: str = "right") -> dict[str, Tensor]:
    """Pad variable-length examples into one batch.

    Args:
        examples: dicts with ``idx`` (L_i,) and optionally ``labels`` ().
        pad_id: the id written into padding positions (hidden by the mask, so any id works).
        padding_side: "right" (for classification with a causal model) or "left" (for generation,
            where every row's next token must come at the same last position).
    Returns:
        ``{"idx": (B, T), "attention_mask": (B, T)}`` (1 = real token, 0 = padding), plus ``labels`` (B,).
    """
    if padding_side not in PADDING_SIDES:
        raise ValueError(f"padding_side must be one of {PADDING_SIDES}, got {padding_side!r}")
    if len(examples) == 0:
        raise ValueError("cannot collate an empty list of examples")
    T = max(len(ex["idx"]) for ex in examples)
    idx = torch.full((len(examples), T), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(examples), T), dtype=torch.long)  # (B, T)
    for row, ex in enumerate(examples):
        n = len(ex["idx"])
        span = slice(0, n) if padding_side == "right" else slice(T - n, T)
        idx[row, span], mask[row, span] = ex["idx"], 1
    batch = {"idx": idx, "attention_mask": mask}
    if "labels" in examples[0]:
        batch["labels"] = torch.stack([torch.as_tensor(ex["labels"]) for ex in examples])  # (B,)
    return batch


def iter_batches(dataset: ClassificationDataset, batch_size: int = 64) -> Iterator[dict[str, Tensor]]:
    """The dataset in order, ``batch_size`` examples at a time (for evaluation and prediction)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, len(dataset), batch_size):
        yield dataset.get_batch(range(start, min(start + batch_size, len(dataset))))


def review_datasets(tokenizer: Tokenizer, block_size: int, max_train: int | None = None, end_id: int | None = None,
                    warn: bool = True) -> dict[str, ClassificationDataset]:
    """The sentiment datasets of the review corpus: "train", "validation", "test" (the test split held out).

    Args:
        tokenizer: has ``encode``.
        block_size: the model's context.
        max_train: keep only this many training reviews (an evenly spaced subset over both classes).
        end_id: a token appended to every review (see :func:`encode_texts`).
        warn: see :class:`ClassificationDataset`.
    Returns:
        {split: :class:`ClassificationDataset`} with label names ``("negative", "positive")``.
    """
    reviews = load_reviews()
    out = {}
    for split in ("train", "validation", "test"):
        df = reviews[reviews.split == split]
        if split == "train" and max_train is not None and max_train < len(df):
            df = df.iloc[evenly_spaced(len(df), max_train).numpy()]
        out[split] = ClassificationDataset.from_frame(df, tokenizer, REVIEW_LABELS, block_size, end_id=end_id,
                                                      warn=warn)
    return out


# ---------------------------------------------------------------- the model side

def set_trainable(classifier: nn.Module, trainable: str = "all") -> int:
    """Choose what fine-tuning updates: "all" parameters, or only the new "head" (the body frozen).

    Training the head alone is fast and cannot damage what pre-training learned, but the features stay
    those of next-token prediction; training all adapts them to the task (usually better, with a
    smaller learning rate).

    Returns:
        The number of trainable parameters.
    """
    if trainable not in TRAINABLE:
        raise ValueError(f"trainable must be one of {TRAINABLE}, got {trainable!r}")
    for name, p in classifier.named_parameters():
        p.requires_grad_(trainable == "all" or name.startswith("score."))
    return sum(p.numel() for p in classifier.parameters() if p.requires_grad)


def classifier_from_pretrained(source: Any, n_classes: int, trainable: str = "all", seed: int = 0) -> nn.Module:
    """A :class:`~llmguide.model.GPTClassifier`: a pre-trained GPT body with a fresh classification head.

    Args:
        source: a :class:`~llmguide.model.GPT`, a llmguide model folder (from pre-training), or a
            Hugging Face GPT-2 name or folder (``GPT.from_pretrained``; needs internet the first time).
        n_classes: K.
        trainable: "all" or "head" (see :func:`set_trainable`).
        seed: seeds the fresh head's initialisation.
    Returns:
        The classifier, in train mode.
    """
    gpt = source if isinstance(source, GPT) else GPT.from_pretrained(str(source))
    torch.manual_seed(seed)
    classifier = GPTClassifier(gpt, n_classes).train()
    set_trainable(classifier, trainable)
    return classifier


def finetune(classifier: nn.Module, train_data: ClassificationDataset, val_data: ClassificationDataset | None,
             config: Any = None, trainable: str = "all", callback: Any = None) -> pd.DataFrame:
    """Fine-tune with the same :func:`llmguide.train.train` loop as pre-training.

    Args:
        classifier: a ``GPTClassifier`` (``logits, loss = model(idx, attention_mask, labels)``).
        train_data, val_data: :class:`ClassificationDataset` (batches are padded per batch).
        config: a :class:`~llmguide.train.TrainConfig`.
        trainable: "all" or "head".
        callback: passed to ``train``.
    Returns:
        The training history (one row per step; ``val_loss`` at evaluations).
    """
    set_trainable(classifier, trainable)
    return train(classifier, train_data, val_data, config, callback=callback)


def save_classifier(classifier: GPTClassifier, tokenizer: Tokenizer, label_names: Sequence[str],
                    folder: str | Path, meta: Mapping[str, Any] | None = None,
                    files: Mapping[str, Callable[[Path], None]] | None = None) -> Path:
    """Write a classifier model folder (:func:`llmguide.folder.save_folder`, kind "gpt-classifier").

    Layout: ``model.safetensors`` (body + head), ``config.json`` (``{"format_version", "kind", "model":
    asdict(GPTConfig), "task": "classification", "n_classes": K, **meta}``), ``tokenizer.json``,
    ``labels.json`` (the class names in id order) and ``files`` (e.g. ``history.csv``), all or nothing.

    Returns:
        The folder.
    """
    return save_folder(folder, classifier, tokenizer, meta, labels=label_names, files=files)


# ---------------------------------------------------------------- the whole recipe, and its command



def read_labelled_csv(path: str | Path) -> pd.DataFrame:
    """A labelled data file: a UTF-8 ``.csv`` with ``text`` and ``label`` columns, read as strings."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix.lower() != ".csv":
        raise ValueError(f"{path}: labelled data must be a .csv file with 'text' and 'label' columns")
    df = read_csv(path)  # UTF-8, well-formed and not empty, or one error naming the file
    missing = [c for c in ("text", "label") if c not in df.columns]
    if missing:
        raise ValueError(f"{path} has no {' or '.join(repr(c) for c in missing)} column "
                         f"(columns: {', '.join(df.columns) or 'none'})")
    return df


# A class with fewer training examples than this is refused unless asked (check_label_counts): it is more
# often a typo ("Positive " among "positive") than a real class, and 10% of 4 examples validates nothing.
MIN_CLASS_EXAMPLES = 5


def check_label_counts(labels: Sequence[str], source: str | Path = "the data",
                       min_examples: int = MIN_CLASS_EXAMPLES, allow_rare: bool = False) -> dict[str, int]:
    """Count the examples per label name; warn about names that differ only in case or spaces, and refuse rare ones.

    Args:
        labels: the label column of a training file (names).
        source: the file, for messages.
        min_examples: the fewest examples a class may have.
        allow_rare: train on classes with fewer examples anyway.
    Returns:
        ``{label: count}``.
    Raises:
        ValueError: an empty label, or a class with fewer than ``min_examples`` examples (and not ``allow_rare``).
    """
    counts = Counter(str(label) for label in labels)
    if "" in counts:
        raise ValueError(f"{source}: {counts['']} rows have an empty label: fill them in or drop them")
    similar = defaultdict(list)
    for name in counts:
        similar[name.strip().casefold()].append(name)
    for names in similar.values():
        if len(names) > 1:
            listed = ", ".join(f"{n!r} ({counts[n]} examples)" for n in sorted(names, key=lambda n: -counts[n]))
            warnings.warn(f"{source}: the labels {listed} differ only in case or spaces, so each is a class of its "
                          "own: fix the typo if they mean the same class", stacklevel=3)
    rare = {n: c for n, c in counts.items() if c < min_examples}
    if rare and not allow_rare:
        listed = ", ".join(f"{n!r} has {c}" for n, c in sorted(rare.items(), key=lambda kv: kv[1]))
        raise ValueError(f"{source}: {listed} example(s), fewer than {min_examples} per class (all counts: "
                         f"{dict(counts.most_common())}): fix the labels, or allow rare classes "
                         "(--allow-rare-labels, allow_rare=True)")
    return dict(counts)


def file_datasets(train_file: str | Path, val_file: str | Path | None, test_file: str | Path | None,
                  tokenizer: Tokenizer, block_size: int, label_names: Sequence[str] | None = None,
                  end_id: int | None = None, warn: bool = True, allow_rare: bool = False,
                  min_examples: int = MIN_CLASS_EXAMPLES) -> dict[str, ClassificationDataset]:
    """Datasets from CSV files with ``text`` and ``label`` (class name) columns.

    Without ``val_file`` a deterministic, stratified 10% of the training file is held out for validation
    (:func:`llmguide.data.assign_splits`). Label names default to the sorted names in the training file,
    after :func:`check_label_counts` (typo warnings; classes under ``min_examples`` refused unless ``allow_rare``).

    Returns:
        {"train", "validation"[, "test"]: :class:`ClassificationDataset`}.
    """
    train_df = read_labelled_csv(train_file)
    check_label_counts(train_df["label"].tolist(), train_file, min_examples, allow_rare)
    names = list(label_names) if label_names else sorted(set(train_df["label"]))
    if val_file is None:
        split = assign_splits(train_df, (0.9, 0.1, 0.0))
        train_df, val_df = train_df[split == "train"], train_df[split == "validation"]
    else:
        val_df = read_labelled_csv(val_file)
    frames = {"train": train_df, "validation": val_df}
    if test_file is not None:
        frames["test"] = read_labelled_csv(test_file)
    return {k: ClassificationDataset.from_frame(df, tokenizer, names, block_size, end_id=end_id, warn=warn)
            for k, df in frames.items()}


def end_token_id(tokenizer: Tokenizer) -> int | None:
    """The id to append to each text for classification: the newline that ends every document in our
    pre-training stream (when it is one known token), else the tokenizer's end-of-sequence id, else None.

    GPT-1 appended an "extract" token to every text and classified from its hidden state (Radford et al.
    2018): at that position a causal model has read the whole text. Reusing the document separator it
    was pre-trained with puts the classifier where the language model already summarises "a review just
    ended".
    """
    ids = tokenizer.encode("\n")
    if len(ids) == 1 and ids[0] != getattr(tokenizer, "unk_id", None):
        return ids[0]
    eos = getattr(tokenizer, "eos_id", None)
    return eos if isinstance(eos, int) else None


