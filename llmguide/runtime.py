"""Runtime setup shared by every notebook, script and test: seed, device, profile and CPU threads.

One switch picks the *profile*: small sizes that run in a minute or two on two CPU cores ("cpu", the
default without a GPU and in CI) or larger sizes that give real results on a GPU ("gpu"). The switch is
the ``LLMGUIDE_PROFILE`` environment variable, or the ``profile=`` argument of :func:`setup`, which wins.
What each profile means, size by size, is in :mod:`llmguide.profiles`.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from llmguide.profiles import PROFILES

T = TypeVar("T")


@dataclass(frozen=True)
class Profile:
    """Which set of sizes to use. ``profile.pick(cpu=..., gpu=...)`` chooses a value by profile."""

    name: str  # "cpu" (small, CI-sized) or "gpu" (larger, real results)

    def __post_init__(self) -> None:
        if self.name not in PROFILES:
            raise ValueError(
                f"unknown profile {self.name!r}: use one of {PROFILES} "
                "(set LLMGUIDE_PROFILE=cpu or LLMGUIDE_PROFILE=gpu)"
            )

    def pick(self, *, cpu: T, gpu: T) -> T:
        """Return ``cpu`` under the CPU profile and ``gpu`` under the GPU profile."""
        return cpu if self.name == "cpu" else gpu

    def __str__(self) -> str:
        return self.name


def get_profile(name: str | None = None) -> Profile:
    """The profile from ``name``, else ``$LLMGUIDE_PROFILE``, else "gpu" when CUDA is present, else "cpu"."""
    name = name or os.environ.get("LLMGUIDE_PROFILE") or ("gpu" if torch.cuda.is_available() else "cpu")
    return Profile(name.strip().lower())


def get_device(name: str | None = None) -> torch.device:
    """The best device here: ``name`` or ``$LLMGUIDE_DEVICE`` if given, else CUDA, then Apple MPS, then CPU."""
    name = name or os.environ.get("LLMGUIDE_DEVICE")
    if name:
        try:
            device = torch.device(name)
        except RuntimeError as err:
            raise ValueError(f"unknown device {name!r}: use 'cpu', 'cuda', 'cuda:1' or 'mps'") from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but CUDA is not available here: use 'cpu'")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); returns a CPU ``torch.Generator`` with that seed."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def deterministic(seed: int = 0) -> Iterator[None]:
    """Within the block, seed everything and make PyTorch pick deterministic kernels (for tests)."""
    previous = torch.are_deterministic_algorithms_enabled()
    seed_everything(seed)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def to_device(batch: Mapping[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """A batch (dict of tensors) on ``device``. On CUDA the host tensors are pinned first, so the copy runs
    asynchronously (``non_blocking``) while the GPU is still busy with the previous step."""
    if device.type == "cuda":
        return {k: (v.pin_memory() if v.device.type == "cpu" else v).to(device, non_blocking=True)
                for k, v in batch.items()}
    return {k: v.to(device) for k, v in batch.items()}


def evenly_spaced(n: int, k: int) -> Tensor:
    """``k`` indices spread evenly over ``range(n)``, first and last included (all of them when k >= n).

    The same subset every time, covering the whole range: what a fixed evaluation set or a smaller
    training set is drawn as.

    Returns:
        (min(k, n),) long tensor, sorted, without repeats.
    """
    return torch.linspace(0, n - 1, min(k, n)).round().long()


def check_positive_int(value: Any, name: str, what: str = "an int >= 1") -> int:
    """``value`` if it is an int >= 1 (not a bool), else a ValueError naming ``name`` and the value."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return value


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block the model is in eval mode (no dropout); its train/eval mode is restored after,
    also when the block raises."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@dataclass(frozen=True)
class Runtime:
    """What :func:`setup` chose; notebooks print it so a reader sees where the numbers came from."""

    seed: int
    device: torch.device
    profile: Profile
    threads: int

    def __str__(self) -> str:
        return f"seed={self.seed} device={self.device.type} profile={self.profile} threads={self.threads}"


def setup(seed: int = 0, profile: str | None = None, device: str | None = None) -> Runtime:
    """Seed, choose the device and profile, and make CPU training fast inside Jupyter.

    Each notebook starts with ``rt = setup()``. The OpenMP wait policy is set to PASSIVE when the
    package is imported (see ``llmguide/__init__.py``): with the default busy-wait, idle OpenMP threads
    spin and starve the Jupyter kernel's own threads, which made small CPU training steps several times
    slower in a kernel than in a plain script (measured in ``benchmarks/omp_wait.py``).
    """
    seed_everything(seed)
    return Runtime(seed=seed, device=get_device(device), profile=get_profile(profile),
                   threads=torch.get_num_threads())
