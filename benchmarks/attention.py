"""Explicit attention vs ``F.scaled_dot_product_attention`` (SDPA): time and peak memory over sequence length T.

The explicit path (``llmguide.attention.attention``) materialises the (B, nh, T, T) score and weight
matrices, so its memory grows as T². SDPA runs a fused kernel (FlashAttention-style on CPU and on recent
GPUs) that walks over key blocks with an online softmax and never stores the T×T matrix: its memory grows
as T. Both do O(T²) arithmetic. Both are run side by side in one process, interleaved, so the *ratios*
are meaningful even on a busy machine where absolute times are noisy.

Method:
    time    median of ``--repeats`` calls of each path (after one warm-up call), interleaved
            explicit/SDPA so both see the same machine load; on CUDA, with ``torch.cuda.synchronize()``.
    memory  peak bytes of tensors allocated during one call, above what existed before it:
            - CUDA: ``torch.cuda.max_memory_allocated()`` after ``reset_peak_memory_stats()``, minus the
              bytes allocated before the call (the caching allocator's exact tensor accounting);
            - CPU: PyTorch has no CPU allocator statistics, so the call runs under
              ``torch.profiler.profile(profile_memory=True)``, which records the bytes every operator
              allocates and frees; the running sum in time order gives the peak. It resolves memory per
              operator: scratch space a fused kernel allocates and frees inside one call (SDPA's per-thread
              tiles, a few KiB to MiB independent of T²) is not seen, so the CPU SDPA column is a lower bound.
    T² col  the size of one (B, nh, T, T) float matrix, B·nh·T²·bytes: the explicit peak is a small
            multiple of it (scores, masked scores, weights).

``--mode training`` measures forward + backward (what training pays; the explicit path keeps the weights
for the backward pass, SDPA keeps only a (B, nh, T) log-sum-exp).

    python benchmarks/attention.py                              # CPU, T = 64 .. 2048
    python benchmarks/attention.py --threads 1 --mode training  # steadier on a busy machine
    python benchmarks/attention.py --device cuda --dtype bfloat16 --T 512 1024 2048 4096 8192
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from llmguide.attention import attention, causal_mask
from llmguide.profiling import peak_bytes


def explicit(q, k, v):
    return attention(q, k, v, causal_mask(q.size(2), device=q.device))[0]


def sdpa(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def make_step(fn: Callable, q, k, v, training: bool) -> Callable[[], None]:
    def step() -> None:
        if training:
            fn(q, k, v).sum().backward()
            q.grad = k.grad = v.grad = None
        else:
            with torch.no_grad():
                fn(q, k, v)
    return step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_pair(steps: dict[str, Callable[[], None]], repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds per call of each step, interleaved so both see the same load."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():  # warm-up: kernel selection, allocator growth
        step()
    for _ in range(repeats):
        for name, step in steps.items():
            sync(device)
            t0 = time.perf_counter()
            step()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def run(args: argparse.Namespace) -> list[dict]:
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    training = args.mode == "training"
    rows = []
    for T in args.T:
        torch.manual_seed(0)
        q, k, v = (torch.randn(args.B, args.nh, T, args.hs, device=device, dtype=dtype, requires_grad=training)
                   for _ in range(3))
        steps = {"explicit": make_step(explicit, q, k, v, training), "sdpa": make_step(sdpa, q, k, v, training)}
        secs = time_pair(steps, args.repeats, device)
        mem = {name: peak_bytes(step, device) for name, step in steps.items()}
        rows.append(dict(T=T, t_explicit=secs["explicit"], t_sdpa=secs["sdpa"], m_explicit=mem["explicit"],
                         m_sdpa=mem["sdpa"], t2=args.B * args.nh * T * T * q.element_size()))
    return rows


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    mib = 2**20
    print(f"# attention benchmark: device={args.device} dtype={args.dtype} mode={args.mode} B={args.B} "
          f"nh={args.nh} hs={args.hs} causal, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"median of {args.repeats}")
    print("|     T | explicit ms | SDPA ms | time explicit/SDPA | explicit peak MiB | SDPA peak MiB | "
          "memory explicit/SDPA | one T² matrix MiB |")
    print("|------:|------------:|--------:|-------------------:|------------------:|--------------:|"
          "---------------------:|------------------:|")
    for r in rows:
        mem_ratio = r["m_explicit"] / r["m_sdpa"] if r["m_sdpa"] else float("inf")
        print(f"| {r['T']:5d} | {r['t_explicit'] * 1e3:11.2f} | {r['t_sdpa'] * 1e3:7.2f} | "
              f"{r['t_explicit'] / r['t_sdpa']:18.2f} | {r['m_explicit'] / mib:17.2f} | {r['m_sdpa'] / mib:13.2f} | "
              f"{mem_ratio:20.1f} | {r['t2'] / mib:17.2f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--mode", default="inference", choices=["inference", "training"])
    parser.add_argument("--T", type=int, nargs="+", default=[64, 128, 256, 512, 1024, 2048])
    parser.add_argument("--B", type=int, default=1, help="batch size")
    parser.add_argument("--nh", type=int, default=8, help="number of heads")
    parser.add_argument("--hs", type=int, default=64, help="head size")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: torch's); 1 gives steadier times on a busy shared machine")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda was asked for but CUDA is not available here: use --device cpu")
    print_table(run(args), args)


if __name__ == "__main__":
    main()
