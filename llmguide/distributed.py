"""What each process of a training run sees: examples as batches, the batch order, and the process group.

The training loop (:mod:`llmguide.train`) asks this module three things each step: which examples form
global batch ``step`` (:class:`BatchOrder`, a pure function of ``(seed, step)``, so a resumed run, or the
same global batch split over 1 or 2 processes, sees exactly the same data), how to turn them into a batch
on the device (:func:`fetch`), and where this process stands in a data-parallel run (:class:`DistInfo`
from :func:`setup_distributed`, which joins the group ``torchrun`` describes; Li et al. 2020, "PyTorch
Distributed").
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from llmguide.runtime import get_device, to_device

Batch = dict[str, Tensor]


# ---------------------------------------------------------------- data
class TensorDataset(torch.utils.data.Dataset):
    """A dict of equally long tensors as a dataset of dicts (e.g. ``{"idx": X, "labels": y}``)."""

    def __init__(self, tensors: Mapping[str, Tensor]):
        lengths = {k: len(v) for k, v in tensors.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"all tensors need the same first dimension, got {lengths}")
        self.tensors = dict(tensors)

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, i: int) -> Batch:
        return {k: v[i] for k, v in self.tensors.items()}

    def get_batch(self, indices: Tensor) -> Batch:
        return {k: v[indices] for k, v in self.tensors.items()}


def as_dataset(data: Any) -> Any:
    """Accept a dataset (``len`` + ``__getitem__`` returning dicts of tensors) or a dict of tensors."""
    if isinstance(data, Mapping):
        return TensorDataset(data)
    if not hasattr(data, "__len__") or not hasattr(data, "__getitem__"):
        raise ValueError(f"training data must be a dataset or a dict of tensors, got {type(data).__name__}")
    return data


def fetch(dataset: Any, indices: Tensor, collate_fn: Callable | None = None) -> Batch:
    """The batch made of ``dataset[i]`` for ``i`` in ``indices``: the dataset's fast ``get_batch`` if it has
    one, else ``collate_fn`` (default: stack each key) of the examples."""
    if collate_fn is None and hasattr(dataset, "get_batch"):
        return dataset.get_batch(indices)
    items = [dataset[int(i)] for i in indices]
    return collate_fn(items) if collate_fn else {k: torch.stack([it[k] for it in items]) for k in items[0]}


class BatchOrder:
    """Which examples form global batch number ``step``: a seeded shuffle per epoch, a pure function of the step.

    Epoch ``e`` is ``randperm(n)`` drawn from a generator seeded with ``(seed, e)``; batch ``b`` of it is
    ``perm[b * G:(b + 1) * G]`` (the last incomplete batch is dropped). Nothing needs saving to resume:
    the step says where the data stands. Rank ``r`` of ``W`` takes rows ``[r * G/W, (r + 1) * G/W)``.
    """

    def __init__(self, n_examples: int, global_batch: int, seed: int):
        if n_examples < global_batch:
            raise ValueError(f"the training data has {n_examples} examples, fewer than one global batch of "
                             f"{global_batch}: lower batch_size or grad_accum_steps, or use more data")
        self.n, self.global_batch, self.seed = n_examples, global_batch, seed
        self.batches_per_epoch = n_examples // global_batch
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def position(self, step: int) -> tuple[int, int]:
        """(epoch, batch within the epoch) of a step."""
        return divmod(step, self.batches_per_epoch)

    def indices(self, step: int, rank: int = 0, world_size: int = 1) -> Tensor:
        """This rank's example indices for global batch ``step``: shape (global_batch / world_size,)."""
        epoch, b = self.position(step)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=gen)
        batch = self._perm[b * self.global_batch:(b + 1) * self.global_batch]
        per_rank = self.global_batch // world_size
        return batch[rank * per_rank:(rank + 1) * per_rank]


def load_step(data: Any, order: BatchOrder, batch_size: int, info: DistInfo, collate_fn: Callable | None,
               step: int) -> tuple[list[Batch], int]:
    """This rank's micro-batches of global batch ``step``, on the device, and how many tokens they hold."""
    mine = order.indices(step, info.rank, info.world_size).split(batch_size)
    batches = [fetch(data, part, collate_fn) for part in mine]
    return [to_device(b, info.device) for b in batches], sum(count_tokens(b) for b in batches)


def count_tokens(batch: Batch) -> int:
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    return next(v for v in batch.values() if v.dtype == torch.long).numel()


# ---------------------------------------------------------------- distributed
@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: rank ``rank`` of ``world_size`` processes, using ``device``."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now: the rendezvous port (``MASTER_PORT``) for processes started
    on this machine without ``torchrun`` (``torch.multiprocessing.spawn`` in tests and benchmarks)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # port 0: the OS picks an unused one
        return s.getsockname()[1]


def setup_distributed(device: str | None = None) -> DistInfo:
    """Join the process group that ``torchrun`` describes (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ...).

    Backend: NCCL on GPUs, gloo on CPU. Without ``torchrun`` (``WORLD_SIZE`` unset) nothing is started
    and this is rank 0 of 1. A process group the caller already started is used as it is. Call it once per
    run and hand the result on (``train(..., dist_info=info)``); :func:`is_main_process` answers "rank 0?"
    without it.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = get_device(device)
    if chosen.type == "cuda" and (world_size > 1 or dist.is_initialized()):
        chosen = torch.device("cuda", local_rank)  # one GPU per process
        torch.cuda.set_device(chosen)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    if dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), chosen)
    return DistInfo(0, 1, chosen)


def is_main_process() -> bool:
    """Rank 0 of the process group, or the only process when there is none (what may print and write)."""
    return not dist.is_initialized() or dist.get_rank() == 0


def mean_over_ranks(values: Tensor, info: DistInfo) -> Tensor:
    if info.world_size > 1:
        values = values.clone()
        dist.all_reduce(values)  # SUM: gloo has no AVG
        values /= info.world_size
    return values
