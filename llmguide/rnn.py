"""Recurrent networks, the models the Transformer replaced: an LSTM tagger and an LSTM classifier.

An LSTM (Hochreiter & Schmidhuber 1997) reads a sequence one step at a time, carrying a hidden state ``h``
and a cell ``c`` through gates; a *bidirectional* one (Graves & Schmidhuber 2005) runs a second LSTM from
the right and joins both states, so each position sees its whole sentence. That is the classic
segmentation tagger (BiLSTM, e.g. Chen et al. 2015) and text classifier before BERT. Here they have the
interface of the guide's Transformer models: ``logits, loss = model(idx, attention_mask=..., labels=...)``,
and they save and load through :mod:`llmguide.folder` (kinds "lstm-tagger", "lstm-classifier").

Shapes: B batch, T tokens, C embedding width, H hidden units per direction, K classes or tags.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmguide.folder import CONFIG, LABELS, WEIGHTS, ModelKind, register_kind
from llmguide.runtime import check_positive_int


@dataclass
class LSTMConfig:
    """The sizes of an LSTM model (GPT-2's names where they apply)."""

    vocab_size: int = 5000  # token ids; id 0 is padding
    n_embd: int = 128  # token embedding width (C)
    n_hidden: int = 128  # hidden units per direction (H)
    n_layer: int = 1  # stacked LSTM layers
    bidirectional: bool = True  # also read right-to-left (a tagger needs the right context)
    dropout: float = 0.1  # on the embeddings and the LSTM output

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_embd", "n_hidden", "n_layer"):
            check_positive_int(getattr(self, name), f"LSTMConfig.{name}", "a positive int")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LSTMConfig.dropout must be in [0, 1), got {self.dropout!r}")


class LSTMEncoder(nn.Module):
    """Embeddings -> (Bi)LSTM: one hidden vector per position, padding ignored (packed sequences)."""

    def __init__(self, config: LSTMConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd, padding_idx=0)
        self.drop = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(config.n_embd, config.n_hidden, config.n_layer, batch_first=True,
                            bidirectional=config.bidirectional, dropout=config.dropout if config.n_layer > 1 else 0.0)

    @property
    def out_dim(self) -> int:
        return self.config.n_hidden * (2 if self.config.bidirectional else 1)

    def forward(self, idx: Tensor, attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Per-position states (B, T, D) with D = H or 2H, and the mask (B, T) of real tokens.

        Packing (right padding assumed) keeps the right-to-left direction from starting in the padding.
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must be (B, T) token ids, got shape {tuple(idx.shape)}")
        B, T = idx.shape
        mask = torch.ones_like(idx, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        lengths = mask.sum(1).clamp(min=1).cpu()  # (B,)
        x = self.drop(self.wte(idx))  # (B, T, C)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)  # (B, T, D)
        return self.drop(out), mask


class LSTMTagger(nn.Module):
    """One label per token (e.g. BMES segmentation tags): BiLSTM states -> linear.

    Args:
        config: the sizes.
        n_tags: K.
    """

    def __init__(self, config: LSTMConfig, n_tags: int) -> None:
        super().__init__()
        self.config = config
        self.n_classes = check_positive_int(n_tags, "n_tags", "a positive int (the number of tags)")
        self.encoder = LSTMEncoder(config)
        self.score = nn.Linear(self.encoder.out_dim, n_tags)

    def forward(self, idx: Tensor, attention_mask: Tensor | None = None,
                labels: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Tag logits (B, T, K); with labels (B, T) (-100 = no label) also the mean cross-entropy."""
        h, _ = self.encoder(idx, attention_mask)  # (B, T, D)
        logits = self.score(h)  # (B, T, K)
        if labels is None:
            return logits, None
        return logits, F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)


class LSTMClassifier(nn.Module):
    """One label per sequence (e.g. review sentiment): BiLSTM states, max-pooled over the real tokens -> linear.

    Max-pooling (Conneau et al. 2017, InferSent's best pooling) lets any position decide a feature, so a
    long review is not summarised by its last step alone.

    Args:
        config: the sizes.
        n_classes: K.
    """

    def __init__(self, config: LSTMConfig, n_classes: int) -> None:
        super().__init__()
        self.config = config
        self.n_classes = check_positive_int(n_classes, "n_classes", "a positive int (the number of classes)")
        self.encoder = LSTMEncoder(config)
        self.score = nn.Linear(self.encoder.out_dim, n_classes)

    def forward(self, idx: Tensor, attention_mask: Tensor | None = None,
                labels: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Class logits (B, K); with labels (B,) also the cross-entropy loss."""
        h, mask = self.encoder(idx, attention_mask)  # (B, T, D), (B, T)
        pooled = h.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)  # (B, D)
        logits = self.score(pooled)  # (B, K)
        return logits, None if labels is None else F.cross_entropy(logits.float(), labels)


# The model-folder kinds of this module (see llmguide.folder).
register_kind(ModelKind(
    "lstm-tagger", LSTMTagger,
    describe=lambda m: {"model": asdict(m.config), "task": "tagging", "n_classes": m.n_classes},
    build=lambda meta: LSTMTagger(LSTMConfig(**meta["model"]), len(meta["labels"])),
    files=(WEIGHTS, CONFIG, LABELS)))
register_kind(ModelKind(
    "lstm-classifier", LSTMClassifier,
    describe=lambda m: {"model": asdict(m.config), "task": "classification", "n_classes": m.n_classes},
    build=lambda meta: LSTMClassifier(LSTMConfig(**meta["model"]), len(meta["labels"])),
    files=(WEIGHTS, CONFIG, LABELS)))
