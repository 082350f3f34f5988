"""Shared fixtures: a seed and the tiny model sizes every unit test uses."""
# ruff: noqa: I001  (llmguide is imported before torch on purpose)

from __future__ import annotations

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
