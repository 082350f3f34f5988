"""Distillation: the loss against a hand formula and torch's kl_div, and the wrapper through train()."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from llmguide.cost import count_params
from llmguide.distill import (
    Distiller,
    SoftLabels,
    distill,
    distillation_loss,
    student_from_teacher,
    teacher_logits,
)
from llmguide.model import GPT, GPTClassifier, GPTConfig
from llmguide.train import TensorDataset, TrainConfig


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 3, generator=g), torch.randn(8, 3, generator=g), torch.randint(0, 3, (8,), generator=g)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 5.0])
def test_soft_term_equals_the_hand_formula_and_kl_div(logits, temperature):
    s, t, _ = logits
    p = torch.softmax(t / temperature, -1)  # teacher, softened
    log_q = torch.log_softmax(s / temperature, -1)  # student, softened
    by_hand = (p * (p.log() - log_q)).sum(-1).mean() * temperature**2
    torch_kl = F.kl_div(log_q, p, reduction="batchmean") * temperature**2
    ours = distillation_loss(s, t, temperature=temperature, alpha=1.0)
    torch.testing.assert_close(ours, by_hand, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(ours, torch_kl, rtol=1e-6, atol=1e-7)


def test_mixture_and_limits(logits):
    s, t, y = logits
    soft = distillation_loss(s, t, temperature=2.0, alpha=1.0)
    hard = F.cross_entropy(s, y)
    torch.testing.assert_close(distillation_loss(s, t, y, 2.0, 0.3), 0.3 * soft + 0.7 * hard)
    torch.testing.assert_close(distillation_loss(s, t, y, 2.0, 0.0), hard)
    assert distillation_loss(t, t, temperature=3.0, alpha=1.0).abs() < 1e-6  # a perfect copy: KL = 0


def test_bad_settings_raise(logits):
    s, t, y = logits
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(s, t, y, temperature=0.0)
    with pytest.raises(ValueError, match="alpha"):
        Distiller(torch.nn.Linear(2, 2), alpha=1.5)
    with pytest.raises(ValueError, match="labels are needed"):
        distillation_loss(s, t, None, 2.0, 0.5)
    with pytest.raises(ValueError, match="same shape"):
        distillation_loss(s, t[:, :2], y)


def _data(tiny, n=32):
    g = torch.Generator().manual_seed(2)
    idx = torch.randint(0, tiny["vocab_size"], (n, 10), generator=g)
    return TensorDataset({"idx": idx, "attention_mask": torch.ones_like(idx), "labels": (idx[:, 0] % 2)})


def test_soft_labels_join_the_batches(tiny):
    data = _data(tiny)
    soft = SoftLabels(data, torch.arange(64.0).view(32, 2))
    batch = soft.get_batch(torch.tensor([3, 5]))
    assert batch["teacher_logits"].tolist() == [[6.0, 7.0], [10.0, 11.0]]
    assert set(batch) == {"idx", "attention_mask", "labels", "teacher_logits"}
    with pytest.raises(ValueError, match="rows of teacher logits"):
        SoftLabels(data, torch.zeros(3, 2))


def test_distill_trains_the_student_towards_the_teacher(tiny, one_thread):
    torch.manual_seed(0)
    teacher = GPTClassifier(GPT(GPTConfig(**tiny)), 2).eval()
    student = student_from_teacher(teacher, n_layer=1, n_embd=16, n_head=2)
    assert count_params(student) < count_params(teacher) / 2
    data = _data(tiny)
    soft = teacher_logits(teacher, data)
    before = distillation_loss(teacher_logits(student, data), soft, temperature=2.0, alpha=1.0)
    config = TrainConfig(max_steps=30, batch_size=8, learning_rate=3e-3, warmup_steps=2, progress=False,
                         eval_interval=0, device="cpu")
    history = distill(student, teacher, data, data, config, temperature=2.0, alpha=1.0, soft=soft)
    after = distillation_loss(teacher_logits(student, data), soft, temperature=2.0, alpha=1.0)
    assert after < 0.5 * before
    assert history.val_loss.dropna().iloc[-1] == pytest.approx(after.item(), rel=1e-4)  # the same quantity


def test_student_embeddings_are_the_teachers_projected(tiny):
    torch.manual_seed(0)
    teacher = GPTClassifier(GPT(GPTConfig(**tiny)), 2)
    student = student_from_teacher(teacher, 1, 8, 2)
    wte = teacher.gpt.transformer.wte.weight.detach()
    V = torch.linalg.svd(wte - wte.mean(0)).Vh[:8].T  # (C, 8)
    torch.testing.assert_close(student.gpt.transformer.wte.weight.detach().abs(), (wte @ V).abs())
    with pytest.raises(ValueError, match="wider than the teacher"):
        student_from_teacher(teacher, 1, 64, 2)
