"""Which input tokens made a classifier decide: gradient x input, integrated gradients and occlusion.

All three score each token of a text for one class logit f (e.g. "negative") of a
:class:`~llmguide.model.GPTClassifier`, working on the token embeddings e (token ids are discrete, so
gradients are taken with respect to their embedding vectors; position embeddings are left alone):

* gradient x input: ``e * df/de``, a first-order (Taylor) estimate of each embedding's effect;
* integrated gradients (Sundararajan et al. 2017, "Axiomatic Attribution for Deep Networks"):
  ``(e - e0) * integral_0^1 df/de(e0 + a (e - e0)) da``, from a baseline e0 (here the padding token's
  embedding). Its "completeness" axiom: the scores sum to f(e) - f(e0), up to the quadrature error;
* occlusion: replace one token by the baseline token and see how much f drops. It needs no gradients, so it
  checks the other two on any model.

Captum (``IntegratedGradients``, ``LayerIntegratedGradients``, ``FeatureAblation``) is the reference the
tests compare with; this module does not need it.

Shapes: B batch, T positions, C = n_embd, n = integration steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

METHODS = ("riemann_middle", "riemann_trapezoid", "gausslegendre")


def quadrature(n_steps: int, method: str = "gausslegendre") -> tuple[Tensor, Tensor]:
    """Points a in [0, 1] and weights w with ``sum_k w_k g(a_k) ≈ integral_0^1 g(a) da``.

    Args:
        n_steps: number of points (> 1).
        method: "gausslegendre" (exact for polynomials of degree < 2n; Captum's default),
            "riemann_middle" (midpoints) or "riemann_trapezoid" (n evenly spaced points from 0 to 1, the two
            ends at half weight; Captum's rule of that name weights by 1/n instead of 1/(n - 1), so its
            weights sum to 1 - 1/n, and it is not compared with ours).
    Returns:
        (alphas (n,), weights (n,)) in float64.
    """
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 2:
        raise ValueError(f"n_steps must be an int >= 2, got {n_steps!r}")
    if method == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(n_steps)  # on [-1, 1]: map to [0, 1]
        return torch.from_numpy(0.5 * (x + 1)), torch.from_numpy(0.5 * w)
    if method == "riemann_middle":
        return (torch.arange(n_steps, dtype=torch.float64) + 0.5) / n_steps, torch.full((n_steps,), 1 / n_steps,
                                                                                       dtype=torch.float64)
    if method == "riemann_trapezoid":
        w = torch.full((n_steps,), 1 / (n_steps - 1), dtype=torch.float64)
        w[0] /= 2
        w[-1] /= 2
        return torch.linspace(0, 1, n_steps, dtype=torch.float64), w
    raise ValueError(f"unknown method {method!r}: use one of {METHODS}")


def _wte(classifier: nn.Module) -> nn.Embedding:
    gpt = getattr(classifier, "gpt", None)
    if gpt is None or not hasattr(gpt, "transformer"):
        raise ValueError(f"expected a llmguide GPTClassifier (with .gpt), got {type(classifier).__name__}")
    return gpt.transformer.wte


def logit_from_embeddings(classifier: nn.Module, idx: Tensor, emb: Tensor, target: int,
                          attention_mask: Tensor | None = None) -> Tensor:
    """The classifier's ``target`` logit with the token embeddings replaced by ``emb``.

    A forward hook swaps the output of ``gpt.transformer.wte``, so position embeddings, masks and the
    rest of the forward pass are the model's own.

    Args:
        classifier: a GPTClassifier.
        idx: (B, T) token ids (they still set the shape and the padding).
        emb: (B, T, C) embeddings to use instead of ``wte(idx)``.
        target: class id.
        attention_mask: (B, T) or None.
    Returns:
        (B,) logits.
    """
    handle = _wte(classifier).register_forward_hook(lambda mod, args, out: emb)
    try:
        logits = classifier(idx, attention_mask=attention_mask)[0]  # (B, n_classes)
    finally:
        handle.remove()
    return logits[:, target]


def gradient_x_input(classifier: nn.Module, idx: Tensor, target: int,
                     attention_mask: Tensor | None = None) -> Tensor:
    """``e * df/de`` for each token embedding e.

    Returns:
        (B, T, C); sum over C for one score per token.
    """
    emb = _wte(classifier)(idx).detach().requires_grad_(True)
    f = logit_from_embeddings(classifier, idx, emb, target, attention_mask)
    (grad,) = torch.autograd.grad(f.sum(), emb)  # rows are independent, so one backward serves the batch
    return (emb * grad).detach()


def integrated_gradients(classifier: nn.Module, idx: Tensor, target: int, baseline_id: int,
                         n_steps: int = 50, method: str = "gausslegendre",
                         attention_mask: Tensor | None = None, steps_per_batch: int = 16) -> Tensor:
    """Integrated gradients on the token embeddings, from the embedding of ``baseline_id`` at every position.

    ``IG(e) = (e - e0) * sum_k w_k df/de(e0 + a_k (e - e0))`` with the points and weights of
    :func:`quadrature`.

    Args:
        classifier: a GPTClassifier.
        idx: (B, T) token ids.
        target: class id whose logit is explained.
        baseline_id: the token whose embedding is the baseline (e.g. the padding id).
        n_steps: integration points.
        method: see :func:`quadrature`.
        attention_mask: (B, T) or None.
        steps_per_batch: points evaluated per forward pass (memory vs speed).
    Returns:
        (B, T, C) attributions; their sum over (T, C) ≈ f(e) - f(e0) (see :func:`completeness_gap`).
    """
    wte = _wte(classifier)
    alphas, weights = quadrature(n_steps, method)
    with torch.no_grad():
        e, e0 = wte(idx), wte(torch.full_like(idx, baseline_id))  # (B, T, C)
    B = idx.size(0)
    total = torch.zeros_like(e)
    for s in range(0, n_steps, steps_per_batch):
        a = alphas[s:s + steps_per_batch].to(e.dtype)  # (k,)
        k = a.numel()
        path = (e0 + a.view(k, 1, 1, 1) * (e - e0)).flatten(0, 1).requires_grad_(True)  # (k * B, T, C)
        am = None if attention_mask is None else attention_mask.repeat(k, 1)
        f = logit_from_embeddings(classifier, idx.repeat(k, 1), path, target, am)
        (grad,) = torch.autograd.grad(f.sum(), path)
        w = weights[s:s + steps_per_batch].to(e.dtype)
        total += (grad.view(k, B, *e.shape[1:]) * w.view(k, 1, 1, 1)).sum(0)
    return ((e - e0) * total).detach()


def completeness_gap(classifier: nn.Module, idx: Tensor, target: int, baseline_id: int, attributions: Tensor,
                     attention_mask: Tensor | None = None) -> Tensor:
    """How far attributions are from summing to ``f(e) - f(e0)``: ``|sum - delta| / |delta|`` per text.

    Returns:
        (B,) relative gaps (0.01 = 1%).
    """
    wte = _wte(classifier)
    with torch.no_grad():
        f = logit_from_embeddings(classifier, idx, wte(idx), target, attention_mask)
        f0 = logit_from_embeddings(classifier, idx, wte(torch.full_like(idx, baseline_id)), target, attention_mask)
    delta = f - f0
    return (attributions.sum((1, 2)) - delta).abs() / delta.abs().clamp_min(1e-12)


def occlusion(classifier: nn.Module, idx: Tensor, target: int, baseline_id: int,
              attention_mask: Tensor | None = None, positions: Sequence[int] | None = None) -> Tensor:
    """``f(x) - f(x with token t replaced by baseline_id)`` for each position t.

    Args:
        classifier: any model returning ``(logits, ...)`` from ``(idx, attention_mask=...)``.
        idx: (B, T) token ids.
        target: class id.
        baseline_id: the replacement token (e.g. the padding id).
        attention_mask: (B, T) or None; padding positions score 0.
        positions: positions to occlude (default all).
    Returns:
        (B, T) drops in the target logit.
    """
    T = idx.size(1)
    out = torch.zeros(idx.shape)
    with torch.no_grad():
        f = classifier(idx, attention_mask=attention_mask)[0][:, target]
        for t in range(T) if positions is None else positions:
            occluded = idx.clone()
            occluded[:, t] = baseline_id
            out[:, t] = f - classifier(occluded, attention_mask=attention_mask)[0][:, target]
    if attention_mask is not None:
        out = out * attention_mask.to(out.dtype)
    return out
