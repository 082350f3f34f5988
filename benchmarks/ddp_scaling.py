"""Data-parallel scaling on CPU: 1 process against 2 processes (DDP, gloo) at the same global batch.

The same ``llmguide.train`` run (the ``cpu`` GPT preset, random tokens, global batch 16 x 128 tokens) is
timed three ways, side by side in one run so that the ratios are fair on a shared machine:

* 1 process using every core (PyTorch's intra-op threads),
* 1 process with 1 thread,
* 2 processes with 1 thread each, DistributedDataParallel over gloo, 8 sequences each.

On a CPU, two processes compete for the same cores and memory bandwidth that one multi-threaded process
already uses, so expect little gain: DDP pays off with one GPU (or one machine) per process. On GPUs run
it through torchrun instead (see the README).

    python benchmarks/ddp_scaling.py [--steps 30]
"""

from __future__ import annotations

# ruff: noqa: I001  (llmguide is imported before torch on purpose: it sets the OpenMP wait policy)

import argparse
import json
import os
import tempfile
from pathlib import Path

import llmguide  # noqa: F401  (sets the OpenMP wait policy before torch loads)
import torch
import torch.multiprocessing as mp

from llmguide.model import GPT, GPTConfig
from llmguide.train import TrainConfig, free_port, train

GLOBAL_BATCH, BLOCK, VOCAB = 16, 128, 256


def _worker(rank: int, world_size: int, threads: int, port: int, steps: int, out: str) -> None:
    if world_size > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                          WORLD_SIZE=str(world_size))
    torch.set_num_threads(threads)
    rows = torch.randint(0, VOCAB, (4096, BLOCK + 1), generator=torch.Generator().manual_seed(0))
    data = {"idx": rows[:, :-1], "targets": rows[:, 1:]}
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("cpu", vocab_size=VOCAB, block_size=BLOCK))
    config = TrainConfig(max_steps=steps, batch_size=GLOBAL_BATCH // world_size, warmup_steps=5, log_interval=5,
                         eval_interval=0, progress=False, device="cpu")
    history = train(model, data, None, config)
    timed = history[history.step > 5]  # the first steps warm up allocators and caches
    seconds = timed.elapsed_s.iloc[-1] - history.elapsed_s[history.step == 5].iloc[0]
    if rank == 0:
        Path(out).write_text(json.dumps({"tokens_per_s": len(timed) * GLOBAL_BATCH * BLOCK / seconds,
                                         "final_loss": float(history.train_loss.iloc[-1])}))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def measure(world_size: int, threads: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "result.json")
        mp.spawn(_worker, args=(world_size, threads, free_port(), steps, out), nprocs=world_size, join=True)
        return json.loads(Path(out).read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    setups = [(f"1 process x {cores} threads", 1, cores), ("1 process x 1 thread", 1, 1),
              ("2 processes x 1 thread (DDP, gloo)", 2, 1)]
    print(f"GPT 'cpu' preset, global batch {GLOBAL_BATCH} x {BLOCK} tokens, {args.steps} steps; "
          f"{cores} cores, load average {os.getloadavg()[0]:.1f}")
    results = [(name, measure(world, threads, args.steps)) for name, world, threads in setups]
    base = results[0][1]["tokens_per_s"]
    print(f"{'setup':<38}{'tokens/s':>10}{'vs first':>10}{'final loss':>12}")
    for name, r in results:
        print(f"{name:<38}{r['tokens_per_s']:>10.0f}{r['tokens_per_s'] / base:>9.2f}x{r['final_loss']:>12.4f}")


if __name__ == "__main__":
    main()
