"""Data for language modelling: a stream of token ids cut into windows of ``block_size + 1`` tokens.

A language model learns to predict each next token (Bengio et al. 2003, "A Neural Probabilistic
Language Model"; GPT: Radford et al. 2018). From a window ``w`` of ``T + 1`` tokens we get the input
``x = w[:T]`` and the targets ``y = w[1:]``: position ``t`` of ``x`` is trained to predict ``y[t]``, the
token after it, having seen only ``x[:t + 1]`` (the causal mask sees to that). Every start position of
the stream is a window, so one stream of N tokens gives N - T examples (nanoGPT samples the same
windows at random offsets).

Two sources:

* the review corpus (:func:`review_lm_data`): documents joined by a newline, train and validation
  streams built from the reviews' own ``split`` column, so no review is in both;
* one long text such as Shakespeare (:func:`text_lm_data`): the first 90% for training and the last 10%
  for validation, by position, as nanoGPT's shakespeare_char does.

Any tokenizer with ``encode(str) -> list[int]`` and ``vocab_size`` works (character or BPE), as long
as it can encode the separator (fit a character tokenizer on the joined text).
Shapes: B batch, T block_size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from llmguide.data import load_reviews
from llmguide.tokenizer import Tokenizer

SEPARATOR = "\n"  # between documents; the model learns that a review ends with a newline


class TokenWindows(torch.utils.data.Dataset):
    """Every window of ``block_size + 1`` consecutive tokens of a stream, as ``{"idx": x, "targets": y}``.

    Args:
        tokens: (N,) token ids.
        block_size: T, the length of each input.
        stride: distance between the starts of consecutive windows (1: every position; ``block_size``:
            non-overlapping windows, one pass over the stream per epoch).
    """

    def __init__(self, tokens: Tensor, block_size: int, stride: int = 1):
        tokens = torch.as_tensor(tokens, dtype=torch.long)
        if tokens.dim() != 1:
            raise ValueError(f"tokens must be a 1-D stream of ids, got shape {tuple(tokens.shape)}")
        if block_size < 1 or stride < 1:
            raise ValueError(f"block_size and stride must be >= 1, got block_size={block_size}, stride={stride}")
        if len(tokens) < block_size + 1:
            raise ValueError(f"the stream has {len(tokens)} tokens, fewer than block_size + 1 = {block_size + 1}: "
                             "use a smaller block_size or more text")
        self.tokens, self.block_size, self.stride = tokens, block_size, stride
        self._offsets = torch.arange(block_size + 1)  # (T + 1,)

    def __len__(self) -> int:
        return (len(self.tokens) - self.block_size - 1) // self.stride + 1

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        start = (i % len(self)) * self.stride
        w = self.tokens[start:start + self.block_size + 1]
        return {"idx": w[:-1], "targets": w[1:]}

    def get_batch(self, indices: Tensor) -> dict[str, Tensor]:
        """The windows at ``indices`` (B,) in one gather: ``idx`` and ``targets`` of shape (B, T)."""
        starts = torch.as_tensor(indices, dtype=torch.long) * self.stride
        w = self.tokens[starts[:, None] + self._offsets]  # (B, T + 1)
        return {"idx": w[:, :-1], "targets": w[:, 1:]}

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)


def encode_documents(texts: Sequence[str], tokenizer: Tokenizer, separator: str = SEPARATOR) -> Tensor:
    """One stream of token ids: the documents joined by ``separator``, which also ends the last one.

    Args:
        texts: documents (any language).
        tokenizer: has ``encode(str) -> list[int]``.
    Returns:
        (N,) long tensor.
    """
    if len(texts) == 0:
        raise ValueError("no documents to encode")
    unk = getattr(tokenizer, "unk_id", None)
    if separator and unk is not None and unk in tokenizer.encode(separator):
        raise ValueError(f"the tokenizer does not know the separator {separator!r}: fit it on text that "
                         f"contains it, e.g. CharTokenizer.train([{separator!r}.join(texts) + {separator!r}])")
    return torch.tensor(tokenizer.encode(separator.join(texts) + separator), dtype=torch.long)


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """Split one long text by position: the first ``1 - val_fraction`` for training, the rest for validation."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    cut = int(len(text) * (1 - val_fraction))
    return text[:cut], text[cut:]


@dataclass
class LMData:
    """Train and validation windows over one corpus, and the tokenizer that made them."""

    train: TokenWindows
    val: TokenWindows
    tokenizer: Tokenizer
    source: str  # where the text came from, for config.json

    def summary(self) -> dict[str, Any]:
        """Counts worth printing: tokens per split and vocabulary size."""
        return {"source": self.source, "vocab_size": self.tokenizer.vocab_size,
                "train_tokens": self.train.n_tokens, "val_tokens": self.val.n_tokens,
                "block_size": self.train.block_size}


def review_texts(split: str = "train") -> str:
    """The reviews of one split joined into one text, each ending with the separator: what a tokenizer is
    fitted on (``CharTokenizer.train([review_texts()])``) and what the windows are cut from."""
    return SEPARATOR.join(load_reviews(split).text) + SEPARATOR


def review_lm_data(tokenizer: Tokenizer, block_size: int, stride: int = 1,
                   max_docs: int | None = None) -> LMData:
    """Windows over the review corpus: training reviews for training, validation reviews for validation.

    Args:
        tokenizer: character or BPE tokenizer (``encode``, ``vocab_size``), ideally fitted on the training
            reviews only, joined by newlines (see :func:`review_texts`).
        block_size: T.
        stride: see :class:`TokenWindows` (training windows only; validation always uses every position).
        max_docs: keep only the first ``max_docs`` training reviews (a tiny subset, e.g. to show overfitting).
    Returns:
        :class:`LMData`.
    """
    reviews = load_reviews()
    train_texts = reviews.loc[reviews.split == "train", "text"].tolist()[:max_docs]
    val_texts = reviews.loc[reviews.split == "validation", "text"].tolist()
    return LMData(train=TokenWindows(encode_documents(train_texts, tokenizer), block_size, stride),
                  val=TokenWindows(encode_documents(val_texts, tokenizer), block_size),
                  tokenizer=tokenizer, source="reviews")


def text_lm_data(text: str, tokenizer: Tokenizer, block_size: int, val_fraction: float = 0.1, stride: int = 1,
                 source: str = "text") -> LMData:
    """Windows over one long text, split by position (first 90% train, last 10% validation by default).

    Args:
        text: the corpus.
        tokenizer: has ``encode`` and ``vocab_size``.
        block_size: T.
        val_fraction: share of the text, from the end, used for validation.
        stride: see :class:`TokenWindows` (training windows only).
        source: a name for config.json.
    Returns:
        :class:`LMData`.
    """
    train_text, val_text = split_text(text, val_fraction)
    return LMData(train=TokenWindows(torch.tensor(tokenizer.encode(train_text), dtype=torch.long), block_size, stride),
                  val=TokenWindows(torch.tensor(tokenizer.encode(val_text), dtype=torch.long), block_size),
                  tokenizer=tokenizer, source=source)
