"""Evaluation metrics: a small worked example computed by hand, sklearn parity, the report's table and JSON."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from llmguide.evaluate import (
    EvalReport,
    classification_report,
    collect_logits,
    evaluate,
    language_model_report,
)

# Worked example, 3 classes, 8 examples.
#   true: cat cat cat dog dog dog dog bird
#   pred: cat cat dog dog dog cat dog bird
# Confusion matrix (rows true, columns predicted):
#          cat dog bird
#   cat     2   1   0
#   dog     1   3   0
#   bird    0   0   1
LABELS = ["cat", "dog", "bird"]
Y_TRUE = [0, 0, 0, 1, 1, 1, 1, 2]
Y_PRED = [0, 0, 1, 1, 1, 0, 1, 2]


def test_worked_example_by_hand():
    r = classification_report(Y_TRUE, Y_PRED, LABELS)
    assert r.confusion == [[2, 1, 0], [1, 3, 0], [0, 0, 1]]
    assert r.accuracy == pytest.approx(6 / 8)
    # precision = diagonal / column sum; recall = diagonal / row sum
    assert r.precision == pytest.approx({"cat": 2 / 3, "dog": 3 / 4, "bird": 1.0})
    assert r.recall == pytest.approx({"cat": 2 / 3, "dog": 3 / 4, "bird": 1.0})
    f1_dog = 2 * (3 / 4) * (3 / 4) / (3 / 4 + 3 / 4)
    assert r.f1 == pytest.approx({"cat": 2 / 3, "dog": f1_dog, "bird": 1.0})
    assert r.support == {"cat": 3, "dog": 4, "bird": 1}
    assert r.macro_precision == pytest.approx((2 / 3 + 3 / 4 + 1) / 3)
    assert r.macro_f1 == pytest.approx((2 / 3 + 3 / 4 + 1) / 3)
    assert r.micro_f1 == pytest.approx(r.accuracy)  # single-label: micro-F1 is accuracy
    assert r.loss is None and r.perplexity is None


def test_asymmetric_example_precision_differs_from_recall():
    # true: 0 0 0 0 1 1; pred: 0 0 0 1 1 1 -> class 0: P=3/3, R=3/4; class 1: P=2/3, R=2/2
    r = classification_report([0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1], ["neg", "pos"])
    assert r.precision == pytest.approx({"neg": 1.0, "pos": 2 / 3})
    assert r.recall == pytest.approx({"neg": 3 / 4, "pos": 1.0})
    assert r.f1["neg"] == pytest.approx(2 * 1.0 * 0.75 / 1.75)
    assert r.f1["pos"] == pytest.approx(2 * (2 / 3) / (5 / 3))
    assert r.macro_recall == pytest.approx((3 / 4 + 1) / 2)


def test_matches_sklearn_on_random_predictions():
    from sklearn import metrics

    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    probs = rng.dirichlet(np.ones(4), 200)
    r = classification_report(y_true, y_pred, list("abcd"), probs=probs)
    assert r.macro_f1 == pytest.approx(metrics.f1_score(y_true, y_pred, average="macro"), abs=1e-12)
    assert r.accuracy == pytest.approx(metrics.accuracy_score(y_true, y_pred), abs=1e-12)
    assert r.loss == pytest.approx(-np.log(probs[np.arange(200), y_true]).mean(), abs=1e-9)
    np.testing.assert_array_equal(np.array(r.confusion), metrics.confusion_matrix(y_true, y_pred))


def test_class_never_predicted_counts_zero_not_nan():
    r = classification_report([0, 1, 2], [0, 0, 0], ["a", "b", "c"])
    assert r.precision["b"] == 0.0 and r.f1["c"] == 0.0
    assert not any(math.isnan(v) for v in r.f1.values())


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="empty"):
        classification_report([], [], LABELS)
    with pytest.raises(ValueError, match="class id 3"):
        classification_report([0, 3], [0, 1], LABELS)
    with pytest.raises(ValueError, match="same length"):
        classification_report([0, 1], [0], LABELS)
    with pytest.raises(ValueError, match="probs must have shape"):
        classification_report([0, 1], [0, 1], LABELS, probs=np.ones((2, 2)) / 2)
    with pytest.raises(ValueError, match="unknown task"):
        EvalReport(task="regression", n=1)


def test_report_prints_a_table_and_round_trips_json(tmp_path):
    r = classification_report(Y_TRUE, Y_PRED, ["猫", "dog", "bird"], probs=np.full((8, 3), 1 / 3))
    text = str(r)
    assert "precision" in text and "macro avg" in text and "猫" in text
    assert "accuracy 0.7500" in text and f"loss {math.log(3):.4f}" in text
    rows = [line.split() for line in text.splitlines()[-3:]]
    assert rows == [["猫", "2", "1", "0"], ["dog", "1", "3", "0"], ["bird", "0", "0", "1"]]
    path = r.save(tmp_path / "sub" / "report.json")
    assert "猫" in path.read_text(encoding="utf-8")  # not escaped
    assert EvalReport.load(path) == r
    assert list(r.table().index) == ["猫", "dog", "bird", "macro avg"]
    with pytest.raises(FileNotFoundError):
        EvalReport.load(tmp_path / "missing.json")


class _FixedLM(nn.Module):
    """Returns the same logits (V,) at every position, whatever the input."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = nn.Parameter(logits)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        return self.logits.expand(B, T, -1), None


def test_language_model_loss_and_perplexity_by_hand():
    # Uniform over V=10 -> loss ln 10, perplexity 10, whatever the targets.
    uniform = _FixedLM(torch.zeros(10))
    batches = [{"idx": torch.zeros(2, 3, dtype=torch.long), "targets": torch.tensor([[1, 2, 3], [4, -100, 5]])}]
    r = evaluate(uniform, batches)
    assert r.task == "language_model" and r.n == 5
    assert r.loss == pytest.approx(math.log(10), abs=1e-6) and r.perplexity == pytest.approx(10, abs=1e-4)
    assert "perplexity 10.00" in str(r)
    # p = (0.5, 0.25, 0.25): targets 0, 1, 2, 0 -> nll = (ln2 + ln4 + ln4 + ln2) / 4 = 1.5 ln 2
    skewed = _FixedLM(torch.log(torch.tensor([0.5, 0.25, 0.25])))
    batches = [{"idx": torch.zeros(1, 1, dtype=torch.long), "targets": torch.tensor([[0]])},
               {"idx": torch.zeros(1, 3, dtype=torch.long), "targets": torch.tensor([[1, 2, 0]])}]
    r = evaluate(skewed, batches)
    assert r.loss == pytest.approx(1.5 * math.log(2), abs=1e-6)  # token-weighted, not a mean of batch means
    assert r.perplexity == pytest.approx(2**1.5, abs=1e-5)
    with pytest.raises(ValueError, match="n_tokens=0"):
        language_model_report(0.0, 0)


class _FixedClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.eye(3))

    def forward(self, idx, attention_mask=None, labels=None):
        return self.w[idx[:, 0]], None  # (B, K): predicts the first token id as the class


def test_evaluate_classifier_batches_and_restores_mode():
    model = _FixedClassifier().train()
    batches = [{"idx": torch.tensor([[0], [1]]), "labels": torch.tensor([0, 0])},
               {"idx": torch.tensor([[2]]), "labels": torch.tensor([2])}]
    r = evaluate(model, batches, labels=["a", "b", "c"])
    assert model.training
    assert r.accuracy == pytest.approx(2 / 3) and r.confusion == [[1, 1, 0], [0, 0, 0], [0, 0, 1]]
    expected_loss = -np.mean(np.log([np.exp(1) / (np.exp(1) + 2), 1 / (np.exp(1) + 2), np.exp(1) / (np.exp(1) + 2)]))
    assert r.loss == pytest.approx(expected_loss, abs=1e-6)
    logits, y = collect_logits(model, batches)
    assert logits.shape == (3, 3) and y.tolist() == [0, 0, 2]
    with pytest.raises(ValueError, match="needs labels"):
        evaluate(model, batches)
    with pytest.raises(ValueError, match="empty"):
        evaluate(model, [], labels=["a", "b", "c"])
    with pytest.raises(ValueError, match="'labels'.*'targets'"):
        evaluate(model, [{"idx": torch.tensor([[0]])}])
