"""Training and scoring word segmenters (BMES taggers) on the People's Daily corpus.

One recipe for every row of the segmentation table: a character vocabulary from the training documents,
training windows packed from whole lines, :func:`llmguide.train.train`, then word-level P/R/F1
(:func:`llmguide.segment.score`) on the held-out documents. The models differ only in what each
character's label may depend on: a BiLSTM (:mod:`llmguide.rnn`) and BERT (:mod:`llmguide.bert`) see
both sides; the GPT tagger here sees only the characters to its left (causal attention), so it must
decide whether a word ends before seeing the next character.

A segmenter is a model folder of a tagging kind ("bert-tagger", "lstm-tagger", "gpt-tagger") with
``labels.json`` = ``["B", "M", "E", "S"]`` and a character tokenizer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmguide.atomic import atomic_write
from llmguide.bert import BERT, BertConfig, BertTagger  # also registers the "bert-tagger" kind
from llmguide.data import load_peoples_daily
from llmguide.folder import CONFIG, LABELS, WEIGHTS, ModelKind, load_folder, register_kind, save_folder
from llmguide.model import GPT, GPTConfig
from llmguide.rnn import LSTMConfig, LSTMTagger  # also registers the "lstm-tagger" kind
from llmguide.runtime import check_positive_int, evenly_spaced
from llmguide.segment import (
    IGNORE,
    TAG_ID,
    TAGS,
    chunks,
    errors_by_length,
    format_sighan,
    read_input_lines,
    score,
    segment_lines,
    to_half_width,
    words_to_tags,
)
from llmguide.tokenizer import CharTokenizer
from llmguide.train import TrainConfig, train

SEGMENTER_KINDS = ("bert-tagger", "lstm-tagger", "gpt-tagger")


class GPTTagger(nn.Module):
    """A GPT body (causal: position t sees 0..t) with a linear tag head on its hidden states.

    Args:
        gpt: the body; its LM head is unused.
        n_tags: K.
    """

    def __init__(self, gpt: GPT, n_tags: int) -> None:
        super().__init__()
        self.n_classes = check_positive_int(n_tags, "n_tags", "a positive int (the number of tags)")
        self.gpt = gpt
        self.score = nn.Linear(gpt.config.n_embd, n_tags)

    def forward(self, idx: Tensor, attention_mask: Tensor | None = None,
                labels: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Tag logits (B, T, K); with labels (B, T) (-100 = no label) also the mean cross-entropy."""
        logits = self.score(self.gpt.hidden_states(idx, attention_mask))  # (B, T, K)
        if labels is None:
            return logits, None
        return logits, F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE)


register_kind(ModelKind(
    "gpt-tagger", GPTTagger,
    describe=lambda m: {"model": asdict(m.gpt.config), "task": "tagging", "n_classes": m.n_classes},
    build=lambda meta: GPTTagger(GPT(GPTConfig(**meta["model"])), len(meta["labels"])),
    files=(WEIGHTS, CONFIG, LABELS)))


# ---------------------------------------------------------------- data
def segmentation_tokenizer(min_freq: int = 1) -> CharTokenizer:
    """The character vocabulary of the training documents (held-out characters become ``<unk>``)."""
    return CharTokenizer.train(["\n".join(load_peoples_daily("train")["text"])], min_freq=min_freq)


def tagging_windows(sentences: Sequence[Sequence[str]], tokenizer: CharTokenizer, block_size: int) -> dict[str, Tensor]:
    """Training examples: consecutive lines cut after punctuation (:func:`llmguide.segment.chunks`) and
    packed, whole pieces only, into windows of ``block_size`` characters, right-padded.

    Returns:
        ``{"idx": (N, T) ids, "attention_mask": (N, T) 1 = character, "labels": (N, T) tag ids, -100 on
        padding}`` with T = ``block_size``.
    """
    check_positive_int(block_size, "block_size")
    windows: list[tuple[list[int], list[int]]] = []
    ids: list[int] = []
    tags: list[int] = []
    for words in sentences:
        text, line_tags = "".join(words), [TAG_ID[t] for t in words_to_tags(words)]
        start = 0
        for piece in chunks(text, block_size):
            if len(ids) + len(piece) > block_size:
                windows.append((ids, tags))
                ids, tags = [], []
            ids += tokenizer.encode(piece)
            tags += line_tags[start : start + len(piece)]
            start += len(piece)
    if ids:
        windows.append((ids, tags))
    N = len(windows)
    out = {"idx": torch.zeros(N, block_size, dtype=torch.long),
           "attention_mask": torch.zeros(N, block_size, dtype=torch.long),
           "labels": torch.full((N, block_size), IGNORE, dtype=torch.long)}
    for i, (row_ids, row_tags) in enumerate(windows):
        out["idx"][i, : len(row_ids)] = torch.tensor(row_ids)
        out["attention_mask"][i, : len(row_ids)] = 1
        out["labels"][i, : len(row_tags)] = torch.tensor(row_tags)
    return out


# ---------------------------------------------------------------- train, save, load
def train_segmenter(model: nn.Module, tokenizer: CharTokenizer, block_size: int, config: TrainConfig,
                    max_train_lines: int | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Train a tagger on the training documents; the validation loss is read on the validation documents.

    Args:
        model: a tagger, ``logits, loss = model(idx, attention_mask=..., labels=...)``.
        tokenizer: its character vocabulary.
        block_size: characters per training window.
        config: the training settings (steps, batch size, learning rate).
        max_train_lines: use only this many training lines, evenly spaced (None: all).
    Returns:
        The trained model (eval mode) and ``{"train_seconds", "train_windows", "history"}``.
    """
    sentences = load_peoples_daily("train")["words"].tolist()
    if max_train_lines is not None:
        sentences = [sentences[i] for i in evenly_spaced(len(sentences), max_train_lines).tolist()]
    data = tagging_windows(sentences, tokenizer, block_size)
    val = tagging_windows(load_peoples_daily("validation")["words"].tolist(), tokenizer, block_size)
    start = time.perf_counter()
    history = train(model, data, val, config)
    info = {"train_seconds": round(time.perf_counter() - start, 1), "train_windows": len(data["idx"]),
            "history": history}
    return model.eval(), info


def save_segmenter(folder: str | Path, model: nn.Module, tokenizer: CharTokenizer, block_size: int,
                   meta: dict[str, Any] | None = None, files: dict[str, Any] | None = None) -> Path:
    """Write a segmenter model folder (weights, config.json with ``chunk_chars`` = ``block_size``, tokenizer, labels.json, and
    ``files`` as :func:`llmguide.folder.save_folder` takes them)."""
    return save_folder(folder, model.cpu(), tokenizer, {"chunk_chars": block_size, **(meta or {})},
                       labels=list(TAGS), files=files)


def load_segmenter(folder: str | Path) -> tuple[nn.Module, CharTokenizer, dict[str, Any]]:
    """A segmenter folder's ``(tagger in eval mode, tokenizer, config.json)``.

    Raises:
        ValueError: the folder holds a model that is not a segmenter (the message names the kinds).
    """
    model, tokenizer, meta = load_folder(folder)
    if meta["kind"] not in SEGMENTER_KINDS or meta.get("labels") != list(TAGS) or tokenizer is None:
        raise ValueError(f"{folder} holds a {meta['kind']!r} model, not a word segmenter: pass a folder of kind "
                         f"{' / '.join(SEGMENTER_KINDS)} with labels {list(TAGS)} (e.g. data/pd-seg-bert)")
    return model, tokenizer, meta


def segment_with(folder_or_model: str | Path | tuple, lines: Sequence[str], normalize: bool = True,
                 batch_size: int = 64) -> list[list[str]]:
    """Segment ``lines`` with a segmenter folder (or what :func:`load_segmenter` returned)."""
    model, tokenizer, meta = (folder_or_model if isinstance(folder_or_model, tuple)
                              else load_segmenter(folder_or_model))
    return segment_lines(model, tokenizer.encode, lines, meta["chunk_chars"], batch_size, normalize)


# ---------------------------------------------------------------- evaluation
def heldout(split: str = "test", max_lines: int | None = None) -> list[list[str]]:
    """The gold word lists of the held-out documents; ``max_lines`` picks that many, evenly spaced."""
    words = load_peoples_daily(split)["words"].tolist()
    if max_lines is not None:
        words = [words[i] for i in evenly_spaced(len(words), max_lines).tolist()]
    return words


def evaluate_segmenter(folder_or_model: str | Path | tuple, split: str = "test", max_lines: int | None = None,
                       half_width: bool = False, normalize: bool = True) -> dict[str, Any]:
    """Word P/R/F1 of a segmenter on held-out documents, plus its errors by word length.

    Args:
        folder_or_model: a segmenter folder, or ``(model, tokenizer, meta)``.
        split: "test" or "validation".
        max_lines: score only this many lines, evenly spaced (the same every time; None: all).
        half_width: write the gold text in half-width form first (:func:`llmguide.segment.to_half_width`),
            the test of text unlike the corpus.
        normalize: map the text to the corpus's character forms first (see :func:`segment_with`).
    Returns:
        :func:`llmguide.segment.score`'s dict plus ``seconds``, ``lines`` and ``by_length`` (a DataFrame).
    """
    gold = heldout(split, max_lines)
    if half_width:
        gold = [[to_half_width(w) for w in words] for words in gold]
    start = time.perf_counter()
    predicted = segment_with(folder_or_model, ["".join(words) for words in gold], normalize)
    result: dict[str, Any] = score(gold, predicted)
    result.update(seconds=round(time.perf_counter() - start, 2), lines=len(gold),
                  by_length=errors_by_length(gold, predicted))
    return result


def jieba_segment(lines: Sequence[str]) -> list[list[str]]:
    """Segment with ``jieba`` (its default dictionary and HMM for unknown words), the segmenter people use."""
    try:
        import jieba
    except ImportError:
        raise ImportError("the jieba baseline needs `pip install jieba`") from None
    jieba.setLogLevel(60)  # silence its "Building prefix dict" messages
    return [list(jieba.cut(line)) if line else [] for line in lines]


# ---------------------------------------------------------------- the recipes of the shipped table
# One size for the three neural rows, so the table compares what each architecture lets a character see:
# 4 blocks of width 128 for BERT and GPT (~1.4 M parameters with the 4.6 k-character embedding), and a
# BiLSTM of 128 units per direction. 1,500 steps of 64 windows (3.3 epochs) each: 6-11 minutes on one CPU core.
# At 300 steps (0.66 epoch) the transformers had barely left the plateau of tagging each character alone (test F1
# 0.61-0.74 against the BiLSTM's 0.88).
SEGMENTER_RECIPES: dict[str, dict[str, Any]] = {
    "bert": {"model": {"n_layer": 4, "n_head": 4, "n_embd": 128, "dropout": 0.0},
             "train": {"learning_rate": 1e-3, "warmup_steps": 30, "batch_size": 64, "max_steps": 1500}},
    "gpt": {"model": {"n_layer": 4, "n_head": 4, "n_embd": 128, "dropout": 0.0},
            "train": {"learning_rate": 1e-3, "warmup_steps": 30, "batch_size": 64, "max_steps": 1500}},
    "lstm": {"model": {"n_embd": 128, "n_hidden": 128, "n_layer": 1, "bidirectional": True, "dropout": 0.0},
             "train": {"learning_rate": 3e-3, "warmup_steps": 30, "batch_size": 64, "max_steps": 1500}},
}
# "bert-pretrained": the same BERT and training, started from helper bert's pre-trained data/zh-bert (MLM on the
# training documents + training reviews) instead of random weights: only the initial weights differ.
SEGMENTER_RECIPES["bert-pretrained"] = {"model": {"n_layer": 4, "n_head": 4, "n_embd": 128, "dropout": 0.0},
                                        "train": dict(SEGMENTER_RECIPES["bert"]["train"])}
SEGMENTER_BLOCK_SIZE = 64  # characters per window: most clauses between commas are far shorter
SEGMENTER_TRAIN_DEFAULTS = {"beta2": 0.99, "weight_decay": 0.01, "eval_interval": 100, "eval_steps": 10,
                            "log_interval": 10, "seed": 0, "progress": False, "device": "cpu"}


def segmenter_start(name: str, seed: int = 0) -> tuple[nn.Module, CharTokenizer]:
    """The untrained tagger of one recipe and its tokenizer: the training documents' characters, or for
    "bert-pretrained" data/zh-bert's body and vocabulary with a fresh tag head."""
    if name != "bert-pretrained":
        tokenizer = segmentation_tokenizer()
        return build_segmenter(name, tokenizer, seed), tokenizer
    from llmguide.mlm import load_zh_bert  # late: mlm pulls in the sentiment recipes

    bert, tokenizer, _ = load_zh_bert()
    sizes = {k: getattr(bert.config, k) for k in SEGMENTER_RECIPES[name]["model"]}
    if sizes != SEGMENTER_RECIPES[name]["model"]:
        raise ValueError(f"data/zh-bert has sizes {sizes}, the recipe expects {SEGMENTER_RECIPES[name]['model']}")
    torch.manual_seed(seed)
    return BertTagger(bert.train(), len(TAGS)), tokenizer


def build_segmenter(name: str, tokenizer: CharTokenizer, seed: int = 0) -> nn.Module:
    """A fresh tagger of one recipe ("bert", "gpt", "lstm") for ``tokenizer``'s characters."""
    if name not in SEGMENTER_RECIPES or name == "bert-pretrained":
        raise ValueError(f"unknown segmenter recipe {name!r}: use one of bert, gpt, lstm (bert-pretrained: "
                         "segmenter_start)")
    sizes = SEGMENTER_RECIPES[name]["model"]
    torch.manual_seed(seed)
    if name == "bert":
        return BertTagger(BERT(BertConfig(vocab_size=tokenizer.vocab_size, block_size=SEGMENTER_BLOCK_SIZE,
                                          **sizes)), len(TAGS))
    if name == "gpt":
        return GPTTagger(GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=SEGMENTER_BLOCK_SIZE, **sizes)),
                         len(TAGS))
    return LSTMTagger(LSTMConfig(vocab_size=tokenizer.vocab_size, **sizes), len(TAGS))


def segmenter_train_config(name: str, **overrides: Any) -> TrainConfig:
    """The :class:`TrainConfig` of one recipe (``overrides`` e.g. ``max_steps=2`` for a test)."""
    return TrainConfig(**{**SEGMENTER_TRAIN_DEFAULTS, **SEGMENTER_RECIPES[name]["train"], **overrides})


# ---------------------------------------------------------------- what `llmguide segment` runs
def run_segment(model_dir: str | Path, texts: Sequence[str] = (), input_file: str | Path | None = None,
                output_file: str | Path | None = None) -> list[str]:
    """Segment TEXT arguments and/or the lines of ``input_file`` with a segmenter folder.

    Args:
        model_dir: a segmenter folder (e.g. ``data/pd-seg-bert``).
        texts: lines to segment (each may hold newlines).
        input_file: a UTF-8 file, one text a line.
        output_file: where to write the result (atomically); None: only return it.
    Returns:
        One output line per input line, words separated by two spaces (the SIGHAN bakeoff format); an
        empty input line gives an empty output line.
    Raises:
        ValueError / FileNotFoundError: no input, a missing or non-UTF-8 file, or a folder that is not a
        segmenter (one-line messages, for the CLI).
    """
    lines = read_input_lines(texts, input_file)
    loaded = load_segmenter(model_dir)
    out = [format_sighan(words) for words in segment_with(loaded, lines)]
    if output_file is not None:
        text = "\n".join(out) + "\n"
        atomic_write(Path(output_file), lambda p: p.write_text(text, encoding="utf-8"))
    return out


def segmentation_table(folders: Sequence[str | Path], jieba: bool = True, split: str = "test",
                       max_lines: int | None = None, half_width: bool = False) -> pd.DataFrame:
    """The segmentation results table: word P/R/F1 of each segmenter folder (and jieba) on held-out documents.

    Args:
        folders: segmenter folders, e.g. ``data/pd-seg-bert``.
        jieba: add jieba's row (needs ``pip install jieba``).
        split, max_lines, half_width: as for :func:`evaluate_segmenter`.
    Returns:
        DataFrame with one row per model: ``model``, ``kind``, ``precision``, ``recall``, ``f1``,
        ``parameters``, ``train_seconds`` (from the folder's config.json) and ``seconds`` (to segment).
    """
    rows = []
    for folder in folders:
        loaded = load_segmenter(folder)
        result = evaluate_segmenter(loaded, split, max_lines, half_width)
        rows.append({"model": Path(folder).name, "kind": loaded[2]["kind"],
                     **{k: result[k] for k in ("precision", "recall", "f1", "seconds")},
                     "parameters": sum(p.numel() for p in loaded[0].parameters()),
                     "train_seconds": loaded[2].get("results", {}).get("train_seconds")})
    if jieba:
        gold = heldout(split, max_lines)
        if half_width:
            gold = [[to_half_width(w) for w in words] for words in gold]
        start = time.perf_counter()
        result = score(gold, jieba_segment(["".join(words) for words in gold]))
        rows.append({"model": "jieba", "kind": "dictionary + HMM",
                     **{k: result[k] for k in ("precision", "recall", "f1")},
                     "seconds": round(time.perf_counter() - start, 2), "parameters": None, "train_seconds": None})
    return pd.DataFrame(rows)
