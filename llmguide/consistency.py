"""Prompt consistency: does a language model continue a review in the sentiment it was started in?

A model whose samples depend on the prompt should continue "质量很好，" with praise and "太失望了，" with
complaints. We measure it without a human rater:

1. take review openings (the first few characters of held-out reviews, checked not to occur in the
   model's training text), half from positive and half from negative reviews, each one whose own text
   already shows its review's sentiment (the classifier below gives that label a probability of at least
   ``min_prob``: "对于我酷爱地铁的人来说" opens a positive review but has no sentiment to keep);
2. sample several continuations of each (fixed seeds);
3. remove the prompt and label the continuation alone with an independent sentiment classifier (the
   TF-IDF baseline of :mod:`llmguide.baselines`, fitted on the training split);
4. report the share of continuations whose label agrees with the label of the review the prompt came from.

A model that ignores its prompt scores about 50% on balanced prompts, whatever its classifier's bias; a
model that keeps the sentiment scores more. (The classifier's own errors pull both numbers toward 50%.)
Shapes: B prompts x samples per prompt, T prompt length, n new tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from llmguide.generate import generate
from llmguide.lmdata import SEPARATOR


@dataclass
class ConsistencyConfig:
    """How openings are chosen and continued."""

    n_per_class: int = 20  # openings per sentiment class (positive and negative)
    prompt_chars: int = 12  # characters of each opening (a character-level model: also its tokens)
    min_rest: int = 8  # only reviews with at least this many characters after the opening
    min_prob: float = 0.75  # the classifier's probability of the review's label, on the opening alone
    samples: int = 8  # continuations per opening
    max_new_tokens: int = 30  # the longest continuation; a newline (end of review) stops it earlier
    temperature: float = 0.6  # sampling temperature (below 1: fewer rare, off-topic characters)
    top_k: int | None = 50  # sample among the k likeliest tokens
    seed: int = 0  # one generator for the whole batch: the same seed gives the same continuations

    def __post_init__(self) -> None:
        for name in ("n_per_class", "prompt_chars", "samples", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class ConsistencyResult:
    """What :func:`prompt_consistency` measured."""

    share: float  # share of non-empty continuations labelled with their prompt's sentiment
    share_by_class: dict[str, float]  # the same, per prompt sentiment
    n_scored: int  # continuations labelled
    n_empty: int  # continuations that ended the review at once (nothing to label; not counted)
    samples: pd.DataFrame  # one row per continuation: prompt, prompt_label, continuation, predicted, agrees


def review_openings(reviews: pd.DataFrame, exclude_text: str, tokenizer: Any, classifier: Any,
                    config: ConsistencyConfig | None = None, labels: Sequence[int] = (1, 0)) -> pd.DataFrame:
    """The first ``prompt_chars`` characters of reviews, ``n_per_class`` per label, unseen in training and
    showing their review's sentiment.

    Args:
        reviews: frame with ``text`` and ``label`` (e.g. ``load_reviews("test")``), taken in its order.
        exclude_text: the model's training text; an opening that occurs anywhere in it is skipped, so no
            prompt is something the model read (``review_texts("train")``).
        tokenizer: the model's tokenizer; openings with a character it maps to ``<unk>`` are skipped.
        classifier: ``.predict_proba(list[str]) -> (N, K)`` with columns in class-id order (the fitted
            TF-IDF pipeline); an opening whose review's label gets less than ``min_prob`` is skipped.
        config: the settings; default :class:`ConsistencyConfig`.
        labels: the class ids to take openings for.
    Returns:
        Frame with ``prompt`` and ``label``: ``n_per_class`` rows per label, in ``labels`` order.
    """
    config = config or ConsistencyConfig()
    unk = getattr(tokenizer, "unk_id", None)
    rows = []
    for label in labels:
        texts = reviews.loc[reviews.label == label, "text"]
        prompts = [t[:config.prompt_chars] for t in texts if len(t) >= config.prompt_chars + config.min_rest]
        prompts = [p for p in prompts if SEPARATOR not in p and p not in exclude_text and unk not in tokenizer.encode(p)]
        if prompts:
            shows = classifier.predict_proba(prompts)[:, label] >= config.min_prob  # (N,)
            prompts = [p for p, keep in zip(prompts, shows, strict=True) if keep]
        rows += [{"prompt": p, "label": int(label)} for p in prompts[:config.n_per_class]]
        found = min(len(prompts), config.n_per_class)
        if found < config.n_per_class:
            raise ValueError(f"only {found} openings of label {label} qualify, fewer than n_per_class="
                             f"{config.n_per_class}: pass more reviews or a smaller n_per_class / prompt_chars")
    return pd.DataFrame(rows)


def continue_prompts(model: Any, tokenizer: Any, prompts: Sequence[str],
                     config: ConsistencyConfig | None = None) -> list[str]:
    """Sample ``samples`` continuations of each prompt, prompt removed, cut at the end of the review.

    Args:
        model: a :class:`~llmguide.model.GPT` language model.
        tokenizer: its tokenizer (``encode``, ``decode``); must know the newline that ends a review.
        prompts: P openings.
        config: the settings; default :class:`ConsistencyConfig`.
    Returns:
        P * samples strings, the continuations of prompt 0 first (without the prompt, without the newline).
    """
    config = config or ConsistencyConfig()
    encoded = [tokenizer.encode(p) for p in prompts for _ in range(config.samples)]
    width = max(len(e) for e in encoded)
    ids = torch.zeros(len(encoded), width, dtype=torch.long)  # (B, T), left-padded
    mask = torch.zeros_like(ids)
    for row, e in enumerate(encoded):
        ids[row, width - len(e):], mask[row, width - len(e):] = torch.tensor(e), 1
    device = next(model.parameters()).device
    end_id = tokenizer.encode(SEPARATOR)[0]
    out = generate(model, ids.to(device), config.max_new_tokens, config.temperature, config.top_k,
                   eos_id=end_id, seed=config.seed, attention_mask=mask.to(device))  # (B, T + n)
    texts = [tokenizer.decode(row[width:].tolist()) for row in out.cpu()]
    return [t.split(SEPARATOR)[0] for t in texts]


def prompt_consistency(model: Any, tokenizer: Any, openings: pd.DataFrame, classifier: Any,
                       label_names: Sequence[str], config: ConsistencyConfig | None = None) -> ConsistencyResult:
    """Continue each opening and measure how often the continuation keeps the opening's sentiment.

    Args:
        model, tokenizer: the language model and its tokenizer.
        openings: frame with ``prompt`` and ``label`` (from :func:`review_openings`).
        classifier: labels texts alone: ``.predict(list[str]) -> (N,)`` class ids (e.g. the fitted TF-IDF
            pipeline of :func:`llmguide.baselines.run_tfidf_baseline`).
        label_names: class names in id order.
        config: the settings; default :class:`ConsistencyConfig`.
    Returns:
        :class:`ConsistencyResult`.
    """
    config = config or ConsistencyConfig()
    continuations = continue_prompts(model, tokenizer, openings.prompt.tolist(), config)
    frame = openings.loc[openings.index.repeat(config.samples)].reset_index(drop=True)
    frame = frame.rename(columns={"label": "prompt_label"}).assign(continuation=continuations)
    scored = frame[frame.continuation.str.strip() != ""].copy()
    if scored.empty:
        raise ValueError("every continuation was empty (the model ended each review at once): nothing to label")
    scored["predicted"] = [int(p) for p in classifier.predict(scored.continuation.tolist())]
    scored["agrees"] = scored.predicted == scored.prompt_label
    by_class = {label_names[k]: float(g.agrees.mean()) for k, g in scored.groupby("prompt_label")}
    return ConsistencyResult(share=float(scored.agrees.mean()), share_by_class=by_class, n_scored=len(scored),
                             n_empty=len(frame) - len(scored), samples=scored.reset_index(drop=True))
