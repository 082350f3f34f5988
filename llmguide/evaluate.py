"""Evaluation: the numbers that say how good a classifier or a language model is.

For a classifier, every metric comes from the confusion matrix ``C`` (rows = true class, columns =
predicted class), computed with ``sklearn.metrics``:

* accuracy = trace(C) / sum(C);
* precision of class k = C[k, k] / (column k sum): of what we called k, how much was k;
* recall of class k = C[k, k] / (row k sum): of what was k, how much we found;
* F1 = 2 P R / (P + R), the harmonic mean (van Rijsbergen, *Information Retrieval*, 1979);
* macro average = the plain mean over classes (each class counts the same, however rare);
  micro average = pool every decision first (for single-label classification micro-F1 = accuracy).

For a language model the number is the mean next-token cross-entropy ``L`` over every predicted token
and the perplexity ``exp(L)``: the model is as unsure as a uniform choice among ``exp(L)`` tokens.

:class:`EvalReport` holds the results, prints as a table and saves as JSON. Shapes: B batch, T time,
V vocabulary, K classes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmguide.runtime import eval_mode, to_device

TASKS = ("classification", "language_model")


@dataclass
class EvalReport:
    """The result of an evaluation; ``print(report)`` shows a table, ``report.save(path)`` writes JSON."""

    task: str  # "classification" or "language_model"
    n: int  # examples (classification) or predicted tokens (language model)
    labels: list[str] = field(default_factory=list)  # class names, in class-id order
    accuracy: float | None = None  # fraction of examples whose argmax is the true class
    precision: dict[str, float] = field(default_factory=dict)  # per class
    recall: dict[str, float] = field(default_factory=dict)  # per class
    f1: dict[str, float] = field(default_factory=dict)  # per class
    support: dict[str, int] = field(default_factory=dict)  # true examples per class
    macro_precision: float | None = None  # unweighted mean over classes
    macro_recall: float | None = None
    macro_f1: float | None = None
    micro_f1: float | None = None  # pooled over all decisions (= accuracy for single-label tasks)
    confusion: list[list[int]] = field(default_factory=list)  # (K, K) rows = true, columns = predicted
    loss: float | None = None  # mean cross-entropy in nats (classifier: over examples; LM: over tokens)
    perplexity: float | None = None  # exp(loss), language models only

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}: use one of {TASKS}")

    def to_dict(self) -> dict:
        """A JSON-ready dict of every field."""
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        """Write the report as JSON (UTF-8, Chinese label names kept readable); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> EvalReport:
        """Read a report written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such report: {path}")
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    def table(self):
        """Per-class precision/recall/F1/support plus the macro row, as a pandas DataFrame."""
        import pandas as pd

        rows = {name: [self.precision[name], self.recall[name], self.f1[name], self.support[name]]
                for name in self.labels}
        rows["macro avg"] = [self.macro_precision, self.macro_recall, self.macro_f1, sum(self.support.values())]
        return pd.DataFrame.from_dict(rows, orient="index", columns=["precision", "recall", "f1", "support"])

    def __str__(self) -> str:
        if self.task == "language_model":
            return f"language model: loss {self.loss:.4f}  perplexity {self.perplexity:.2f}  ({self.n} tokens)"
        width = max([len("macro avg")] + [len(name) for name in self.labels])
        lines = [f"{'':>{width}}  precision  recall      f1  support"]
        for name in self.labels:
            lines.append(f"{name:>{width}}  {self.precision[name]:9.4f}  {self.recall[name]:6.4f}  "
                         f"{self.f1[name]:6.4f}  {self.support[name]:7d}")
        lines.append(f"{'macro avg':>{width}}  {self.macro_precision:9.4f}  {self.macro_recall:6.4f}  "
                     f"{self.macro_f1:6.4f}  {self.n:7d}")
        summary = f"accuracy {self.accuracy:.4f}  micro-F1 {self.micro_f1:.4f}"
        if self.loss is not None:
            summary += f"  loss {self.loss:.4f}"
        lines += [summary, "confusion matrix (rows = true, columns = predicted):"]
        cells = [[str(v) for v in row] for row in self.confusion]
        cw = max([len(name) for name in self.labels] + [len(c) for row in cells for c in row])
        lines.append(f"{'':>{width}}  " + " ".join(f"{name:>{cw}}" for name in self.labels))
        for name, row in zip(self.labels, cells, strict=True):
            lines.append(f"{name:>{width}}  " + " ".join(f"{c:>{cw}}" for c in row))
        return "\n".join(lines)


def classification_report(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str],
                          probs: np.ndarray | Tensor | None = None) -> EvalReport:
    """Classification metrics from true and predicted class ids, with ``sklearn.metrics``.

    Args:
        y_true: true class ids, (N,), each in ``range(len(labels))``.
        y_pred: predicted class ids, (N,).
        labels: class names in id order (K names).
        probs: optional predicted probabilities (N, K); adds the mean cross-entropy (log loss).
    Returns:
        An :class:`EvalReport` with task "classification".
    """
    from sklearn import metrics

    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    labels = [str(name) for name in labels]
    k = len(labels)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must be 1-D and the same length, got {y_true.shape} and {y_pred.shape}")
    if len(y_true) == 0:
        raise ValueError("nothing to evaluate: y_true is empty")
    if k < 2:
        raise ValueError(f"a classifier needs at least 2 labels, got {labels}")
    for name, ids in (("y_true", y_true), ("y_pred", y_pred)):
        bad = ids[(ids < 0) | (ids >= k)]
        if len(bad):
            raise ValueError(f"{name} holds class id {int(bad[0])}, outside 0..{k - 1} for labels {labels}")
    ids = list(range(k))
    p, r, f, s = metrics.precision_recall_fscore_support(y_true, y_pred, labels=ids, zero_division=0)
    mp, mr, mf, _ = metrics.precision_recall_fscore_support(y_true, y_pred, labels=ids, average="macro",
                                                            zero_division=0)
    loss = None
    if probs is not None:
        probs = probs.detach().float().cpu().numpy() if isinstance(probs, Tensor) else np.asarray(probs)
        if probs.shape != (len(y_true), k):
            raise ValueError(f"probs must have shape {(len(y_true), k)}, got {probs.shape}")
        loss = float(metrics.log_loss(y_true, probs, labels=ids))
    return EvalReport(
        task="classification", n=len(y_true), labels=labels,
        accuracy=float(metrics.accuracy_score(y_true, y_pred)),
        precision={n: float(v) for n, v in zip(labels, p, strict=True)},
        recall={n: float(v) for n, v in zip(labels, r, strict=True)},
        f1={n: float(v) for n, v in zip(labels, f, strict=True)},
        support={n: int(v) for n, v in zip(labels, s, strict=True)},
        macro_precision=float(mp), macro_recall=float(mr), macro_f1=float(mf),
        micro_f1=float(metrics.f1_score(y_true, y_pred, labels=ids, average="micro", zero_division=0)),
        confusion=metrics.confusion_matrix(y_true, y_pred, labels=ids).tolist(),
        loss=loss,
    )


def language_model_report(nll_sum: float, n_tokens: int) -> EvalReport:
    """Loss and perplexity from the summed next-token negative log-likelihood over ``n_tokens`` tokens."""
    if n_tokens <= 0:
        raise ValueError(f"nothing to evaluate: n_tokens={n_tokens}")
    loss = nll_sum / n_tokens
    return EvalReport(task="language_model", n=int(n_tokens), loss=float(loss), perplexity=float(math.exp(loss)))


@torch.no_grad()
def collect_logits(model: nn.Module, batches: Iterable[Mapping[str, Tensor]],
                   device: str | torch.device | None = None) -> tuple[Tensor, Tensor]:
    """Run a classifier over labelled batches; returns (logits (N, K), labels (N,)) on the CPU.

    Each batch is a dict such as ``{"idx", "attention_mask", "labels"}``; the model is called as
    ``model(**batch)`` and its first output is the logits (B, K). The model's train/eval mode is restored.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    logits, labels = [], []
    with eval_mode(model):
        for batch in batches:
            batch = to_device(batch, device)
            out, _ = model(**batch)  # (B, K)
            logits.append(out.float().cpu())
            labels.append(batch["labels"].cpu())
    if not logits:
        raise ValueError("nothing to evaluate: the batches are empty")
    return torch.cat(logits), torch.cat(labels)


@torch.no_grad()
def _language_model_nll(model: nn.Module, batches: Iterable[Mapping[str, Tensor]],
                        device: torch.device) -> tuple[float, int]:
    nll, count = 0.0, 0
    for batch in batches:
        batch = to_device(batch, device)
        logits, _ = model(**batch)  # (B, T, V)
        targets = batch["targets"]  # (B, T), -100 = not predicted
        # Sum (not mean) per batch, so batches with different numbers of tokens weigh correctly.
        nll += F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-100,
                               reduction="sum").item()
        count += int((targets != -100).sum())
    return nll, count


def evaluate(model: nn.Module, batches: Iterable[Mapping[str, Tensor]], labels: Sequence[str] | None = None,
             device: str | torch.device | None = None) -> EvalReport:
    """Evaluate a classifier or a language model on batches (e.g. a DataLoader).

    Args:
        model: called as ``logits, loss = model(**batch)``.
        batches: dicts of tensors. With a ``labels`` key (B,) the model is a classifier and
            ``labels`` (the class names) is required; with a ``targets`` key (B, T) it is a language model.
        labels: class names in id order, for a classifier.
        device: where to run; default: where the model's parameters are.
    Returns:
        An :class:`EvalReport`: accuracy, precision/recall/F1, confusion matrix and log loss for a
        classifier; loss and perplexity for a language model.
    """
    batches = list(batches) if not hasattr(batches, "__len__") else batches
    first = next(iter(batches), None)
    if first is None:
        raise ValueError("nothing to evaluate: the batches are empty")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if "labels" in first:
        if labels is None:
            raise ValueError("evaluating a classifier needs labels=[class names in id order]")
        logits, y = collect_logits(model, batches, device)
        probs = logits.softmax(-1)  # (N, K)
        return classification_report(y.numpy(), logits.argmax(-1).numpy(), labels, probs=probs)
    if "targets" in first:
        with eval_mode(model):
            return language_model_report(*_language_model_nll(model, batches, device))
    raise ValueError(f"a batch must hold 'labels' (classifier) or 'targets' (language model), got {sorted(first)}")
