"""Data parallelism (数据并行) from the outside: one small training run under ``torchrun`` with N CPU processes,
compared with the same run in one process, and ``torch.compile`` on the training step.

DistributedDataParallel (Li et al. 2020, "PyTorch Distributed") gives each of the N processes a different
slice of every global batch and averages the gradients across them, so N processes with ``batch_size = B / N``
compute the same update as one process with ``B`` (only the order of float additions differs). Gradient
accumulation is the one-device version of the same identity: ``grad_accum_steps = N`` micro-batches of
``B / N``, summed before one update (``tests/test_train.py`` holds the equality).

:func:`run_data_parallel` starts ``python -m torch.distributed.run --nproc_per_node N -m llmguide.parallel``
as a subprocess (what you would type in a shell), and this module's ``main`` is what each process runs:
the unchanged :func:`llmguide.train.train` on a tiny GPT and fixed random tokens.

    python -m torch.distributed.run --standalone --nproc_per_node 2 -m llmguide.parallel --out /tmp/ddp
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmguide.folder import WEIGHTS, load_weights, save_weights
from llmguide.model import GPT, GPTConfig
from llmguide.profiling import best_time
from llmguide.train import TrainConfig, free_port, is_main_process, train

DEMO_MODEL = dict(vocab_size=256, block_size=64, n_layer=2, n_head=4, n_embd=64)
HISTORY = "history.json"  # the demo run's losses (not a model folder's history.csv)


def demo_data(n: int = 256, seed: int = 0) -> dict[str, torch.Tensor]:
    """``n`` rows of fixed random tokens as a next-token dataset: ``{"idx": (n, T), "targets": (n, T)}``."""
    rows = torch.randint(0, DEMO_MODEL["vocab_size"], (n, DEMO_MODEL["block_size"] + 1),
                         generator=torch.Generator().manual_seed(seed))
    return {"idx": rows[:, :-1], "targets": rows[:, 1:]}


def train_demo(out: str | Path, steps: int = 10, global_batch: int = 16) -> dict[str, Any]:
    """Train the demo GPT in this process (one rank of a ``torchrun`` group, or alone) and save the result.

    Args:
        out: folder for ``history.json`` and the weights (written by rank 0).
        steps: optimizer steps.
        global_batch: examples per update over all processes (split evenly across them).
    Returns:
        ``{"train_loss": [...], "seconds": ..., "world_size": N}``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if global_batch % world_size:
        raise ValueError(f"global_batch={global_batch} must split evenly over {world_size} processes")
    torch.manual_seed(0)  # every rank starts from the same weights (DDP also broadcasts rank 0's)
    model = GPT(GPTConfig(**DEMO_MODEL))
    config = TrainConfig(max_steps=steps, batch_size=global_batch // world_size, warmup_steps=2, eval_interval=0,
                         log_interval=1, progress=False, learning_rate=3e-3, device="cpu")
    start = time.perf_counter()
    history = train(model, demo_data(), None, config)
    result = {"train_loss": history.train_loss.tolist(), "seconds": time.perf_counter() - start,
              "world_size": world_size}
    if is_main_process():
        Path(out).mkdir(parents=True, exist_ok=True)
        save_weights(model, Path(out) / WEIGHTS)
        (Path(out) / HISTORY).write_text(json.dumps(result))
    return result


def run_data_parallel(out: str | Path, nproc: int = 2, steps: int = 10, global_batch: int = 16,
                      timeout: float = 300) -> tuple[dict[str, Any], GPT]:
    """Run :func:`train_demo` under ``torchrun`` with ``nproc`` CPU processes (one thread each).

    Args:
        out: the run's folder.
        nproc: processes.
        steps, global_batch: as in :func:`train_demo`.
        timeout: seconds before the subprocess is stopped.
    Returns:
        ``(result, model)``: rank 0's ``history.json`` and the trained weights in a fresh GPT.
    Raises:
        RuntimeError: torchrun failed; the message ends with its output.
    """
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
           "-m", "llmguide.parallel", "--out", str(out), "--steps", str(steps), "--global-batch", str(global_batch)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # N processes share the cores: one thread each
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"torchrun exited with {done.returncode}:\n{(done.stdout + done.stderr)[-2000:]}")
    model = load_weights(GPT(GPTConfig(**DEMO_MODEL)), Path(out) / WEIGHTS)
    return json.loads((Path(out) / HISTORY).read_text()), model


def compile_speedup(model: nn.Module, step: Callable[[nn.Module], Any], repeats: int = 5) -> dict[str, Any]:
    """``torch.compile`` on a training step: its compile time and the speed ratio against eager mode.

    Args:
        model: the module to compile (``torch.compile`` wraps it; the weights are shared).
        step: ``step(m)`` runs one training step with ``m`` (forward, backward, optimizer).
        repeats: timed steps after warm-up; the fastest is kept.
    Returns:
        ``{"compile_s", "eager_s", "compiled_s", "speedup"}``, or ``{"error": "..."}`` when compiling
        fails on this machine (no C++ compiler, an unsupported Python, ...).
    """
    try:
        compiled = torch.compile(model)
        start = time.perf_counter()
        step(compiled)  # the first call traces and compiles forward and backward
        compile_s = time.perf_counter() - start
        compiled_s = best_time(lambda: step(compiled), repeats)
    except Exception as error:  # noqa: BLE001  (report why, whatever the backend raised)
        return {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"}
    step(model)  # warm up the eager path too
    eager_s = best_time(lambda: step(model), repeats)
    return {"compile_s": compile_s, "eager_s": eager_s, "compiled_s": compiled_s, "speedup": eager_s / compiled_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="train the tiny demo GPT (run under torchrun for DDP)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--global-batch", type=int, default=16)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        train_demo(args.out, args.steps, args.global_batch)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
