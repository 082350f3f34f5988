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

import hashlib
import math
import os
import shutil
import types
import typing
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from llmguide.atomic import atomic_write
from llmguide.checkpoint import latest_checkpoint, load_checkpoint
from llmguide.data import data_dir, load_shakespeare, read_text
from llmguide.folder import HISTORY, TOKENIZER, check_output, load_folder, save_folder, tokenizer_record
from llmguide.lmdata import LMData, review_lm_data, review_texts, split_text, text_lm_data
from llmguide.lock import folder_lock
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
                 resume: bool = False, progress: bool = True, *, preset: str | None = None,
                 overwrite: bool = False) -> Path:
    """Pre-train a GPT on ``corpus`` and write the model folder ``out_dir``.

    Args:
        corpus: "reviews" (the Chinese reviews, split by their ``split`` column), "shakespeare", or a path
            to a UTF-8 text file (split 90/10 by position).
        tokenizer: "char" or "bpe", fitted on the training text.
        profile: "cpu" or "gpu": the model's sizes and the training settings
            (:data:`llmguide.profiles.MODEL_SIZES`, :data:`~llmguide.profiles.PRETRAIN_SETTINGS`); None: the
            runtime profile ($LLMGUIDE_PROFILE, else gpu with CUDA).
        overrides: settings from :func:`parse_overrides` (strings are converted), e.g. ``{"max_steps": "100"}``.
        out_dir: the model folder; checkpoints go to ``out_dir/checkpoints``. It is written whole, at the end
            (:func:`llmguide.folder.save_folder`): a run that fails or is killed leaves the previous folder.
        resume: continue the run whose checkpoints are in ``out_dir`` (its tokenizer and model sizes are
            reused; other sizes, settings, data or tokenizer are refused).
        progress: show a progress bar.
        preset: the old name of ``profile`` (deprecated).
        overwrite: start a new run in an ``out_dir`` that already holds something (refused otherwise).
    Returns:
        ``out_dir`` as a Path.
    Raises:
        ValueError: before any work, when ``out_dir`` cannot or may not be written (see
            :func:`llmguide.folder.check_output`), or ``resume`` finds no checkpoint.
        llmguide.lock.FolderLockedError: another run writes ``out_dir`` now.
    """
    profile = profile or preset or get_profile().name
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: use one of {PROFILES}")
    if resume and overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite starts a new one: pass one of them")
    settings = parse_overrides(overrides)
    data_opts = {k: settings.pop(k, default) for k, (_, default, _) in DATA_OPTIONS.items()}
    model_keys = {f.name for f in fields(GPTConfig)}
    model_over = {k: v for k, v in settings.items() if k in model_keys}
    train_over = {k: v for k, v in settings.items() if k not in model_keys}
    out_dir = Path(out_dir)
    info = setup_distributed(train_over.get("device"))
    if info.is_main:  # before any work: where the run will write, and what it would resume
        check_output(out_dir, "gpt-lm", inputs=[corpus], overwrite=overwrite, resume=resume)
        if resume and latest_checkpoint(out_dir) is None:
            raise ValueError(f"--resume: {out_dir} holds no checkpoint to resume from (no {out_dir}/checkpoints/"
                             "step_*): drop --resume to start a new run there")
    if profile == "gpu" and not torch.cuda.is_available():
        warnings.warn("--profile gpu on a machine without CUDA: the GPU sizes take hours here (the progress bar "
                      "shows the pace); use --profile cpu for a run of minutes", stacklevel=2)
        progress = True
    with folder_lock(out_dir, enabled=info.is_main):
        old_checkpoints = _set_aside_checkpoints(out_dir) if overwrite and info.is_main else None
        try:
            _pretrain(corpus, tokenizer, profile, data_opts, model_over, train_over, out_dir, resume, progress, info,
                      overwrite)
        except BaseException:
            if old_checkpoints is not None:  # the new run failed: the old run's checkpoints come back
                shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
                os.replace(old_checkpoints, out_dir / "checkpoints")
            raise
        if old_checkpoints is not None:
            shutil.rmtree(old_checkpoints, ignore_errors=True)
    return out_dir


RUN_TOKENIZER = "checkpoints/tokenizer.json"  # the run's tokenizer, beside its checkpoints until the folder is saved


def _set_aside_checkpoints(out_dir: Path) -> Path | None:
    """--overwrite: move an earlier run's checkpoints out of the way (restored if the new run fails)."""
    old = out_dir / "checkpoints"
    if not old.is_dir():
        return None
    aside = out_dir.with_name(f".old-{out_dir.name}-checkpoints-{os.getpid()}")
    os.replace(old, aside)
    return aside


def _run_tokenizer(out_dir: Path, resume: bool, text: str | None, kind: str, data_opts: Mapping[str, Any]):
    """The run's tokenizer: on resume the one its checkpoints were trained with, else one fitted now."""
    if resume:
        for path in (out_dir / RUN_TOKENIZER, out_dir / TOKENIZER):  # runs before this layout kept it in out_dir
            if path.is_file():
                return load_tokenizer(path)  # the ids must mean what they meant in the checkpoint
        raise FileNotFoundError(f"--resume: {out_dir} holds checkpoints but no {RUN_TOKENIZER}: the run cannot be "
                                "resumed exactly; start a new run (--overwrite)")
    # fitted on exactly the training stream, separators included
    fit_text = review_texts("train") if text is None else split_text(text, data_opts["val_fraction"])[0]
    return build_tokenizer(kind, [fit_text], data_opts["min_freq"], data_opts["bpe_vocab_size"])


def _pretrain(corpus, tokenizer, profile, data_opts, model_over, train_over, out_dir: Path, resume: bool,
              progress: bool, info, overwrite: bool) -> None:
    text = _corpus_text(corpus)
    tok = _run_tokenizer(out_dir, resume, text, tokenizer, data_opts)
    model_config = GPTConfig.from_preset(profile, **{**model_over, "vocab_size": tok.vocab_size})
    if resume:
        saved = load_checkpoint(latest_checkpoint(out_dir))["config"]["model"]
        asked = {k: (saved.get(k), v) for k, v in model_over.items() if saved.get(k) != v}
        if asked:
            raise ValueError(f"--resume: the run in {out_dir} has " + ", ".join(
                f"{k}={a!r}, not {b!r}" for k, (a, b) in asked.items()) + ": drop those settings to resume it, "
                "or start a new run (--overwrite)")
        model_config = GPTConfig(**saved)
    train_config = TrainConfig(**{**PRETRAIN_SETTINGS[profile], "keep_checkpoints": 1, **train_over,
                                  "progress": progress, "out_dir": str(out_dir)})
    data = _lm_data(corpus, text, tok, model_config.block_size, data_opts["val_fraction"])
    source = review_texts("train") if text is None else text
    run_meta = {"tokenizer": tokenizer_record(tok),
                "data": {"sha256": hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()[:16],
                         "val_fraction": data_opts["val_fraction"]}}
    if info.is_main and not resume:  # beside the checkpoints: --resume must find the tokenizer they use
        atomic_write(out_dir / RUN_TOKENIZER, tok.save)
    torch.manual_seed(train_config.seed)
    model = GPT(model_config)
    history = train(model, data.train, data.val, train_config, resume=resume, dist_info=info, run_meta=run_meta)
    if info.is_main:
        _write_folder(out_dir, model, train_config, data, history, tokenizer, info.world_size, overwrite)


def _write_folder(out_dir: Path, model: GPT, train_config: TrainConfig, data, history, tokenizer_kind: str,
                  world_size: int, replace_kind: bool = False) -> None:
    val = history.val_loss.dropna()
    results = {"steps": int(history.step.iloc[-1]), "train_loss": float(history.train_loss.iloc[-1]),
               "val_loss": float(val.iloc[-1]) if len(val) else None, "processes": world_size,
               "global_batch": train_config.batch_size * train_config.grad_accum_steps * world_size}
    if results["val_loss"] is not None:
        results["val_perplexity"] = math.exp(results["val_loss"])
    meta = {"train": asdict(train_config), "data": {**data.summary(), "tokenizer": tokenizer_kind},
            "results": results}
    save_model_folder(out_dir, model, data.tokenizer, meta, history, replace_kind=replace_kind)


def save_model_folder(folder: str | Path, model: GPT, tokenizer: Tokenizer, meta: Mapping[str, Any] | None = None,
                      history: pd.DataFrame | None = None, *, replace_kind: bool = False) -> Path:
    """Write a language-model folder (:func:`llmguide.folder.save_folder`), with ``history.csv`` if given.

    Layout: ``model.safetensors``, ``config.json`` (``{"format_version", "kind": "gpt-lm", "model":
    asdict(model.config), **meta}``), ``tokenizer.json`` and, if given, ``history.csv``. Other entries of the
    folder (``checkpoints/``) stay.

    Returns:
        The folder.
    """
    files = {} if history is None else {HISTORY: lambda p: history.to_csv(p, index=False)}
    return save_folder(folder, model, tokenizer, meta, files=files, replace_kind=replace_kind)


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


