"""The training loop: one readable function, trustworthy enough for real data and several GPUs.

What :func:`train` does each step, and where it comes from:

* AdamW with decoupled weight decay on matrices only (Loshchilov & Hutter 2019, "Decoupled Weight
  Decay Regularization"); biases and LayerNorm gains are not decayed, as in GPT-2/nanoGPT.
* Linear warmup, then cosine decay to ``min_lr`` (Loshchilov & Hutter 2017, "SGDR"; the GPT-3 recipe,
  Brown et al. 2020).
* Gradient accumulation (a big batch as several small ones) and clipping of the global gradient norm
  (Pascanu et al. 2013).
* Mixed precision (Micikevicius et al. 2018): bf16 autocast where the GPU supports it, else fp16 with a
  gradient scaler; fp32 on CPU unless asked.
* Data parallelism with ``torch.nn.parallel.DistributedDataParallel`` (Li et al. 2020, "PyTorch
  Distributed") when started by ``torchrun``: each rank gets a different slice of every global batch,
  gradients are averaged across ranks, only rank 0 writes checkpoints and shows progress.

The order of the examples is a pure function of ``(seed, step)`` (:class:`llmguide.distributed.BatchOrder`),
so a resumed run, or the same global batch split over 1 or 2 processes, sees exactly the same data; what each
process sees, and the process group, live in :mod:`llmguide.distributed`.

A *batch* is a dict of tensors and the model follows the contract ``logits, loss = model(**batch)``.

Why one module of ~500 lines: the configuration, the optimizer and schedule, precision, one step, and
the checkpoint save/resume are the parts of one loop, read together; each part is a function of one screen.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any, NamedTuple

import pandas as pd
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from llmguide.checkpoint import (
    clean_partial_saves,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from llmguide.distributed import (
    Batch,
    BatchOrder,
    DistInfo,
    TensorDataset,
    as_dataset,
    fetch,
    free_port,
    is_main_process,
    load_step,
    mean_over_ranks,
    setup_distributed,
)
from llmguide.runtime import eval_mode, evenly_spaced, seed_everything, to_device

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# TrainConfig fields a resumed run may change: when and what it logs, evaluates and saves, and how long it
# runs. Every other field shapes the optimisation itself, so a different value would not resume the run.
RESUME_MAY_CHANGE = ("max_steps", "max_epochs", "eval_interval", "eval_steps", "log_interval", "out_dir",
                     "checkpoint_interval", "keep_checkpoints", "progress", "device", "patience", "min_delta")
# Re-exported: callers set up a run with these beside train() (llmguide.distributed is their home).
__all__ = ["BatchOrder", "DistInfo", "NonFiniteLossError", "TensorDataset", "TrainConfig", "evaluate_loss",
           "free_port", "is_main_process", "lr_at", "make_optimizer", "mixed_precision", "setup_distributed",
           "total_steps", "train", "train_step"]


@dataclass
class TrainConfig:
    """How to train. ``batch_size`` is per device and micro-step: the global batch is
    ``batch_size * grad_accum_steps * world_size`` examples."""

    learning_rate: float = 1e-3  # peak learning rate, reached at the end of warmup
    min_lr: float | None = None  # learning rate at the end of the cosine decay (None: learning_rate / 10)
    warmup_steps: int = 100  # linear warmup from ~0, so early noisy updates stay small
    lr_decay_steps: int | None = None  # steps of warmup + cosine decay (None: the whole run)
    weight_decay: float = 0.1  # AdamW decay, applied to matrices (dim >= 2) only
    beta1: float = 0.9  # AdamW first-moment decay
    beta2: float = 0.95  # AdamW second-moment decay (0.95 as in GPT-3; 0.99 for tiny batches)
    batch_size: int = 32  # examples per device per micro-step
    grad_accum_steps: int = 1  # micro-steps whose gradients are summed before one update
    max_steps: int | None = 1000  # optimizer updates to run (None: use max_epochs)
    max_epochs: float | None = None  # passes over the training data (both set: whichever ends first)
    eval_interval: int = 100  # evaluate every this many steps (and at the end); 0: only at the end
    eval_steps: int = 20  # validation batches per evaluation
    clip_norm: float | None = 1.0  # clip the global gradient norm to this (None: no clipping)
    precision: str = "auto"  # "auto" | "fp32" | "bf16" | "fp16"; auto: bf16/fp16 on CUDA, fp32 elsewhere
    seed: int = 0  # seeds dropout and the data order
    patience: int | None = None  # stop after this many evaluations without improvement (None: never)
    min_delta: float = 0.0  # an evaluation must beat the best validation loss by more than this
    log_interval: int = 10  # steps between progress-bar updates and callback calls
    out_dir: str | None = None  # where checkpoints go (None: no checkpoints)
    checkpoint_interval: int | None = None  # steps between checkpoints (None: every eval_interval); also at the end
    keep_checkpoints: int = 2  # newest checkpoints kept on disk (0: all)
    progress: bool = True  # show a tqdm progress bar (rank 0 only)
    device: str | None = None  # "cpu", "cuda", "mps"; None: the best available (cuda:LOCAL_RANK under torchrun)

    def __post_init__(self) -> None:
        checks = [
            ("learning_rate", 0 < self.learning_rate < math.inf, "a positive finite number such as 3e-4"),
            ("min_lr", self.min_lr is None or 0 <= self.min_lr <= self.learning_rate,
             f"between 0 and learning_rate={self.learning_rate}"),
            ("warmup_steps", self.warmup_steps >= 0, "0 or more"),
            ("lr_decay_steps", self.lr_decay_steps is None or self.lr_decay_steps > self.warmup_steps,
             f"None or more than warmup_steps={self.warmup_steps}"),
            ("weight_decay", self.weight_decay >= 0, "0 or more, e.g. 0.1"),
            ("beta1", 0 <= self.beta1 < 1, "in [0, 1)"), ("beta2", 0 <= self.beta2 < 1, "in [0, 1)"),
            ("batch_size", self.batch_size >= 1, "1 or more"),
            ("grad_accum_steps", self.grad_accum_steps >= 1, "1 or more"),
            ("max_steps", self.max_steps is None or self.max_steps >= 1, "None or 1 or more"),
            ("max_epochs", self.max_epochs is None or self.max_epochs > 0, "None or more than 0"),
            ("eval_interval", self.eval_interval >= 0, "0 (only at the end) or more"),
            ("eval_steps", self.eval_steps >= 1, "1 or more"),
            ("clip_norm", self.clip_norm is None or self.clip_norm > 0, "None or a positive number like 1.0"),
            ("precision", self.precision in PRECISIONS, f"one of {PRECISIONS}"),
            ("seed", isinstance(self.seed, int) and self.seed >= 0, "a non-negative int"),
            ("patience", self.patience is None or self.patience >= 1, "None or 1 or more"),
            ("log_interval", self.log_interval >= 1, "1 or more"),
            ("checkpoint_interval", self.checkpoint_interval is None or self.checkpoint_interval >= 1,
             "None or 1 or more"),
            ("keep_checkpoints", self.keep_checkpoints >= 0, "0 (keep all) or more"),
        ]
        for name, ok, fix in checks:
            if not ok:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r} is invalid: use {fix}")
        if self.max_steps is None and self.max_epochs is None:
            raise ValueError("TrainConfig needs max_steps or max_epochs: both are None")

    @property
    def final_lr(self) -> float:
        return self.learning_rate / 10 if self.min_lr is None else self.min_lr


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


# ---------------------------------------------------------------- schedule and optimizer
def lr_at(step: int, config: TrainConfig, total_steps: int) -> float:
    """The learning rate for update number ``step`` (0-based): linear warmup, then cosine decay to ``min_lr``."""
    decay_steps = config.lr_decay_steps or total_steps
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / (config.warmup_steps + 1)
    if step >= decay_steps:
        return config.final_lr
    progress = (step - config.warmup_steps) / max(1, decay_steps - config.warmup_steps)  # 0 -> 1
    return config.final_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (config.learning_rate - config.final_lr)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (embeddings, linear weights) but not on biases or norms.

    Decaying a gain or a bias pulls it towards 0, which only fights the normalisation; matrices are
    where over-large weights mean over-confident features.
    """
    params = [p for p in model.parameters() if p.requires_grad]  # tied weights appear once
    if not params:
        raise ValueError("the model has no trainable parameters (requires_grad is False everywhere): unfreeze some")
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    fused = next(model.parameters()).device.type == "cuda"  # one kernel for all parameters on GPU
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(config.beta1, config.beta2), fused=fused)


def mixed_precision(precision: str, device: torch.device):
    """The autocast context and the gradient scaler (or None) for ``precision`` on ``device``.

    Returns:
        ``(autocast_context, scaler, precision_used)``. ``auto`` picks bf16 on GPUs that really support it
        (Ampere and later), fp16 + ``GradScaler`` on older GPUs, fp32 on CPU and MPS.
    """
    if precision == "auto":
        if device.type != "cuda":
            precision = "fp32"
        else:
            precision = "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    if precision == "fp32":
        return contextlib.nullcontext(), None, precision
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"precision='fp16' needs a CUDA GPU, but the device is {device.type}: "
                         "use precision='bf16' or 'fp32'")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None  # fp16 gradients underflow without it
    return torch.autocast(device.type, dtype=dtype), scaler, precision


# ---------------------------------------------------------------- evaluation and one step
@torch.no_grad()
def evaluate_loss(model: nn.Module, data: Any, batch_size: int, max_batches: int, autocast=None,
                  info: DistInfo | None = None, collate_fn: Callable | None = None) -> float:
    """The validation loss: mean cross-entropy per predicted target over ``max_batches * batch_size`` evenly
    spaced examples of ``data`` (all if fewer).

    Each batch's mean loss is weighted by the targets it scored (``targets`` not ``-100``, or one per
    ``labels`` entry), so the result is the per-token mean over all chosen examples whatever the batch size:
    for a language model, nats per predicted token over the same fixed windows (``torch.linspace`` over the
    whole set). The same examples every time, so successive evaluations are comparable; under DDP each rank
    scores a share and the sums are added across ranks.
    """
    data = as_dataset(data)
    info = info or DistInfo(0, 1, next(model.parameters()).device)
    n = min(len(data), max_batches * batch_size * info.world_size)
    chosen = evenly_spaced(len(data), n)[info.rank::info.world_size]
    total = torch.zeros(2, dtype=torch.float64, device=info.device)  # (sum of loss * targets, targets)
    with eval_mode(model):
        for part in chosen.split(batch_size):
            batch = to_device(fetch(data, part, collate_fn), info.device)
            with autocast or contextlib.nullcontext():
                _, loss = model(**batch)
            scored = ((batch["targets"] != -100).sum() if "targets" in batch  # predicted tokens: the weight
                      else torch.tensor(len(part), device=info.device))  # one label per example
            total += torch.stack([loss.double() * scored, scored.to(total)])
    if info.world_size > 1:
        dist.all_reduce(total)
    return (total[0] / total[1]).item()


def train_step(model: nn.Module, micro_batches: list[Batch], optimizer: torch.optim.Optimizer,
               autocast, scaler, clip_norm: float | None) -> tuple[Tensor, Tensor]:
    """One optimizer update from a list of micro-batches (gradient accumulation).

    Returns:
        ``(loss, grad_norm)`` as 0-dim tensors: the mean loss over the micro-batches (this rank's share)
        and the gradient norm before clipping (NaN without clipping).
    """
    optimizer.zero_grad(set_to_none=True)
    losses = []
    for i, batch in enumerate(micro_batches):
        last = i == len(micro_batches) - 1
        # Under DDP, average gradients across ranks only once, after the last micro-batch.
        sync = contextlib.nullcontext() if last or not isinstance(model, DistributedDataParallel) else model.no_sync()
        with sync:
            with autocast:
                _, loss = model(**batch)
            scaled = loss / len(micro_batches)  # the sum of the micro-batch grads is then the mean
            (scaler.scale(scaled) if scaler else scaled).backward()
        losses.append(loss.detach().float())
    if scaler:
        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
    norm = torch.full((), float("nan"), device=losses[0].device)
    if clip_norm:
        norm = nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], clip_norm)
    if scaler:
        scaler.step(optimizer)  # skipped when the fp16 gradients overflowed
        scaler.update()
    else:
        optimizer.step()
    return torch.stack(losses).mean(), norm.detach().float()


# ---------------------------------------------------------------- the loop's bookkeeping
class _Pending(NamedTuple):
    """One optimizer step not yet logged: its loss and gradient norm stay on the device until the next log."""

    step: int
    lr: float
    tokens: int  # tokens seen after this step (all ranks)
    loss: Tensor  # 0-dim, this rank's mean over the micro-batches
    grad_norm: Tensor  # 0-dim, before clipping (NaN without clipping)


@dataclass
class _Run:
    """What :func:`train` tracks besides the model and the optimizer.

    A checkpoint stores ``step`` (in the folder name and trainer state), ``tokens_seen``, ``best_val``,
    ``bad_evals`` and ``history`` (``elapsed`` is read back from its last row); the rest is per-process
    bookkeeping that a resumed run starts afresh.
    """

    step: int = 0  # optimizer updates done
    tokens_seen: int = 0  # tokens in the global batches so far
    best_val: float = math.inf  # best validation loss (early stopping)
    bad_evals: int = 0  # evaluations since the best one
    stop_reason: str | None = None  # "max_steps", "early_stopping" or "callback"
    history: list[dict[str, float]] = field(default_factory=list)
    pending: list[_Pending] = field(default_factory=list)  # steps not yet logged
    window_tokens: int = 0  # tokens since the last log, for tokens/s
    clock: float = field(default_factory=time.perf_counter)  # start of the current timing window
    elapsed: float = 0.0  # seconds spent in training steps (evaluations and checkpoints excluded)


def _flush(run: _Run, order: BatchOrder, info: DistInfo) -> None:
    """Move the pending steps into the history: one sync with the device (and the other ranks) per log."""
    if not run.pending:
        return
    values = mean_over_ranks(torch.stack([torch.stack((p.loss, p.grad_norm)) for p in run.pending]), info).tolist()
    now = time.perf_counter()
    run.elapsed += now - run.clock
    tokens_per_s = run.window_tokens * info.world_size / max(now - run.clock, 1e-9)
    for (step, lr, tokens, _, _), (loss, norm) in zip(run.pending, values, strict=True):  # _Pending fields
        if not math.isfinite(loss):
            raise NonFiniteLossError(
                f"the training loss became {loss} at step {step} (learning rate {lr:.3g}); the weights are "
                "no longer usable. Try a lower learning_rate, gradient clipping (clip_norm=1.0), a longer "
                "warmup_steps, or precision='fp32'; then restart or resume from an earlier checkpoint")
        run.history.append({"step": step, "epoch": step / order.batches_per_epoch, "lr": lr, "train_loss": loss,
                            "val_loss": math.nan, "grad_norm": norm, "tokens": tokens,
                            "tokens_per_s": tokens_per_s, "elapsed_s": run.elapsed})
    run.pending.clear()
    run.window_tokens, run.clock = 0, now


def _note_eval(run: _Run, val_loss: float, config: TrainConfig) -> None:
    run.history[-1]["val_loss"] = val_loss
    if val_loss < run.best_val - config.min_delta:
        run.best_val, run.bad_evals = val_loss, 0
    else:
        run.bad_evals += 1
        if config.patience and run.bad_evals >= config.patience:
            run.stop_reason = "early_stopping"


def _ask_callback(callback: Callable | None, run: _Run, info: DistInfo) -> None:
    """Rank 0 calls ``callback(row)``; a True answer stops every rank."""
    stop = bool(callback(dict(run.history[-1]))) if callback and info.is_main else False
    if info.world_size > 1:
        flag = torch.tensor([float(stop)], device=info.device)
        dist.broadcast(flag, src=0)
        stop = bool(flag.item())
    if stop:
        run.stop_reason = "callback"


def _model_config(model: nn.Module) -> dict[str, Any] | None:
    config = getattr(model, "config", None)
    return asdict(config) if is_dataclass(config) else None


def _save(run: _Run, model: nn.Module, optimizer, scaler, config: TrainConfig, order: BatchOrder,
          info: DistInfo, run_meta: Mapping[str, Any] | None = None) -> None:
    """Checkpoint on rank 0; every rank's random generators are gathered so dropout resumes exactly."""
    rngs = [rng_state()]
    if info.world_size > 1:
        rngs = [None] * info.world_size
        dist.all_gather_object(rngs, rng_state())
    if info.is_main:
        epoch, batch = order.position(run.step)
        state = {"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler else {},
                 "rng": rngs, "tokens_seen": run.tokens_seen, "best_val": run.best_val, "bad_evals": run.bad_evals,
                 "data": {"epoch": epoch, "batch": batch, "n_examples": order.n,
                          "global_batch": order.global_batch, "seed": order.seed}}
        saved = {"model": _model_config(model), "train": asdict(config), "run": dict(run_meta or {})}
        save_checkpoint(config.out_dir, run.step, model, state, saved, run.history, keep=config.keep_checkpoints)
    if info.world_size > 1:
        dist.barrier()  # nobody runs ahead (or reads the folder) before it is complete


def _diff_text(diff: Mapping[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k}={a!r} there, {b!r} here" for k, (a, b) in diff.items())


def _check_same_run(path: Any, saved: Mapping[str, Any], model: nn.Module, config: TrainConfig,
                    run_meta: Mapping[str, Any] | None) -> None:
    """Refuse to resume a checkpoint of another run: other model sizes, other training settings (those not in
    :data:`RESUME_MAY_CHANGE`), or other data or tokenizer (``run_meta``, e.g. their fingerprints)."""
    fix = "resume with the settings of that run, or start a new run (another out_dir, or delete its checkpoints)"
    model_config, saved_model = _model_config(model), saved.get("model")
    if model_config is not None and saved_model is not None and saved_model != model_config:
        diff = {k: (saved_model.get(k), v) for k, v in model_config.items() if saved_model.get(k) != v}
        raise ValueError(f"{path} holds a model with other sizes: {_diff_text(diff)}; {fix}")
    saved_train = saved.get("train") or {}
    diff = {k: (saved_train[k], v) for k, v in asdict(config).items()
            if k in saved_train and k not in RESUME_MAY_CHANGE and saved_train[k] != v}
    if diff:
        raise ValueError(f"{path} was trained with other settings: {_diff_text(diff)}; {fix}")
    saved_run = saved.get("run") or {}
    for key, value in (run_meta or {}).items():
        if key in saved_run and saved_run[key] != value:
            raise ValueError(f"{path} was trained with another {key} ({saved_run[key]!r:.120} there, {value!r:.120} "
                             f"here): a resumed run must see the same {key}; {fix}")


def _resume(run: _Run, model: nn.Module, optimizer, scaler, config: TrainConfig, order: BatchOrder,
            info: DistInfo, run_meta: Mapping[str, Any] | None = None) -> None:
    path = latest_checkpoint(config.out_dir)
    if path is None:
        warnings.warn(f"resume=True, but {config.out_dir} holds no complete checkpoint: starting from step 0",
                      stacklevel=3)
        return
    state = load_checkpoint(path)
    _check_same_run(path, state["config"], model, config, run_meta)
    load_checkpoint(path, model)  # the weights, once the run is known to be the same
    data = state["data"]
    if (data["n_examples"], data["global_batch"], data["seed"]) != (order.n, order.global_batch, order.seed):
        raise ValueError(f"{path} was trained on {data['n_examples']} examples in global batches of "
                         f"{data['global_batch']} with seed {data['seed']}, but this run has {order.n}, "
                         f"{order.global_batch} and {order.seed}: use the same data, batch_size x grad_accum_steps "
                         "x processes and seed to resume exactly, or start a new out_dir")
    optimizer.load_state_dict(state["optimizer"])
    if scaler and state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    rngs = state["rng"]
    set_rng_state(rngs[info.rank] if len(rngs) == info.world_size else rngs[0])
    run.step, run.tokens_seen, run.history = state["step"], state["tokens_seen"], state["history"]
    run.elapsed = run.history[-1]["elapsed_s"] if run.history else 0.0
    run.best_val, run.bad_evals = state["best_val"], state["bad_evals"]


def _due(step: int, total: int, config: TrainConfig, has_val: bool) -> tuple[bool, bool, bool]:
    """(log, evaluate, save checkpoint) after update ``step``; the last step does all three."""
    last = step == total
    evaluate = has_val and (last or bool(config.eval_interval and step % config.eval_interval == 0))
    every = config.checkpoint_interval or config.eval_interval
    save = config.out_dir is not None and (last or bool(every and step % every == 0))
    return last or evaluate or save or step % config.log_interval == 0, evaluate, save


def total_steps(config: TrainConfig, batches_per_epoch: int) -> int:
    """Optimizer updates in the run: ``max_steps``, or ``max_epochs`` worth of batches, whichever is fewer."""
    limits = [config.max_steps] if config.max_steps else []
    if config.max_epochs:
        limits.append(max(1, round(config.max_epochs * batches_per_epoch)))
    return min(limits)


# ---------------------------------------------------------------- the loop
def train(model: nn.Module, train_data: Any, val_data: Any = None, config: TrainConfig | None = None,
          callback: Callable[[dict], bool | None] | None = None, *, resume: bool = False,
          collate_fn: Callable | None = None, dist_info: DistInfo | None = None,
          run_meta: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Train ``model`` in place and return the history (one row per optimizer step).

    Args:
        model: follows ``logits, loss = model(**batch)``; it is moved to the chosen device.
        train_data, val_data: datasets of dicts of tensors (or a dict of tensors); ``val_data`` may be None.
        config: a :class:`TrainConfig` (default: its defaults).
        callback: called on rank 0 as ``callback(row)`` every ``log_interval`` steps and at evaluations;
            returning True stops training (a checkpoint is written first when ``out_dir`` is set).
        resume: continue from the newest complete checkpoint in ``config.out_dir`` (a warning when there is
            none). The checkpoint must be of the same run: same model sizes, same training settings except
            :data:`RESUME_MAY_CHANGE`, same data, same ``run_meta``; otherwise ``ValueError``. Without
            ``resume``, an ``out_dir`` that already holds checkpoints is refused (they would mix with the new run's).
        collate_fn: turns a list of examples into a batch (default: stack each key).
        dist_info: what :func:`setup_distributed` returned, when the caller has already called it.
        run_meta: JSON-able facts that identify the run beyond the configs (e.g. ``{"tokenizer": ...,
            "data": ...}`` fingerprints), stored in each checkpoint and compared on resume.
    Returns:
        DataFrame with columns step, epoch, lr, train_loss, val_loss (NaN between evaluations),
        grad_norm, tokens (seen so far), tokens_per_s, elapsed_s (seconds of training steps so far, without
        evaluations); ``history.attrs["stop_reason"]`` says why it stopped.
    """
    config = config or TrainConfig()
    info = dist_info or setup_distributed(config.device)
    seed_everything(config.seed + info.rank)  # dropout noise differs between ranks, like different data
    model.to(info.device).train()
    optimizer = make_optimizer(model, config)
    autocast, scaler, _ = mixed_precision(config.precision, info.device)
    train_data = as_dataset(train_data)
    order = BatchOrder(len(train_data), config.batch_size * config.grad_accum_steps * info.world_size, config.seed)
    total, run = total_steps(config, order.batches_per_epoch), _Run()
    if config.out_dir is not None and info.is_main:
        clean_partial_saves(config.out_dir)  # folders of saves a kill interrupted
        if not resume and (old := list_checkpoints(config.out_dir)):
            raise ValueError(f"{config.out_dir} already holds checkpoints of an earlier run (up to {old[-1].name}): "
                             "pass resume=True to continue it, or use another out_dir (or delete them) for a new run")
    if resume:
        _resume(run, model, optimizer, scaler, config, order, info, run_meta)
    net = DistributedDataParallel(model, device_ids=[info.device.index] if info.device.type == "cuda" else None) \
        if info.world_size > 1 else model
    bar = tqdm(total=total, initial=run.step, desc="train", disable=not config.progress or not info.is_main)
    run.clock = time.perf_counter()
    load = functools.partial(load_step, train_data, order, config.batch_size, info, collate_fn)
    upcoming = load(run.step) if run.step < total else None
    while run.step < total and run.stop_reason is None:
        lr = lr_at(run.step, config, total)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batches, tokens = upcoming
        loss, norm = train_step(net, batches, optimizer, autocast, scaler, config.clip_norm)
        run.step += 1
        # The next step's batches are fetched and copied now: on CUDA the step above is still running (its
        # kernels are queued), so the pinned host-to-device copy overlaps with it.
        upcoming = load(run.step) if run.step < total else None
        run.window_tokens += tokens
        run.tokens_seen += tokens * info.world_size
        run.pending.append(_Pending(run.step, lr, run.tokens_seen, loss, norm))
        bar.update(1)
        log_now, evaluate_now, save_now = _due(run.step, total, config, val_data is not None)
        if not log_now:
            continue
        _flush(run, order, info)  # one sync with the device per log: the losses were kept as tensors
        if evaluate_now:
            _note_eval(run, evaluate_loss(model, val_data, config.batch_size, config.eval_steps, autocast, info,
                                          collate_fn), config)
        _ask_callback(callback, run, info)
        bar.set_postfix({k: f"{run.history[-1][k]:.4f}" for k in ("train_loss", "val_loss")
                         if math.isfinite(run.history[-1][k])})
        if save_now or (config.out_dir is not None and run.stop_reason):
            _save(run, model, optimizer, scaler, config, order, info, run_meta)
        run.clock = time.perf_counter()  # evaluation and saving do not count as training time
    bar.close()
    history = pd.DataFrame(run.history)
    history.attrs["stop_reason"] = run.stop_reason or "max_steps"
    return history
