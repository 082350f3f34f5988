"""Training checkpoints that are safe to load and never half-written.

A *checkpoint* lets training resume exactly where it stopped; a *model folder* (:mod:`llmguide.folder`)
is what a trained model ships as. A checkpoint is a model folder's weights and config plus:

* weights through :func:`llmguide.folder.save_weights` (safetensors, tied weights stored once);
* configs as JSON; the trainer's state (optimizer, gradient scaler, step, random generators, early
  stopping, data position) with ``torch.save`` and read back with ``torch.load(weights_only=True)``,
  which refuses arbitrary pickled objects;
* every write goes through :mod:`llmguide.atomic`: a crash or Ctrl-C mid-save leaves the previous
  checkpoint untouched and never a broken one.

Layout of a training run's ``out_dir``::

    out_dir/checkpoints/step_000200/{model.safetensors, config.json, trainer.pt, history.json}
    out_dir/checkpoints/step_000400/...        <- latest_checkpoint(out_dir) picks the newest complete one
"""

from __future__ import annotations

import json
import pickle
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from llmguide.atomic import atomic_dir, atomic_write, clean_leftovers
from llmguide.folder import CONFIG, WEIGHTS, load_weights, save_weights, write_json

TRAINER = "trainer.pt"
HISTORY = "history.json"
CHECKPOINT_FILES = (WEIGHTS, CONFIG, TRAINER, HISTORY)
STEP_DIR = re.compile(r"^step_(\d+)$")
__all__ = [  # atomic_write, load_weights and save_weights stay importable from here, where they used to live
    "atomic_write", "checkpoint_dir", "clean_partial_saves", "latest_checkpoint", "list_checkpoints",
    "load_checkpoint", "load_weights", "rng_state", "save_checkpoint", "save_weights", "set_rng_state",
]


# ---------------------------------------------------------------- random generators
def rng_state() -> dict[str, Any]:
    """The state of every random generator training may draw from, as tensors and plain types."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        # the current GPU only: under torchrun each process owns one GPU and must not touch the others
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else torch.empty(0, dtype=torch.uint8),
        "python": random.getstate(),
        # numpy's state holds an ndarray, which weights_only loading refuses; store it as a tensor
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if len(state["cuda"]) and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    npy = state["numpy"]
    np.random.set_state(("MT19937", npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["gauss"]))


# ---------------------------------------------------------------- checkpoints
def checkpoint_dir(out_dir: str | Path, step: int) -> Path:
    """``out_dir/checkpoints/step_000123``: zero-padded so names sort by step."""
    return Path(out_dir) / "checkpoints" / f"step_{step:06d}"


def save_checkpoint(
    out_dir: str | Path,
    step: int,
    model: nn.Module,
    trainer_state: dict[str, Any],
    config: dict[str, Any],
    history: list[dict[str, Any]],
    keep: int = 2,
) -> Path:
    """Write a complete checkpoint for ``step`` atomically, then delete all but the newest ``keep``.

    Args:
        out_dir: the run's folder; the checkpoint goes to ``out_dir/checkpoints/step_{step:06d}``.
        step: optimizer updates done so far.
        model: the (unwrapped) model.
        trainer_state: optimizer/scaler state dicts, RNG states, counters: tensors and plain types only.
        config: JSON-able configs, e.g. ``{"model": asdict(gpt_config), "train": asdict(train_config)}``.
        history: the rows logged so far (JSON-able).
        keep: how many checkpoints to keep (the newest ones); 0 keeps all.
    Returns:
        The checkpoint folder.
    Raises:
        ValueError: ``keep`` is not an int >= 0, or ``step`` not an int >= 0 (checked before anything is written).
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise ValueError(f"keep must be an int >= 0 (0 keeps every checkpoint), got {keep!r}")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be an int >= 0, got {step!r}")
    final = checkpoint_dir(out_dir, step)
    with atomic_dir(final) as tmp:
        save_weights(model, tmp / WEIGHTS)
        write_json(tmp / CONFIG, config)
        (tmp / HISTORY).write_text(json.dumps(history), encoding="utf-8")
        torch.save({"step": step, **trainer_state}, tmp / TRAINER)
    if keep:
        for old in list_checkpoints(out_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    """The complete checkpoints under ``out_dir/checkpoints``, oldest first (temporary folders ignored)."""
    root = Path(out_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and STEP_DIR.match(p.name)
             and all((p / f).is_file() for f in CHECKPOINT_FILES)]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))


def clean_partial_saves(out_dir: str | Path) -> list[Path]:
    """Delete the ``.tmp-step_*`` / ``.old-step_*`` folders that saves interrupted by a crash or a kill left in
    ``out_dir/checkpoints`` (only those whose writer is no longer running). :func:`llmguide.train.train`
    calls it when a run starts.

    Returns:
        The folders removed.
    """
    return clean_leftovers(Path(out_dir) / "checkpoints")


def latest_checkpoint(out_dir: str | Path | None) -> Path | None:
    """The newest complete checkpoint under ``out_dir``, or None when there is none."""
    if out_dir is None:
        return None
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def load_checkpoint(path: str | Path, model: nn.Module | None = None) -> dict[str, Any]:
    """Read a checkpoint: weights into ``model`` (if given), and the trainer state.

    Args:
        path: a checkpoint folder (see :func:`latest_checkpoint`).
        model: the model to load the weights into, in place.
    Returns:
        ``{"step": int, "config": dict, "history": list[dict], **trainer_state}`` with tensors on the CPU.
    """
    path = Path(path)
    missing = [f for f in CHECKPOINT_FILES if not (path / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{path} is not a complete checkpoint (missing {missing})")
    if model is not None:
        load_weights(model, path / WEIGHTS)
    try:
        state = torch.load(path / TRAINER, map_location="cpu", weights_only=True)  # refuses arbitrary pickles
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:  # damaged, or not only tensors and plain types
        raise ValueError(f"{path / TRAINER} cannot be read safely ({str(err).splitlines()[0][:200]}): it is "
                         "damaged or was not written by llmguide; resume from another checkpoint or start a "
                         "new run") from None
    for key, name in (("config", CONFIG), ("history", HISTORY)):
        try:
            state[key] = json.loads((path / name).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path / name} is not valid UTF-8 JSON ({err}): the checkpoint is damaged") from None
    return state
