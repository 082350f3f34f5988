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

import math
import numbers
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from llmguide.model import GPT
from llmguide.runtime import check_positive_int, eval_mode

# Below this the softmax of logits / temperature is the argmax already, and a smaller (or denormal, 1e-45)
# temperature overflows float32 (logits / 1e-45 = inf, then inf - inf = nan in the softmax): use 0 for greedy.
MIN_TEMPERATURE = 1e-6


def check_sampling(temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None) -> None:
    """Validate the decoding settings where they enter (:class:`Sampling`, :func:`sample_next`, the server).

    Raises:
        ValueError: ``temperature`` not a real number, NaN, infinite, negative or in (0, MIN_TEMPERATURE);
            ``top_k`` not an int >= 1; ``top_p`` not a number in (0, 1] (NaN included). The message names
            the value and the fix.
    """
    if not isinstance(temperature, numbers.Real) or isinstance(temperature, bool) or not math.isfinite(temperature) \
            or temperature < 0 or 0 < temperature < MIN_TEMPERATURE:
        raise ValueError(f"temperature must be >= 0 and finite: 0 (greedy) or at least {MIN_TEMPERATURE:g}, got "
                         f"{temperature!r}; use 0 for the most likely token, 1.0 for the model's distribution")
    if top_k is not None:
        check_positive_int(top_k, "top_k", "None or an int >= 1")
    if top_p is not None and (not isinstance(top_p, numbers.Real) or isinstance(top_p, bool)
                              or not 0 < top_p <= 1):  # NaN fails the comparison too
        raise ValueError(f"top_p must be None or in (0, 1], got {top_p!r}")


@dataclass(frozen=True)
class Sampling:
    """How to choose each next token (the decoding strategy), checked once."""

    temperature: float = 1.0  # 0 = greedy (argmax); otherwise logits are divided by it before the softmax
    top_k: int | None = None  # sample among the k likeliest tokens only
    top_p: float | None = None  # nucleus: among the smallest set of tokens with probability >= top_p
    eos_id: int | None = None  # end of text: a row that produced it keeps emitting it; all rows done = stop
    seed: int | None = None  # seeds the sampling, so the same seed gives the same text (None: global RNG)

    def __post_init__(self) -> None:
        check_sampling(self.temperature, self.top_k, self.top_p)
        if self.eos_id is not None and (isinstance(self.eos_id, bool) or not isinstance(self.eos_id, numbers.Integral)
                                        or self.eos_id < 0):
            raise ValueError(f"eos_id must be None or a token id (an int >= 0), got {self.eos_id!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral)
                                      or not 0 <= self.seed < 2**63):
            raise ValueError(f"seed must be None or an int in [0, 2**63), got {self.seed!r}")

    def generator(self, device: torch.device) -> torch.Generator | None:
        """A generator seeded with ``seed`` on ``device`` (None without a seed)."""
        return None if self.seed is None else torch.Generator(device=device).manual_seed(self.seed)


def _as_batch(model: GPT, ids: Tensor | list[int], attention_mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
    device = next(model.parameters()).device
    try:
        ids = torch.as_tensor(ids, device=device)
    except (TypeError, ValueError, RuntimeError) as err:  # ragged rows, strings, None
        raise ValueError(f"ids must be token ids, a (T,) or (B, T) list or tensor of ints: {err}") from None
    if ids.numel() and (ids.dtype == torch.bool or ids.dtype.is_floating_point or ids.dtype.is_complex):
        raise ValueError(f"token ids must be integers, got {ids.dtype} values (e.g. {ids.flatten()[:3].tolist()}): "
                         "floats are never cut to ints silently; pass the ids the tokenizer returned")
    ids = ids.long()
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
    check_sampling(temperature, top_k, top_p)
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
        drop[:, 0] = False  # even when top_p rounds to 0 in float32 (1e-300): never an empty set to sample from
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
    sampling: Sampling | None = None,
) -> Tensor:
    """Continue prompts token by token.

    Args:
        model: a :class:`GPT` (put in eval mode for the call; its mode is restored afterwards).
        ids: the prompt, (T,) or (B, T) token ids; rows of different lengths are left-padded.
        max_new_tokens: how many tokens to add (fewer if every row has produced ``eos_id``).
        temperature, top_k, top_p, eos_id, seed: the fields of :class:`Sampling` (ignored when ``sampling``
            is given).
        attention_mask: (B, T) 1 = token, 0 = left padding.
        use_cache: keep each layer's keys and values (fast); False recomputes the whole window each step.
        sampling: the decoding settings as one object.
    Returns:
        The prompt followed by the new tokens: (T + n,) or (B, T + n) with n <= max_new_tokens.

    A prompt longer than ``block_size`` is cropped to its last ``block_size`` tokens (with a warning).
    Past ``block_size`` the model sees only the last ``block_size`` tokens; since learned position
    embeddings are baked into the cached keys, the cache cannot slide, so from then on each step recomputes
    the cropped window — the same tokens as without a cache.
    """
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    sampling = sampling or Sampling(temperature, top_k, top_p, eos_id, seed)
    given = ids
    ids, mask = _as_batch(model, ids, attention_mask)
    squeeze = torch.as_tensor(given).dim() == 1  # safe now: _as_batch has read it
    if sampling.eos_id is not None and sampling.eos_id >= model.config.vocab_size:
        raise ValueError(f"eos_id={sampling.eos_id} is not a token of this model (vocab_size "
                         f"{model.config.vocab_size}): pass the tokenizer's eos_id, or None")
    block = model.config.block_size
    prompt = ids
    if ids.size(1) > block:
        warnings.warn(f"prompt of {ids.size(1)} tokens is longer than block_size={block}: keeping its last "
                      f"{block} tokens", stacklevel=3)
        ids, mask = ids[:, -block:], None if mask is None else mask[:, -block:]
    with eval_mode(model):
        new = _decode(model, ids, mask, max_new_tokens, sampling, use_cache)
    out = torch.cat([prompt, new], dim=1)  # (B, T + n)
    return out[0] if squeeze else out


def _decode(model: GPT, ids: Tensor, mask: Tensor | None, max_new_tokens: int, sampling: Sampling,
            use_cache: bool) -> Tensor:
    block = model.config.block_size
    B, T = ids.shape
    generator = sampling.generator(ids.device)
    caches = model.new_kv_caches() if use_cache else None
    todo = ids  # tokens the cache has not seen yet
    tokens = torch.cat([ids, ids.new_empty(B, max_new_tokens)], dim=1)  # (B, T + max_new): prompt, then new ones
    if mask is not None:  # every new token is real: the whole mask is known up front, each step takes a view
        mask = torch.cat([mask, mask.new_ones(B, max_new_tokens)], dim=1)  # (B, T + max_new)
    done = torch.zeros(B, dtype=torch.bool, device=ids.device)
    n = 0
    for n in range(1, max_new_tokens + 1):
        end = T + n - 1  # tokens so far
        step_mask = None if mask is None else mask[:, :end]
        if caches is not None and len(caches[0]) + todo.size(1) > block:
            caches = None  # the window is full: recompute on the last `block` tokens from now on
        if caches is None:
            start = max(0, end - block)
            logits, _ = model(tokens[:, start:end], attention_mask=None if mask is None else step_mask[:, start:])
        else:
            logits, _ = model(todo, attention_mask=step_mask, kv_caches=caches)  # (B, 1, V): the last position
        nxt = sample_next(logits[:, -1], sampling.temperature, sampling.top_k, sampling.top_p, generator)  # (B,)
        if sampling.eos_id is not None:
            nxt = nxt.masked_fill(done, sampling.eos_id)  # finished rows keep emitting eos
            done |= nxt == sampling.eos_id
        tokens[:, end] = nxt
        todo = tokens[:, end:end + 1]  # (B, 1)
        if sampling.eos_id is not None and bool(done.all()):
            break
    return tokens[:, T:T + n]
