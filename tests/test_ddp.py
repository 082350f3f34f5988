"""Data parallelism: 2 processes on CPU (gloo) give the same model as 1 process with the same global batch.

Each rank runs the unchanged ``train`` with the environment ``torchrun`` would set (RANK, WORLD_SIZE,
MASTER_ADDR, ...). DDP averages the gradients of the two halves of every global batch, which is the
gradient of the whole batch, so the runs differ only by floating-point summation order.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.multiprocessing as mp

import llmguide.train as train_module
from llmguide.checkpoint import latest_checkpoint, load_weights, save_weights
from llmguide.model import GPT, GPTConfig
from llmguide.train import TrainConfig, free_port, train

TINY = dict(vocab_size=100, block_size=16, n_layer=2, n_head=4, n_embd=32)
GLOBAL_BATCH = 8
TOLERANCE = 1e-5  # 1 vs 2 processes: same maths, different order of float additions
STEPS = 6


def _data(seed: int) -> dict[str, torch.Tensor]:
    rows = torch.randint(0, 100, (64, 17), generator=torch.Generator().manual_seed(seed))
    return {"idx": rows[:, :-1], "targets": rows[:, 1:]}


def _config(world_size: int, out_dir: str | None = None) -> TrainConfig:
    return TrainConfig(max_steps=STEPS, batch_size=GLOBAL_BATCH // world_size, warmup_steps=2, eval_interval=3,
                       eval_steps=2, log_interval=1, progress=False, out_dir=out_dir, learning_rate=3e-3)


def _run(world_size: int, rank: int, out: Path, out_dir: str | None) -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(**TINY))
    seen: list[list[int]] = []
    model.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(kwargs["idx"].tolist()) if m.training else None, with_kwargs=True)
    saves = []
    real_save = train_module.save_checkpoint
    train_module.save_checkpoint = lambda *a, **k: saves.append(1) or real_save(*a, **k)
    try:
        history = train(model, _data(0), _data(1), _config(world_size, out_dir))
    finally:
        train_module.save_checkpoint = real_save
    save_weights(model, out / f"rank{rank}.safetensors")
    (out / f"rank{rank}.json").write_text(json.dumps({
        "train_loss": history.train_loss.tolist(), "val_loss": history.val_loss.dropna().tolist(),
        "first_batch": seen[0], "saves": len(saves)}))


def _worker(rank: int, world_size: int, port: int, out: str, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)  # two processes on two cores
    try:
        _run(world_size, rank, Path(out), out_dir)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def test_two_cpu_processes_match_one_process_with_the_same_global_batch(tmp_path):
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path), str(tmp_path / "ddp_run")), nprocs=2, join=True)
    single_dir = tmp_path / "single"
    single_dir.mkdir()
    _run(1, 0, single_dir, None)

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    single = json.loads((single_dir / "rank0.json").read_text())
    models = [load_weights(GPT(GPTConfig(**TINY)), p) for p in
              (tmp_path / "rank0.safetensors", tmp_path / "rank1.safetensors", single_dir / "rank0.safetensors")]

    # the ranks end with identical weights (DDP keeps them in lockstep) ...
    for p, q in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.equal(p, q)
    # ... equal, within TOLERANCE, to one process training on the whole global batch
    max_diff = max((p - q).abs().max().item() for p, q in zip(models[0].parameters(), models[2].parameters(),
                                                              strict=True))
    assert max_diff <= TOLERANCE, f"weights differ by {max_diff:.2e}"
    torch.testing.assert_close(ranks[0]["train_loss"], single["train_loss"], rtol=0, atol=TOLERANCE)
    torch.testing.assert_close(ranks[0]["val_loss"], single["val_loss"], rtol=0, atol=TOLERANCE)
    assert ranks[0]["train_loss"] == ranks[1]["train_loss"]  # logged losses are averaged over the ranks

    # distributed sampling: each rank got its own half of the global batch
    assert len(ranks[0]["first_batch"]) == len(ranks[1]["first_batch"]) == GLOBAL_BATCH // 2
    assert ranks[0]["first_batch"] + ranks[1]["first_batch"] == single["first_batch"]
    # only rank 0 wrote checkpoints
    assert ranks[0]["saves"] > 0 and ranks[1]["saves"] == 0
    assert latest_checkpoint(tmp_path / "ddp_run").name == f"step_{STEPS:06d}"
    print(f"DDP 2 processes vs 1: max weight difference {max_diff:.2e}")
