"""Checkpoints and model folders that are safe to load and never half-written.

A *checkpoint* lets training resume exactly where it stopped; a *model folder* is what a trained model
ships as. Both follow the same rules:

* weights in `safetensors <https://huggingface.co/docs/safetensors>`_ (no code runs on load); a weight
  tied to another one (GPT-2's LM head shares the token embedding, Press & Wolf 2017, "Using the Output
  Embedding to Improve Language Models") is stored once and re-tied on load, like Hugging Face does;
* configs as JSON; the trainer's state (optimizer, gradient scaler, step, random generators, early
  stopping, data position) with ``torch.save`` and read back with ``torch.load(weights_only=True)``,
  which refuses arbitrary pickled objects;
* every write goes to a temporary file or folder *in the same directory* and is then renamed into place
  with ``os.replace``: a rename within one file system is atomic, so a crash or Ctrl-C mid-save leaves
  the previous checkpoint untouched and never a broken one.

Layout of a training run's ``out_dir``::

    out_dir/checkpoints/step_000200/{model.safetensors, config.json, trainer.pt, history.json}
    out_dir/checkpoints/step_000400/...        <- latest_checkpoint(out_dir) picks the newest complete one
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TRAINER = "trainer.pt"
HISTORY = "history.json"
CHECKPOINT_FILES = (WEIGHTS, CONFIG, TRAINER, HISTORY)
STEP_DIR = re.compile(r"^step_(\d+)$")
_UMASK = os.umask(0)
os.umask(_UMASK)  # read the process umask (setting it is the only way), so files get the usual 0644


# ---------------------------------------------------------------- atomic writes
def _fsync(path: Path) -> None:
    # Flush the file's bytes to disk before the rename makes it visible (otherwise a power cut right
    # after the rename could still expose an empty file).
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write one file atomically: ``write(tmp)`` fills a temporary file next to ``path``, then it is renamed.

    Args:
        path: the final file.
        write: a function that writes the whole file to the path it is given.
    Returns:
        ``path``. If ``write`` raises, the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")  # same suffix: writers that look at it still work
    try:
        write(tmp)
        _fsync(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # some writers create 0600 files; a model folder is meant to be shared
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Fill a folder atomically: the block writes into a temporary folder that is renamed to ``path`` at the end.

    If the block raises, the temporary folder is deleted and an existing ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        for file in tmp.iterdir():
            _fsync(file)
        if path.exists():  # replacing a folder takes two renames; the old one is only deleted after
            old = path.with_name(f".old-{path.name}-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- weights
def _tied_names(model: nn.Module) -> dict[str, str]:
    """{name: first name} for every parameter or buffer that is the same tensor as an earlier one."""
    seen: dict[int, str] = {}
    tied = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        key = id(tensor)
        if key in seen:
            tied[name] = seen[key]
        else:
            seen[key] = name
    return tied


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """Save a model's weights as safetensors, storing tied weights once (atomically).

    The dropped names and the weight each is tied to are kept in the file's metadata, so
    :func:`load_weights` can re-tie them; the kept name is the first in ``state_dict`` order (for GPT-2,
    the token embedding), as in Hugging Face's GPT-2 files.

    Args:
        model: any module.
        path: the ``.safetensors`` file to write.
    Returns:
        ``path``.
    """
    tied = _tied_names(model)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if k not in tied}
    metadata = {"format": "pt", "tied": json.dumps(tied)}
    return atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=metadata))


def load_weights(model: nn.Module, path: str | Path, strict: bool = True) -> nn.Module:
    """Load safetensors weights saved by :func:`save_weights` (or by Hugging Face) into ``model``.

    Args:
        model: a module with the same architecture (its tied weights stay tied).
        path: a ``.safetensors`` file, or a folder holding ``model.safetensors``.
        strict: as in ``load_state_dict``; missing or unexpected names raise ``ValueError``.
    Returns:
        ``model``, with the weights copied in place on its own device.
    """
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}: save one with save_weights(model, path)")
    with safe_open(str(path), framework="pt") as f:
        tied = json.loads((f.metadata() or {}).get("tied", "{}"))
    state = load_file(str(path))
    for name, first in _tied_names(model).items():  # re-tie: the dropped copy is the kept tensor
        source = tied.get(name, first)
        if name not in state and source in state:
            state[name] = state[source]
    result = model.load_state_dict(state, strict=False)
    if strict and (result.missing_keys or result.unexpected_keys):
        raise ValueError(f"{path} does not fit this model: missing {result.missing_keys}, "
                         f"unexpected {result.unexpected_keys}; was it saved from a model with another config?")
    return model


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
    """
    final = checkpoint_dir(out_dir, step)
    with atomic_dir(final) as tmp:
        save_weights(model, tmp / WEIGHTS)
        (tmp / CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
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
    state = torch.load(path / TRAINER, map_location="cpu", weights_only=True)
    state["config"] = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    state["history"] = json.loads((path / HISTORY).read_text(encoding="utf-8"))
    return state
