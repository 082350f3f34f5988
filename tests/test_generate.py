"""Generation: KV cache equals recompute, greedy equals HF generate, sampling controls, stopping, bad input."""

from __future__ import annotations

import warnings

import pytest
import torch

from llmguide.generate import Sampling, generate, sample_next
from llmguide.model import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("one_thread")



@pytest.fixture
def model(tiny, seed) -> GPT:
    return GPT(GPTConfig(**{**tiny, "block_size": 32})).eval()


def left_padded(vocab: int, lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    T = max(lengths)
    ids = torch.randint(1, vocab, (len(lengths), T))
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        mask[row, T - n:] = 1
    return ids.masked_fill(mask == 0, 0), mask


@pytest.mark.parametrize("sampling", [dict(temperature=0), dict(temperature=1.0, seed=1),
                                      dict(temperature=0.8, top_k=5, top_p=0.9, seed=2)])
def test_cache_equals_recompute(model, sampling):
    ids, mask = left_padded(100, [7, 3, 5])
    # 40 new tokens > block_size=32: also covers the switch to recomputing the cropped window
    cached = generate(model, ids, 40, attention_mask=mask, **sampling)
    plain = generate(model, ids, 40, attention_mask=mask, use_cache=False, **sampling)
    assert cached.shape == (3, 7 + 40)
    assert torch.equal(cached, plain)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_greedy_equals_hf_generate(model, attn):
    hf = model.to_hf(attn).eval()
    ids, mask = left_padded(100, [6, 2, 4])
    ours = generate(model, ids, 20, temperature=0, attention_mask=mask)
    ref = hf.generate(ids, attention_mask=mask, max_new_tokens=20, do_sample=False, pad_token_id=0)
    assert torch.equal(ours, ref)
    # a single unpadded prompt too
    ours1 = generate(model, ids[0], 20, temperature=0)
    ref1 = hf.generate(ids[:1], max_new_tokens=20, do_sample=False, pad_token_id=0)[0]
    assert torch.equal(ours1, ref1)


def test_top_k_1_and_tiny_top_p_are_greedy(model):
    ids = torch.randint(0, 100, (2, 5))
    greedy = generate(model, ids, 15, temperature=0)
    assert torch.equal(generate(model, ids, 15, temperature=1.0, top_k=1, seed=3), greedy)
    assert torch.equal(generate(model, ids, 15, temperature=1.0, top_p=1e-6, seed=3), greedy)


def test_same_seed_same_text_different_seed_differs(model):
    ids = torch.randint(0, 100, (2, 5))
    a = generate(model, ids, 30, temperature=1.0, seed=7)
    assert torch.equal(a, generate(model, ids, 30, temperature=1.0, seed=7))
    assert not torch.equal(a, generate(model, ids, 30, temperature=1.0, seed=8))
    # the seed does not touch the global RNG
    state = torch.get_rng_state()
    generate(model, ids, 5, temperature=1.0, seed=7)
    assert torch.equal(state, torch.get_rng_state())


def test_sampling_support_follows_top_k_and_top_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log().expand(4000, 4)
    g = torch.Generator().manual_seed(0)
    assert set(sample_next(logits, 1.0, top_k=2, generator=g).tolist()) == {0, 1}
    assert set(sample_next(logits, 1.0, top_p=0.75, generator=g).tolist()) == {0, 1}  # 0.5 + 0.3 >= 0.75
    assert set(sample_next(logits, 1.0, top_p=0.85, generator=g).tolist()) == {0, 1, 2}
    assert set(sample_next(logits, 1.0, generator=g).tolist()) == {0, 1, 2, 3}
    # frequencies follow the renormalised probabilities
    freq = torch.bincount(sample_next(logits, 1.0, top_k=2, generator=g), minlength=4) / 4000
    torch.testing.assert_close(freq[:2], torch.tensor([0.625, 0.375]), atol=0.03, rtol=0)
    # a low temperature concentrates the samples on the likeliest token
    assert (sample_next(logits, 0.2, generator=g) == 0).float().mean() > 0.9


def test_max_new_tokens_respected(model):
    ids = torch.randint(0, 100, (3, 4))
    assert generate(model, ids, 9, temperature=0).shape == (3, 13)
    assert torch.equal(generate(model, ids, 0), ids)
    out = generate(model, [5, 6, 7], 4, temperature=0)  # a list prompt, 1-D result
    assert out.shape == (7,) and out[:3].tolist() == [5, 6, 7]


def test_eos_stops_rows_and_generation(model):
    ids = torch.randint(0, 100, (2, 4))
    free = generate(model, ids, 12, temperature=0)
    eos = int(free[0, 4 + 2])  # the token row 0 produces at its third step
    out = generate(model, ids, 12, temperature=0, eos_id=eos)
    first = [int((row[4:] == eos).nonzero()[0]) if (row[4:] == eos).any() else None for row in out]
    for row, f in zip(out, first, strict=True):
        if f is not None:  # a finished row keeps emitting eos
            assert torch.all(row[4 + f:] == eos)
    assert first[0] <= 2
    # up to its first eos each row is what it would have been without eos
    for r, f in enumerate(first):
        n = out.size(1) - 4 if f is None else f + 1
        assert torch.equal(out[r, :4 + n], free[r, :4 + n])
    # all rows finished -> stops early
    both = generate(model, ids[:1], 12, temperature=0, eos_id=eos)
    assert both.size(1) == 4 + first[0] + 1


def test_long_prompt_is_cropped_with_a_warning(model):
    ids = torch.randint(0, 100, (1, 50))  # block_size is 32
    with pytest.warns(UserWarning, match="longer than block_size=32"):
        out = generate(model, ids, 5, temperature=0)
    assert out.shape == (1, 55) and torch.equal(out[:, :50], ids)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cropped = generate(model, ids[:, -32:], 5, temperature=0)
    assert torch.equal(out[:, 50:], cropped[:, 32:])


def test_training_mode_restored_and_no_dropout_while_generating(tiny, seed):
    model = GPT(GPTConfig(**{**tiny, "dropout": 0.5}))
    ids = torch.randint(0, 100, (1, 4))
    a = generate(model, ids, 10, temperature=0)
    assert model.training
    assert torch.equal(a, generate(model.eval(), ids, 10, temperature=0))


@pytest.mark.parametrize("kwargs, match", [
    (dict(temperature=-0.5), "temperature must be >= 0.*-0.5"),
    (dict(top_p=0.0), r"top_p must be None or in \(0, 1\].*0.0"),
    (dict(top_p=1.5), "top_p.*1.5"),
    (dict(top_k=0), "top_k must be None or an int >= 1.*0"),
    (dict(max_new_tokens=-1), "max_new_tokens.*-1"),
])
def test_bad_arguments(model, kwargs, match):
    kwargs = {"max_new_tokens": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        generate(model, [1, 2], **kwargs)


def test_bad_prompts(model):
    with pytest.raises(ValueError, match="non-empty prompt"):
        generate(model, [], 3)
    with pytest.raises(ValueError, match=r"\[0, 100\).*max 100"):
        generate(model, [1, 100], 3)
    ids = torch.tensor([[1, 2, 3], [4, 5, 0]])
    with pytest.raises(ValueError, match="LEFT"):
        generate(model, ids, 3, attention_mask=torch.tensor([[1, 1, 1], [1, 1, 0]]))


def test_sampling_settings_as_one_object_give_the_same_tokens(model):
    ids = torch.tensor([[5, 6, 7]])
    assert torch.equal(generate(model, ids, 6, sampling=Sampling(temperature=0.8, top_k=5, seed=3)),
                       generate(model, ids, 6, temperature=0.8, top_k=5, seed=3))
    with pytest.raises(ValueError, match="top_k must be None or an int >= 1, got True"):
        Sampling(top_k=True)
