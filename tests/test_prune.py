"""Pruning: magnitude pruning against torch's own masks, structured removal against zeroing the same units."""

from __future__ import annotations

import pytest
import torch

from llmguide.cost import count_params
from llmguide.model import GPT, GPTClassifier, GPTConfig
from llmguide.prune import (
    magnitude_prune,
    prunable_linears,
    remove_heads,
    sparsity,
    sparsity_curve,
    structured_prune,
    unit_importance,
    zero_units,
)


@pytest.fixture
def classifier(tiny) -> GPTClassifier:
    torch.manual_seed(0)
    model = GPTClassifier(GPT(GPTConfig(**tiny)), 2)
    for p in model.parameters():  # break the init's symmetries (zero biases) so every unit differs
        p.data += 0.05 * torch.randn_like(p)
    return model.eval()


@pytest.fixture
def batch(tiny) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, tiny["vocab_size"], (6, 12), generator=g)
    mask = torch.ones(6, 12, dtype=torch.long)
    mask[3:, 9:] = 0  # right padding
    return {"idx": idx, "attention_mask": mask, "labels": torch.tensor([0, 1, 0, 1, 1, 0])}


def _logits(model, batch):
    with torch.no_grad():
        return model(batch["idx"], batch["attention_mask"])[0]


def test_zero_sparsity_is_the_original_model(classifier, batch):
    pruned = magnitude_prune(classifier, 0.0)
    assert sparsity(pruned) == 0.0
    torch.testing.assert_close(_logits(pruned, batch), _logits(classifier, batch), rtol=0, atol=0)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_magnitude_pruning_zeroes_the_smallest_weights(classifier, scope):
    pruned = magnitude_prune(classifier, 0.5, scope)
    assert sparsity(pruned) == pytest.approx(0.5, abs=1e-3)
    assert sparsity(classifier) == 0.0  # the original is untouched
    pairs = zip(prunable_linears(classifier), prunable_linears(pruned), strict=True)
    if scope == "layer":
        for (_, a), (_, b) in pairs:
            kept, dropped = a.weight[b.weight != 0].abs(), a.weight[b.weight == 0].abs()
            assert dropped.max() <= kept.min()  # exactly the smallest half of each layer
    else:
        original = torch.cat([a.weight.flatten() for (_, a), _ in pairs])
        threshold = original.abs().kthvalue(original.numel() // 2).values
        for (_, a), (_, b) in zip(prunable_linears(classifier), prunable_linears(pruned), strict=True):
            torch.testing.assert_close(b.weight, torch.where(a.weight.abs() <= threshold, 0.0, a.weight))


def test_bad_amount_and_scope_raise(classifier):
    with pytest.raises(ValueError, match="amount"):
        magnitude_prune(classifier, 1.0)
    with pytest.raises(ValueError, match="scope"):
        magnitude_prune(classifier, 0.5, "row")


def test_sparsity_curve_starts_at_the_original_score(classifier, batch):
    curve = sparsity_curve(classifier, lambda m: float(_logits(m, batch).sum()), [0.0, 0.3, 0.6])
    assert curve.sparsity.tolist() == pytest.approx([0.0, 0.3, 0.6], abs=1e-3)
    assert curve.score[0] == pytest.approx(float(_logits(classifier, batch).sum()))


def test_importance_is_gradient_times_activation(classifier, batch):
    heads, neurons = unit_importance(classifier, [batch])
    assert heads.shape == (2, 4) and neurons.shape == (2, 128)
    # by hand for layer 0's MLP: dL/dg_n = sum over positions of dL/da_n * a_n at mlp.c_proj's input
    block = classifier.gpt.transformer.h[0]
    acts = []
    handle = block.mlp.c_proj.register_forward_hook(lambda m, args, out: acts.append(args[0]))
    _, loss = classifier(**batch)
    handle.remove()
    (grad,) = torch.autograd.grad(loss, acts[0])
    torch.testing.assert_close(neurons[0], (grad * acts[0]).sum((0, 1)).abs(), rtol=1e-5, atol=1e-8)


def test_structured_pruning_equals_zeroing_the_removed_units(classifier, batch):
    importance = unit_importance(classifier, [batch])
    small = structured_prune(classifier, 0.5, 0.5, importance)
    zeroed = zero_units(classifier, 0.5, 0.5, importance)
    block = small.gpt.transformer.h[0]
    assert (block.attn.n_head, block.attn.c_attn.out_features, block.attn.c_proj.in_features) == (2, 48, 16)
    assert (block.mlp.c_fc.out_features, block.mlp.c_proj.in_features) == (64, 64)
    assert count_params(small) < count_params(classifier)
    torch.testing.assert_close(_logits(small, batch), _logits(zeroed, batch), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(_logits(small, batch), _logits(classifier, batch))  # something was removed


def test_removing_no_head_keeps_the_function(classifier, batch):
    small = structured_prune(classifier, 0.0, 0.0, unit_importance(classifier, [batch]))
    torch.testing.assert_close(_logits(small, batch), _logits(classifier, batch), rtol=1e-6, atol=1e-6)


def test_remove_heads_rejects_bad_lists(classifier):
    attn = classifier.gpt.transformer.h[0].attn
    with pytest.raises(ValueError, match="distinct heads"):
        remove_heads(attn, [])
    with pytest.raises(ValueError, match="distinct heads"):
        remove_heads(attn, [0, 7])
