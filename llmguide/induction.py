"""Induction heads and the logit lens in a real pre-trained model (a Hugging Face causal LM such as
SmolLM2-135M).

An induction head (Elhage et al. 2021; Olsson et al. 2022, "In-context Learning and Induction Heads")
completes patterns ``[A][B] ... [A] -> [B]``: at the second [A] it attends to the token right after the
first [A] and copies it. On random tokens repeated twice nothing but copying can predict the second half,
so a model with induction heads has a much lower loss there than on the first half. Each head is scored by
how much attention it pays, from a position in the second half, to the token after that token's previous
occurrence; ablating (zeroing) the top-scoring heads should raise the second-half loss more than
ablating the same number of random heads.

Hooks are placed from the outside on ``model.model.layers[i].self_attn.o_proj`` (Llama, Mistral, Qwen,
SmolLM layouts): its input is the heads' outputs side by side, (B, T, nh * hd).

The logit lens (:func:`hf_logit_lens`) records each decoder layer's output with a forward hook and decodes
it with the model's final norm and LM head; Hugging Face's own ``output_hidden_states`` would not do, because
its last entry is already normalised.

Shapes: B batch, N half length, T = 2N, L layers, nh query heads, hd head dim, V vocabulary.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


def repeated_tokens(vocab_size: int, half: int, batch: int = 4, seed: int = 0, low: int = 1000) -> Tensor:
    """Random token sequences repeated twice: ``[x_1 .. x_N x_1 .. x_N]``.

    Args:
        vocab_size: the model's vocabulary size.
        half: N, the length of the random part.
        batch: number of sequences.
        seed: seeds a private generator (the global RNG is untouched).
        low: smallest id drawn, to skip special and byte tokens at the start of the vocabulary.
    Returns:
        (B, 2N) long tensor.
    """
    if not 0 <= low < vocab_size:
        raise ValueError(f"low={low} must be in [0, vocab_size={vocab_size})")
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(low, vocab_size, (batch, half), generator=g)
    return torch.cat([x, x], dim=1)


def token_losses(model: nn.Module, ids: Tensor) -> Tensor:
    """Cross-entropy of each next-token prediction: (B, T - 1); entry t predicts token t + 1."""
    with torch.no_grad():
        logits = model(ids).logits.float()  # (B, T, V)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten(), reduction="none").view(
        ids.size(0), -1)


def half_losses(model: nn.Module, ids: Tensor) -> tuple[float, float]:
    """Mean loss on the first half's predictions and on the second half's (of a repeated sequence)."""
    N = ids.size(1) // 2
    loss = token_losses(model, ids)  # (B, 2N - 1); predictions of tokens 1..N-1, then N..2N-1
    return float(loss[:, : N - 1].mean()), float(loss[:, N - 1:].mean())


@contextlib.contextmanager
def eager_attention(model: nn.Module) -> Iterator[nn.Module]:
    """Switch a Hugging Face model to its explicit ("eager") attention, which can return the weights."""
    old = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        yield model
    finally:
        model.set_attn_implementation(old)


def induction_scores(model: nn.Module, ids: Tensor) -> Tensor:
    """Mean attention from each second-half position t to position t - N + 1, per head.

    Args:
        model: a Hugging Face causal LM.
        ids: (B, 2N) from :func:`repeated_tokens`.
    Returns:
        (L, nh) scores in [0, 1]; 1 = the head always looks exactly at the token to copy.
    """
    N = ids.size(1) // 2
    with torch.no_grad(), eager_attention(model):
        attentions = model(ids, output_attentions=True).attentions  # L x (B, nh, T, T)
    q = torch.arange(N, 2 * N)  # queries in the second half
    return torch.stack([a[:, :, q, q - N + 1].mean((0, 2)) for a in attentions])  # (L, nh)


def hf_logit_lens(model: nn.Module, ids: Tensor) -> Tensor:
    """Decode the residual stream after every decoder layer with the final norm and LM head.

    Args:
        model: a Llama-style Hugging Face causal LM (``model.model.layers``, ``model.model.norm``).
        ids: (B, T) token ids.
    Returns:
        (L, B, T, V) logits; the last entry equals the model's own logits.
    """
    layers, _, _ = _heads_layout(model)
    outs: list[Tensor] = []
    handles = [layer.register_forward_hook(lambda mod, args, out: outs.append(out[0] if isinstance(out, tuple)
                                                                             else out)) for layer in layers]
    try:
        with torch.no_grad():
            model(ids)
    finally:
        for h in handles:
            h.remove()
    with torch.no_grad():
        return torch.stack([model.lm_head(model.model.norm(x)) for x in outs])


def _heads_layout(model: nn.Module) -> tuple[nn.ModuleList, int, int]:
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None or not hasattr(layers[0], "self_attn") or not hasattr(layers[0].self_attn, "o_proj"):
        raise ValueError(f"{type(model).__name__} has no model.layers[i].self_attn.o_proj: ablate_heads supports "
                         "Llama-style Hugging Face models (Llama, Mistral, Qwen, SmolLM)")
    cfg = model.config
    nh = cfg.num_attention_heads
    hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // nh
    return layers, nh, hd


@contextlib.contextmanager
def ablate_heads(model: nn.Module, heads: Sequence[tuple[int, int]]) -> Iterator[None]:
    """Zero the outputs of the given (layer, head) pairs while the ``with`` body runs (zero ablation).

    A forward pre-hook on each layer's ``o_proj`` zeroes the head's slice of its input; the hooks are
    removed on exit, also on error.
    """
    layers, nh, hd = _heads_layout(model)
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        if not (0 <= layer < len(layers) and 0 <= head < nh):
            raise ValueError(f"head ({layer}, {head}) out of range: layers 0..{len(layers) - 1}, heads 0..{nh - 1}")
        by_layer.setdefault(int(layer), []).append(int(head))

    def hook_for(hs: list[int]):
        def hook(mod, args):
            x = args[0].clone()  # (B, T, nh * hd)
            for h in hs:
                x[..., h * hd:(h + 1) * hd] = 0.0
            return (x, *args[1:])
        return hook

    handles = []
    try:
        for layer, hs in by_layer.items():
            handles.append(layers[layer].self_attn.o_proj.register_forward_pre_hook(hook_for(hs)))
        yield
    finally:
        for h in handles:
            h.remove()


def top_heads(scores: Tensor, k: int) -> list[tuple[int, int]]:
    """The k (layer, head) pairs with the highest scores, best first."""
    nh = scores.size(1)
    return [(int(i) // nh, int(i) % nh) for i in scores.flatten().topk(k).indices]


def ablation_losses(model: nn.Module, ids: Tensor, heads: Sequence[tuple[int, int]], n_random: int = 3,
                    seed: int = 0) -> tuple[float, float, list[float]]:
    """Second-half loss with nothing ablated, with ``heads`` ablated, and with as many random heads ablated.

    Args:
        model: a Hugging Face causal LM.
        ids: (B, 2N) repeated sequences.
        heads: the heads to test (e.g. :func:`top_heads`).
        n_random: random draws of ``len(heads)`` heads (never including those in ``heads``).
        seed: seeds the draws.
    Returns:
        (clean loss, loss with ``heads`` ablated, one loss per random draw).
    """
    layers, nh, _ = _heads_layout(model)
    chosen = {tuple(h) for h in heads}
    others = [(layer, h) for layer in range(len(layers)) for h in range(nh) if (layer, h) not in chosen]
    g = torch.Generator().manual_seed(seed)
    clean = half_losses(model, ids)[1]
    with ablate_heads(model, heads):
        top = half_losses(model, ids)[1]
    rand = []
    for _ in range(n_random):
        pick = [others[int(i)] for i in torch.randperm(len(others), generator=g)[: len(heads)]]
        with ablate_heads(model, pick):
            rand.append(half_losses(model, ids)[1])
    return clean, top, rand
