"""Interpretability tools: hooks, logit lens, direct logit attribution, patching, attributions, probes,
induction heads. Each tool is checked against an identity it must satisfy or against Captum."""

from __future__ import annotations

import pytest
import torch

from llmguide import GPT, GPTClassifier, GPTConfig
from llmguide.attribution import (
    completeness_gap,
    gradient_x_input,
    integrated_gradients,
    logit_from_embeddings,
    occlusion,
    quadrature,
)
from llmguide.induction import (
    ablate_heads,
    ablation_losses,
    half_losses,
    hf_logit_lens,
    induction_scores,
    repeated_tokens,
    top_heads,
)
from llmguide.interpret import (
    direct_logit_attribution,
    hooks,
    logit_lens,
    patch_positions,
    pooled_residuals,
    probe_accuracy,
    residual_patching,
    run_with_hooks,
    zero_heads,
)
from llmguide.pretrain import load_model_folder, review_lm_dir

ORDER_T = 10  # length of the order task's sequences
TINY = dict(vocab_size=100, block_size=16, n_layer=2, n_head=4, n_embd=32)  # as conftest's `tiny` (module scope)


def _all_hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.fixture
def gpt(tiny, seed) -> GPT:
    return GPT(GPTConfig(**tiny)).eval()


@pytest.fixture(scope="module")
def review_gpt():
    model, tok, _ = load_model_folder(review_lm_dir())
    return model, tok


def order_task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random tokens with one 1 and one 2; label 1 when the 1 comes first. Mean-pooled embeddings cannot
    tell (a sum does not see order), so a probe needs what a trained model computed."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(3, 100, (n, ORDER_T), generator=g)
    pos = torch.stack([torch.randperm(ORDER_T, generator=g)[:2] for _ in range(n)])
    idx[torch.arange(n), pos[:, 0]] = 1
    idx[torch.arange(n), pos[:, 1]] = 2
    return idx, (pos[:, 0] < pos[:, 1]).long()


@pytest.fixture(scope="module")
def order_classifier():
    """A tiny GPTClassifier trained (~100 steps) on :func:`order_task`; 100% held-out accuracy."""
    torch.manual_seed(0)
    clf = GPTClassifier(GPT(GPTConfig(**TINY)), 2)
    opt = torch.optim.AdamW(clf.parameters(), lr=3e-3)
    X, y = order_task(2000, seed=0)
    for _ in range(120):
        b = torch.randint(0, len(X), (32,))
        loss = clf(X[b], labels=y[b])[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return clf.eval()


# ---------------------------------------------------------------- hooks

def test_hooks_change_nothing(gpt):
    idx = torch.randint(0, 100, (3, 12))
    am = torch.ones_like(idx)
    am[0, :4] = 0  # left padding
    for kwargs in ({}, {"attention_mask": am}):
        ref = gpt(idx, **kwargs, all_logits=True)[0]
        logits, rec = run_with_hooks(gpt, idx, **kwargs)
        assert torch.equal(logits, ref), (logits - ref).abs().max()
    clf = GPTClassifier(gpt, 2).eval()
    assert torch.equal(run_with_hooks(clf, idx)[0], clf(idx)[0])
    assert _all_hooks(gpt) == 0


def test_hooks_removed_on_exit_even_on_error(gpt):
    idx = torch.randint(0, 100, (1, 8))
    with pytest.raises(RuntimeError, match="boom"):
        with hooks(gpt) as rec:
            gpt(idx)
            assert _all_hooks(gpt) == 6 * gpt.config.n_layer
            raise RuntimeError("boom")
    assert _all_hooks(gpt) == 0
    assert "resid_post.1" in rec.acts  # what was recorded before the error is kept


def test_recording_sites_and_shapes(gpt):
    idx = torch.randint(0, 100, (2, 9))
    _, rec = run_with_hooks(gpt, idx)
    L, nh, C = gpt.config.n_layer, gpt.config.n_head, gpt.config.n_embd
    assert rec.residuals().shape == (L + 1, 2, 9, C)
    for i in range(L):
        assert rec[f"head_out.{i}"].shape == (2, 9, nh, C // nh)
        # the residual stream is only added to: x_out = x_in + attn_out + mlp_out
        x = rec[f"resid_pre.{i}"] + rec[f"attn_out.{i}"] + rec[f"mlp_out.{i}"]
        torch.testing.assert_close(rec[f"resid_post.{i}"], x, atol=1e-6, rtol=0)
    assert torch.equal(rec["resid_pre.1"], rec["resid_post.0"])
    with pytest.raises(KeyError, match="was not recorded"):
        rec["resid_post.7"]


@pytest.mark.parametrize("padded", [False, True])
def test_recomputed_attention_weights_reproduce_head_outputs(gpt, padded):
    idx = torch.randint(0, 100, (3, 12))
    am = torch.ones_like(idx)
    if padded:
        am[0, :5] = 0
    _, rec = run_with_hooks(gpt, idx, attention_mask=am if padded else None)
    for i in range(gpt.config.n_layer):
        w = rec.attention(i)  # (B, nh, T, T)
        assert w.shape == (3, 4, 12, 12)
        assert torch.equal(w.triu(1), torch.zeros_like(w))  # causal: nothing from the future
        y = (w @ rec.values(i)).transpose(1, 2)  # (B, T, nh, hs)
        real = am.bool()[:, :, None, None].expand_as(y)  # padded queries see nothing: their output is 0 both ways
        torch.testing.assert_close(y[real], rec[f"head_out.{i}"][real], atol=1e-6, rtol=0)
        rows = w.sum(-1)[am.bool()[:, None, :].expand(-1, 4, -1)]
        torch.testing.assert_close(rows, torch.ones_like(rows), atol=1e-6, rtol=0)


def test_edits_replace_activations(gpt):
    idx = torch.randint(0, 100, (2, 8))
    ref, _ = run_with_hooks(gpt, idx)
    out, rec = run_with_hooks(gpt, idx, {"head_out.0": zero_heads(range(4))})
    # every head zeroed: the attention sublayer writes only c_proj's bias
    bias = gpt.transformer.h[0].attn.c_proj.bias
    torch.testing.assert_close(rec["attn_out.0"], bias.expand(2, 8, -1), atol=1e-7, rtol=0)
    assert not torch.allclose(out, ref)
    one, _ = run_with_hooks(gpt, idx, {"head_out.1": zero_heads([2])})
    assert not torch.allclose(one, ref) and not torch.allclose(one, out)
    with pytest.raises(ValueError, match="unknown hook site"):
        run_with_hooks(gpt, idx, {"resid_post.9": lambda x: x})
    with pytest.raises(ValueError, match="returned shape"):
        run_with_hooks(gpt, idx, {"mlp_out.0": lambda x: x[:, :1]})
    assert _all_hooks(gpt) == 0


# ---------------------------------------------------------------- logit lens and DLA (on the shipped review GPT)

def _review_ids(tok, text="这个手机很好用，质量不错"):
    return torch.tensor([tok.encode(text)])


def test_logit_lens_last_layer_equals_logits(review_gpt):
    model, tok = review_gpt
    idx = _review_ids(tok)
    ref = model(idx, all_logits=True)[0]
    _, rec = run_with_hooks(model, idx)
    lens = logit_lens(model, rec)
    assert lens.shape == (model.config.n_layer + 1, *ref.shape)
    assert (lens[-1] - ref).abs().max() < 1e-5
    assert (lens[0] - ref).abs().max() > 1.0  # the embeddings alone predict something else


def test_direct_logit_attribution_sums_to_logit_difference(review_gpt):
    model, tok = review_gpt
    idx = _review_ids(tok)
    a, b = tok.encode("好")[0], tok.encode("差")[0]
    with torch.no_grad():
        ref = model(idx)[0][:, -1]
    _, rec = run_with_hooks(model, idx)
    dla = direct_logit_attribution(model, rec, a, b)
    L, nh = model.config.n_layer, model.config.n_head
    assert dla.heads.shape == (1, L, nh) and dla.mlp.shape == (1, L)
    parts = dla.embed + dla.heads.sum((1, 2)) + dla.attn_bias.sum(1) + dla.mlp.sum(1) + dla.ln_bias
    assert abs(float(parts[0]) - float(ref[0, a] - ref[0, b])) < 1e-5
    assert abs(float(dla.total[0]) - float(ref[0, a] - ref[0, b])) < 1e-5


# ---------------------------------------------------------------- activation patching

def test_patching_everything_restores_clean_and_nothing_changes_nothing(review_gpt):
    model, tok = review_gpt
    clean, bad = _review_ids(tok, "质量很好，推荐购买"), _review_ids(tok, "质量很差，推荐购买")
    assert clean.shape == bad.shape and (clean != bad).sum() == 1
    clean_logits, rec = run_with_hooks(model, clean)
    bad_logits, _ = run_with_hooks(model, bad)
    L = model.config.n_layer
    for site in ("resid_pre.0", f"resid_post.{L - 1}", "resid_post.1"):
        patched, _ = run_with_hooks(model, bad, {site: patch_positions(rec[site])})
        assert torch.equal(patched, clean_logits), site
    assert torch.equal(run_with_hooks(model, bad, {})[0], bad_logits)

    a, b = tok.encode("好")[0], tok.encode("差")[0]
    grid = residual_patching(model, clean, bad, lambda lg: lg[0, -1, a] - lg[0, -1, b])
    changed = int((clean != bad).nonzero()[0, 1])
    assert grid.shape == (L + 1, clean.size(1))
    assert abs(float(grid[0, changed]) - 1) < 1e-6  # the only differing embedding: the runs become identical
    others = [t for t in range(clean.size(1)) if t != changed]
    assert torch.equal(grid[0, others], torch.zeros(len(others)))  # equal embeddings: patching changes nothing
    assert abs(float(grid[-1, -1]) - 1) < 1e-6  # the last position after the last block is the whole answer
    assert torch.equal(grid[1:, :changed], torch.zeros(L, changed))  # causal: before the change, nothing differs


# ---------------------------------------------------------------- attribution vs Captum

def test_quadrature_rules():
    for method in ("gausslegendre", "riemann_middle", "riemann_trapezoid"):
        a, w = quadrature(20, method)
        assert abs(float(w.sum()) - 1) < 1e-12 and a.min() >= 0 and a.max() <= 1
    a, w = quadrature(5, "gausslegendre")
    assert abs(float((w * a**9).sum()) - 0.1) < 1e-12  # exact up to degree 2n - 1
    a, w = quadrature(5, "riemann_trapezoid")
    assert abs(float((w * a).sum()) - 0.5) < 1e-12  # exact for straight lines
    with pytest.raises(ValueError, match="n_steps"):
        quadrature(1)
    with pytest.raises(ValueError, match="unknown method"):
        quadrature(8, "simpson")


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_middle"])
def test_integrated_gradients_match_captum(order_classifier, method):
    captum_attr = pytest.importorskip("captum.attr")
    clf = order_classifier
    idx, _ = order_task(3, seed=5)
    wte = clf.gpt.transformer.wte
    ours = integrated_gradients(clf, idx, target=1, baseline_id=0, n_steps=24, method=method, steps_per_batch=7)

    def from_emb(emb):  # Captum repeats the batch along the path: repeat the ids to match
        return logit_from_embeddings(clf, idx.repeat(emb.size(0) // idx.size(0), 1), emb, 1)

    e, e0 = wte(idx).detach(), wte(torch.zeros_like(idx)).detach()
    ref = captum_attr.IntegratedGradients(from_emb).attribute(e, baselines=e0, n_steps=24, method=method)
    assert (ours - ref).abs().max() < 1e-5
    lig = captum_attr.LayerIntegratedGradients(lambda ids: clf(ids)[0], wte)
    ref2 = lig.attribute(idx, baselines=torch.zeros_like(idx), target=1, n_steps=24, method=method)
    assert (ours - ref2).abs().max() < 1e-5


def test_gradient_x_input_and_occlusion_match_captum(order_classifier):
    captum_attr = pytest.importorskip("captum.attr")
    clf = order_classifier
    idx, _ = order_task(3, seed=6)
    e = clf.gpt.transformer.wte(idx).detach()
    ref = captum_attr.InputXGradient(
        lambda emb: logit_from_embeddings(clf, idx, emb, 0)).attribute(e.clone().requires_grad_(True))
    assert (gradient_x_input(clf, idx, 0) - ref).abs().max() < 1e-5
    # occlusion = ablating one position's token, Captum's FeatureAblation with one feature per position
    mask = torch.arange(idx.size(1)).expand_as(idx)
    ref_occ = captum_attr.FeatureAblation(lambda ids: clf(ids)[0]).attribute(
        idx, baselines=0, target=0, feature_mask=mask)
    assert (occlusion(clf, idx, 0, baseline_id=0) - ref_occ).abs().max() < 1e-5


def test_integrated_gradients_completeness(review_gpt, order_classifier):
    model, tok = review_gpt
    torch.manual_seed(0)
    clf = GPTClassifier(model, 2).eval()
    for text in ("质量很好，推荐购买", "物流太慢了，包装也破了，不会再买"):
        idx = _review_ids(tok, text)
        attr = integrated_gradients(clf, idx, target=0, baseline_id=0, n_steps=32)
        assert completeness_gap(clf, idx, 0, 0, attr).max() < 0.01  # sums to f(x) - f(baseline) within 1%
    # The trained order classifier is saturated: its path from the baseline crosses a sharp step, and one
    # text needs ~128 points for 1% (32 Gauss-Legendre points leave ~50%); the check must be made per model.
    idx, _ = order_task(4, seed=7)
    gaps = [completeness_gap(order_classifier, idx, 1, 0, integrated_gradients(
        order_classifier, idx, 1, 0, n_steps=n, method="riemann_middle", steps_per_batch=64)).max() for n in (16, 128)]
    assert gaps[1] < 0.01 < gaps[0], gaps


# ---------------------------------------------------------------- probes

def test_probe_on_trained_model_beats_random_control(order_classifier, tiny):
    X, y = order_task(500, seed=1)
    train_mask = (torch.arange(500) < 350).tolist()
    trained = probe_accuracy(pooled_residuals(order_classifier, X), y.tolist(), train_mask)
    torch.manual_seed(1)
    random_model = GPTClassifier(GPT(GPTConfig(**tiny)), 2).eval()
    control = probe_accuracy(pooled_residuals(random_model, X), y.tolist(), train_mask)
    assert len(trained) == len(control) == tiny["n_layer"] + 1
    assert trained[-1] > 0.95 and control[-1] < 0.8, (trained, control)
    assert trained[0] < 0.7  # pooled embeddings cannot see order, trained or not
    with pytest.raises(ValueError, match="train_mask"):
        probe_accuracy(pooled_residuals(random_model, X[:10]), y[:10].tolist(), [True] * 10)


# ---------------------------------------------------------------- induction heads (SmolLM2-135M, offline)

@pytest.fixture(scope="module")
def smollm():
    from llmguide.pretrained import load_pretrained_lm

    try:
        model, _ = load_pretrained_lm(source="package")
    except FileNotFoundError as err:
        pytest.skip(f"SmolLM2 carrier not installed: {err}")
    return model


def test_induction_heads_in_smollm2(smollm):
    ids = repeated_tokens(smollm.config.vocab_size, half=12, batch=2, seed=0)
    first, second = half_losses(smollm, ids)
    assert second < 0.5 * first, (first, second)  # the repeat is predictable only by copying
    scores = induction_scores(smollm, ids)
    assert scores.shape == (smollm.config.num_hidden_layers, smollm.config.num_attention_heads)
    assert scores.max() > 0.5  # some head looks mostly at the token to copy
    heads = top_heads(scores, 5)
    clean, top, rand = ablation_losses(smollm, ids, heads, n_random=2)
    assert top > max(rand) and top > clean + 0.5, (clean, top, rand)
    before = sum(len(m._forward_pre_hooks) for m in smollm.modules())
    with pytest.raises(RuntimeError), ablate_heads(smollm, heads):
        raise RuntimeError
    assert sum(len(m._forward_pre_hooks) for m in smollm.modules()) == before
    with pytest.raises(ValueError, match="out of range"):
        with ablate_heads(smollm, [(99, 0)]):
            pass


def test_hf_logit_lens_last_layer_equals_logits(smollm):
    ids = repeated_tokens(smollm.config.vocab_size, half=4, batch=1, seed=1)
    before = sum(len(m._forward_hooks) for m in smollm.modules())  # HF may keep hooks of its own
    lens = hf_logit_lens(smollm, ids)
    with torch.no_grad():
        ref = smollm(ids).logits
    assert lens.shape == (smollm.config.num_hidden_layers, *ref.shape)
    assert (lens[-1] - ref).abs().max() < 1e-5
    assert sum(len(m._forward_hooks) for m in smollm.modules()) == before
