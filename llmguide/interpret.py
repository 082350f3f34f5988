"""Looking inside a GPT: hooks that record and replace activations, the logit lens, direct logit
attribution, activation patching and linear probes.

Everything here works from the outside, with PyTorch forward hooks on the GPT's submodules, so the model
code stays as it is and nothing here depends on how a block computes its output:

* ``resid_pre.{i}``  the residual stream entering block i (``resid_pre.0`` = token + position embeddings),
  the input of ``transformer.h[i]``;
* ``resid_post.{i}`` the residual stream after block i, the output of ``transformer.h[i]``;
* ``attn_in.{i}``    what attention reads, ``ln_1(x)``, the input of ``h[i].attn``;
* ``attn_out.{i}``   the attention sublayer's output (all heads mixed by ``c_proj``);
* ``head_out.{i}``   each head's output before mixing, (B, T, nh, hs): the input of ``h[i].attn.c_proj``;
* ``mlp_out.{i}``    the MLP sublayer's output.

The attention weights are recomputed from ``attn_in`` with the layer's own ``c_attn`` weights and an
explicit causal softmax (:meth:`Recording.attention`); ``weights @ v`` reproduces ``head_out`` (tested).

The methods follow the interpretability literature: the logit lens (nostalgebraist 2020), direct logit
attribution and activation patching as in Elhage et al. 2021 ("A Mathematical Framework for Transformer
Circuits") and Meng et al. 2022 ("Locating and Editing Factual Associations in GPT"), linear probes
(Alain & Bengio 2016) with a randomly initialised control (Hewitt & Liang 2019). TransformerLens and the
ARENA curriculum are the reference implementations.

Shapes: B batch, T positions, C = n_embd, nh = n_head, hs = C // nh, L = n_layer, V = vocab_size.

Why one module of ~410 lines: every method here reads or replaces activations through the same hook
points (:class:`Recording`); splitting them would spread one naming scheme over several files.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from llmguide.attention import causal_mask, combine_masks, padding_mask
from llmguide.model import GPT

SITES = ("resid_pre", "resid_post", "attn_in", "attn_out", "head_out", "mlp_out")
Edit = Callable[[Tensor], Tensor]  # takes the activation (shape as recorded), returns its replacement


def _gpt(model: nn.Module) -> nn.Module:
    """The GPT inside ``model`` (a GPT, or a GPTClassifier holding one as ``.gpt``)."""
    gpt = getattr(model, "gpt", model)
    if not hasattr(gpt, "transformer") or not hasattr(gpt.transformer, "h"):
        raise ValueError(f"expected a llmguide GPT or GPTClassifier, got {type(model).__name__}: "
                         "hooks are placed on model.transformer.h[i]")
    return gpt


def _parse(name: str, n_layer: int) -> tuple[str, int]:
    m = re.fullmatch(r"([a-z_]+)\.(\d+)", name)
    if m is None or m.group(1) not in SITES or int(m.group(2)) >= n_layer:
        raise ValueError(f"unknown hook site {name!r}: use '<site>.<layer>' with site in {SITES} and "
                         f"layer in 0..{n_layer - 1}, e.g. 'resid_post.0'")
    return m.group(1), int(m.group(2))


@dataclass
class Recording:
    """The activations of one forward pass, by site name (see the module docstring).

    ``acts['resid_post.1']`` is (B, T, C); ``acts['head_out.1']`` is (B, T, nh, hs).
    """

    model: nn.Module  # the GPT whose blocks were hooked
    acts: dict[str, Tensor] = field(default_factory=dict)
    masks: dict[int, Tensor | None] = field(default_factory=dict)  # attention_mask seen by each layer

    def __getitem__(self, name: str) -> Tensor:
        if name not in self.acts:
            raise KeyError(f"{name!r} was not recorded; recorded: {sorted(self.acts)[:8]}...")
        return self.acts[name]

    def residuals(self) -> Tensor:
        """The residual stream before block 0 and after each block: (L + 1, B, T, C)."""
        L = self.model.config.n_layer
        return torch.stack([self["resid_pre.0"]] + [self[f"resid_post.{i}"] for i in range(L)])

    @torch.no_grad()
    def attention(self, layer: int) -> Tensor:
        """Each head's attention weights in ``layer``, recomputed from ``attn_in``: (B, nh, T, T).

        The weights are softmax(q kᵀ / √hs) under the causal mask (none for an encoder such as
        :class:`llmguide.vit.ViT`) and the padding mask, if the forward pass had one, with the layer's own
        ``c_attn``; eval mode (no attention dropout) is assumed.
        """
        attn = self.model.transformer.h[layer].attn
        q, k, _ = _qkv(attn, self[f"attn_in.{layer}"])
        T = q.size(2)
        seen = self.masks.get(layer)  # None, a (B, T) 0/1 padding mask, or a bool mask built by the model
        extra = None if seen is None else padding_mask(seen) if seen.dim() == 2 else seen.bool()
        # a GPT's attention is causal; an encoder's (a ViT's, causal=False) sees every position
        causal = causal_mask(T, device=q.device) if getattr(attn, "causal", True) else None
        mask = combine_masks(causal, extra)  # None, (T, T) or (B, 1, T, T)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, nh, T, T)
        if mask is None:
            return torch.softmax(scores, dim=-1)
        scores = scores.masked_fill(~mask, float("-inf"))
        dead = ~mask.any(-1, keepdim=True)  # a left-padding query sees no key: zero weights, not NaN
        return torch.softmax(scores.masked_fill(dead, 0.0), dim=-1).masked_fill(dead, 0.0)  # (B, nh, T, T)

    @torch.no_grad()
    def values(self, layer: int) -> Tensor:
        """Each head's value vectors in ``layer``: (B, nh, T, hs)."""
        return _qkv(self.model.transformer.h[layer].attn, self[f"attn_in.{layer}"])[2]


def _qkv(attn: nn.Module, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    B, T, C = x.shape
    nh = attn.n_head
    # the same layout as MultiHeadAttention: (B, T, 3C) -> 3 x (B, nh, T, hs)
    return attn.c_attn(x).view(B, T, 3, nh, C // nh).permute(2, 0, 3, 1, 4).unbind(0)


@contextlib.contextmanager
def hooks(model: nn.Module, edits: Mapping[str, Edit] | None = None, record: bool = True) -> Iterator[Recording]:
    """Record (and optionally replace) activations of every block while the ``with`` body runs.

    Args:
        model: a GPT or a GPTClassifier (its ``.gpt`` is hooked).
        edits: site name -> function from the activation to its replacement, e.g.
            ``{"head_out.1": zero_heads([2])}`` or ``{"resid_post.0": patch_positions(clean, [3])}``.
            The replacement flows on through the model; the recording holds it.
        record: keep the activations (False: only apply the edits).
    Yields:
        A :class:`Recording`, filled by each forward pass in the body (the last pass wins).
    Every hook is removed on exit, also when the body raises.
    """
    gpt = _gpt(model)
    L = gpt.config.n_layer
    edits = dict(edits or {})
    for name in edits:
        _parse(name, L)
    rec = Recording(gpt)
    nh, C = gpt.config.n_head, gpt.config.n_embd

    def act(name: str, value: Tensor) -> Tensor:
        if name in edits:
            new = edits[name](value)
            if new.shape != value.shape:
                raise ValueError(f"edit of {name!r} returned shape {tuple(new.shape)}, expected {tuple(value.shape)}")
            value = new
        if record:
            rec.acts[name] = value.detach()
        return value

    def block_pre(i):
        def hook(mod, args, kwargs):
            x = act(f"resid_pre.{i}", args[0])
            return (x, *args[1:]), kwargs
        return hook

    def attn_pre(i):
        def hook(mod, args, kwargs):
            built = kwargs.get("mask")  # the AttentionMask a GPT builds once per forward for all its layers
            rec.masks[i] = built.mask if built is not None else kwargs.get("attention_mask",
                                                                            args[1] if len(args) > 1 else None)
            return (act(f"attn_in.{i}", args[0]), *args[1:]), kwargs
        return hook

    def head_pre(i):
        def hook(mod, args):
            y = args[0]  # (B, T, C), heads side by side
            B, T, _ = y.shape
            return (act(f"head_out.{i}", y.view(B, T, nh, C // nh)).reshape(B, T, C),)
        return hook

    def out_hook(name, tuple_out=False):
        def hook(mod, args, out):
            if tuple_out:  # attention returns (y, weights)
                return (act(name, out[0]), *out[1:])
            return act(name, out)
        return hook

    handles = []
    try:
        for i, block in enumerate(gpt.transformer.h):
            handles += [
                block.register_forward_pre_hook(block_pre(i), with_kwargs=True),
                block.attn.register_forward_pre_hook(attn_pre(i), with_kwargs=True),
                block.attn.c_proj.register_forward_pre_hook(head_pre(i)),
                block.attn.register_forward_hook(out_hook(f"attn_out.{i}", tuple_out=True)),
                block.mlp.register_forward_hook(out_hook(f"mlp_out.{i}")),
                block.register_forward_hook(out_hook(f"resid_post.{i}")),
            ]
        yield rec
    finally:
        for h in handles:
            h.remove()


def run_with_hooks(model: nn.Module, idx: Tensor, edits: Mapping[str, Edit] | None = None,
                   **kwargs) -> tuple[Tensor, Recording]:
    """One forward pass under :func:`hooks`, without gradients.

    Args:
        model: a GPT or GPTClassifier.
        idx: (B, T) token ids.
        edits: as in :func:`hooks`.
        **kwargs: passed to the model (e.g. ``attention_mask``).
    Returns:
        The model's logits ((B, T, V) for a GPT, (B, n_classes) for a classifier) and the recording.
    """
    if isinstance(model, GPT):
        kwargs.setdefault("all_logits", True)  # every position, not only the last one generation needs
    with torch.no_grad(), hooks(model, edits) as rec:
        logits = model(idx, **kwargs)[0]
    return logits, rec


def zero_heads(heads: Sequence[int]) -> Edit:
    """An edit for ``head_out.{i}`` that zeroes the given heads (zero ablation)."""
    def edit(x: Tensor) -> Tensor:  # (B, T, nh, hs)
        x = x.clone()
        x[:, :, list(heads)] = 0.0
        return x
    return edit


def patch_positions(source: Tensor, positions: Sequence[int] | None = None) -> Edit:
    """An edit that copies ``source`` (an activation recorded on another input) in at ``positions``.

    Args:
        source: (B, T, ...) the activation to copy from, e.g. ``clean_rec['resid_post.1']``.
        positions: positions to patch; None = all.
    """
    def edit(x: Tensor) -> Tensor:
        if source.shape != x.shape:
            raise ValueError(f"patch source has shape {tuple(source.shape)} but the activation is "
                             f"{tuple(x.shape)}: clean and corrupted inputs must have the same length")
        if positions is None:
            return source.to(x.dtype)
        x = x.clone()
        x[:, list(positions)] = source[:, list(positions)].to(x.dtype)
        return x
    return edit


# ---------------------------------------------------------------- logit lens and direct logit attribution

def logit_lens(model: nn.Module, rec: Recording) -> Tensor:
    """Decode the residual stream before block 0 and after every block with the final LayerNorm and LM head.

    Returns:
        (L + 1, B, T, V) logits; the last entry equals the model's own logits.
    """
    gpt = _gpt(model)
    with torch.no_grad():
        return gpt.lm_head(gpt.transformer.ln_f(rec.residuals()))


@dataclass
class LogitAttribution:
    """A logit difference split into the parts of the residual stream that write it (one row per batch item).

    ``total`` = ``embed + heads.sum((1, 2)) + attn_bias.sum(1) + mlp.sum(1) + ln_bias`` exactly (up to float
    rounding), with the final LayerNorm's scale frozen at its value on this run.
    """

    embed: Tensor  # (B,) token + position embeddings
    heads: Tensor  # (B, L, nh) each head, through its slice of c_proj
    attn_bias: Tensor  # (B, L) c_proj's bias, which belongs to no head
    mlp: Tensor  # (B, L) each MLP
    ln_bias: Tensor  # (B,) the final LayerNorm's bias
    total: Tensor  # (B,) the logit difference itself, from the model's logits


@torch.no_grad()
def direct_logit_attribution(model: nn.Module, rec: Recording, token_a: int, token_b: int,
                             position: int = -1) -> LogitAttribution:
    """Split ``logit[token_a] - logit[token_b]`` at ``position`` into per-layer and per-head contributions.

    The final LayerNorm is ``ln_f(x) = (x - mean(x)) / sigma(x) * g + b``. Centering is linear, but dividing
    by sigma(x) is not, so a sum of parts only splits exactly if sigma is frozen at this run's value (as
    TransformerLens does): each part c contributes ``((c - mean(c)) / sigma * g) . (W_U[a] - W_U[b])``.

    Args:
        model: the GPT (or classifier: its GPT's LM head is used) that made ``rec``.
        rec: a recording of one forward pass.
        token_a, token_b: the two vocabulary ids to compare.
        position: which position's prediction to explain.
    Returns:
        A :class:`LogitAttribution`, in float64.
    """
    gpt = _gpt(model)
    L, nh = gpt.config.n_layer, gpt.config.n_head
    ln = gpt.transformer.ln_f
    d = (gpt.lm_head.weight[token_a] - gpt.lm_head.weight[token_b]).double()  # (C,) the logit-difference direction
    x = rec[f"resid_post.{L - 1}"][:, position].double()  # (B, C)
    sigma = (x.var(-1, unbiased=False, keepdim=True) + ln.eps).sqrt()  # (B, 1) frozen
    g = ln.weight.double() * d  # (C,): a part c adds ((c - mean c) / sigma) . g

    def score(c: Tensor) -> Tensor:  # (..., C) -> (...)
        return ((c - c.mean(-1, keepdim=True)) * g).sum(-1) / sigma.view(-1, *([1] * (c.dim() - 2)))

    heads, bias, mlp = [], [], []
    for i, block in enumerate(gpt.transformer.h):
        w = block.attn.c_proj.weight.double().view(-1, nh, block.attn.c_proj.in_features // nh)  # (C, nh, hs)
        h = rec[f"head_out.{i}"][:, position].double()  # (B, nh, hs)
        heads.append(score(torch.einsum("bnk,cnk->bnc", h, w)))  # head n's write: W_O[:, n] h_n
        b = block.attn.c_proj.bias
        bias.append(score((b.double() if b is not None else torch.zeros_like(d)).expand(x.shape)))
        mlp.append(score(rec[f"mlp_out.{i}"][:, position].double()))
    logits = gpt.lm_head(ln(rec[f"resid_post.{L - 1}"][:, position]))  # (B, V)
    ln_b = ln.bias.double() @ d if ln.bias is not None else torch.tensor(0.0, dtype=torch.float64)
    return LogitAttribution(
        embed=score(rec["resid_pre.0"][:, position].double()), heads=torch.stack(heads, 1),
        attn_bias=torch.stack(bias, 1), mlp=torch.stack(mlp, 1), ln_bias=ln_b.expand(x.size(0)),
        total=(logits[:, token_a] - logits[:, token_b]).double(),
    )


# ---------------------------------------------------------------- activation patching

def residual_patching(model: nn.Module, clean: Tensor, corrupted: Tensor,
                      metric: Callable[[Tensor], Tensor]) -> Tensor:
    """Patch the clean residual stream into the corrupted run at each (layer, position).

    Row 0 patches ``resid_pre.0`` (the embeddings), row i + 1 patches ``resid_post.i``. Each entry is the
    share of the metric that returns: ``(m(patched) - m(corrupted)) / (m(clean) - m(corrupted))``,
    1 = fully restored, 0 = no effect.

    Args:
        model: a GPT or GPTClassifier.
        clean, corrupted: (1, T) token ids of the same length (e.g. a review with 好 changed to 差).
        metric: logits -> a scalar tensor, e.g. the positive-minus-negative logit difference.
    Returns:
        (L + 1, T) float tensor.
    """
    if clean.shape != corrupted.shape or clean.dim() != 2:
        raise ValueError(f"clean {tuple(clean.shape)} and corrupted {tuple(corrupted.shape)} must both be (B, T) "
                         "of the same length: pick a corruption that keeps the token count")
    L, T = _gpt(model).config.n_layer, clean.size(1)
    clean_logits, rec = run_with_hooks(model, clean)
    m_clean = float(metric(clean_logits))
    m_bad = float(metric(run_with_hooks(model, corrupted)[0]))
    if abs(m_clean - m_bad) < 1e-9:
        raise ValueError(f"the metric is the same on both inputs ({m_clean:.4g}): nothing to restore")
    sites = ["resid_pre.0"] + [f"resid_post.{i}" for i in range(L)]
    out = torch.zeros(L + 1, T)
    for r, site in enumerate(sites):
        for t in range(T):
            logits, _ = run_with_hooks(model, corrupted, {site: patch_positions(rec[site], [t])})
            out[r, t] = (float(metric(logits)) - m_bad) / (m_clean - m_bad)
    return out


# ---------------------------------------------------------------- probes

def pooled_residuals(model: nn.Module, idx: Tensor, attention_mask: Tensor | None = None,
                     pooling: str = "mean", batch_size: int = 64) -> np.ndarray:
    """The residual stream before block 0 and after each block, pooled over the real tokens of each text.

    Args:
        model: a GPT or GPTClassifier.
        idx: (N, T) token ids.
        attention_mask: (N, T) 1 = real token; None = all real.
        pooling: "mean" over real tokens, or "last" real token.
        batch_size: texts per forward pass.
    Returns:
        (L + 1, N, C) float32 array.
    """
    if pooling not in ("mean", "last"):
        raise ValueError(f"pooling must be 'mean' or 'last', got {pooling!r}")
    gpt = _gpt(model)
    am = torch.ones_like(idx) if attention_mask is None else attention_mask
    parts = []
    for s in range(0, idx.size(0), batch_size):
        ids, m = idx[s:s + batch_size], am[s:s + batch_size]
        _, rec = run_with_hooks(gpt, ids, attention_mask=None if attention_mask is None else m)
        r = rec.residuals()  # (L + 1, b, T, C)
        if pooling == "mean":
            w = m.to(r.dtype)[None, :, :, None]
            parts.append((r * w).sum(2) / w.sum(2))
        else:
            last = (torch.arange(ids.size(1)) * m.long()).argmax(-1)  # (b,) rightmost real token
            parts.append(r[:, torch.arange(ids.size(0)), last])
    return torch.cat(parts, 1).float().numpy()


def probe_accuracy(features: np.ndarray, labels: Sequence[int], train_mask: Sequence[bool],
                   C: float = 1.0, max_iter: int = 1000) -> list[float]:
    """Train one logistic-regression probe per layer and return its held-out accuracy.

    Args:
        features: (L + 1, N, C) from :func:`pooled_residuals`.
        labels: (N,) class ids.
        train_mask: (N,) True = fit on this text, False = score on it.
        C: inverse regularisation strength of scikit-learn's LogisticRegression.
        max_iter: solver iterations.
    Returns:
        L + 1 accuracies on the held-out texts.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    y, tr = np.asarray(labels), np.asarray(train_mask, dtype=bool)
    if features.ndim != 3 or features.shape[1] != len(y) or len(tr) != len(y):
        raise ValueError(f"features must be (L + 1, N, C) with N = len(labels) = {len(y)} = len(train_mask) "
                         f"= {len(tr)}, got {features.shape}")
    if tr.all() or not tr.any():
        raise ValueError("train_mask must hold both True (fit) and False (held-out) entries")
    acc = []
    for X in features:
        scaler = StandardScaler().fit(X[tr])  # the residual stream's scale grows with depth
        clf = LogisticRegression(C=C, max_iter=max_iter).fit(scaler.transform(X[tr]), y[tr])
        acc.append(float(clf.score(scaler.transform(X[~tr]), y[~tr])))
    return acc
