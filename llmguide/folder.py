"""The model folder: the one format every saved model ships as, with one writer and one reader.

A model folder is what a trained model is once training is over: a training *checkpoint*
(:mod:`llmguide.checkpoint`) adds the optimizer and data position so that a run can resume. Layout::

    model.safetensors   the weights; a weight tied to another one (GPT-2's LM head shares the token
                        embedding, Press & Wolf 2017) is stored once and re-tied on load, as Hugging Face does
    config.json         {"format_version": 1, "kind": "gpt-lm", "model": asdict(GPTConfig), ...}: what
                        rebuilds the model, then anything the writer records (training settings, results)
    tokenizer.json      the tokenizer (or a Hugging Face tokenizer folder's files)
    labels.json         the class names, in id order (kinds that classify)
    history.csv, report.json, README.md (the card)   optional, written by the recipes

Safety: weights in `safetensors <https://huggingface.co/docs/safetensors>`_ (no code runs on load), the
rest JSON or CSV, and :func:`save_folder` writes the whole folder into a temporary folder beside it that is
then renamed into place (:func:`llmguide.atomic.atomic_dir`): a crash leaves the previous folder or the
new one, never a mix.

*Kinds.* ``config.json["kind"]`` names what the folder holds; each kind is registered once with
:func:`register_kind` by the module that defines the model (``llmguide.model`` registers "gpt-lm" and
"gpt-classifier"). A new model (an encoder, a vision model, a quantized one) adds a kind; it does not write a
loader. Folders written before the format had a version (``data/review-gpt``) are read as version 1: an
entry ``task: classification`` means "gpt-classifier", else "gpt-lm".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from llmguide.atomic import atomic_dir, atomic_write
from llmguide.tokenizer import HF_CONFIG_FILE, TOKENIZER_FILE, Tokenizer, load_tokenizer

FORMAT_VERSION = 1
# The file names of the format; every module uses these constants.
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TOKENIZER = TOKENIZER_FILE  # "tokenizer.json"
TOKENIZER_CONFIG = HF_CONFIG_FILE  # "tokenizer_config.json", beside it for a Hugging Face tokenizer
LABELS = "labels.json"
HISTORY = "history.csv"
REPORT = "report.json"
CARD = "README.md"
FORMAT_FILES = (WEIGHTS, CONFIG, TOKENIZER, TOKENIZER_CONFIG, LABELS, HISTORY, REPORT)


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

    This is the one place where tied weights are re-tied on load: a name missing from the file that the
    model ties to a stored one gets that tensor.

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


def write_json(path: str | Path, value: Any) -> Path:
    """Write ``value`` as indented UTF-8 JSON (Chinese stays readable), atomically."""
    text = json.dumps(value, indent=2, ensure_ascii=False) + "\n"
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


# ---------------------------------------------------------------- kinds
@dataclass(frozen=True)
class ModelKind:
    """One kind of model a folder can hold: how to describe it in config.json and rebuild it from there."""

    name: str  # config.json's "kind", e.g. "gpt-lm"
    model_class: type  # the class save_folder recognises (exact type)
    describe: Callable[[Any], dict[str, Any]]  # model -> the config.json entries that rebuild it
    build: Callable[[Mapping[str, Any]], nn.Module]  # config.json -> a model with fresh weights
    files: tuple[str, ...] = (WEIGHTS, CONFIG)  # what a complete folder of this kind holds


KINDS: dict[str, ModelKind] = {}


def register_kind(kind: ModelKind) -> ModelKind:
    """Make :func:`save_folder` and :func:`load_folder` handle one more kind of model."""
    KINDS[kind.name] = kind
    return kind


def kind_of(model: nn.Module) -> ModelKind:
    """The registered kind of ``model`` (by its exact class)."""
    for kind in KINDS.values():
        if type(model) is kind.model_class:
            return kind
    raise ValueError(f"no model-folder kind is registered for {type(model).__name__}: known kinds are "
                     f"{sorted(KINDS)}; register one with llmguide.folder.register_kind")


# ---------------------------------------------------------------- write
def save_folder(folder: str | Path, model: nn.Module, tokenizer: Tokenizer | None = None,
                meta: Mapping[str, Any] | None = None, *, labels: Sequence[str] | None = None,
                files: Mapping[str, Callable[[Path], None]] | None = None) -> Path:
    """Write a model folder, all of it or nothing (see the module docstring for the layout).

    Args:
        folder: the folder. If it exists, its model files are replaced together; other entries (a training
            run's ``checkpoints/``, a card) are kept.
        model: a model of a registered kind (:class:`~llmguide.model.GPT`, :class:`~llmguide.model.GPTClassifier`).
        tokenizer: has ``save(folder)``; None writes no tokenizer.
        meta: more JSON-able entries for config.json, e.g. ``{"train": asdict(train_config)}``.
        labels: the class names in id order (kinds that need ``labels.json``).
        files: more files to write into the folder, as ``{name: write(path)}`` (e.g. ``history.csv``).
    Returns:
        The folder as a Path.
    """
    kind = kind_of(model)
    described = kind.describe(model)
    if LABELS in kind.files:
        labels = [str(name) for name in labels or ()]
        if len(labels) != described.get("n_classes", len(labels)) or not labels:
            raise ValueError(f"{len(labels)} label names for a classifier with {described.get('n_classes')} "
                             "classes: pass one name per class, in id order")
    config = {"format_version": FORMAT_VERSION, "kind": kind.name, **described, **(meta or {})}
    folder = Path(folder)
    with atomic_dir(folder, keep=lambda name: name not in FORMAT_FILES) as tmp:
        save_weights(model, tmp / WEIGHTS)
        write_json(tmp / CONFIG, config)
        if tokenizer is not None:
            tokenizer.save(tmp)
        if labels is not None and LABELS in kind.files:
            write_json(tmp / LABELS, labels)
        for name, write in (files or {}).items():
            write(tmp / name)
    return folder


# ---------------------------------------------------------------- read
def check_folder(folder: str | Path, needed: Sequence[str] = (CONFIG,)) -> Path:
    """``folder`` as a Path, after checking it exists and holds the files in ``needed``.

    Raises:
        FileNotFoundError: no such folder, or one of the files is missing (the message names them).
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"no model folder at {folder}: pass a folder written by `llmguide pretrain` or "
                                "`llmguide finetune` (llmguide.folder.save_folder)")
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a complete model folder: missing {', '.join(missing)}")
    return folder


def read_meta(folder: str | Path) -> dict[str, Any]:
    """A model folder's config.json, brought to the current format version (``format_version``, ``kind``).

    Raises:
        FileNotFoundError: no folder or no config.json. ValueError: not llmguide's JSON, or a newer format.
    """
    path = check_folder(folder) / CONFIG
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), dict):
        raise ValueError(f"{path} has no 'model' entry: it was not written by llmguide")
    version = meta.setdefault("format_version", FORMAT_VERSION)  # unversioned folders are version 1
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"{path} has format_version {version!r}, newer than this llmguide reads "
                         f"({FORMAT_VERSION}): upgrade llmguide")
    meta.setdefault("kind", "gpt-classifier" if meta.get("task") == "classification" else "gpt-lm")
    return meta


def load_folder(folder: str | Path, kind: str | None = None,
                device: str | torch.device | None = None) -> tuple[nn.Module, Tokenizer | None, dict[str, Any]]:
    """Load a model folder written by :func:`save_folder`: the model, its tokenizer and its config.json.

    Args:
        folder: the folder.
        kind: the kind the caller expects ("gpt-lm", "gpt-classifier"); None accepts any registered kind.
        device: where to put the model (default: the CPU).
    Returns:
        ``(model in eval mode, tokenizer or None, meta)``: meta is config.json (with ``format_version``
        and ``kind``), plus ``"labels"`` (the class names) for kinds that have them.
    Raises:
        FileNotFoundError: no folder, or a file the kind needs is missing. ValueError: another kind than
        ``kind``, an unknown kind, or a config.json llmguide did not write.
    """
    meta = read_meta(folder)
    folder = Path(folder).expanduser()
    found = meta["kind"]
    if kind is not None and found != kind:
        raise ValueError(f"{folder} holds a {found!r} model, expected a {kind!r} one: pass a folder of that kind")
    if found not in KINDS:
        raise ValueError(f"{folder} holds a {found!r} model, which this llmguide cannot load (known kinds: "
                         f"{sorted(KINDS)})")
    spec = KINDS[found]
    check_folder(folder, spec.files)
    if LABELS in spec.files:
        labels = json.loads((folder / LABELS).read_text(encoding="utf-8"))
        if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) for x in labels):
            raise ValueError(f"{folder / LABELS} must hold a JSON list of at least 2 class names, got {labels!r}")
        meta["labels"] = labels
    model = load_weights(spec.build(meta), folder / WEIGHTS)
    has_tokenizer = (folder / TOKENIZER).is_file() or (folder / TOKENIZER_CONFIG).is_file()
    tokenizer = load_tokenizer(folder) if has_tokenizer else None
    return model.to(device or "cpu").eval(), tokenizer, meta
