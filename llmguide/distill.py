"""Knowledge distillation (蒸馏): a small student trained on a big teacher's soft labels (Hinton et al. 2015,
"Distilling the Knowledge in a Neural Network").

The teacher's probabilities carry more than its argmax: "0.6 positive" says a review is mixed, which a hard
label 1 hides. Both distributions are softened by a temperature T (softmax(z / T)); the student minimises

    loss = alpha * T^2 * KL(softmax(z_teacher / T) || softmax(z_student / T)) + (1 - alpha) * CE(z_student, y)

The T^2 keeps the soft term's gradients the same size whatever T (they scale as 1/T^2), so alpha means the
same at every temperature.

Nothing here is a new training loop: :class:`Distiller` wraps the student so that
``logits, loss = model(**batch)`` returns the distillation loss, and :class:`SoftLabels` adds the teacher's
logits (computed once, before training) to every batch; :func:`llmguide.train.train` does the rest.

Shapes: B batch, T tokens, K classes, N examples.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmguide.model import GPT, GPTClassifier, GPTConfig
from llmguide.runtime import eval_mode
from llmguide.train import TrainConfig, train


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor | None = None,
                      temperature: float = 2.0, alpha: float = 0.5) -> Tensor:
    """Hinton et al.'s loss: T^2-scaled KL to the softened teacher, mixed with the hard-label cross-entropy.

    Args:
        student_logits: (B, K).
        teacher_logits: (B, K), no gradient needed.
        labels: (B,) class ids; needed unless ``alpha == 1``.
        temperature: T > 0; higher spreads the probabilities and shows more of the teacher's "dark knowledge".
        alpha: weight of the soft term in [0, 1] (1: soft labels only, 0: hard labels only).
    Returns:
        The scalar loss (mean over the batch).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r} (Hinton et al. use 1 to 20; try 2)")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}: the weight of the soft term")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} must have the same shape (B, K)")
    s, t = student_logits.float() / temperature, teacher_logits.float().detach() / temperature
    # kl_div(input=log q, target=log p, log_target=True) = sum p (log p - log q): KL(teacher || student)
    soft = F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True, reduction="batchmean")
    soft = soft * temperature**2
    if alpha == 1.0:
        return soft
    if labels is None:
        raise ValueError(f"alpha={alpha} < 1 mixes in the hard-label loss, so labels are needed")
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits.float(), labels)


class SoftLabels(torch.utils.data.Dataset):
    """A labelled dataset with the teacher's logits added to every example and batch (``teacher_logits``).

    Args:
        data: a dataset of dicts (e.g. :class:`~llmguide.classify.ClassificationDataset`); its ``get_batch``
            is used when it has one (padding per batch).
        teacher_logits: (N, K), row i for ``data[i]``.
    """

    def __init__(self, data: Any, teacher_logits: Tensor) -> None:
        if len(teacher_logits) != len(data):
            raise ValueError(f"{len(teacher_logits)} rows of teacher logits for {len(data)} examples: "
                             "compute them on this very dataset (teacher_logits(teacher, data))")
        self.data, self.teacher_logits = data, teacher_logits.detach().float().cpu()

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {**self.data[i], "teacher_logits": self.teacher_logits[i]}

    def get_batch(self, indices: Tensor) -> dict[str, Tensor]:
        return {**self.data.get_batch(indices), "teacher_logits": self.teacher_logits[indices]}


class Distiller(nn.Module):
    """A student whose loss is :func:`distillation_loss` when the batch carries ``teacher_logits``.

    It follows the training contract ``logits, loss = model(**batch)``; the student's weights are the only
    parameters, so :func:`llmguide.train.train` optimises the student alone.

    Args:
        student: ``logits, loss = student(idx, attention_mask, labels)`` (a GPTClassifier).
        temperature, alpha: see :func:`distillation_loss`.
    """

    def __init__(self, student: nn.Module, temperature: float = 2.0, alpha: float = 0.5) -> None:
        super().__init__()
        distillation_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, dtype=torch.long),
                          temperature, alpha)  # check the settings now, not at the first step
        self.student, self.temperature, self.alpha = student, temperature, alpha

    def forward(self, idx: Tensor, attention_mask: Tensor | None = None, labels: Tensor | None = None,
                teacher_logits: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        logits, hard = self.student(idx, attention_mask, labels)  # (B, K)
        if teacher_logits is None:
            return logits, hard
        return logits, distillation_loss(logits, teacher_logits, labels, self.temperature, self.alpha)


def teacher_logits(teacher: nn.Module, data: Any, batch_size: int = 128) -> Tensor:
    """The teacher's logits on every example of ``data``, in order.

    Returns:
        (N, K) float32 on the CPU.
    """
    device = next(teacher.parameters()).device
    out = []
    with eval_mode(teacher), torch.no_grad():
        for start in range(0, len(data), batch_size):
            batch = data.get_batch(torch.arange(start, min(start + batch_size, len(data))))
            out.append(teacher(batch["idx"].to(device), batch["attention_mask"].to(device))[0].float().cpu())
    return torch.cat(out)


def distill(student: nn.Module, teacher: nn.Module, train_data: Any, val_data: Any = None,
            config: TrainConfig | None = None, temperature: float = 2.0, alpha: float = 0.5,
            soft: Tensor | None = None) -> pd.DataFrame:
    """Train ``student`` in place on ``teacher``'s soft labels with :func:`llmguide.train.train`.

    Args:
        student, teacher: classifiers with the same K classes (the teacher is only read).
        train_data, val_data: labelled datasets (``get_batch`` giving ``idx``, ``attention_mask``, ``labels``).
        config: the :class:`~llmguide.train.TrainConfig`.
        temperature, alpha: see :func:`distillation_loss`.
        soft: the teacher's logits on ``train_data`` if already computed (:func:`teacher_logits`).
    Returns:
        The training history (its losses are distillation losses).
    """
    soft = teacher_logits(teacher, train_data) if soft is None else soft
    val = None if val_data is None else SoftLabels(val_data, teacher_logits(teacher, val_data))
    return train(Distiller(student, temperature, alpha), SoftLabels(train_data, soft), val, config)


def student_from_teacher(teacher: GPTClassifier, n_layer: int, n_embd: int, n_head: int, seed: int = 0) -> GPTClassifier:
    """A small classifier in the teacher's vocabulary, its embeddings the teacher's projected onto their top
    ``n_embd`` principal directions (the blocks and head start random).

    A student trained from nothing on a few thousand reviews has to learn what each character means from
    the labels alone; the projection hands it the teacher's character embeddings at a fraction of their
    size (``n_embd`` instead of C columns). Distilled and hard-label students start from the same weights.

    Args:
        teacher: the fine-tuned GPTClassifier.
        n_layer, n_embd, n_head: the student's sizes (``n_embd`` <= the teacher's).
        seed: seeds the random parts.
    Returns:
        The student, in train mode.
    """
    tc = teacher.gpt.config
    if n_embd > tc.n_embd:
        raise ValueError(f"the student's n_embd={n_embd} is wider than the teacher's {tc.n_embd}: pick a smaller one")
    torch.manual_seed(seed)
    config = GPTConfig(vocab_size=tc.vocab_size, block_size=tc.block_size, n_layer=n_layer, n_head=n_head,
                       n_embd=n_embd, dropout=tc.dropout, bias=tc.bias)
    student = GPTClassifier(GPT(config), teacher.n_classes)
    with torch.no_grad():
        wte, wpe = teacher.gpt.transformer.wte.weight, teacher.gpt.transformer.wpe.weight  # (V, C), (block, C)
        # principal directions of the token embeddings: (C, n_embd), orthonormal columns
        directions = torch.linalg.svd(wte - wte.mean(0), full_matrices=False).Vh[:n_embd].T
        student.gpt.transformer.wte.weight.copy_(wte @ directions)  # tied to the student's (unused) LM head
        student.gpt.transformer.wpe.weight.copy_(wpe @ directions)
    return student.train()
