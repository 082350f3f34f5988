"""Inference: load a saved model folder and use it: label texts, evaluate a classifier or a language model.

A classifier folder (written by :func:`llmguide.classify.save_classifier`) holds ``model.safetensors``,
``config.json``, ``tokenizer.json`` and ``labels.json``. :func:`load_classifier` rebuilds the model from
those files alone (no pickle, no code from the folder runs) and :meth:`Classifier.predict` labels a list
of texts in batches: the texts are sorted by length first, so each batch pads as little as possible,
and the predictions are put back in the input order.

What the command line (:mod:`llmguide.cli`) runs with these functions:
``llmguide predict MODEL_DIR [TEXT ...] [--input FILE] [--output FILE] [--format csv|json]`` and
``llmguide evaluate MODEL_DIR [--data test|validation|FILE]``.

Shapes: N texts, B batch, T longest text in the batch, K classes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from llmguide.classify import collate, encode_texts, label_ids, pad_id
from llmguide.data import SPLITS, load_reviews, read_csv, read_lines
from llmguide.evaluate import classification_report, evaluate
from llmguide.folder import CONFIG, TOKENIZER, WEIGHTS, check_folder, load_folder
from llmguide.lmdata import TokenWindows, encode_documents
from llmguide.runtime import check_positive_int, get_device
from llmguide.tokenizer import Tokenizer

MODEL_FILES = (WEIGHTS, CONFIG)
FORMATS = ("csv", "json")


@dataclass
class Classifier:
    """A loaded classifier: model (eval mode), tokenizer, class names; :meth:`predict` labels texts."""

    model: nn.Module  # a GPTClassifier
    tokenizer: Tokenizer
    labels: list[str]  # class names in id order
    config: dict[str, Any]  # the folder's config.json
    device: torch.device

    @property
    def block_size(self) -> int:
        """Tokens per text: the fine-tuning cut (config "block_size"), else the model's context."""
        return int(self.config.get("block_size") or self.config["model"]["block_size"])

    @property
    def end_id(self) -> int | None:
        """The token appended to every text in fine-tuning (config "end_id"), appended here too."""
        return self.config.get("end_id")

    @torch.no_grad()
    def predict_proba(self, texts: Sequence[str] | str, batch_size: int = 64) -> tuple[np.ndarray, int]:
        """Class probabilities for each text.

        Args:
            texts: N non-empty strings; a single string is one text (N = 1), never a list of characters.
            batch_size: texts per forward pass.
        Returns:
            ``(probs, n_truncated)``: probabilities (N, K) in the input order, and how many texts were
            longer than the model's context (their first ``block_size`` tokens were used).
        """
        texts = as_texts(texts)
        check_positive_int(batch_size, "batch_size")
        ids, truncated = encode_texts(texts, self.tokenizer, self.block_size, self.end_id, warn=False)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths share a batch
        probs = torch.empty(len(ids), len(self.labels))
        pad = pad_id(self.tokenizer)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = collate([{"idx": ids[i]} for i in rows], pad_id=pad)
            logits, _ = self.model(batch["idx"].to(self.device), batch["attention_mask"].to(self.device))  # (B, K)
            probs[rows] = logits.float().softmax(-1).cpu()
        return probs.numpy(), sum(truncated)

    def predict(self, texts: Sequence[str] | str, batch_size: int = 64) -> pd.DataFrame:
        """The most probable label of each text, with its probability.

        ``predict("这个东西很好用")`` is one text and gives one row (as ``predict(["这个东西很好用"])``).

        Returns:
            DataFrame with columns ``text``, ``label`` (class name), ``probability`` (of that label), in
            the input order; ``df.attrs["n_truncated"]`` counts texts cut to the model's context.
        """
        texts = as_texts(texts)
        probs, n_truncated = self.predict_proba(texts, batch_size)
        best = probs.argmax(1)
        df = pd.DataFrame({"text": texts, "label": [self.labels[i] for i in best],
                           "probability": probs[np.arange(len(best)), best]})
        df.attrs["n_truncated"] = n_truncated
        return df


def as_texts(texts: Any) -> list[str]:
    """The texts to classify as a list: a bare ``str`` is ONE text; bytes, a non-iterable or an empty list raise.

    Raises:
        ValueError: bytes (decode them first), not a list of strings, or no texts.
    """
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, (bytes, bytearray)):
        raise ValueError("texts must be str, got bytes: decode them first, e.g. data.decode('utf-8')")
    if isinstance(texts, Mapping) or not isinstance(texts, Iterable):
        raise ValueError(f"texts must be a str or a list of str, got {type(texts).__name__}")
    texts = list(texts)
    if not texts:
        raise ValueError("no texts to predict: pass at least one")
    return texts


def load_classifier(folder: str | Path, device: str | torch.device | None = None) -> Classifier:
    """Load a classifier model folder (weights, config, tokenizer, label names) with :func:`load_folder`.

    Args:
        folder: written by :func:`llmguide.classify.save_classifier` (or ``llmguide finetune``).
        device: where to run; default: the best available.
    Returns:
        A :class:`Classifier` in eval mode.
    """
    device = get_device(None if device is None else str(device))  # CUDA asked for but absent: a ValueError
    model, tokenizer, meta = load_folder(folder, kind="gpt-classifier", device=device)
    return Classifier(model, tokenizer, meta.pop("labels"), meta, device)


def read_texts(path: str | Path) -> list[str]:
    """Texts from a file: a ``.csv`` with a ``text`` column, else a UTF-8 text file with one text per line.

    Empty lines (and empty CSV cells) are skipped; a file with no text raises ``ValueError``.
    """
    path = Path(path)
    if path.suffix.lower() == ".csv":
        df = read_csv(path)  # UTF-8, well-formed and not empty, or one error naming the file
        if "text" not in df.columns:
            raise ValueError(f"{path} has no 'text' column (columns: {', '.join(df.columns) or 'none'}): "
                             "name the column holding the texts 'text'")
        texts = [t.strip() for t in df["text"] if t.strip()]
    else:
        texts = read_lines(path)
    if not texts:
        raise ValueError(f"{path} holds no text: nothing to predict")
    return texts


def write_predictions(df: pd.DataFrame, out: Any, fmt: str = "csv") -> None:
    """Write predictions as CSV (``text,label,probability``) or JSON lines to an open text stream."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use one of {FORMATS}")
    df = df[["text", "label", "probability"]].assign(probability=df["probability"].astype(float).round(4))
    if fmt == "csv":
        df.to_csv(out, index=False, lineterminator="\n")
    else:
        for row in df.itertuples(index=False):
            out.write(json.dumps({"text": row.text, "label": row.label, "probability": row.probability},
                                 ensure_ascii=False) + "\n")


def evaluate_classifier(classifier: Classifier, texts: Sequence[str], labels: Sequence[Any],
                        batch_size: int = 64):
    """Evaluate a loaded classifier on texts with labels (names or ids); returns an EvalReport."""
    y = label_ids(labels, classifier.labels)
    probs, _ = classifier.predict_proba(texts, batch_size)
    return classification_report(y, probs.argmax(1), classifier.labels, probs=probs)


def evaluate_language_model(folder: str | Path, data: str = "test", batch_size: int = 32,
                            device: str | None = None):
    """Loss and perplexity of a language-model folder on a review split or a text file.

    The texts are joined into one stream (a newline after each) and cut into non-overlapping windows of
    ``block_size + 1`` tokens, so every token is predicted once.
    """
    check_folder(folder, (*MODEL_FILES, TOKENIZER))
    model, tokenizer, _ = load_folder(folder, kind="gpt-lm", device=get_device(device))
    texts = load_reviews(data).text.tolist() if data in SPLITS else read_texts(data)
    stream = encode_documents(texts, tokenizer)
    T = model.config.block_size
    windows = TokenWindows(stream, min(T, len(stream) - 1), stride=min(T, len(stream) - 1))
    batches = (windows.get_batch(torch.arange(s, min(s + batch_size, len(windows))))
               for s in range(0, len(windows), batch_size))
    return evaluate(model, batches)


