"""Shared fixtures: a seed, the tiny model sizes every unit test uses, a tiny GPT, data to train it on, a
padded batch, and one CPU thread for the tests of tiny models."""
# ruff: noqa: I001  (llmguide is imported before torch on purpose)

from __future__ import annotations

from collections.abc import Callable

import llmguide  # noqa: F401  first: sets OMP_WAIT_POLICY before torch loads OpenMP
import pytest
import torch

from llmguide import seed_everything
from llmguide.data import load_animals
from llmguide.model import GPT, GPTConfig
from llmguide.tokenizer import CharTokenizer

# Tiny sizes that keep the whole unit suite around a minute on two CPU cores.
TINY = dict(vocab_size=100, block_size=16, n_layer=2, n_head=4, n_embd=32)


@pytest.fixture
def seed() -> int:
    seed_everything(0)
    return 0


@pytest.fixture
def tiny() -> dict:
    return dict(TINY)


@pytest.fixture(autouse=True)
def _fresh_torch_state():
    # Each test starts from the same RNG state and default dtype, whatever ran before it.
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(torch.float32)


@pytest.fixture
def tiny_gpt(tiny) -> GPT:
    """A tiny GPT with seed-0 weights, in train mode."""
    torch.manual_seed(0)
    return GPT(GPTConfig(**tiny))


@pytest.fixture
def animal_tok() -> CharTokenizer:
    """A character tokenizer fitted on the animal sentences (Chinese and English)."""
    return CharTokenizer.train(["\n".join(load_animals().text) + "\n"])


@pytest.fixture
def one_thread():
    """One CPU thread inside the test: tiny models gain nothing from a second one, and on a busy machine its
    synchronisation costs a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _lm_data(n: int, block_size: int, vocab_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    rows = torch.randint(0, vocab_size, (n, block_size + 1), generator=torch.Generator().manual_seed(seed))
    return {"idx": rows[:, :-1], "targets": rows[:, 1:]}


@pytest.fixture
def lm_data() -> Callable[..., dict[str, torch.Tensor]]:
    """``lm_data(n, block_size, vocab_size, seed=0)``: n random token rows as ``{"idx", "targets"}`` (B, T)
    tensors, a valid training set for the ``logits, loss = model(**batch)`` contract."""
    return _lm_data


def _padded_batch(vocab: int, lengths: list[int], T: int, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(1, vocab, (len(lengths), T))
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        if side == "left":
            mask[row, T - n:] = 1
        else:
            mask[row, :n] = 1
    return ids.masked_fill(mask == 0, 0), mask


@pytest.fixture
def padded_batch() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """``padded_batch(vocab, lengths, T, side)``: (ids, attention_mask), each (B, T), rows of the given real
    lengths padded with id 0 on the "left" or the "right"."""
    return _padded_batch
