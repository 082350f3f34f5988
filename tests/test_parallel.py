"""Data parallelism through torchrun (2 CPU processes) equals one process; torch.compile failures are reported."""

from __future__ import annotations

import pytest
import torch

from llmguide.folder import load_weights
from llmguide.model import GPT, GPTConfig
from llmguide.parallel import DEMO_MODEL, compile_speedup, run_data_parallel, train_demo

TOLERANCE = 1e-5  # same maths, a different order of float additions (as tests/test_ddp.py)


def test_torchrun_with_two_processes_equals_one_process(tmp_path, one_thread):
    ddp, ddp_model = run_data_parallel(tmp_path / "ddp", nproc=2, steps=3, global_batch=8)
    single = train_demo(tmp_path / "single", steps=3, global_batch=8)
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    torch.testing.assert_close(torch.tensor(ddp["train_loss"]), torch.tensor(single["train_loss"]),
                               rtol=0, atol=TOLERANCE)
    torch.manual_seed(0)
    start = GPT(GPTConfig(**DEMO_MODEL))
    one = load_weights(GPT(GPTConfig(**DEMO_MODEL)), tmp_path / "single" / "model.safetensors")
    moved = 0.0
    for p, q, s in zip(ddp_model.parameters(), one.parameters(), start.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=TOLERANCE)
        moved = max(moved, float((q - s).detach().abs().max()))
    assert moved > 1e-3  # training really changed the weights


def test_an_uneven_split_is_explained(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ValueError, match="split evenly over 3"):
        train_demo(tmp_path, steps=1, global_batch=8)


def test_compile_failure_is_reported_not_raised():
    def step(m):
        raise RuntimeError("no C++ compiler found\nmore detail")

    result = compile_speedup(torch.nn.Linear(2, 2), step)
    assert result == {"error": "RuntimeError: no C++ compiler found"}
