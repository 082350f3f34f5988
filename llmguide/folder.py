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
new one, never a mix. config.json records the tokenizer (``"tokenizer": {"vocab_size", "fingerprint"}``) and
:func:`load_folder` checks it, the model's config (key by key: :func:`check_config`) and the weights file, so a
swapped tokenizer or a damaged file is one clear ``ValueError`` naming the file, never wrong answers.
:func:`check_output` is what a recipe calls before any work on the folder it will write.

*Kinds.* ``config.json["kind"]`` names what the folder holds; each kind is registered once with
:func:`register_kind` by the module that defines the model (``llmguide.model`` registers "gpt-lm" and
"gpt-classifier"). A new model (an encoder, a vision model, a quantized one) adds a kind; it does not write a
loader. Folders written before the format had a version (``data/review-gpt``) are read as version 1: an
entry ``task: classification`` means "gpt-classifier", else "gpt-lm".

Why one module of ~490 lines: it owns the whole format (file names, kinds, weights with tied tensors, the
checks on every file when it is read, the atomic write); the checks live where the files are read, so a
folder cannot be loaded past them.
"""

from __future__ import annotations

import importlib
import json
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from llmguide.atomic import atomic_dir, atomic_write, check_output_dir, clean_leftovers
from llmguide.tokenizer import (
    HF_CONFIG_FILE,
    TOKENIZER_FILE,
    Tokenizer,
    load_tokenizer,
    tokenizer_fingerprint,
)

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
# What a new save keeps of an existing folder: the run's checkpoints (and files a user put there). Every
# model file, the card included, is the new model's or absent: never an old card beside new weights.
MODEL_FILES = (*FORMAT_FILES, CARD, "special_tokens_map.json", "vocab.txt", "merges.txt", "vocab.json")


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
    try:
        with safe_open(str(path), framework="pt") as f:
            tied = json.loads((f.metadata() or {}).get("tied", "{}"))
        state = load_file(str(path))
    except (SafetensorError, OSError, json.JSONDecodeError) as err:  # truncated, garbage or empty file
        size = path.stat().st_size
        raise ValueError(f"{path} is not a readable safetensors file ({size} bytes: {err}): it is truncated or "
                         "damaged; save the model again, or copy the folder again") from None
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
    config_class: type | None = None  # the dataclass config.json["model"] must match exactly (checked on load)


KINDS: dict[str, ModelKind] = {}
# Where each kind is defined: load_folder imports the module on first use, so a fresh process can load any
# folder without importing the model's module first (registering happens at that module's import).
KIND_MODULES: dict[str, str] = {
    "gpt-lm": "llmguide.model", "gpt-classifier": "llmguide.model", "gpt-tagger": "llmguide.tagger",
    "bert-mlm": "llmguide.bert", "bert-classifier": "llmguide.bert", "bert-tagger": "llmguide.bert",
    "lstm-tagger": "llmguide.rnn", "lstm-classifier": "llmguide.rnn",
    "vit-classifier": "llmguide.vit", "cnn-classifier": "llmguide.cnn",
}


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
                files: Mapping[str, Callable[[Path], None]] | None = None, replace_kind: bool = False) -> Path:
    """Write a model folder, all of it or nothing (see the module docstring for the layout).

    config.json also records the tokenizer's ``vocab_size`` and :func:`~llmguide.tokenizer.tokenizer_fingerprint`
    (entry ``"tokenizer"``), which :func:`load_folder` checks.

    Args:
        folder: the folder. If it exists, its model files (card included) are replaced together; other
            entries (a training run's ``checkpoints/``) are kept.
        model: a model of a registered kind (:class:`~llmguide.model.GPT`, :class:`~llmguide.model.GPTClassifier`).
        tokenizer: has ``save(folder)``; None writes no tokenizer.
        meta: more JSON-able entries for config.json, e.g. ``{"train": asdict(train_config)}``.
        labels: the class names in id order (kinds that need ``labels.json``).
        files: more files to write into the folder, as ``{name: write(path)}`` (e.g. ``history.csv``).
        replace_kind: allow replacing a folder that holds another kind of model (refused by default: a
            language model written over a classifier, or the other way round, loses it).
    Returns:
        The folder as a Path.
    Raises:
        ValueError: the folder holds another kind of model (and not ``replace_kind``).
    """
    kind = kind_of(model)
    if not replace_kind:
        _refuse_other_kind(Path(folder), kind.name)
    described = kind.describe(model)
    if LABELS in kind.files:
        labels = [str(name) for name in labels or ()]
        if len(labels) != described.get("n_classes", len(labels)) or not labels:
            raise ValueError(f"{len(labels)} label names for a classifier with {described.get('n_classes')} "
                             "classes: pass one name per class, in id order")
    config = {"format_version": FORMAT_VERSION, "kind": kind.name, **described, **(meta or {})}
    if tokenizer is not None:
        config["tokenizer"] = tokenizer_record(tokenizer)
    folder = Path(folder)
    with atomic_dir(folder, keep=lambda name: name not in MODEL_FILES) as tmp:
        save_weights(model, tmp / WEIGHTS)
        write_json(tmp / CONFIG, config)
        if tokenizer is not None:
            tokenizer.save(tmp)
        if labels is not None and LABELS in kind.files:
            write_json(tmp / LABELS, labels)
        for name, write in (files or {}).items():
            write(tmp / name)
    return folder


def tokenizer_record(tokenizer: Tokenizer) -> dict[str, Any]:
    """What config.json records of the tokenizer: ``{"vocab_size": V, "fingerprint": "..."}``."""
    return {"vocab_size": int(tokenizer.vocab_size), "fingerprint": tokenizer_fingerprint(tokenizer)}


def _existing_kind(folder: Path) -> str | None:
    """The kind of model an existing folder holds, or None (no folder, or no readable llmguide config.json)."""
    try:
        return read_meta(folder)["kind"]
    except (FileNotFoundError, ValueError, OSError):
        return None


def _refuse_other_kind(folder: Path, kind: str) -> None:
    found = _existing_kind(folder)
    if found is not None and found != kind:
        raise ValueError(f"{folder} holds a {found!r} model: refusing to write a {kind!r} model over it "
                         "(it would be lost); choose another output folder, or delete that one first")


def check_output(folder: str | Path, kind: str | None = None, *, inputs: Sequence[str | Path] = (),
                 overwrite: bool = False, resume: bool = False, what: str = "--out") -> Path:
    """Check, before any work, that a recipe may write the model folder ``folder``.

    Every recipe calls it first, so a run that cannot save fails in a second, not after an hour. It also
    removes what interrupted saves left beside the folder (:func:`llmguide.atomic.clean_leftovers`).

    Args:
        folder: the output folder.
        kind: the kind of model the recipe will write ("gpt-lm", "gpt-classifier").
        inputs: folders or files the recipe reads (e.g. the pre-trained model): the output may not be one.
        overwrite: allow replacing an existing, non-empty folder (of any kind).
        resume: the run continues the run saved in ``folder`` (an existing folder is then expected).
        what: how the caller names the folder in messages (``--out``).
    Returns:
        ``folder`` as a Path.
    Raises:
        ValueError: ``folder`` is a file, not writable, one of ``inputs``, or already holds something (a
            model of another kind, an earlier run) and neither ``overwrite`` nor ``resume`` is given.
    """
    folder = check_output_dir(folder, what)
    here = folder.resolve()
    for source in inputs:
        if source is not None and Path(source).expanduser().exists() and Path(source).expanduser().resolve() == here:
            raise ValueError(f"{what} {folder} is also an input of this run: writing it would destroy what the run "
                             "reads; choose another output folder")
    clean_leftovers(folder.parent, keep_into=lambda name: folder if name == folder.name else None)
    if resume or overwrite or not folder.is_dir() or not any(folder.iterdir()):
        return folder
    found = _existing_kind(folder)
    if found is not None and kind is not None and found != kind:
        raise ValueError(f"{what} {folder} holds a {found!r} model: refusing to write a {kind!r} model over it; "
                         "choose another folder (or pass --overwrite to replace it)")
    what_is_there = f"a {found!r} model" if found else f"{len(list(folder.iterdir()))} entries"
    raise ValueError(f"{what} {folder} already holds {what_is_there}: pass --overwrite to replace it, --resume to "
                     "continue the run saved there, or choose another folder")


_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # "gpt2" or "owner/name"


def no_such_folder(name: str | Path, what: str = "model folder") -> FileNotFoundError | None:
    """The error for ``name`` when it must be a local folder that is missing, else None (a hub name).

    A name is a local path when it looks like one (``./x``, ``/x``, ``~/x``, ``a/b/c``) or when its first
    part exists here (``runs/lmm`` with a ``runs/`` folder: a typo, not a hub model).
    """
    text = str(name)
    path = Path(text).expanduser()
    if path.exists():
        return None
    first = Path(text.replace("\\", "/").split("/")[0])
    local = not _HUB_NAME.match(text) or ("/" in text and first.is_dir())
    if not local:
        return None
    parent = path.parent
    near = sorted(p.name for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))[:8] \
        if parent.is_dir() else []
    hint = f" ({parent} holds: {', '.join(near)})" if near else ""
    return FileNotFoundError(f"no such {what}: {path}{hint}")


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
    if found not in KINDS and found in KIND_MODULES:
        importlib.import_module(KIND_MODULES[found])  # registers the kind
    if found not in KINDS:
        raise ValueError(f"{folder} holds a {found!r} model, which this llmguide cannot load (known kinds: "
                         f"{sorted(KINDS)})")
    spec = KINDS[found]
    check_folder(folder, spec.files)
    if LABELS in spec.files:
        try:
            labels = json.loads((folder / LABELS).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{folder / LABELS} is not valid UTF-8 JSON ({err}): save the model again") from None
        if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) for x in labels):
            raise ValueError(f"{folder / LABELS} must hold a JSON list of at least 2 class names, got {labels!r:.80}")
        meta["labels"] = labels
    path = folder / CONFIG
    if spec.config_class is not None:
        check_config(spec.config_class, meta["model"], f"{path} entry 'model'")
    try:
        built = spec.build(meta)
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"{path} does not describe a {found!r} model: {err}") from None
    if "quantization" in meta:  # int8/int4 weights (llmguide.quantize): swap in their layers before loading
        from llmguide.quantize import prepare_quantized  # late: quantize imports this module

        built = prepare_quantized(built, meta["quantization"])
    model = load_weights(built, folder / WEIGHTS)
    has_tokenizer = (folder / TOKENIZER).is_file() or (folder / TOKENIZER_CONFIG).is_file()
    tokenizer = load_tokenizer(folder) if has_tokenizer else None
    _check_entries(meta, path, tokenizer, strict_vocab=spec.config_class is not None)
    return model.to(device or "cpu").eval(), tokenizer, meta


# ---------------------------------------------------------------- validation of config.json
def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value has the type a dataclass field's hint asks for (int is not bool; int fits float)."""
    if hint is Any:
        return True
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_fits(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    origin = typing.get_origin(hint)
    return isinstance(value, origin) if isinstance(origin, type) else True


def check_config(cls: type, entries: Any, where: str) -> None:
    """Check that ``entries`` (from a JSON file) holds exactly the fields of dataclass ``cls``, each of its type.

    Args:
        cls: a dataclass, e.g. :class:`~llmguide.model.GPTConfig`.
        entries: the decoded JSON object.
        where: names the file and entry in messages, e.g. ``"runs/lm/config.json entry 'model'"``.
    Raises:
        ValueError: not an object, a missing key (no silent default: a missing ``n_layer`` is not 12), an
            unknown key, or a value of the wrong type; the message names the file and the key.
    """
    if not isinstance(entries, dict):
        raise ValueError(f"{where} must be a JSON object, got {type(entries).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    missing = [n for n in names if n not in entries]
    if missing:
        raise ValueError(f"{where} is missing {', '.join(map(repr, missing))}: the file is incomplete; "
                         "save the model again (a model's sizes are never guessed)")
    extra = sorted(set(entries) - set(names))
    if extra:
        raise ValueError(f"{where} has unknown key(s) {', '.join(map(repr, extra))} (known: {', '.join(names)}): "
                         "was it written by another program or another llmguide version?")
    for name in names:
        if not _fits(entries[name], hints[name]):
            raise ValueError(f"{where} key {name!r} is {entries[name]!r:.40} ({type(entries[name]).__name__}), "
                             f"but must be {getattr(hints[name], '__name__', hints[name])}: fix or re-save the file")


def _check_entries(meta: Mapping[str, Any], path: Path, tokenizer: Tokenizer | None, strict_vocab: bool) -> None:
    """The cross-checks of config.json: tokenizer identity and size, and the entries the recipes record."""
    model = meta.get("model", {})
    vocab = model.get("vocab_size")
    record = meta.get("tokenizer")
    if tokenizer is not None and isinstance(vocab, int):
        if isinstance(record, dict):
            if record.get("vocab_size") != tokenizer.vocab_size or \
                    record.get("fingerprint") != tokenizer_fingerprint(tokenizer):
                raise ValueError(
                    f"{path.parent / TOKENIZER} is not the tokenizer this model was saved with: config.json records "
                    f"{record.get('vocab_size')} ids (fingerprint {record.get('fingerprint')}), the file has "
                    f"{tokenizer.vocab_size} ids (fingerprint {tokenizer_fingerprint(tokenizer)}); put the model's "
                    "own tokenizer.json back, or save the model again")
        # More ids than the model has is always broken (an IndexError at the first such token); fewer is broken
        # for llmguide's own kinds, whose vocabulary is the tokenizer's, when no record says otherwise.
        if tokenizer.vocab_size > vocab or (tokenizer.vocab_size < vocab and record is None and strict_vocab):
            raise ValueError(f"{path.parent / TOKENIZER} has {tokenizer.vocab_size} ids but the model's vocabulary "
                             f"({path} 'vocab_size') is {vocab}: the tokenizer and the weights do not belong "
                             "together; use the model's own tokenizer.json")
    for key in ("end_id", "block_size"):
        value = meta.get(key)
        if value is None:
            continue
        limit = vocab if key == "end_id" else model.get("block_size")
        low = 0 if key == "end_id" else 1
        if isinstance(value, bool) or not isinstance(value, int) or not isinstance(limit, int) \
                or not low <= value < limit + (key == "block_size"):
            bound = f"[{low}, {limit})" if key == "end_id" else f"[{low}, {limit}]"
            raise ValueError(f"{path} key {key!r} is {value!r}, outside {bound}: fix or re-save the file")
    labels = meta.get("labels")
    if labels is not None and meta.get("n_classes") not in (None, len(labels)):
        raise ValueError(f"{path} says n_classes={meta.get('n_classes')!r} but {path.parent / LABELS} holds "
                         f"{len(labels)} names: the files do not belong together")
