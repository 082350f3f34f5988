"""Scaled dot-product attention and multi-head self-attention, as in GPT-2.

Attention (Vaswani et al., 2017, "Attention Is All You Need", https://arxiv.org/abs/1706.03762, eq. 1):

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k + M) V

Each query position mixes the value vectors of the key positions it may see, with weights given by how
well its query matches each key. ``M`` is the mask: 0 where a query may attend, -inf where it may not
(the future in a language model, padding in a batch). GPT-2 (Radford et al., 2019) runs ``n_head`` of
these side by side on slices of the embedding and mixes the results with an output projection.

This module has two paths that compute the same thing:

* :func:`attention` writes the formula out, returns the weights, and is what the notebook teaches;
* :class:`MultiHeadAttention` runs ``F.scaled_dot_product_attention`` (fused, memory-efficient kernels)
  unless the weights are asked for, in which case it runs :func:`attention`.

Shapes: B batch, T new (query) positions, S key positions (cached + new), C = n_embd, nh = n_head,
hs = C // nh (head size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmguide.runtime import check_positive_int


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Explicit scaled dot-product attention: softmax(q kᵀ / √hs + mask) v.

    Args:
        q: queries (B, nh, T, hs); any number of leading dims works, e.g. (T, hs) for a hand example.
        k: keys (B, nh, S, hs).
        v: values (B, nh, S, hs_v).
        mask: None; or bool, True = may attend; or additive float (0 = attend, -inf = blocked);
            broadcastable to the scores (B, nh, T, S), e.g. ``causal_mask(T, S)`` (T, S) or
            ``padding_mask(attention_mask)`` (B, 1, 1, S).

    Returns:
        (out (B, nh, T, hs_v), weights (B, nh, T, S)). A query row with no visible key gets zero weights
        and a zero output (not NaN), and finite gradients.
    """
    _check_qkv(q, k, v)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, nh, T, S)
    if mask is None:
        weights = torch.softmax(scores, dim=-1)
        return weights @ v, weights  # (B, nh, T, S) x (B, nh, S, hs) -> (B, nh, T, hs)
    _check_mask(mask, scores.shape)
    if mask.dtype == torch.bool:
        scores = scores.masked_fill(~mask, float("-inf"))
    else:
        scores = scores + mask
    # A row that is -inf everywhere (e.g. a left-padding query under causal+padding masks) would give
    # softmax 0/0 = NaN, and NaN gradients even if zeroed afterwards. Softmax a harmless row of zeros
    # instead, then zero its weights: the output is 0 and no NaN reaches the backward pass.
    dead = torch.isneginf(scores).all(dim=-1, keepdim=True)  # (B, nh, T, 1)
    weights = torch.softmax(scores.masked_fill(dead, 0.0), dim=-1).masked_fill(dead, 0.0)
    return weights @ v, weights  # (B, nh, T, S) x (B, nh, S, hs) -> (B, nh, T, hs)


def causal_mask(T: int, S: int | None = None, device: torch.device | str | None = None) -> Tensor:
    """Bool mask (T, S), True where query i may attend key j: j ≤ S - T + i.

    The T queries are the *last* T of S positions: with a KV cache holding S - T past keys, query i sits
    at absolute position S - T + i and sees keys 0..S-T+i. Without a cache S = T and this is the usual
    lower-triangular matrix.

    Args:
        T: number of query positions.
        S: number of key positions (default T); must be ≥ T.
        device: where to build the mask.

    Returns:
        bool tensor (T, S).
    """
    S = T if S is None else S
    if T < 0 or S < T:
        raise ValueError(f"causal_mask needs 0 <= T <= S, got T={T}, S={S}: the queries are the last T of "
                         "the S key positions (S = cached positions + T)")
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)


def padding_mask(attention_mask: Tensor) -> Tensor:
    """Turn a tokenizer-style attention mask (B, S) of 1 = real token, 0 = padding into a bool key mask.

    Args:
        attention_mask: (B, S) of 0/1 (int, float or bool).

    Returns:
        bool tensor (B, 1, 1, S), True = real key; broadcasts over heads and query positions.
    """
    if attention_mask.dim() != 2:
        raise ValueError(f"attention_mask must be (B, S) of 0/1, got shape {tuple(attention_mask.shape)}: "
                         "pass the tokenizer's attention_mask, one row per sequence")
    if attention_mask.dtype != torch.bool and not ((attention_mask == 0) | (attention_mask == 1)).all():
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (real token), got values "
                         f"{attention_mask.unique().tolist()[:8]}")
    return attention_mask.bool()[:, None, None, :]  # (B, 1, 1, S)


def combine_masks(*masks: Tensor | None) -> Tensor | None:
    """Logical AND of bool masks (broadcasting), ignoring None; None if every mask is None.

    Example: ``combine_masks(causal_mask(T), padding_mask(am))`` is (B, 1, T, T).
    """
    out = None
    for m in masks:
        if m is None:
            continue
        if m.dtype != torch.bool:
            raise ValueError(f"combine_masks takes bool masks (True = may attend), got dtype {m.dtype}: "
                             "convert a 0/1 mask with padding_mask() or mask.bool()")
        out = m if out is None else out & m
    return out


@dataclass(frozen=True)
class AttentionMask:
    """Which keys each query may see, built and checked once per forward pass and shared by every layer.

    Build it with :func:`build_mask`; :class:`MultiHeadAttention` builds one itself when called alone.
    """

    mask: Tensor | None  # bool, True = may attend: (T, S), (B, 1, 1, S) or (B, 1, T, S); None = no mask tensor
    causal_only: bool  # causal with no padding and no cache offset: the kernels' built-in causal mask is enough
    dead: Tensor | None  # (B, 1, T, 1) True for a query that sees no key (left padding); None when there is none


def build_mask(attention_mask: Tensor | None, T: int, S: int, causal: bool = True,
               device: torch.device | str | None = None) -> AttentionMask:
    """The mask of one forward pass: causal (the last T of S positions) AND padding, checked once.

    Args:
        attention_mask: (B, S) of 0/1 over ALL key positions, cached and new; None = no padding.
        T: new (query) positions.
        S: all key positions (cached + new).
        causal: a language model's causal mask.
        device: where to build it.
    Returns:
        An :class:`AttentionMask`.
    """
    pad = None
    if attention_mask is not None:
        if attention_mask.dim() != 2 or attention_mask.size(1) != S:
            B = attention_mask.size(0) if attention_mask.dim() else "B"
            raise ValueError(f"attention_mask must be (B, S) = ({B}, {S}) covering the {S - T} cached and {T} new "
                             f"positions, got shape {tuple(attention_mask.shape)}")
        pad = padding_mask(attention_mask)  # (B, 1, 1, S)
    # One new query at the end of a causal sequence sees every key: no causal mask needed then.
    causal_part = causal_mask(T, S, device=device) if causal and T > 1 else None
    if pad is None:
        # causal only: SDPA's is_causal flag when there is no cache offset, else the (T, S) mask (no dead rows)
        return AttentionMask(None if causal_part is None or T == S else causal_part, causal_part is not None and T == S,
                             None)
    mask = combine_masks(causal_part, pad)  # (B, 1, 1, S) or (B, 1, T, S)
    dead = ~mask.any(dim=-1, keepdim=True)  # (B, 1, T|1, 1)
    return AttentionMask(mask, False, dead if bool(dead.any()) else None)


class KVCache:
    """Keys and values of past positions for one attention layer, so generation computes each token once.

    Without a cache, producing token t+1 re-runs attention for all t previous tokens. With it, each step
    projects only the new token(s) and writes their k, v here; the new queries attend to the whole cache.

    One buffer of ``max_len`` positions is reserved at the first update (when B, nh and hs are known) and
    written in place: ``torch.cat`` would copy the whole cache at every step (on CPU those copies were a
    quarter of the decoding time). As in torchtune's ``KVCache``, it never grows: a GPT's learned positions
    end at ``block_size`` anyway.

    Args:
        max_len: positions to reserve (the model's ``block_size``).
    """

    def __init__(self, max_len: int) -> None:
        self.max_len = check_positive_int(max_len, "max_len", "an int >= 1 (e.g. block_size)")
        self._k: Tensor | None = None  # (B, nh, max_len, hs); positions past len(self) are unused
        self._v: Tensor | None = None
        self._len = 0

    @property
    def k(self) -> Tensor | None:
        """The cached keys (B, nh, S, hs), a view of the buffer; None before the first update."""
        return None if self._k is None else self._k[:, :, :self._len]

    @property
    def v(self) -> Tensor | None:
        """The cached values (B, nh, S, hs), a view of the buffer; None before the first update."""
        return None if self._v is None else self._v[:, :, :self._len]

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append new keys/values (B, nh, T_new, hs) and return all of them (B, nh, S, hs)."""
        if k.dim() != 4 or k.shape != v.shape:
            raise ValueError(f"KVCache.update wants k and v of the same shape (B, nh, T_new, hs), got k "
                             f"{tuple(k.shape)} and v {tuple(v.shape)}")
        B, nh, T, hs = k.shape
        if self._k is None:
            self._k = k.new_empty(B, nh, self.max_len, hs)
            self._v = v.new_empty(B, nh, self.max_len, hs)
        elif (B, nh, hs) != (self._k.size(0), self._k.size(1), self._k.size(3)):
            raise ValueError(f"KVCache holds (B, nh, S, hs) = {tuple(self.k.shape)} but got new keys "
                             f"{tuple(k.shape)}: B, nh and hs must match; use a fresh cache per batch")
        if self._len + T > self.max_len:
            raise ValueError(f"KVCache is full: {self._len} cached + {T} new positions exceed max_len={self.max_len}"
                             ": start a fresh cache on the last max_len tokens")
        self._k[:, :, self._len:self._len + T] = k
        self._v[:, :, self._len:self._len + T] = v
        self._len += T
        return self.k, self.v

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        shape = None if self._k is None else tuple(self.k.shape)
        return f"KVCache(len={len(self)}, k_shape={shape})"


class MultiHeadAttention(nn.Module):
    """Multi-head (causal) self-attention with GPT-2's parameter layout (``c_attn``, ``c_proj``).

    Args:
        n_embd: embedding size C; must be divisible by n_head.
        n_head: number of heads nh; each works on hs = C // nh dimensions.
        dropout: dropout on the attention weights and on the output, in training only.
        bias: whether the projections have a bias (GPT-2: True).
        causal: True for a language model (a position sees only itself and the past).
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True, causal: bool = True):
        super().__init__()
        _check_heads(n_embd, n_head)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        # q, k, v for all heads in one matmul, in that order (GPT-2 layout; HF's Conv1D weight is the transpose)
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)  # mixes the heads' outputs back together
        self.attn_dropout = nn.Dropout(dropout)
        self.resid_dropout = nn.Dropout(dropout)
        self.n_head = n_head
        self.n_embd = n_embd
        # Each head's width. Kept apart from n_embd // n_head so structured pruning (llmguide.prune) can drop
        # whole heads: then c_attn maps C -> 3 * n_head * head_size with n_head * head_size < C.
        self.head_size = n_embd // n_head
        self.dropout = dropout
        self.causal = causal

    def forward(self, x: Tensor, attention_mask: Tensor | None = None, kv_cache: KVCache | None = None,
                need_weights: bool = False, mask: AttentionMask | None = None) -> tuple[Tensor, Tensor | None]:
        """Self-attention over x, optionally continuing from a KV cache.

        Args:
            x: (B, T, C) the new positions.
            attention_mask: (B, S) of 0/1 over ALL key positions, cached and new (S = len(kv_cache) + T).
            kv_cache: a :class:`KVCache`, updated in place with this call's keys and values.
            need_weights: run the explicit path and return the attention weights.
            mask: the forward pass's :class:`AttentionMask` (a model builds it once for all its layers);
                when given, ``attention_mask`` is not read.

        Returns:
            (y (B, T, C), weights (B, nh, T, S) or None). The weights are the ones applied to V (so after
            dropout in training; in eval mode each row sums to 1). A query with no visible key (a left-padding
            position under a causal mask) gets zero attention output, so its y is just c_proj's bias.
        """
        if x.dim() != 3 or x.size(-1) != self.n_embd:
            raise ValueError(f"x must be (B, T, C) with C = n_embd = {self.n_embd}, got shape {tuple(x.shape)}")
        B, T, C = x.shape
        hs = self.head_size
        # (B, T, 3C) -> (B, T, 3, nh, hs) -> 3 x (B, nh, T, hs): q, k, v of every head, in one reshuffle
        q, k, v = self.c_attn(x).view(B, T, 3, self.n_head, hs).permute(2, 0, 3, 1, 4).unbind(0)
        if mask is None:
            past = 0 if kv_cache is None else len(kv_cache)
            if attention_mask is not None and attention_mask.size(0) != B:
                raise ValueError(f"attention_mask must be (B, S) = ({B}, {past + T}) covering the {past} cached "
                                 f"and {T} new positions, got shape {tuple(attention_mask.shape)}")
            mask = build_mask(attention_mask, T, past + T, self.causal, x.device)
        if kv_cache is not None:
            k, v = kv_cache.update(k, v)  # (B, nh, S, hs)

        if need_weights:
            y, weights = attention(q, k, v, mask.mask if mask.mask is not None or not mask.causal_only
                                   else causal_mask(T, device=x.device))
            if self.training and self.dropout > 0:
                weights = self.attn_dropout(weights)
                y = weights @ v
        else:
            y, weights = self._fast(q, k, v, mask), None
        y = y.transpose(1, 2).contiguous().view(B, T, self.n_head * hs)  # put the heads side by side again
        y = self.c_proj(y)
        return (self.resid_dropout(y) if self.training else y), weights  # dropout: identity in eval mode

    def _fast(self, q: Tensor, k: Tensor, v: Tensor, mask: AttentionMask) -> Tensor:
        p = self.dropout if self.training else 0.0
        if mask.mask is None:  # no mask tensor: everything visible, or the kernels' built-in causal mask
            return F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=mask.causal_only)
        if mask.dead is None:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask.mask, dropout_p=p)
        # Some kernels return NaN (and NaN gradients) for a row with no visible key. Let such rows see
        # everything (so they stay finite), then zero their outputs, as the explicit path does.
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.mask | mask.dead, dropout_p=p)
        return y.masked_fill(mask.dead, 0.0)


def _check_heads(n_embd: int, n_head: int) -> None:
    if n_embd <= 0 or n_head <= 0:
        raise ValueError(f"n_embd and n_head must be positive, got n_embd={n_embd}, n_head={n_head}")
    if n_embd % n_head:
        below = max(d for d in range(1, n_head) if n_embd % d == 0)
        above = [d for d in range(n_head + 1, n_embd + 1) if n_embd % d == 0]
        nearest = [below] + above[:1]
        raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}: each head gets n_embd / n_head "
                         f"dimensions; use n_head={' or '.join(map(str, sorted(nearest)))} "
                         f"(or an n_embd that is a multiple of {n_head}, e.g. {n_embd + n_head - n_embd % n_head})")


def _check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    if not (q.dim() == k.dim() == v.dim() >= 2):
        raise ValueError(f"q, k, v must have the same number of dims, (B, nh, T, hs); got q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)}, v {tuple(v.shape)}")
    if q.size(-1) != k.size(-1):
        raise ValueError(f"q and k must have the same head size (last dim) to take dot products: q "
                         f"{tuple(q.shape)}, k {tuple(k.shape)}")
    if k.shape[:-1] != v.shape[:-1]:
        raise ValueError(f"k and v must have one vector per key position, (B, nh, S, ·): k {tuple(k.shape)}, "
                         f"v {tuple(v.shape)}")
    if q.shape[:-2] != k.shape[:-2]:
        raise ValueError(f"q and k must have the same batch and head dims (B, nh): q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)}")


def _check_mask(mask: Tensor, scores_shape: torch.Size) -> None:
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise ValueError(f"mask must be bool (True = may attend) or an additive float mask, got dtype "
                         f"{mask.dtype}: convert a 0/1 mask with mask.bool()")
    try:
        ok = torch.broadcast_shapes(mask.shape, scores_shape) == scores_shape
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to the scores (B, nh, T, S) = "
                         f"{tuple(scores_shape)}: use causal_mask(T, S) (T, S) or padding_mask(attention_mask) "
                         "(B, 1, 1, S)")
