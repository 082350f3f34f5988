"""Text generation from a GPT: greedy decoding and sampling (temperature, top-k, top-p), with a KV cache.

A language model gives a probability for every possible next token; generating text is choosing one,
appending it and asking again. The choice is the *decoding strategy*:

* greedy (``temperature=0``): always the most likely token — deterministic, often repetitive;
* sampling with a temperature: divide the logits by T before the softmax (T < 1 sharper, T > 1 flatter);
* top-k (Fan et al. 2018, "Hierarchical Neural Story Generation"): sample only among the k likeliest;
* top-p / nucleus (Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration"): sample among
  the smallest set of tokens whose probabilities add up to at least p.

The KV cache keeps each layer's keys and values of the tokens already seen, so each step runs the model
on one new token instead of the whole sequence again: work per token stays constant instead of growing
with the length. Batched prompts of different lengths are left-padded, with an attention mask.

Shapes: B batch, T prompt length, V vocab size.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from llmguide.model import GPT


def _check_args(max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None) -> None:
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be None or an int >= 1, got {top_k!r}")
    if top_p is not None and not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
        raise ValueError(f"top_p must be None or in (0, 1], got {top_p!r}")


def _as_batch(model: GPT, ids: Tensor | list[int], attention_mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
    device = next(model.parameters()).device
    ids = torch.as_tensor(ids, dtype=torch.long, device=device)
    if ids.dim() == 1:
        ids = ids.unsqueeze(0)
    if ids.dim() != 2 or ids.numel() == 0:
        raise ValueError(f"ids must be a non-empty prompt of token ids, (T,) or (B, T); got shape {tuple(ids.shape)}"
                         ": encode at least one token (e.g. a start or newline token)")
    vocab = model.config.vocab_size
    if int(ids.min()) < 0 or int(ids.max()) >= vocab:
        raise ValueError(f"token ids must be in [0, {vocab}), got min {int(ids.min())} max {int(ids.max())}: "
                         "was the prompt encoded with this model's tokenizer?")
    if attention_mask is not None:
        attention_mask = torch.as_tensor(attention_mask, device=device).long()
        if attention_mask.shape != ids.shape:
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, ids {tuple(ids.shape)}: "
                             "they must match (1 = token, 0 = padding)")
        if not bool((attention_mask.sum(-1) > 0).all()):
            raise ValueError("every row of attention_mask needs at least one 1: a row with no tokens has "
                             "nothing to continue")
        if bool((attention_mask[:, -1] == 0).any()):
            raise ValueError("pad prompts on the LEFT for generation (attention_mask[:, -1] must be 1): new "
                             "tokens are appended on the right")
    return ids, attention_mask


def sample_next(logits: Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                generator: torch.Generator | None = None) -> Tensor:
    """Choose the next token of each row from its logits.

    Args:
        logits: (B, V) next-token logits.
        temperature: 0 = greedy (argmax); otherwise logits are divided by it before the softmax.
        top_k: keep only the k largest logits.
        top_p: keep the smallest set of tokens whose probability adds up to at least top_p.
        generator: the random generator (None: PyTorch's global one).
    Returns:
        (B,) token ids.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature  # (B, V)
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1) the k-th largest logit
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
        probs = torch.softmax(sorted_logits, dim=-1)
        # drop a token when the tokens ranked above it already reach top_p (the top token always stays)
        drop = (probs.cumsum(dim=-1) - probs) >= top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)  # (B,)


@torch.inference_mode()
def generate(
    model: GPT,
    ids: Tensor | list[int],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    seed: int | None = None,
    attention_mask: Tensor | None = None,
    use_cache: bool = True,
) -> Tensor:
    """Continue prompts token by token.

    Args:
        model: a :class:`GPT` (put in eval mode for the call; its mode is restored afterwards).
        ids: the prompt, (T,) or (B, T) token ids; rows of different lengths are left-padded.
        max_new_tokens: how many tokens to add (fewer if every row has produced ``eos_id``).
        temperature: 0 = greedy; otherwise the sampling temperature.
        top_k: sample among the k likeliest tokens only.
        top_p: nucleus sampling: among the smallest set of tokens with probability >= top_p.
        eos_id: end-of-text token: a row that produced it keeps emitting it; generation stops early once
            every row has.
        seed: seeds the sampling, so the same seed gives the same text (None: PyTorch's global RNG).
        attention_mask: (B, T) 1 = token, 0 = left padding.
        use_cache: keep each layer's keys and values (fast); False recomputes the whole window each step.
    Returns:
        The prompt followed by the new tokens: (T + n,) or (B, T + n) with n <= max_new_tokens.

    A prompt longer than ``block_size`` is cropped to its last ``block_size`` tokens (with a warning).
    Past ``block_size`` the model sees only the last ``block_size`` tokens; since learned position
    embeddings are baked into the cached keys, the cache cannot slide, so from then on each step recomputes
    the cropped window — the same tokens as without a cache.
    """
    _check_args(max_new_tokens, temperature, top_k, top_p)
    squeeze = torch.as_tensor(ids).dim() == 1
    ids, mask = _as_batch(model, ids, attention_mask)
    block = model.config.block_size
    prompt = ids
    if ids.size(1) > block:
        warnings.warn(f"prompt of {ids.size(1)} tokens is longer than block_size={block}: keeping its last "
                      f"{block} tokens", stacklevel=3)
        ids, mask = ids[:, -block:], None if mask is None else mask[:, -block:]
    generator = None if seed is None else torch.Generator(device=ids.device).manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        new = _decode(model, ids, mask, max_new_tokens, temperature, top_k, top_p, eos_id, generator, use_cache)
    finally:
        model.train(was_training)
    out = torch.cat([prompt, new], dim=1)  # (B, T + n)
    return out[0] if squeeze else out


def _decode(model: GPT, ids: Tensor, mask: Tensor | None, max_new_tokens: int, temperature: float,
            top_k: int | None, top_p: float | None, eos_id: int | None, generator: torch.Generator | None,
            use_cache: bool) -> Tensor:
    block = model.config.block_size
    B = ids.size(0)
    caches = model.new_kv_caches() if use_cache else None
    todo = ids  # tokens the cache has not seen yet
    out = torch.empty(B, max_new_tokens, dtype=torch.long, device=ids.device)
    done = torch.zeros(B, dtype=torch.bool, device=ids.device)
    ones = torch.ones(B, 1, dtype=torch.long, device=ids.device)
    n = 0
    for n in range(1, max_new_tokens + 1):
        if caches is not None and len(caches[0]) + todo.size(1) > block:
            caches = None  # the window is full: recompute on the last `block` tokens from now on
        if caches is None:
            window = torch.cat([ids, out[:, :n - 1]], dim=1)[:, -block:]  # (B, <= block)
            h = model.hidden_states(window, None if mask is None else mask[:, -block:])
        else:
            h = model.hidden_states(todo, mask, kv_caches=caches)
        logits = model.lm_head(h[:, -1])  # (B, V): only the last position's logits are needed
        nxt = sample_next(logits, temperature, top_k, top_p, generator)  # (B,)
        if eos_id is not None:
            nxt = nxt.masked_fill(done, eos_id)  # finished rows keep emitting eos
            done |= nxt == eos_id
        out[:, n - 1] = nxt
        todo = nxt.unsqueeze(1)  # (B, 1)
        if mask is not None:
            mask = torch.cat([mask, ones], dim=1)
        if eos_id is not None and bool(done.all()):
            break
    return out[:, :n]
