"""bf16 autocast on CPU: logits and loss within a stated tolerance of fp32 (training curves: test_train.py)."""

from __future__ import annotations

import torch

from llmguide.model import GPT, GPTClassifier, GPTConfig
from llmguide.train import mixed_precision

# bf16 keeps 8 bits of mantissa: each rounding is off by up to 2^-9 = 0.2 %; through a few layers the
# logits of a small model drift by ~1e-2 in absolute terms. Measured here: ~5e-3 (tolerance 4x that).
LOGIT_ATOL = 2e-2
LOSS_RTOL = 1e-2


def test_bf16_inference_logits_and_loss_match_fp32(tiny, one_thread):
    torch.manual_seed(0)
    model = GPT(GPTConfig(**tiny)).eval()
    idx = torch.randint(0, tiny["vocab_size"], (4, tiny["block_size"] + 1))
    autocast, scaler, used = mixed_precision("bf16", torch.device("cpu"))
    assert used == "bf16" and scaler is None  # bf16 has fp32's exponent range: no loss scaling
    with torch.no_grad():
        logits32, loss32 = model(idx[:, :-1], idx[:, 1:])
        with autocast:
            logits16, loss16 = model(idx[:, :-1], idx[:, 1:])
    assert logits16.dtype == torch.bfloat16  # autocast really ran the matmuls in bf16
    torch.testing.assert_close(logits16.float(), logits32, atol=LOGIT_ATOL, rtol=0)
    torch.testing.assert_close(loss16, loss32, rtol=LOSS_RTOL, atol=0)
    assert not torch.equal(logits16.float(), logits32)


def test_bf16_classifier_predicts_like_fp32(tiny):
    torch.manual_seed(0)
    clf = GPTClassifier(GPT(GPTConfig(**tiny)), 2).eval()
    with torch.no_grad():
        clf.score.weight.mul_(50)  # spread the untrained head so the classes differ
        idx = torch.randint(0, tiny["vocab_size"], (32, 12))
        fp32 = clf(idx)[0]
        with mixed_precision("bf16", torch.device("cpu"))[0]:
            bf16 = clf(idx)[0].float()
    torch.testing.assert_close(bf16, fp32, atol=LOGIT_ATOL * 10, rtol=0)  # the head's x50 scales the error too
    agree = (bf16.argmax(-1) == fp32.argmax(-1)).float().mean()
    assert agree >= 0.9
