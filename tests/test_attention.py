"""Attention: parity with PyTorch's kernels and nn.MultiheadAttention, KV cache, causality, gradients, errors.

Each parity check prints ``PARITY <name> <max abs diff>`` (see them with ``pytest -s``) so the closing
note can quote the tolerances actually achieved.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from llmguide.attention import (
    KVCache,
    MultiHeadAttention,
    attention,
    causal_mask,
    combine_masks,
    padding_mask,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def assert_parity(name: str, actual: torch.Tensor, expected: torch.Tensor, atol: float, rtol: float = 0.0):
    diff = (actual - expected).abs().max().item()
    print(f"PARITY {name} {diff:.3g}")
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol)


def qkv(B=2, nh=3, T=5, S=None, hs=8, dtype=torch.float32, device="cpu"):
    S = T if S is None else S
    return (torch.randn(B, nh, T, hs, dtype=dtype, device=device),
            torch.randn(B, nh, S, hs, dtype=dtype, device=device),
            torch.randn(B, nh, S, hs, dtype=dtype, device=device))


# Right padding: every query row still sees key 0, so no row is fully masked (SDPA and nn.MultiheadAttention
# would give NaN on such rows, which are tested separately).
RIGHT_PAD = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
LEFT_PAD = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])


@pytest.mark.parametrize("kind", ["none", "causal", "padding", "causal+padding"])
def test_explicit_matches_sdpa(kind):
    q, k, v = qkv()
    causal = causal_mask(5) if "causal" in kind else None
    pad = padding_mask(RIGHT_PAD) if "padding" in kind else None
    mask = combine_masks(causal, pad)
    out, weights = attention(q, k, v, mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert_parity(f"explicit_vs_sdpa[{kind}]", out, ref, atol=1e-6)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 5))  # each row is a distribution
    if mask is not None:
        assert (weights[~mask.expand_as(weights)] == 0).all()  # blocked keys get exactly zero weight


def test_explicit_matches_sdpa_is_causal_with_cache_offset():
    # 3 new queries after 4 cached keys: query i sits at absolute position 4 + i.
    q, k, v = qkv(T=3, S=7)
    out, _ = attention(q, k, v, causal_mask(3, 7))
    full_q = torch.cat([torch.randn(2, 3, 4, 8), q], dim=2)  # pretend the 4 cached queries exist
    ref = F.scaled_dot_product_attention(full_q, k, v, is_causal=True)[:, :, 4:]
    assert_parity("explicit_vs_sdpa[causal, cache offset]", out, ref, atol=1e-6)


def test_additive_mask_equals_bool_mask():
    q, k, v = qkv()
    mask = combine_masks(causal_mask(5), padding_mask(RIGHT_PAD))
    additive = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))
    out_bool, w_bool = attention(q, k, v, mask)
    out_add, w_add = attention(q, k, v, additive)
    assert_parity("additive_vs_bool", out_add, out_bool, atol=0.0)
    torch.testing.assert_close(w_add, w_bool, atol=0.0, rtol=0.0)


def test_causal_mask_offset_is_the_tail_of_the_full_mask():
    full = causal_mask(7)
    assert torch.equal(full, torch.tril(torch.ones(7, 7, dtype=torch.bool)))
    for T in range(8):
        assert torch.equal(causal_mask(T, 7), full[7 - T:])


def _torch_mha(mha: MultiHeadAttention) -> torch.nn.MultiheadAttention:
    ref = torch.nn.MultiheadAttention(mha.n_embd, mha.n_head, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(mha.c_attn.weight)  # both are (3C, C), rows ordered q, k, v
        ref.in_proj_bias.copy_(mha.c_attn.bias)
        ref.out_proj.weight.copy_(mha.c_proj.weight)
        ref.out_proj.bias.copy_(mha.c_proj.bias)
    return ref.eval()


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("padded", [False, True])
def test_mha_matches_torch_multihead_attention(tiny, causal, padded):
    mha = MultiHeadAttention(tiny["n_embd"], tiny["n_head"], causal=causal).eval()
    ref = _torch_mha(mha)
    x = torch.randn(2, 5, tiny["n_embd"])
    am = RIGHT_PAD if padded else None
    y, weights = mha(x, attention_mask=am, need_weights=True)
    y_fast, _ = mha(x, attention_mask=am)
    # torch's bool masks mean the opposite: True = NOT allowed
    y_ref, w_ref = ref(x, x, x, attn_mask=~causal_mask(5) if causal else None,
                       key_padding_mask=(am == 0) if padded else None, average_attn_weights=False)
    name = f"mha_vs_torch[causal={causal}, padded={padded}]"
    assert_parity(name + " explicit", y, y_ref, atol=1e-6)
    assert_parity(name + " sdpa", y_fast, y_ref, atol=1e-6)
    assert_parity(name + " weights", weights, w_ref, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", ["plain", "causal", "left-padded", "not causal, padded", "cache offset"])
def test_fast_path_equals_explicit_path(tiny, case, device):
    mha = MultiHeadAttention(tiny["n_embd"], tiny["n_head"], causal=case != "not causal, padded").to(device)
    x = torch.randn(2, 5, tiny["n_embd"], device=device, requires_grad=True)
    am = LEFT_PAD.to(device) if "padded" in case else None
    if case == "plain":
        mha.causal = False
    cache_fast = cache_slow = None
    if case == "cache offset":
        cache_fast, cache_slow = KVCache(8), KVCache(8)
        prefix = torch.randn(2, 3, tiny["n_embd"], device=device)
        mha(prefix, kv_cache=cache_fast)
        mha(prefix, kv_cache=cache_slow)
    y_fast, w = mha(x, attention_mask=am, kv_cache=cache_fast)
    y_slow, _ = mha(x, attention_mask=am, kv_cache=cache_slow, need_weights=True)
    assert w is None
    atol = 1e-6 if device == "cpu" else 1e-5  # GPU matmuls may use TF32-like reduced precision paths
    assert_parity(f"fast_vs_explicit[{case}, {device}]", y_fast, y_slow, atol=atol)
    g_fast, = torch.autograd.grad(y_fast.sum(), x)
    g_slow, = torch.autograd.grad(y_slow.sum(), x)
    assert torch.isfinite(g_fast).all()
    assert_parity(f"fast_vs_explicit_grad[{case}, {device}]", g_fast, g_slow, atol=10 * atol)


@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("chunks", [(1, 1, 1, 1, 1, 1, 1), (3, 1, 3), (2, 5)])
@pytest.mark.parametrize("padded", [False, True])
def test_kv_cache_equals_full_recompute(tiny, need_weights, chunks, padded):
    mha = MultiHeadAttention(tiny["n_embd"], tiny["n_head"]).eval()
    T = sum(chunks)
    x = torch.randn(2, T, tiny["n_embd"])
    am = torch.ones(2, T, dtype=torch.long)
    if padded:
        am[0, :2] = 0  # left padding, as in batched generation
    full, _ = mha(x, attention_mask=am if padded else None)
    cache, outs, start = KVCache(T), [], 0
    for n in chunks:
        y, _ = mha(x[:, start:start + n], attention_mask=am[:, :start + n] if padded else None,
                   kv_cache=cache, need_weights=need_weights)
        outs.append(y)
        start += n
    assert len(cache) == T
    name = f"kv_cache[chunks={chunks}, padded={padded}, need_weights={need_weights}]"
    assert_parity(name, torch.cat(outs, dim=1), full, atol=1e-6)


@pytest.mark.parametrize("need_weights", [False, True])
def test_causality_later_tokens_do_not_change_earlier_outputs(tiny, need_weights):
    mha = MultiHeadAttention(tiny["n_embd"], tiny["n_head"]).eval()
    x = torch.randn(2, 8, tiny["n_embd"])
    for t in range(7):
        x2 = x.clone()
        x2[:, t + 1:] = torch.randn(2, 7 - t, tiny["n_embd"])
        y, _ = mha(x, need_weights=need_weights)
        y2, _ = mha(x2, need_weights=need_weights)
        assert_parity(f"causality[t={t}, need_weights={need_weights}]", y2[:, :t + 1], y[:, :t + 1], atol=1e-6)
        assert not torch.allclose(y2[:, t + 1:], y[:, t + 1:])  # and the later ones did change


def test_non_causal_module_does_see_the_future(tiny):
    mha = MultiHeadAttention(tiny["n_embd"], tiny["n_head"], causal=False).eval()
    x = torch.randn(1, 4, tiny["n_embd"])
    x2 = x.clone()
    x2[:, -1] += 1.0
    assert not torch.allclose(mha(x)[0][:, 0], mha(x2)[0][:, 0])


@pytest.mark.parametrize("kind", ["none", "causal+padding", "additive"])
def test_gradcheck_explicit_path_float64(kind):
    # small sizes: gradcheck perturbs every input element one at a time
    q, k, v = (t.requires_grad_() for t in qkv(B=2, nh=1, T=3, hs=2, dtype=torch.float64))
    mask = None
    if kind == "causal+padding":  # includes a fully masked row (left padding): its gradient is exactly 0
        mask = combine_masks(causal_mask(3), padding_mask(torch.tensor([[0, 1, 1], [1, 1, 1]])))
    elif kind == "additive":
        mask = torch.randn(1, 1, 3, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda q, k, v: attention(q, k, v, mask), (q, k, v))


@pytest.mark.parametrize("need_weights", [False, True])
def test_permutation_equivariance_without_causal_mask(tiny, need_weights):
    mha = MultiHeadAttention(tiny["n_embd"], tiny["n_head"], causal=False).eval()
    x = torch.randn(2, 6, tiny["n_embd"])
    am = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    perm = torch.randperm(6)
    y, _ = mha(x, attention_mask=am, need_weights=need_weights)
    y_perm, _ = mha(x[:, perm], attention_mask=am[:, perm], need_weights=need_weights)
    assert_parity(f"permutation[need_weights={need_weights}]", y_perm, y[:, perm], atol=1e-6)


def test_fully_masked_rows_give_zeros_and_finite_gradients():
    q, k, v = (t.requires_grad_() for t in qkv(T=4))
    mask = torch.ones(2, 1, 4, 4, dtype=torch.bool)
    mask[0, :, 1] = False  # query 1 of sequence 0 may see nothing
    out, weights = attention(q, k, v, mask)
    assert (out[0, :, 1] == 0).all() and (weights[0, :, 1] == 0).all()
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))
    assert (q.grad[0, :, 1] == 0).all()  # nothing flows through a query that sees nothing


@pytest.mark.parametrize("need_weights", [False, True])
def test_left_padded_batch_has_no_nan_in_module(tiny, need_weights):
    mha = MultiHeadAttention(tiny["n_embd"], tiny["n_head"])
    x = torch.randn(2, 5, tiny["n_embd"], requires_grad=True)
    y, _ = mha(x, attention_mask=LEFT_PAD, need_weights=need_weights)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y[0, :2], mha.c_proj.bias.expand(2, -1))  # pad queries: zero attention output
    y.sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(mha.c_attn.weight.grad).all()


def test_dropout_only_in_training(tiny):
    mha = MultiHeadAttention(tiny["n_embd"], tiny["n_head"], dropout=0.5)
    x = torch.randn(2, 5, tiny["n_embd"])
    mha.eval()
    y1, w1 = mha(x, need_weights=True)
    y2, _ = mha(x)
    assert_parity("dropout eval explicit_vs_fast", y1, y2, atol=1e-6)
    torch.testing.assert_close(w1.sum(-1), torch.ones(2, tiny["n_head"], 5))
    mha.train()
    y3, w3 = mha(x, need_weights=True)
    assert not torch.allclose(y3, y1)
    assert ((w3 == 0) & (w1 > 0)).any()  # some attention weights were dropped


def test_kv_cache_update_and_len():
    cache = KVCache(8)
    assert len(cache) == 0 and cache.k is None
    k, v = torch.randn(2, 4, 3, 8), torch.randn(2, 4, 3, 8)
    cache.update(k, v)
    k_all, v_all = cache.update(k[:, :, :1], v[:, :, :1])
    assert len(cache) == 4 and torch.equal(k_all[:, :, 3], k[:, :, 0]) and torch.equal(v_all[:, :, :3], v)


def test_kv_cache_is_one_preallocated_buffer():
    # Appends write into the buffer reserved at the first update (no copy of the whole cache per token); it
    # never grows, and one position too many is an error that says what to do.
    cache = KVCache(max_len=7)
    ks, vs = torch.randn(2, 3, 7, 5), torch.randn(2, 3, 7, 5)
    cache.update(ks[:, :, :3], vs[:, :, :3])
    buffer = cache._k
    assert buffer.shape == (2, 3, 7, 5)
    cache.update(ks[:, :, 3:4], vs[:, :, 3:4])
    k_all, v_all = cache.update(ks[:, :, 4:], vs[:, :, 4:])
    assert cache._k is buffer  # every position went into the reserved buffer
    assert len(cache) == 7 and torch.equal(k_all, ks) and torch.equal(v_all, vs)
    assert repr(cache) == "KVCache(len=7, k_shape=(2, 3, 7, 5))"
    with pytest.raises(ValueError, match="KVCache is full: 7 cached \\+ 1 new positions exceed max_len=7"):
        cache.update(ks[:, :, :1], vs[:, :, :1])
    with pytest.raises(ValueError, match="max_len must be an int >= 1"):
        KVCache(max_len=0)


# ---- errors that say what to fix ---------------------------------------------------------------------------

def test_n_embd_not_divisible_by_n_head():
    with pytest.raises(ValueError, match=r"n_embd=32 is not divisible by n_head=5.*n_head=4 or 8"):
        MultiHeadAttention(32, 5)
    with pytest.raises(ValueError, match="positive"):
        MultiHeadAttention(32, 0)
    with pytest.raises(ValueError, match="dropout"):
        MultiHeadAttention(32, 4, dropout=1.0)


def test_mismatched_shapes():
    q, k, v = qkv()
    with pytest.raises(ValueError, match="same head size.*q .*k "):
        attention(q, k[..., :4], v)
    with pytest.raises(ValueError, match="k and v"):
        attention(q, k, v[:, :, :3])
    with pytest.raises(ValueError, match="batch and head"):
        attention(q[:1], k, v)
    with pytest.raises(ValueError, match="same number of dims"):
        attention(q[0], k, v)
    mha = MultiHeadAttention(32, 4)
    with pytest.raises(ValueError, match=r"C = n_embd = 32.*\(2, 5, 16\)"):
        mha(torch.randn(2, 5, 16))
    cache = KVCache(16)
    cache.update(k, v)
    with pytest.raises(ValueError, match="B, nh and hs must match"):
        cache.update(k[:1], v[:1])
    with pytest.raises(ValueError, match="same shape"):
        cache.update(k, v[..., :4])


def test_mask_of_the_wrong_shape():
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"mask of shape \(4, 4\) does not broadcast.*\(2, 3, 5, 5\)"):
        attention(q, k, v, causal_mask(4))
    with pytest.raises(ValueError, match="bool"):
        attention(q, k, v, causal_mask(5).long())
    mha = MultiHeadAttention(32, 4)
    with pytest.raises(ValueError, match=r"attention_mask must be \(B, S\) = \(2, 5\)"):
        mha(torch.randn(2, 5, 32), attention_mask=torch.ones(2, 4))
    cache = KVCache(8)
    mha(torch.randn(2, 3, 32), kv_cache=cache)
    with pytest.raises(ValueError, match=r"\(2, 5\) covering the 3 cached and 2 new"):
        mha(torch.randn(2, 2, 32), attention_mask=torch.ones(2, 2), kv_cache=cache)
    with pytest.raises(ValueError, match="0 <= T <= S"):
        causal_mask(5, 3)
    with pytest.raises(ValueError, match=r"\(B, S\)"):
        padding_mask(torch.ones(5))
    with pytest.raises(ValueError, match="only 0"):
        padding_mask(torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match="bool masks"):
        combine_masks(causal_mask(3), torch.ones(3, 3))
    assert combine_masks(None, None) is None
