"""The training loop: config checks, schedule, optimizer groups, accumulation, clipping, stopping, errors."""

from __future__ import annotations

import math

import pytest
import torch

from llmguide.model import GPT, GPTConfig
from llmguide.train import (
    BatchOrder,
    NonFiniteLossError,
    TensorDataset,
    TrainConfig,
    lr_at,
    make_optimizer,
    mixed_precision,
    total_steps,
    train,
    train_step,
)

QUIET = dict(progress=False, warmup_steps=2, eval_steps=2, log_interval=1)


def gpt(tiny: dict, **overrides) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(**{**tiny, **overrides}))


@pytest.mark.parametrize("field, value", [
    ("learning_rate", 0.0), ("min_lr", 1.0), ("warmup_steps", -1), ("lr_decay_steps", 1), ("weight_decay", -0.1),
    ("beta2", 1.0), ("batch_size", 0), ("grad_accum_steps", 0), ("max_steps", 0), ("eval_steps", 0),
    ("clip_norm", 0.0), ("precision", "fp8"), ("seed", -1), ("patience", 0), ("log_interval", 0),
])
def test_config_rejects_bad_values_and_names_them(field, value):
    with pytest.raises(ValueError, match=rf"TrainConfig\.{field}={value!r}"):
        TrainConfig(**{field: value, "warmup_steps": 10} if field != "warmup_steps" else {field: value})


def test_config_needs_a_length():
    with pytest.raises(ValueError, match="max_steps or max_epochs"):
        TrainConfig(max_steps=None, max_epochs=None)


def test_lr_schedule_warms_up_linearly_then_decays_by_cosine_to_min_lr():
    cfg = TrainConfig(learning_rate=1e-3, min_lr=1e-4, warmup_steps=10)
    lrs = [lr_at(s, cfg, 100) for s in range(120)]
    assert lrs[:10] == pytest.approx([1e-3 * (s + 1) / 11 for s in range(10)])
    assert lrs[10] == pytest.approx(1e-3)  # peak right after warmup
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))  # never goes up again
    assert lrs[55] == pytest.approx(1e-4 + 0.5 * 0.9e-3)  # halfway through the decay: halfway down
    assert lrs[100:] == pytest.approx([1e-4] * 20)  # then stays at min_lr
    assert TrainConfig(learning_rate=2e-3).final_lr == pytest.approx(2e-4)  # default min_lr = lr / 10


def test_weight_decay_only_on_matrices_and_tied_weight_counted_once(tiny):
    model = gpt(tiny)
    opt = make_optimizer(model, TrainConfig(weight_decay=0.1))
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decayed["params"]) and all(p.dim() < 2 for p in plain["params"])
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == model.num_params()


def test_precision_is_chosen_by_hardware_and_fp16_needs_cuda():
    _, scaler, used = mixed_precision("auto", torch.device("cpu"))
    assert used == "fp32" and scaler is None
    with pytest.raises(ValueError, match="fp16"):
        mixed_precision("fp16", torch.device("cpu"))
    autocast, scaler, used = mixed_precision("bf16", torch.device("cpu"))
    with autocast:
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    assert used == "bf16" and scaler is None


def test_batch_order_is_a_seeded_permutation_per_epoch_split_between_ranks():
    order = BatchOrder(n_examples=50, global_batch=8, seed=3)
    assert order.batches_per_epoch == 6  # the last 2 examples of each epoch are dropped
    epoch0 = torch.cat([order.indices(s) for s in range(6)])
    epoch1 = torch.cat([order.indices(s) for s in range(6, 12)])
    assert len(set(epoch0.tolist())) == 48 and len(set(epoch1.tolist())) == 48  # no repeats in an epoch
    assert not torch.equal(epoch0, epoch1)  # reshuffled each epoch
    assert torch.equal(BatchOrder(50, 8, 3).indices(7), order.indices(7))  # a pure function of the step
    assert torch.equal(torch.cat([order.indices(7, r, 2) for r in range(2)]), order.indices(7))
    with pytest.raises(ValueError, match="fewer than one global batch"):
        BatchOrder(n_examples=4, global_batch=8, seed=0)


def test_total_steps_from_steps_or_epochs():
    assert total_steps(TrainConfig(max_steps=50), 10) == 50
    assert total_steps(TrainConfig(max_steps=None, max_epochs=2.5), 10) == 25
    assert total_steps(TrainConfig(max_steps=7, max_epochs=2), 10) == 7  # whichever ends first


def test_initial_loss_is_ln_vocab_and_training_overfits_one_batch(tiny, lm_data):
    model = gpt(tiny)
    data = lm_data(8, tiny["block_size"], tiny["vocab_size"])
    history = train(model, data, None, TrainConfig(max_steps=60, batch_size=8, learning_rate=1e-2, **QUIET))
    assert history.train_loss.iloc[0] == pytest.approx(math.log(tiny["vocab_size"]), abs=0.1)
    assert history.train_loss.iloc[-1] < 0.5  # memorised 8 random rows
    assert list(history.columns) == ["step", "epoch", "lr", "train_loss", "val_loss", "grad_norm", "tokens",
                                     "tokens_per_s", "elapsed_s"]
    assert history.step.tolist() == list(range(1, 61))
    assert history.tokens.iloc[-1] == 60 * 8 * tiny["block_size"]


def test_gradient_accumulation_equals_the_big_batch(tiny, lm_data):
    data = lm_data(64, tiny["block_size"], tiny["vocab_size"])
    big, small = gpt(tiny), gpt(tiny)
    h1 = train(big, data, None, TrainConfig(max_steps=4, batch_size=16, **QUIET))
    h2 = train(small, data, None, TrainConfig(max_steps=4, batch_size=4, grad_accum_steps=4, **QUIET))
    torch.testing.assert_close(h1.train_loss.tolist(), h2.train_loss.tolist(), rtol=0, atol=1e-6)
    for p, q in zip(big.parameters(), small.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


def test_gradient_clipping_bounds_the_update_norm(tiny, lm_data):
    model = gpt(tiny)
    batch = TensorDataset(lm_data(4, tiny["block_size"], tiny["vocab_size"])).get_batch(torch.arange(4))
    opt = make_optimizer(model, TrainConfig(weight_decay=0.0))
    autocast, scaler, _ = mixed_precision("fp32", torch.device("cpu"))
    _, norm = train_step(model, [batch], opt, autocast, scaler, clip_norm=1e-3)
    clipped = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert norm > 1e-2  # the raw gradient was much larger ...
    torch.testing.assert_close(clipped, torch.tensor(1e-3), rtol=1e-4, atol=0)  # ... and was scaled to 1e-3


class NaNAfter(torch.nn.Module):
    """Wraps a model; its loss becomes NaN from the ``at``-th forward pass on."""

    def __init__(self, model: torch.nn.Module, at: int):
        super().__init__()
        self.model, self.at, self.calls = model, at, 0

    def forward(self, **batch):
        self.calls += 1
        logits, loss = self.model(**batch)
        return logits, loss * float("nan") if self.calls >= self.at else loss


def test_non_finite_loss_stops_with_the_step_and_what_to_try(tiny, lm_data):
    model = NaNAfter(gpt(tiny), at=3)
    with pytest.raises(NonFiniteLossError, match=r"at step 3 .*learning_rate.*clip_norm.*fp32"):
        train(model, lm_data(32, tiny["block_size"], tiny["vocab_size"]), None,
              TrainConfig(max_steps=10, batch_size=4, **{**QUIET, "log_interval": 5}))


def test_evaluation_and_early_stopping(tiny, lm_data):
    data = lm_data(32, tiny["block_size"], tiny["vocab_size"])
    # min_delta is huge, so no evaluation after the first counts as an improvement: stop after patience=2 more
    cfg = TrainConfig(max_steps=50, batch_size=4, eval_interval=3, patience=2, min_delta=100.0, **QUIET)
    history = train(gpt(tiny), data, data, cfg)
    assert history.attrs["stop_reason"] == "early_stopping"
    assert history.step.iloc[-1] == 9
    assert history.val_loss.notna().tolist() == [s % 3 == 0 for s in range(1, 10)]


def test_callback_sees_rows_and_can_stop_training(tiny, lm_data):
    seen = []

    def callback(row: dict) -> bool:
        seen.append(row["step"])
        return row["step"] >= 4

    history = train(gpt(tiny), lm_data(32, tiny["block_size"], tiny["vocab_size"]), None,
                    TrainConfig(max_steps=20, batch_size=4, **{**QUIET, "log_interval": 2}), callback=callback)
    assert seen == [2, 4] and history.step.iloc[-1] == 4 and history.attrs["stop_reason"] == "callback"


def test_bf16_autocast_trains_on_cpu_like_fp32(tiny, lm_data):
    # bf16 keeps 8 bits of mantissa (~3 significant digits): the same run must follow the fp32 curve (here
    # 2e-4 apart over 8 steps; the tolerance leaves 50x for other CPUs' kernels).
    data = lm_data(32, tiny["block_size"], tiny["vocab_size"])
    runs = {p: train(gpt(tiny), data, None, TrainConfig(max_steps=8, batch_size=4, learning_rate=3e-3,
                                                        precision=p, **QUIET))
            for p in ("fp32", "bf16")}
    fp32, bf16 = (torch.tensor(runs[p].train_loss.to_numpy()) for p in ("fp32", "bf16"))
    torch.testing.assert_close(bf16, fp32, atol=1e-2, rtol=0)
    assert not torch.equal(bf16, fp32)  # and bf16 really ran: the losses are not bit-identical


def test_training_is_bitwise_deterministic_on_cpu(tiny, lm_data):
    data = lm_data(32, tiny["block_size"], tiny["vocab_size"])
    cfg = TrainConfig(max_steps=5, batch_size=4, **QUIET)
    a, b = gpt(tiny, dropout=0.1), gpt(tiny, dropout=0.1)
    ha, hb = train(a, data, data, cfg), train(b, data, data, cfg)
    assert ha.train_loss.tolist() == hb.train_loss.tolist()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_bad_data_is_rejected(tiny):
    with pytest.raises(ValueError, match="same first dimension"):
        TensorDataset({"idx": torch.zeros(4, 3, dtype=torch.long), "targets": torch.zeros(5, 3, dtype=torch.long)})
    with pytest.raises(ValueError, match="dataset or a dict of tensors"):
        train(gpt(tiny), 42, None, TrainConfig(max_steps=1, **QUIET))


def test_a_frozen_model_is_rejected(tiny):
    model = gpt(tiny).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        make_optimizer(model, TrainConfig())
