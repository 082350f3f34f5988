"""Activation checkpointing recomputes each block in the backward pass: the same loss and gradients, less memory."""

from __future__ import annotations

import torch

from llmguide.model import GPT, GPTConfig
from llmguide.profiling import peak_bytes


def _loss_and_grads(model: GPT, idx: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    _, loss = model(idx[:, :-1], idx[:, 1:])
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def test_checkpointing_gives_the_same_gradients_with_less_memory(tiny, one_thread):
    torch.manual_seed(0)
    model = GPT(GPTConfig(**{**tiny, "n_layer": 4})).train()
    idx = torch.randint(0, tiny["vocab_size"], (16, tiny["block_size"] + 1))
    loss, grads = _loss_and_grads(model, idx)
    plain = peak_bytes(lambda: _loss_and_grads(model, idx), torch.device("cpu"))
    model.activation_checkpointing = True
    loss_ckpt, grads_ckpt = _loss_and_grads(model, idx)
    saved = peak_bytes(lambda: _loss_and_grads(model, idx), torch.device("cpu"))
    torch.testing.assert_close(loss_ckpt, loss, rtol=0, atol=0)
    for g, h in zip(grads, grads_ckpt, strict=True):
        torch.testing.assert_close(h, g, rtol=1e-6, atol=1e-7)  # recomputed in the same order: ~bit-equal
    assert saved < 0.8 * plain  # the blocks' activations are no longer kept for the backward pass


def test_checkpointing_is_off_in_eval_and_generation(tiny):
    torch.manual_seed(0)
    model = GPT(GPTConfig(**tiny)).eval()
    model.activation_checkpointing = True
    idx = torch.randint(0, tiny["vocab_size"], (2, 5))
    caches = model.new_kv_caches()
    logits, _ = model(idx, kv_caches=caches)
    assert len(caches[0]) == 5  # the cache was filled: the blocks ran normally
    model.activation_checkpointing = False
    torch.testing.assert_close(logits, model(idx)[0])
