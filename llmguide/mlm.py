"""Masked-language-model data (掩码语言模型) and the recipe of the small Chinese BERT the project ships.

BERT learns by filling in blanks (Devlin et al. 2019, section 3.1): choose 15% of the tokens to predict; of
those, replace 80% by ``[MASK]``, 10% by a random token and keep 10% unchanged (so the model cannot learn
that only ``[MASK]`` positions matter: every input position must carry a good representation of its own
token). The loss is the cross-entropy at the chosen positions only.

*Whole-word masking* (全词掩码, Cui et al. 2019, "Pre-Training with Whole Word Masking for Chinese BERT",
https://arxiv.org/abs/1906.08101): Chinese BERT reads characters, so masking 15% of characters often hides
one character of a word and leaves the others (``北[MASK]`` for 北京), which gives it away. Whole-word
masking chooses *words* (each with probability 15%, so 15% of the characters on average) and masks every
character of a chosen word; the 80/10/10 split is then drawn per character, as in Google's release.

Token ids: a :class:`~llmguide.tokenizer.CharTokenizer`'s ``<pad>`` (0) is [PAD], ``<bos>`` (2) is [CLS],
``<eos>`` (3) is [SEP]; [MASK] is the character :data:`MASK_CHAR` (a private-use code point no text contains),
the last id of a tokenizer made by :func:`bert_tokenizer`. Shapes: B batch, T positions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from llmguide.bert import BERT, BertClassifier, BertConfig, WithCLS
from llmguide.classify import finetune, iter_batches, review_datasets
from llmguide.data import REVIEW_LABELS, data_dir, load_peoples_daily, load_reviews
from llmguide.evaluate import EvalReport, evaluate
from llmguide.folder import HISTORY, REPORT, load_folder, save_folder, write_json
from llmguide.profiles import FINETUNE_SETTINGS
from llmguide.tokenizer import SPECIAL_TOKENS, CharTokenizer, Tokenizer
from llmguide.train import TrainConfig, evaluate_loss, train

N_SPECIAL = len(SPECIAL_TOKENS)  # ids 0..3: <pad> <unk> <bos> <eos>, never chosen, never a random replacement
MASK_CHAR = "\ue000"  # [MASK]: the first Unicode private-use code point, which no real text uses


def bert_tokenizer(texts: Sequence[str], min_freq: int = 1) -> CharTokenizer:
    """A character tokenizer fitted on ``texts`` with [MASK] (:data:`MASK_CHAR`) added as its last id."""
    fitted = CharTokenizer.train(texts, min_freq=min_freq)
    return CharTokenizer([c for c in fitted.itos[N_SPECIAL:] if c != MASK_CHAR] + [MASK_CHAR])


def mask_id_of(tokenizer: Tokenizer) -> int:
    """The [MASK] id of a tokenizer made by :func:`bert_tokenizer`."""
    stoi = getattr(tokenizer, "stoi", {})
    if MASK_CHAR not in stoi:
        raise ValueError("this tokenizer has no [MASK] token: build it with llmguide.mlm.bert_tokenizer")
    return stoi[MASK_CHAR]


@dataclass(frozen=True)
class MaskingConfig:
    """How tokens are chosen and corrupted (Devlin et al. 2019's numbers by default)."""

    mask_id: int  # the [MASK] id (mask_id_of(tokenizer)); random replacements are drawn from 4..mask_id - 1
    mask_prob: float = 0.15  # share of tokens (or of words, with whole-word masking) chosen for prediction
    replace_prob: float = 0.8  # of the chosen: replaced by [MASK]
    random_prob: float = 0.1  # of the chosen: replaced by a random ordinary token; the rest stay as they are

    def __post_init__(self) -> None:
        if not isinstance(self.mask_id, int) or self.mask_id <= N_SPECIAL:
            raise ValueError(f"mask_id must be an int > {N_SPECIAL} (one past the tokenizer's ids), got {self.mask_id!r}")
        if not 0.0 < self.mask_prob < 1.0:
            raise ValueError(f"mask_prob must be in (0, 1), got {self.mask_prob!r}")
        if self.replace_prob < 0 or self.random_prob < 0 or self.replace_prob + self.random_prob > 1:
            raise ValueError(f"replace_prob + random_prob must be <= 1 (both >= 0), got {self.replace_prob!r} + "
                             f"{self.random_prob!r}")


def mask_tokens(ids: Tensor, config: MaskingConfig, generator: torch.Generator | None = None,
                word_ids: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Choose and corrupt tokens for MLM, by character or by whole word.

    The random draws, in this order (so a test can redo them by hand): one uniform per unit (token, or word
    with ``word_ids``) deciding "chosen"; one uniform per token deciding [MASK] / random / keep; one random
    ordinary token id per token (used where "random" was drawn).

    Args:
        ids: (B, T) or (T,) token ids; special ids (< 4) and [MASK] are never chosen.
        config: the :class:`MaskingConfig`.
        generator: the random source (seed it for reproducible masks).
        word_ids: same shape as ``ids``: the word each token belongs to (any ints; equal = same word); a
            chosen word is masked whole. None: every token is its own unit.
    Returns:
        ``(inputs, targets)``, both shaped like ``ids``: the corrupted input, and the original id at each
        chosen position with -100 elsewhere (what ``BERT.forward`` and cross-entropy ignore).
    """
    if ids.dtype != torch.long:
        raise ValueError(f"ids must be a long tensor of token ids, got {ids.dtype}")
    if word_ids is not None and word_ids.shape != ids.shape:
        raise ValueError(f"word_ids must have the shape of ids {tuple(ids.shape)}, got {tuple(word_ids.shape)}")
    if bool((ids > config.mask_id).any()) or bool((ids < 0).any()):
        raise ValueError(f"ids must lie in 0..{config.mask_id} (mask_id={config.mask_id}), got {ids.min()}..{ids.max()}")
    candidate = (ids >= N_SPECIAL) & (ids != config.mask_id)
    if word_ids is None:
        chosen = torch.rand(ids.shape, generator=generator) < config.mask_prob
    else:
        units, inverse = torch.unique(word_ids, return_inverse=True)  # sorted word ids, and each token's word
        chosen = (torch.rand(len(units), generator=generator) < config.mask_prob)[inverse]
    chosen &= candidate
    action = torch.rand(ids.shape, generator=generator)
    random_ids = torch.randint(N_SPECIAL, config.mask_id, ids.shape, generator=generator)
    to_mask = chosen & (action < config.replace_prob)
    to_random = chosen & (action >= config.replace_prob) & (action < config.replace_prob + config.random_prob)
    inputs = torch.where(to_mask, config.mask_id, torch.where(to_random, random_ids, ids))
    return inputs, torch.where(chosen, ids, -100)


def word_ids_of(words: Sequence[str], start: int = 0) -> list[int]:
    """One word id per character of ``"".join(words)``: ``["北京", "欢迎", "你"]`` -> ``[0, 0, 1, 1, 2]`` (+ start)."""
    return [start + i for i, w in enumerate(words) for _ in w]


class MLMWindows(torch.utils.data.Dataset):
    """Fixed-length MLM examples ``[CLS] + (block_size - 2) characters + [SEP]`` cut from one stream of text.

    Like RoBERTa's FULL-SENTENCES packing (Liu et al. 2019), the documents are joined by a newline and cut
    into consecutive windows, so there is no padding. ``get_batch`` masks the windows it returns: with
    ``dynamic=True`` a fresh mask each time (RoBERTa; one stateful generator, so a run is reproducible), else a
    fixed mask per window (seeded by its index: validation scores the same blanks every time).

    Args:
        ids: (N,) the stream's token ids.
        block_size: T, the model's context (>= 3).
        config: masking settings.
        seed: seeds the masks.
        word_ids: (N,) word ids for whole-word masking, or None for character masking.
        dynamic: see above.
    """

    def __init__(self, ids: Tensor, block_size: int, config: MaskingConfig, seed: int = 0,
                 word_ids: Tensor | None = None, dynamic: bool = True) -> None:
        if block_size < 3:
            raise ValueError(f"block_size must be >= 3 ([CLS], a token, [SEP]), got {block_size}")
        n = (len(ids) // (block_size - 2)) * (block_size - 2)
        if n == 0:
            raise ValueError(f"the stream has {len(ids)} tokens, fewer than one window of {block_size - 2}")
        self.body = torch.as_tensor(ids[:n], dtype=torch.long).view(-1, block_size - 2)  # (windows, T - 2)
        self.words = None if word_ids is None else torch.as_tensor(word_ids[:n]).view(-1, block_size - 2)
        self.config, self.seed, self.dynamic = config, seed, dynamic
        self.block_size = block_size
        self._gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.body)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {k: v[0] for k, v in self.get_batch(torch.tensor([i])).items()}

    def windows(self, indices: Tensor) -> Tensor:
        """The unmasked windows (B, T): [CLS] text [SEP]."""
        body = self.body[indices]
        cls = torch.full((len(body), 1), 2, dtype=torch.long)  # <bos> as [CLS]
        return torch.cat([cls, body, cls + 1], dim=1)  # <eos> (3) as [SEP]

    def get_batch(self, indices: Tensor | Sequence[int]) -> dict[str, Tensor]:
        """``{"idx": masked (B, T), "targets": (B, T) with -100 where nothing is predicted}``."""
        indices = torch.as_tensor(indices, dtype=torch.long)
        ids = self.windows(indices)
        words = None
        if self.words is not None:  # [CLS]/[SEP] get their own word ids (special: never chosen anyway)
            words = torch.nn.functional.pad(self.words[indices], (1, 1), value=-1)
        if self.dynamic:
            inputs, targets = mask_tokens(ids, self.config, self._gen, words)
            return {"idx": inputs, "targets": targets}
        rows = [mask_tokens(ids[j], self.config, torch.Generator().manual_seed(self.seed * 1_000_003 + int(i)),
                            None if words is None else words[j]) for j, i in enumerate(indices)]
        return {"idx": torch.stack([r[0] for r in rows]), "targets": torch.stack([r[1] for r in rows])}


# ---------------------------------------------------------------- the corpus and the shipped recipe
def pretrain_documents(split: str = "train") -> tuple[list[str], list[list[str] | None]]:
    """The Chinese pre-training text of one split: People's Daily lines (news, 新闻) then reviews.

    Only the ``split`` documents of each corpus (both are split by document), so a model pre-trained on
    "train" has never read a line of either corpus's validation or test part.

    Returns:
        ``(texts, words)``: one entry per line; ``words`` is the hand segmentation for news lines and None
        for reviews (they have none: whole-word masking treats each of their characters as a word).
    """
    news = load_peoples_daily(split)
    reviews = load_reviews(split).text.tolist()
    return news.text.tolist() + reviews, news.words.tolist() + [None] * len(reviews)


def encode_stream(texts: Sequence[str], words: Sequence[Sequence[str] | None], tokenizer: Tokenizer) -> tuple[Tensor, Tensor]:
    """The documents joined by newlines as ids (N,), and a word id per token (N,) (each newline its own word)."""
    ids, wids, next_word = [], [], 0
    for text, ws in zip(texts, words, strict=True):
        text_ids = tokenizer.encode(text + "\n")
        if ws is not None and "".join(ws) == text:
            w = word_ids_of(ws, next_word)
        else:
            w = list(range(next_word, next_word + len(text)))
        w.append(w[-1] + 1 if w else next_word)  # the newline
        if len(w) != len(text_ids):
            raise ValueError(f"a line encodes to {len(text_ids)} tokens but has {len(w)} characters: use a CharTokenizer")
        ids += text_ids
        wids += w
        next_word = w[-1] + 1
    return torch.tensor(ids, dtype=torch.long), torch.tensor(wids, dtype=torch.long)


# The shipped data/zh-bert: the size of data/review-gpt (llmguide.profiles.MODEL_SIZES["cpu"]) and its
# optimiser settings (REVIEW_LM_SETTINGS), trained on news + reviews with character masking.
ZH_BERT_MODEL = dict(block_size=128, n_layer=4, n_head=4, n_embd=128, dropout=0.0)
# review-gpt's pre-training budget (2,400 steps of 16 x 128 tokens), so the sentiment table compares the objectives.
# A first run at 2e-3 peak (review-gpt used 3e-3) stalled at the unigram plateau (validation loss 6.55 after
# 740 steps, every position predicting "，"): post-LN BERT wants a smaller one.
ZH_BERT_SETTINGS: dict[str, Any] = dict(
    max_steps=2400, batch_size=16, learning_rate=5e-4, min_lr=5e-5, warmup_steps=50, weight_decay=0.1,
    beta2=0.99, eval_interval=200, eval_steps=20, clip_norm=1.0, seed=0,
)
ZH_BERT_MIN_FREQ = 5  # characters seen < 5 times in the training text share <unk>, as for review-gpt


def zh_bert_dir() -> Path:
    """``data/zh-bert``: the small Chinese BERT pre-trained with :func:`make_zh_bert` (kind "bert-mlm")."""
    return data_dir() / "zh-bert"


def zh_bert_data(tokenizer: CharTokenizer, block_size: int, seed: int = 0,
                 whole_word: bool = False) -> tuple[MLMWindows, MLMWindows]:
    """Training windows (dynamic masks) and validation windows (fixed masks) over :func:`pretrain_documents`."""
    config = MaskingConfig(mask_id=mask_id_of(tokenizer))
    out = []
    for split, dynamic in (("train", True), ("validation", False)):
        ids, wids = encode_stream(*pretrain_documents(split), tokenizer)
        out.append(MLMWindows(ids, block_size, config, seed, wids if whole_word else None, dynamic=dynamic))
    return out[0], out[1]


def make_zh_bert(out_dir: str | Path, settings: dict[str, Any] | None = None, progress: bool = False,
                 max_seconds: float | None = None) -> Path:
    """Pre-train the small Chinese BERT with MLM and write a "bert-mlm" model folder.

    Args:
        out_dir: the folder to write.
        settings: TrainConfig overrides on top of :data:`ZH_BERT_SETTINGS` (e.g. fewer ``max_steps`` in a test).
        progress: show a progress bar.
        max_seconds: stop after this much wall-clock time (the schedule stays the one of ``max_steps``).
    Returns:
        ``out_dir``.
    """
    texts, _ = pretrain_documents("train")
    tokenizer = bert_tokenizer(["\n".join(texts) + "\n"], min_freq=ZH_BERT_MIN_FREQ)
    config = BertConfig(**ZH_BERT_MODEL, vocab_size=tokenizer.vocab_size)
    train_config = TrainConfig(**{**ZH_BERT_SETTINGS, **(settings or {}), "progress": progress})
    train_data, val_data = zh_bert_data(tokenizer, config.block_size, train_config.seed)
    torch.manual_seed(train_config.seed)
    model = BERT(config)
    stop = None if max_seconds is None else (lambda row: row["elapsed_s"] > max_seconds)
    history = train(model, train_data, val_data, train_config, callback=stop)
    # The final validation loss, measured here: a run stopped by max_seconds has no evaluation at its last step.
    val_loss = evaluate_loss(model, val_data, train_config.batch_size, train_config.eval_steps)
    results = {"steps": int(history.step.iloc[-1]), "train_loss": float(history.train_loss.iloc[-1]),
               "val_loss": val_loss, "val_perplexity": math.exp(val_loss),
               "stopped_by_time": int(history.step.iloc[-1]) < train_config.max_steps,
               "seconds": float(history.elapsed_s.iloc[-1])}
    meta = {"train": asdict(train_config), "mlm": asdict(train_data.config),
            "data": {"source": "peoples_daily+reviews (train splits)", "train_windows": len(train_data),
                     "val_windows": len(val_data), "train_tokens": int(train_data.body.numel()),
                     "min_freq": ZH_BERT_MIN_FREQ, "tokenizer": "char"}, "results": results}
    return save_folder(out_dir, model, tokenizer, meta, files={HISTORY: lambda p: history.to_csv(p, index=False)})


def load_zh_bert(folder: str | Path | None = None) -> tuple[BERT, CharTokenizer, dict[str, Any]]:
    """The shipped (or another "bert-mlm") folder: ``(model in eval mode, tokenizer, config.json)``."""
    return load_folder(folder or zh_bert_dir(), kind="bert-mlm")


# ---------------------------------------------------------------- sentiment fine-tuning of the shipped BERT
# Exactly data/review-classifier's fine-tuning (the GPT row): the CPU fine-tuning settings with 150 steps.
SENTIMENT_SETTINGS: dict[str, Any] = {**FINETUNE_SETTINGS["cpu"], "max_steps": 150, "seed": 0}
SEP_ID = 3  # <eos> as [SEP], appended to every review as in pre-training's windows


def zh_bert_sentiment_dir() -> Path:
    """``data/zh-bert-sentiment``: data/zh-bert fine-tuned on the review sentiment labels (kind "bert-classifier")."""
    return data_dir() / "zh-bert-sentiment"


def bert_review_datasets(tokenizer: Tokenizer, block_size: int) -> dict[str, Any]:
    """The review sentiment splits encoded for BERT: ``[CLS] review [SEP]``, cut to ``block_size`` tokens."""
    return review_datasets(WithCLS(tokenizer), block_size, end_id=SEP_ID, warn=False)


def finetune_sentiment(model: Any, tokenizer: Tokenizer, settings: dict[str, Any] | None = None,
                       out_dir: str | Path | None = None, meta: dict[str, Any] | None = None) -> tuple[Any, EvalReport]:
    """Fine-tune a classifier on the review training split with :data:`SENTIMENT_SETTINGS`; report on the test split.

    Args:
        model: a classifier (``logits, loss = model(idx, attention_mask, labels)``), e.g. a :class:`BertClassifier`.
        tokenizer: its character tokenizer (texts become ``[CLS] text [SEP]``).
        settings: TrainConfig overrides (e.g. ``seed``).
        out_dir: if given, the model folder to write (with ``history.csv`` and ``report.json``).
        meta: more config.json entries.
    Returns:
        ``(history, test report)``.
    """
    config = TrainConfig(**{**SENTIMENT_SETTINGS, **(settings or {}), "progress": False})
    data = bert_review_datasets(tokenizer, model.bert.config.block_size if hasattr(model, "bert") else 128)
    torch.manual_seed(config.seed)
    history = finetune(model, data["train"], data["validation"], config)
    report = evaluate(model.eval(), iter_batches(data["test"], 64), REVIEW_LABELS)
    if out_dir is not None:
        files = {HISTORY: lambda p: history.to_csv(p, index=False), REPORT: lambda p: write_json(p, report.to_dict())}
        save_folder(out_dir, model, tokenizer, {"finetune": asdict(config), "evaluated_on": "test",
                                                "results": report.to_dict(), **(meta or {})},
                    labels=REVIEW_LABELS, files=files)
    return history, report


def make_zh_bert_sentiment(out_dir: str | Path, pretrained: str | Path | None = None, seed: int = 0,
                           from_scratch: bool = False) -> tuple[Any, EvalReport]:
    """data/zh-bert (or a fresh BERT of its size) + a classification head, fine-tuned like data/review-classifier.

    Returns:
        ``(history, test report)``; the folder is written to ``out_dir`` (kind "bert-classifier").
    """
    bert, tokenizer, _ = load_zh_bert(pretrained)
    torch.manual_seed(seed)
    if from_scratch:
        bert = BERT(bert.config)
    classifier = BertClassifier(bert, len(REVIEW_LABELS))
    source = "random init" if from_scratch else str(pretrained or "data/zh-bert")
    return finetune_sentiment(classifier, tokenizer, {"seed": seed}, out_dir, {"source": source})
