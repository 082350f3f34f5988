"""The pre-training recipe: what ``llmguide pretrain`` runs, a GPT pre-trained on a corpus and saved as a model folder.

A *recipe* wires the library for one job: a corpus (:mod:`llmguide.data`, :mod:`llmguide.lmdata`), a
tokenizer fitted on its training part, a :class:`~llmguide.model.GPT` sized by the profile
(:mod:`llmguide.profiles`), the loop (:func:`llmguide.train.train`), and the model folder
(:mod:`llmguide.folder`): ``model.safetensors``, ``config.json`` (``{"model": asdict(GPTConfig), "train":
asdict(TrainConfig), "data": ..., "results": ...}``), ``tokenizer.json`` and ``history.csv``;
``checkpoints/`` keeps the newest training checkpoint so ``--resume`` can continue the run. Settings are
overridden as ``key=value`` (:func:`parse_overrides`). The command line lives in :mod:`llmguide.cli`.

The same command runs on several processes (data parallel, see :mod:`llmguide.train`)::

    torchrun --standalone --nproc_per_node=2 -m llmguide pretrain --corpus shakespeare --out runs/lm
"""

from __future__ import annotations

import json
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from llmguide.checkpoint import latest_checkpoint
from llmguide.data import data_dir, load_shakespeare, read_text
from llmguide.folder import CONFIG, HISTORY, TOKENIZER, load_folder, save_folder
from llmguide.lmdata import LMData, review_lm_data, review_texts, split_text, text_lm_data
from llmguide.model import GPT, GPTConfig
from llmguide.profiles import PRETRAIN_SETTINGS, PROFILES, REVIEW_LM_SETTINGS
from llmguide.runtime import get_profile
from llmguide.tokenizer import CharTokenizer, Tokenizer, load_tokenizer, train_bpe
from llmguide.train import TrainConfig, setup_distributed, train

CORPORA = ("reviews", "shakespeare")  # or a path to a UTF-8 text file
TOKENIZERS = ("char", "bpe")
TRAIN_PRESETS = PRETRAIN_SETTINGS  # the old name
ALIASES = {"lr": "learning_rate", "steps": "max_steps", "epochs": "max_epochs"}
# Options of the data, beside TrainConfig's and GPTConfig's fields: (type, default, help).
DATA_OPTIONS: dict[str, tuple[type, Any, str]] = {
    "min_freq": (int, 1, "char tokenizer: characters seen fewer times become <unk>"),
    "bpe_vocab_size": (int, 2000, "bpe tokenizer: vocabulary size"),
    "val_fraction": (float, 0.1, "text corpora: share of the text, from the end, kept for validation"),
}


# ---------------------------------------------------------------- --key=value overrides
def option_types() -> dict[str, Any]:
    """Every key an override may set, with its type: TrainConfig, GPTConfig (not vocab_size) and data options."""
    hints = {**typing.get_type_hints(GPTConfig), **typing.get_type_hints(TrainConfig)}
    keys = [f.name for f in fields(TrainConfig) if f.name not in ("out_dir", "progress")]  # own arguments
    keys += [f.name for f in fields(GPTConfig) if f.name != "vocab_size"]
    return {**{k: hints[k] for k in keys}, **{k: t for k, (t, _, _) in DATA_OPTIONS.items()}}


def _convert(key: str, value: Any, kind: Any) -> Any:
    if not isinstance(value, str):
        return value
    args = typing.get_args(kind)
    if type(None) in args and value.strip().lower() in ("none", "null", ""):
        return None
    base = next((a for a in args if a is not type(None)), kind) if isinstance(kind, types.UnionType) else kind
    try:
        if base is bool:
            if value.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return value.strip().lower() in ("true", "1", "yes")
        if base is int:
            number = float(value)  # accepts "1e3"
            if not number.is_integer():
                raise ValueError
            return int(number)
        return base(value)
    except ValueError:
        raise ValueError(f"--{key}={value!r} is not a valid {getattr(base, '__name__', base)}") from None


def parse_overrides(items: Sequence[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """Turn ``["lr=3e-4", "max_steps=100"]`` (or a dict of strings) into typed settings.

    Keys are TrainConfig fields (``learning_rate`` or its alias ``lr``, ``max_steps``, ``batch_size``, ...),
    GPTConfig fields (``n_layer``, ``n_embd``, ``block_size``, ``dropout``, ...) and the data options
    ``min_freq``, ``bpe_vocab_size``, ``val_fraction``. A leading ``--`` is allowed; "none" gives None.

    Returns:
        ``{key: value}`` with values converted to the field's type, e.g. ``{"learning_rate": 0.0003}``.
    Raises:
        ValueError: an unknown key (the message lists the valid ones) or a value of the wrong type.
    """
    if items is None:
        return {}
    pairs = []
    if isinstance(items, Mapping):
        pairs = list(items.items())
    else:
        for item in items:
            key, sep, value = item.removeprefix("--").partition("=")
            if not sep:
                raise ValueError(f"override {item!r} is not key=value: write e.g. max_steps=100")
            pairs.append((key, value))
    types_ = option_types()
    out = {}
    for key, value in pairs:
        key = ALIASES.get(key.strip(), key.strip())
        if key not in types_:
            raise ValueError(f"unknown setting {key!r}: valid keys are {sorted(types_)} (and aliases {sorted(ALIASES)})")
        out[key] = _convert(key, value, types_[key])
    return out


# ---------------------------------------------------------------- corpus and tokenizer
def _corpus_text(corpus: str) -> str | None:
    """The text of a text corpus ("shakespeare" or a file); None for the reviews, which come split already."""
    if corpus == "reviews":
        return None
    if corpus == "shakespeare":
        return load_shakespeare()
    path = Path(corpus)
    if not path.is_file():
        raise FileNotFoundError(f"corpus {corpus!r} is neither one of {CORPORA} nor a text file")
    return read_text(path)


def _lm_data(corpus: str, text: str | None, tokenizer: Tokenizer, block_size: int, val_fraction: float) -> LMData:
    """Training and validation windows: the reviews by their split, a text by position."""
    if text is None:
        return review_lm_data(tokenizer, block_size)
    return text_lm_data(text, tokenizer, block_size, val_fraction, source=corpus)


def build_tokenizer(kind: str, train_texts: list[str], min_freq: int = 1, bpe_vocab_size: int = 2000):
    """A character or BPE tokenizer fitted on the training text only (validation stays unseen)."""
    if kind == "char":
        return CharTokenizer.train(train_texts, min_freq=min_freq)
    if kind == "bpe":
        lines = [line for text in train_texts for line in text.splitlines() if line.strip()]
        return train_bpe(lines, vocab_size=bpe_vocab_size)
    raise ValueError(f"unknown tokenizer {kind!r}: use one of {TOKENIZERS}")


# ---------------------------------------------------------------- the run
def run_pretrain(corpus: str = "reviews", tokenizer: str = "char", profile: str | None = None,
                 overrides: Mapping[str, Any] | Sequence[str] | None = None, out_dir: str | Path = "runs/lm",
                 resume: bool = False, progress: bool = True, *, preset: str | None = None) -> Path:
    """Pre-train a GPT on ``corpus`` and write the model folder ``out_dir``.

    Args:
        corpus: "reviews" (the Chinese reviews, split by their ``split`` column), "shakespeare", or a path
            to a UTF-8 text file (split 90/10 by position).
        tokenizer: "char" or "bpe", fitted on the training text.
        profile: "cpu" or "gpu": the model's sizes and the training settings
            (:data:`llmguide.profiles.MODEL_SIZES`, :data:`~llmguide.profiles.PRETRAIN_SETTINGS`); None: the
            runtime profile ($LLMGUIDE_PROFILE, else gpu with CUDA).
        overrides: settings from :func:`parse_overrides` (strings are converted), e.g. ``{"max_steps": "100"}``.
        out_dir: the model folder; checkpoints go to ``out_dir/checkpoints``.
        resume: continue from the newest checkpoint in ``out_dir`` (its tokenizer and model sizes are reused).
        progress: show a progress bar.
        preset: the old name of ``profile`` (deprecated).
    Returns:
        ``out_dir`` as a Path.
    """
    profile = profile or preset or get_profile().name
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: use one of {PROFILES}")
    settings = parse_overrides(overrides)
    data_opts = {k: settings.pop(k, default) for k, (_, default, _) in DATA_OPTIONS.items()}
    model_keys = {f.name for f in fields(GPTConfig)}
    model_over = {k: v for k, v in settings.items() if k in model_keys}
    train_over = {k: v for k, v in settings.items() if k not in model_keys}
    out_dir = Path(out_dir)
    info = setup_distributed(train_over.get("device"))

    text = _corpus_text(corpus)
    if resume and (out_dir / TOKENIZER).is_file():
        tok = load_tokenizer(out_dir)  # the ids must mean what they meant in the checkpoint
    else:  # fitted on exactly the training stream, separators included
        fit_text = review_texts("train") if text is None else split_text(text, data_opts["val_fraction"])[0]
        tok = build_tokenizer(tokenizer, [fit_text], data_opts["min_freq"], data_opts["bpe_vocab_size"])
    model_config = GPTConfig.from_preset(profile, **{**model_over, "vocab_size": tok.vocab_size})
    if resume and (ckpt := _latest_model_config(out_dir)) is not None:
        model_config = GPTConfig(**ckpt)
    train_config = TrainConfig(**{**PRETRAIN_SETTINGS[profile], "keep_checkpoints": 1, **train_over,
                                  "progress": progress, "out_dir": str(out_dir)})
    data = _lm_data(corpus, text, tok, model_config.block_size, data_opts["val_fraction"])
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        tok.save(out_dir)  # before training: a resumed run must find the tokenizer its checkpoints use
    torch.manual_seed(train_config.seed)
    model = GPT(model_config)
    history = train(model, data.train, data.val, train_config, resume=resume, dist_info=info)
    if info.is_main:
        _write_folder(out_dir, model, train_config, data, history, tokenizer, info.world_size)
    return out_dir


def _latest_model_config(out_dir: Path) -> dict | None:
    path = latest_checkpoint(out_dir)
    return None if path is None else json.loads((path / CONFIG).read_text(encoding="utf-8"))["model"]


def _write_folder(out_dir: Path, model: GPT, train_config: TrainConfig, data, history, tokenizer_kind: str,
                  world_size: int) -> None:
    val = history.val_loss.dropna()
    results = {"steps": int(history.step.iloc[-1]), "train_loss": float(history.train_loss.iloc[-1]),
               "val_loss": float(val.iloc[-1]) if len(val) else None, "processes": world_size,
               "global_batch": train_config.batch_size * train_config.grad_accum_steps * world_size}
    if results["val_loss"] is not None:
        results["val_perplexity"] = math.exp(results["val_loss"])
    meta = {"train": asdict(train_config), "data": {**data.summary(), "tokenizer": tokenizer_kind},
            "results": results}
    save_model_folder(out_dir, model, data.tokenizer, meta, history)


def save_model_folder(folder: str | Path, model: GPT, tokenizer: Tokenizer, meta: Mapping[str, Any] | None = None,
                      history: pd.DataFrame | None = None) -> Path:
    """Write a language-model folder (:func:`llmguide.folder.save_folder`), with ``history.csv`` if given.

    Layout: ``model.safetensors``, ``config.json`` (``{"format_version", "kind": "gpt-lm", "model":
    asdict(model.config), **meta}``), ``tokenizer.json`` and, if given, ``history.csv``. Other entries of the
    folder (``checkpoints/``) stay.

    Returns:
        The folder.
    """
    files = {} if history is None else {HISTORY: lambda p: history.to_csv(p, index=False)}
    return save_folder(folder, model, tokenizer, meta, files=files)


def load_model_folder(folder: str | Path) -> tuple[GPT, Tokenizer, dict[str, Any]]:
    """Read a language-model folder (:func:`llmguide.folder.load_folder` with kind "gpt-lm").

    Returns:
        ``(model in eval mode, tokenizer, config dict)``.
    """
    return load_folder(folder, kind="gpt-lm")


# ---------------------------------------------------------------- the review language model the project ships


def review_lm_dir() -> Path:
    """``data/review-gpt``: the CPU-profile GPT pre-trained on the training reviews with
    :data:`REVIEW_LM_SETTINGS` (a model folder for :func:`load_model_folder` / ``GPT.from_pretrained``)."""
    return data_dir() / "review-gpt"


def make_review_lm(out_dir: str | Path = "runs/review-gpt", progress: bool = True) -> Path:
    """Re-create the shipped review language model in ``out_dir`` (~15 min on two CPU cores).

    The run is deterministic on one machine: with the same PyTorch and CPU it writes the same weights as
    ``data/review-gpt`` (``tests/test_review_lm.py`` checks that its first steps match the shipped history).
    """
    return run_pretrain("reviews", "char", "cpu", REVIEW_LM_SETTINGS, out_dir, progress=progress)


