"""Measuring what a step of work costs in time and memory, on CPU or CUDA, for notebooks and benchmarks.

Time: :func:`best_time` keeps the fastest of a few runs, synchronising CUDA so the GPU's queued work is
counted.

On CUDA the allocator's own peak counter is exact. On CPU there is no such counter, so the PyTorch
profiler records each operator's own allocations (+) and frees (-); summing them in time order gives the
peak of tensor memory alive during the step. Scratch memory that a fused kernel frees inside one call is
not seen, so on CPU the figure is a lower bound.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator

import torch

from llmguide.runtime import check_positive_int


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 inside the block (the profiler's C++ backend prints there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def peak_bytes(step: Callable[[], None], device: torch.device) -> int:
    """Peak bytes of tensors allocated while ``step()`` runs, above those alive before it.

    Args:
        step: the work to measure, e.g. one forward + backward + optimizer step.
        device: where ``step`` runs; CUDA uses the allocator's counter, CPU the profiler (a lower bound).
    Returns:
        The peak, in bytes.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    from torch.profiler import ProfilerActivity, profile

    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    # self_cpu_memory_usage is what each operator itself allocated (+) or freed (-), excluding children
    events = sorted((e for e in prof.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start)
    current = peak = 0
    for e in events:
        current += e.self_cpu_memory_usage
        peak = max(peak, current)
    return peak


def best_time(fn: Callable[[], object], repeats: int = 3, device: torch.device | str | None = None) -> float:
    """Seconds taken by the fastest of ``repeats`` calls of ``fn()``.

    The minimum, not the mean: on a shared machine other work only ever adds time, so the fastest run is
    the best estimate of the work itself. On CUDA the device is synchronised before and after each call
    (kernels run asynchronously; without it only the launch would be timed).

    Args:
        fn: the work to time.
        repeats: how many calls (>= 1).
        device: where ``fn`` runs (None or CPU: no synchronisation).
    Returns:
        The fastest time, in seconds.
    """
    check_positive_int(repeats, "repeats")
    device = torch.device(device) if device is not None else None
    sync = torch.cuda.synchronize if device is not None and device.type == "cuda" else (lambda: None)
    best = float("inf")
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best
