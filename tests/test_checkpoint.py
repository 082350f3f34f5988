"""Checkpoints: safetensors with tied weights, atomic writes that survive a crash, exact resume."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from safetensors import safe_open

import llmguide.checkpoint as ckpt
from llmguide.checkpoint import (
    atomic_write,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_weights,
    rng_state,
    save_checkpoint,
    save_weights,
    set_rng_state,
)
from llmguide.model import GPT, GPTConfig
from llmguide.train import TrainConfig, train

QUIET = dict(progress=False, warmup_steps=2, eval_steps=2, log_interval=1)


def gpt(tiny: dict, seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{**tiny, **overrides}))


def test_tied_weights_are_stored_once_and_retied_on_load(tiny, tmp_path):
    model = gpt(tiny)
    path = save_weights(model, tmp_path / "model.safetensors")
    with safe_open(str(path), framework="pt") as f:
        names = set(f.keys())
        tied = json.loads(f.metadata()["tied"])
    assert "lm_head.weight" not in names and "transformer.wte.weight" in names
    assert tied == {"lm_head.weight": "transformer.wte.weight"}
    other = load_weights(gpt(tiny, seed=1), path)
    assert other.lm_head.weight is other.transformer.wte.weight  # still one tensor
    idx = torch.randint(0, tiny["vocab_size"], (2, tiny["block_size"]))
    assert torch.equal(model.eval()(idx, all_logits=True)[0], other.eval()(idx, all_logits=True)[0])
    # the GPT helper's folder loader reads the same file
    (tmp_path / "config.json").write_text(json.dumps({"model": model.config_dict()}), encoding="utf-8")
    assert torch.equal(GPT.from_pretrained(str(tmp_path))(idx, all_logits=True)[0], model(idx, all_logits=True)[0])


def test_loading_into_another_architecture_names_the_mismatch(tiny, tmp_path):
    path = save_weights(gpt(tiny), tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match="missing .*h.2"):
        load_weights(gpt(tiny, n_layer=3), path)
    with pytest.raises(FileNotFoundError, match="no weights file"):
        load_weights(gpt(tiny), tmp_path / "nothing.safetensors")


def test_atomic_write_leaves_the_old_file_when_the_writer_crashes(tmp_path):
    target = tmp_path / "notes.txt"
    atomic_write(target, lambda p: p.write_text("version 1"))

    def crash(p):
        p.write_text("half of version 2")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, crash)
    assert target.read_text() == "version 1" and [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_a_crash_mid_save_keeps_the_previous_checkpoint_loadable(tiny, tmp_path, monkeypatch):
    model = gpt(tiny)
    save_checkpoint(tmp_path, 10, model, {"note": torch.tensor([1.0])}, {"model": model.config_dict()}, [])

    def crash(*args, **kwargs):  # the weights and config are already written when torch.save dies
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, 20, gpt(tiny, seed=1), {}, {}, [])
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path).name == "step_000010"
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_000010"]  # temp folder removed
    fresh = gpt(tiny, seed=2)
    state = load_checkpoint(latest_checkpoint(tmp_path), fresh)
    assert state["step"] == 10 and torch.equal(state["note"], torch.tensor([1.0]))
    assert all(torch.equal(p, q) for p, q in zip(fresh.parameters(), model.parameters(), strict=True))


def test_leftovers_of_a_killed_process_are_ignored(tiny, tmp_path):
    save_checkpoint(tmp_path, 5, gpt(tiny), {}, {}, [])
    root = tmp_path / "checkpoints"
    (root / ".tmp-step_000009-4242").mkdir()  # killed before the rename
    (root / "step_000007").mkdir()  # a folder someone copied in half
    (root / "step_000007" / "model.safetensors").write_bytes(b"")
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000005"]
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        load_checkpoint(root / "step_000007")


def test_only_the_newest_checkpoints_are_kept(tiny, tmp_path):
    model = gpt(tiny)
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, model, {}, {}, [], keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000003", "step_000004"]
    assert latest_checkpoint(tmp_path / "elsewhere") is None and latest_checkpoint(None) is None


def test_trainer_state_loads_with_weights_only(tiny, tmp_path):
    model = gpt(tiny)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long))[1].backward()
    opt.step()
    path = save_checkpoint(tmp_path, 1, model, {"optimizer": opt.state_dict(), "rng": [rng_state()]}, {}, [])
    state = torch.load(path / "trainer.pt", weights_only=True)  # refuses arbitrary pickles: must not raise
    assert state["optimizer"]["param_groups"][0]["lr"] == opt.param_groups[0]["lr"]


def test_rng_state_round_trips_every_generator():
    state = rng_state()
    first = (torch.rand(3), random.random(), np.random.rand())
    set_rng_state(state)
    again = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(first[0], again[0]) and first[1:] == again[1:]


@pytest.mark.parametrize("accum", [1, 2])
def test_resume_continues_bitwise_like_one_straight_run(tiny, tmp_path, accum, lm_data):
    """N steps, save, resume in a fresh model, N more steps == 2N straight steps (dropout on, shuffled data)."""
    n = 6
    data, val = lm_data(40, tiny["block_size"], tiny["vocab_size"]), lm_data(8, tiny["block_size"], tiny["vocab_size"], seed=1)
    # 40 examples / global batch 8 = 5 batches per epoch: the run crosses an epoch boundary and reshuffles
    cfg = dict(max_steps=2 * n, batch_size=8 // accum, grad_accum_steps=accum, eval_interval=3, **QUIET)
    straight = gpt(tiny, dropout=0.1)
    full = train(straight, data, val, TrainConfig(**cfg))

    out = tmp_path / "run"
    first = gpt(tiny, dropout=0.1)
    half = train(first, data, val, TrainConfig(**cfg, out_dir=str(out)), callback=lambda row: row["step"] >= n)
    assert half.step.iloc[-1] == n and latest_checkpoint(out).name == f"step_{n:06d}"
    saved = load_checkpoint(latest_checkpoint(out))
    assert saved["data"] == {"epoch": 1, "batch": 1, "n_examples": 40, "global_batch": 8, "seed": 0}

    resumed = gpt(tiny, seed=123, dropout=0.1)  # different initial weights: all must come from the checkpoint
    torch.manual_seed(999)  # and a different RNG state: it must come from the checkpoint too
    rest = train(resumed, data, val, TrainConfig(**cfg, out_dir=str(out)), resume=True)

    for (name, p), q in zip(straight.named_parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q), f"{name} differs after resuming"
    columns = ["step", "lr", "train_loss", "val_loss", "grad_norm", "tokens"]
    assert rest[columns].equals(full[columns])  # the whole history, the first half read from the checkpoint
    assert latest_checkpoint(out).name == f"step_{2 * n:06d}"


def test_resume_refuses_different_data(tiny, tmp_path, lm_data):
    cfg = TrainConfig(max_steps=2, batch_size=4, out_dir=str(tmp_path), **QUIET)
    train(gpt(tiny), lm_data(16, tiny["block_size"], tiny["vocab_size"]), None, cfg)
    with pytest.raises(ValueError, match="was trained on 16 examples"):
        train(gpt(tiny), lm_data(24, tiny["block_size"], tiny["vocab_size"]), None,
              TrainConfig(**{**vars(cfg), "max_steps": 4}), resume=True)
