"""Pruning (剪枝): removing weights a trained model barely uses, two ways.

* **Unstructured magnitude pruning** (Han et al. 2015, "Learning both Weights and Connections"): zero the
  smallest-magnitude weights, per layer or ranked over all layers at once ("global"), with
  ``torch.nn.utils.prune``. It makes nothing faster on a dense kernel: a matrix multiply does the same
  multiply-adds whether an entry is 0.0 or 0.3, and the tensor keeps its shape and bytes. Only sparse
  kernels or sparse storage (and structured 2:4 sparsity on recent GPUs) turn zeros into time or memory.
* **Structured pruning** removes whole attention heads and MLP neurons, so the Linear layers themselves
  get smaller and every dense kernel does less work. Heads and neurons are ranked by the first-order
  importance of Michel et al. 2019 ("Are Sixteen Heads Really Better than One?"): put a gate g = 1 on each
  head's (or neuron's) output and take |dL/dg| summed over data, i.e. |sum of gradient x activation|, the
  estimated change of the loss if the unit were removed. A short fine-tune then recovers most of the loss.

Works on :class:`~llmguide.model.GPT` and :class:`~llmguide.model.GPTClassifier` (any module whose blocks
are ``model.gpt.transformer.h`` or ``model.transformer.h``). Shapes: B batch, T tokens, C = n_embd,
nh heads, hs head size, H MLP width (4C before pruning).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from llmguide.runtime import eval_mode

SCOPES = ("global", "layer")


def blocks_of(model: nn.Module) -> nn.ModuleList:
    """The transformer blocks of a GPT or a GPT classifier."""
    gpt = getattr(model, "gpt", model)
    if not hasattr(gpt, "transformer"):
        raise ValueError(f"{type(model).__name__} has no transformer blocks: pass a GPT or a GPTClassifier")
    return gpt.transformer.h


def prunable_linears(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The Linear layers inside the blocks (attention and MLP): what pruning acts on.

    Embeddings, the tied LM head and the classification head are left alone: they are a lookup table and
    a few output rows, and the blocks are where the multiply-adds are.
    """
    return [(f"h.{i}.{name}", m) for i, block in enumerate(blocks_of(model))
            for name, m in block.named_modules() if isinstance(m, nn.Linear)]


def magnitude_prune(model: nn.Module, amount: float, scope: str = "global") -> nn.Module:
    """A copy of ``model`` with the fraction ``amount`` of its block weights set to zero (L1 magnitude).

    Args:
        model: a GPT or GPTClassifier (not changed).
        amount: fraction in [0, 1) of the weights to zero.
        scope: "global" ranks all block weights together (layers that matter less lose more), "layer"
            zeroes ``amount`` of every Linear separately.
    Returns:
        The pruned copy; the masks are made permanent (``prune.remove``), so it is an ordinary model whose
        weight tensors hold zeros: same shapes, same bytes, same speed.
    """
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"amount must be a fraction in [0, 1), got {amount!r} (e.g. 0.5 zeroes half the weights)")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    pruned = copy.deepcopy(model)
    layers = [(m, "weight") for _, m in prunable_linears(pruned)]
    if scope == "global":
        prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=amount)
    else:
        for m, name in layers:
            prune.l1_unstructured(m, name, amount=amount)
    for m, name in layers:
        prune.remove(m, name)  # weight = weight_orig * mask, as a plain parameter again
    return pruned


def sparsity(model: nn.Module) -> float:
    """The fraction of exact zeros among the block Linear weights."""
    weights = [m.weight for _, m in prunable_linears(model)]
    return sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)


def sparsity_curve(model: nn.Module, evaluate: Callable[[nn.Module], Any], amounts: Sequence[float],
                   scope: str = "global") -> pd.DataFrame:
    """Quality against sparsity: prune a copy at each amount and score it.

    Args:
        model: the trained model.
        evaluate: ``model -> score`` (e.g. test accuracy, or a tuple of scores).
        amounts: fractions to prune, e.g. ``(0, 0.25, 0.5, 0.75, 0.9)``.
        scope: see :func:`magnitude_prune`.
    Returns:
        DataFrame with columns amount, sparsity (measured), score.
    """
    rows = []
    for amount in amounts:
        pruned = magnitude_prune(model, amount, scope)
        rows.append({"amount": amount, "sparsity": sparsity(pruned), "score": evaluate(pruned)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- structured: importance
def unit_importance(model: nn.Module, batches: Iterable[dict[str, Tensor]]) -> tuple[Tensor, Tensor]:
    """Michel et al.'s importance of every attention head and MLP neuron: |sum over data of dL/dg|.

    A gate g = 1 multiplies each head's output (before ``attn.c_proj``) and each neuron's activation
    (before ``mlp.c_proj``); the forward pass is unchanged, and dL/dg = sum over positions of
    gradient x activation of that unit.

    Args:
        model: a GPT classifier (or GPT) whose ``model(**batch)`` returns ``(logits, loss)``.
        batches: labelled batches (e.g. some training data).
    Returns:
        ``(heads (n_layer, nh), neurons (n_layer, H))``, non-negative.
    """
    blocks = blocks_of(model)
    head_gates = [torch.ones(b.attn.n_head, requires_grad=True) for b in blocks]
    neuron_gates = [torch.ones(b.mlp.c_proj.in_features, requires_grad=True) for b in blocks]

    def gate_heads(gate: Tensor, hs: int):
        def hook(_module, args):
            (y,) = args  # (B, T, nh * hs): the heads side by side
            return (y * gate.repeat_interleave(hs).to(y),)
        return hook

    def gate_neurons(gate: Tensor):
        return lambda _module, args: (args[0] * gate.to(args[0]),)  # (B, T, H)

    handles = []
    for b, hg, ng in zip(blocks, head_gates, neuron_gates, strict=True):
        handles.append(b.attn.c_proj.register_forward_pre_hook(gate_heads(hg, b.attn.head_size)))
        handles.append(b.mlp.c_proj.register_forward_pre_hook(gate_neurons(ng)))
    heads = torch.zeros(len(blocks), blocks[0].attn.n_head)
    neurons = torch.zeros(len(blocks), blocks[0].mlp.c_proj.in_features)
    try:
        with eval_mode(model):
            for batch in batches:
                _, loss = model(**batch)
                grads = torch.autograd.grad(loss, head_gates + neuron_gates)
                heads += torch.stack(grads[:len(blocks)])
                neurons += torch.stack(grads[len(blocks):])
    finally:
        for h in handles:
            h.remove()
    return heads.abs(), neurons.abs()


# ---------------------------------------------------------------- structured: removal
def _keep_rows(linear: nn.Linear, rows: Tensor) -> nn.Linear:
    out = nn.Linear(linear.in_features, len(rows), bias=linear.bias is not None)
    out.weight.data = linear.weight.data[rows].clone()
    if linear.bias is not None:
        out.bias.data = linear.bias.data[rows].clone()
    return out.to(linear.weight)


def _keep_columns(linear: nn.Linear, columns: Tensor) -> nn.Linear:
    out = nn.Linear(len(columns), linear.out_features, bias=linear.bias is not None)
    out.weight.data = linear.weight.data[:, columns].clone()
    if linear.bias is not None:
        out.bias.data = linear.bias.data.clone()  # added once after the sum: unchanged
    return out.to(linear.weight)


def remove_heads(attn: nn.Module, keep: Sequence[int]) -> None:
    """Shrink a :class:`~llmguide.attention.MultiHeadAttention` in place to the heads ``keep``.

    ``c_attn``'s rows of q, k and v of the dropped heads go (C -> 3 * k * hs), and so do the matching
    input columns of ``c_proj`` (k * hs -> C). The kept heads compute exactly what they did.
    """
    keep = sorted(int(h) for h in keep)
    if not keep or not all(0 <= h < attn.n_head for h in keep) or len(set(keep)) != len(keep):
        raise ValueError(f"keep must name 1 to {attn.n_head} distinct heads in 0..{attn.n_head - 1}, got {keep}")
    hs, C = attn.head_size, attn.n_head * attn.head_size
    dims = torch.cat([torch.arange(h * hs, (h + 1) * hs) for h in keep])  # (k * hs,)
    attn.c_attn = _keep_rows(attn.c_attn, torch.cat([dims, C + dims, 2 * C + dims]))  # q | k | v blocks
    attn.c_proj = _keep_columns(attn.c_proj, dims)
    attn.n_head = len(keep)


def remove_neurons(mlp: nn.Module, keep: Sequence[int]) -> None:
    """Shrink an MLP in place to the hidden neurons ``keep``: ``c_fc`` rows and ``c_proj`` columns."""
    keep = torch.as_tensor(sorted(int(n) for n in keep), dtype=torch.long)
    if len(keep) == 0 or keep.min() < 0 or keep.max() >= mlp.c_fc.out_features:
        raise ValueError(f"keep must name at least one neuron in 0..{mlp.c_fc.out_features - 1}")
    mlp.c_fc = _keep_rows(mlp.c_fc, keep)
    mlp.c_proj = _keep_columns(mlp.c_proj, keep)


def _top(scores: Tensor, fraction: float) -> Tensor:
    k = max(1, round(len(scores) * (1 - fraction)))  # keep at least one unit per layer
    return scores.topk(k).indices


def structured_prune(model: nn.Module, head_fraction: float, neuron_fraction: float,
                     importance: tuple[Tensor, Tensor]) -> nn.Module:
    """A smaller copy of ``model``: in every block, the least important heads and MLP neurons removed.

    Args:
        model: a GPT or GPTClassifier (not changed).
        head_fraction: fraction of each layer's heads to remove (at least one head stays).
        neuron_fraction: fraction of each layer's MLP neurons to remove.
        importance: :func:`unit_importance`'s ``(heads, neurons)``.
    Returns:
        The pruned copy. Its blocks no longer match ``model.config`` (per-layer head counts and MLP
        widths), so keep it in memory; ``llmguide.folder`` cannot save it yet.
    """
    for name, f in (("head_fraction", head_fraction), ("neuron_fraction", neuron_fraction)):
        if not 0.0 <= f < 1.0:
            raise ValueError(f"{name} must be a fraction in [0, 1), got {f!r}")
    heads, neurons = importance
    pruned = copy.deepcopy(model)
    for i, block in enumerate(blocks_of(pruned)):
        remove_heads(block.attn, _top(heads[i], head_fraction).tolist())
        remove_neurons(block.mlp, _top(neurons[i], neuron_fraction).tolist())
    return pruned


def zero_units(model: nn.Module, head_fraction: float, neuron_fraction: float,
               importance: tuple[Tensor, Tensor]) -> nn.Module:
    """A same-shape copy of ``model`` with the units :func:`structured_prune` would remove set to zero.

    Zeroing a head's columns of ``c_proj`` and a neuron's column of ``mlp.c_proj`` removes their
    contribution exactly, so this model and the structured-pruned one compute the same function (the
    parity test of the removal code).
    """
    heads, neurons = importance
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        for i, block in enumerate(blocks_of(zeroed)):
            hs = block.attn.head_size
            keep_h = set(_top(heads[i], head_fraction).tolist())
            for h in set(range(block.attn.n_head)) - keep_h:
                block.attn.c_proj.weight[:, h * hs:(h + 1) * hs] = 0
            drop = torch.ones(block.mlp.c_proj.in_features, dtype=torch.bool)
            drop[_top(neurons[i], neuron_fraction)] = False
            block.mlp.c_proj.weight[:, drop] = 0
    return zeroed

