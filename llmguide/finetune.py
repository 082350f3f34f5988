"""The fine-tuning recipe: what ``llmguide finetune`` runs, wired from the library's parts.

A *recipe* (torchtune's word) takes a pre-trained model folder and a profile and does one job from end to
end; the parts it wires live in the library: the datasets, the classifier and its training in
:mod:`llmguide.classify`, the loop in :mod:`llmguide.train`, the report in :mod:`llmguide.evaluate`, the
folder in :mod:`llmguide.folder`. The command line (:mod:`llmguide.cli`) only parses arguments and calls
:func:`run_finetune`.

The classifier reads a text and a final end-of-text token and classifies from that position (Radford et
al. 2018, GPT-1's fine-tuning).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from llmguide.classify import (
    classifier_from_pretrained,
    end_token_id,
    file_datasets,
    finetune,
    iter_batches,
    review_datasets,
)
from llmguide.evaluate import evaluate
from llmguide.folder import (
    HISTORY,
    REPORT,
    TOKENIZER,
    TOKENIZER_CONFIG,
    check_output,
    no_such_folder,
    save_folder,
)
from llmguide.lock import folder_lock
from llmguide.model import GPT
from llmguide.profiles import FINETUNE_SETTINGS
from llmguide.runtime import evenly_spaced, get_profile
from llmguide.tokenizer import load_tokenizer
from llmguide.train import TrainConfig


def _load_body_and_tokenizer(pretrained: str | Path) -> tuple[Any, Any]:
    """The GPT body and tokenizer of a local model folder, or of a Hugging Face name (online)."""
    path = Path(pretrained).expanduser()
    if path.is_dir():
        if not (path / TOKENIZER).is_file() and not (path / TOKENIZER_CONFIG).is_file():
            raise FileNotFoundError(f"{path} has no {TOKENIZER}: pass a folder written by `llmguide pretrain`")
        return GPT.from_pretrained(str(path)), load_tokenizer(path)  # llmguide's folder or save_pretrained's
    if path.exists() or (missing := no_such_folder(pretrained, "pre-trained model folder")) is not None:
        where = f"{path} is not a folder" if path.exists() else str(missing)
        raise FileNotFoundError(f"{where}: run `llmguide pretrain --out {path}` first, or pass a Hugging Face "
                                "name such as gpt2 or owner/name")
    return GPT.from_pretrained(str(pretrained)), load_tokenizer(str(pretrained))  # hub name (needs internet)




def run_finetune(pretrained: str | Path, out_dir: str | Path, profile: str | None = None,
                 train_file: str | Path | None = None, val_file: str | Path | None = None,
                 test_file: str | Path | None = None, trainable: str = "all",
                 overrides: Mapping[str, Any] | None = None, max_train: int | None = None,
                 max_tokens: int | None = None, scratch: bool = False, end_token: bool = True,
                 progress: bool = False, seed: int = 0, overwrite: bool = False, allow_rare: bool = False):
    """Fine-tune a pre-trained GPT into a classifier, evaluate it, and save the classifier folder.

    Args:
        pretrained: a model folder from ``llmguide pretrain`` / :func:`llmguide.pretrain.run_pretrain`,
            or a Hugging Face GPT-2 name (online).
        out_dir: the classifier folder to write (model, config, tokenizer, labels.json, plus
            ``history.csv`` and ``report.json``).
        profile: "cpu" or "gpu" settings (:data:`llmguide.profiles.FINETUNE_SETTINGS`); None: the runtime profile.
        train_file, val_file, test_file: CSV files with ``text`` and ``label``; None: the review corpus.
        trainable: "all" or "head".
        overrides: TrainConfig fields, e.g. ``{"max_steps": 50}``.
        max_train: use only this many training examples.
        max_tokens: cut texts to this many tokens (default: the model's block_size).
        scratch: keep the pre-trained model's sizes and tokenizer but start from random weights (the
            "trained from scratch on the labelled data only" baseline, with everything else equal).
        end_token: append :func:`end_token_id` to every text.
        progress: show a progress bar.
        seed: seeds the head (and the body when ``scratch``) and the data order.
        overwrite: replace an existing, non-empty ``out_dir`` (refused otherwise, before any work; a folder
            that is an input, or holds a language model, is never replaced).
        allow_rare: train on classes with fewer than :data:`~llmguide.classify.MIN_CLASS_EXAMPLES` examples.
    Returns:
        ``(out_dir, report)``: the folder and the :class:`~llmguide.evaluate.EvalReport` on the test set
        (on the validation set when a ``train_file`` comes without a ``test_file``).
    """
    profile = get_profile(profile).name
    out_dir = check_output(out_dir, "gpt-classifier", inputs=[pretrained, train_file, val_file, test_file],
                           overwrite=overwrite)
    with folder_lock(out_dir):  # a second run with the same out_dir stops here, naming this one
        return _finetune(pretrained, out_dir, profile, train_file, val_file, test_file, trainable, overrides,
                         max_train, max_tokens, scratch, end_token, progress, seed, allow_rare)


def _finetune(pretrained, out_dir, profile, train_file, val_file, test_file, trainable, overrides, max_train,
              max_tokens, scratch, end_token, progress, seed, allow_rare):
    body, tokenizer = _load_body_and_tokenizer(pretrained)
    if scratch:
        torch.manual_seed(seed)
        body = GPT(body.config)
    block = min(max_tokens or body.config.block_size, body.config.block_size)
    end_id = end_token_id(tokenizer) if end_token else None
    if train_file is None:
        data = review_datasets(tokenizer, block, max_train=max_train, end_id=end_id, warn=False)
    else:
        data = file_datasets(train_file, val_file, test_file, tokenizer, block, end_id=end_id, warn=False,
                             allow_rare=allow_rare)
        if max_train is not None:
            data["train"] = data["train"].subset(evenly_spaced(len(data["train"]), max_train).tolist())
    labels = data["train"].label_names
    config = TrainConfig(**{**FINETUNE_SETTINGS[profile], "seed": seed, **dict(overrides or {}), "progress": progress})
    classifier = classifier_from_pretrained(body, len(labels), trainable, seed)
    history = finetune(classifier, data["train"], data["validation"], config, trainable)
    split = "test" if "test" in data else "validation"
    report = evaluate(classifier, iter_batches(data[split], 128), labels=labels)
    meta = {"source": "scratch" if scratch else str(pretrained), "trainable": trainable, "block_size": block,
            "end_id": end_id, "finetune": asdict(config), "data": {k: v.summary() for k, v in data.items()},
            "evaluated_on": split, "results": report.to_dict()}
    files = {HISTORY: lambda p: history.to_csv(p, index=False), REPORT: report.save}
    # check_output allowed replacing this folder: with overwrite, even a model of another kind
    return save_folder(out_dir, classifier.cpu(), tokenizer, meta, labels=labels, files=files,
                       replace_kind=True), report
