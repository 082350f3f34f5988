"""GPT model: config checks, invariants, parity with a randomly initialised Hugging Face GPT-2 both ways."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import pytest
import torch
from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

from llmguide.attention import KVCache
from llmguide.download import OfflineError
from llmguide.model import GPT, PRESETS, GPTClassifier, GPTConfig, positions_from_mask

ATOL = 1e-5  # the parity target for logits


pytestmark = pytest.mark.usefixtures("one_thread")



def hf_gpt2(tiny: dict, attn: str = "eager", seed: int = 0, **extra) -> GPT2LMHeadModel:
    """A tiny, randomly initialised HF GPT-2 (no download)."""
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=tiny["vocab_size"], n_positions=tiny["block_size"], n_embd=tiny["n_embd"],
                        n_layer=tiny["n_layer"], n_head=tiny["n_head"], bos_token_id=None, eos_token_id=None,
                        **extra)
    config._attn_implementation = attn
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # non-trivial LayerNorm and bias values, so a mix-up of any of them shows
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


# ---- config ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [("n_layer", 0), ("n_head", -1), ("vocab_size", 2.5),
                                          ("block_size", True), ("dropout", 1.0), ("bias", 1)])
def test_config_rejects_bad_values_naming_them(tiny, field, value):
    with pytest.raises(ValueError, match=field):
        GPTConfig(**{**tiny, field: value})


def test_config_heads_must_divide_width(tiny):
    with pytest.raises(ValueError, match="n_embd=30 must be divisible by n_head=4"):
        GPTConfig(**{**tiny, "n_embd": 30})


def test_presets(tiny):
    cpu = GPTConfig.from_preset("cpu", vocab_size=200)
    assert (cpu.n_layer, cpu.n_head, cpu.n_embd, cpu.block_size, cpu.vocab_size) == (4, 4, 128, 128, 200)
    gpu = GPTConfig.from_preset("gpu")
    assert (gpu.n_layer, gpu.n_head, gpu.n_embd, gpu.block_size, gpu.dropout) == (6, 6, 384, 256, 0.2)
    assert asdict(GPTConfig.from_preset("gpt2")) == asdict(GPTConfig())  # the defaults are GPT-2 124M
    assert set(PRESETS) == {"cpu", "gpu", "gpt2"}
    with pytest.raises(ValueError, match="'huge'"):
        GPTConfig.from_preset("huge")
    with pytest.raises(ValueError, match="n_layers"):
        GPTConfig.from_preset("cpu", n_layers=3)


# ---- the model ------------------------------------------------------------------------------------------

def test_forward_shapes_and_initial_loss(tiny, seed):
    model = GPT(GPTConfig(**tiny))
    idx = torch.randint(0, tiny["vocab_size"], (3, tiny["block_size"]))
    targets = torch.randint(0, tiny["vocab_size"], (3, tiny["block_size"]))
    logits, loss = model(idx, targets)
    assert logits.shape == (3, tiny["block_size"], tiny["vocab_size"])
    # small init: the model starts close to uniform, loss ≈ ln(V)
    assert abs(loss.item() - math.log(tiny["vocab_size"])) < 0.1
    assert model(idx)[1] is None


def test_without_targets_only_the_last_position_gets_logits(tiny, seed):
    # nanoGPT's contract: generation needs the last position only; all_logits=True asks for every position.
    model = GPT(GPTConfig(**tiny)).eval()
    idx = torch.randint(0, tiny["vocab_size"], (3, 10))
    last, loss = model(idx)
    every, _ = model(idx, all_logits=True)
    assert last.shape == (3, 1, tiny["vocab_size"]) and every.shape == (3, 10, tiny["vocab_size"]) and loss is None
    torch.testing.assert_close(last, every[:, -1:], atol=1e-6, rtol=0)


def test_ignored_targets_leave_the_loss_of_the_rest(tiny, seed):
    model = GPT(GPTConfig(**tiny)).eval()
    idx = torch.randint(0, tiny["vocab_size"], (2, 8))
    targets = torch.randint(0, tiny["vocab_size"], (2, 8))
    masked = targets.clone()
    masked[:, :5] = -100
    logits, loss = model(idx, masked)
    expected = torch.nn.functional.cross_entropy(logits[:, 5:].flatten(0, 1), targets[:, 5:].flatten())
    torch.testing.assert_close(loss, expected)


def test_weights_tied_and_gpt2_init(seed):
    config = GPTConfig(vocab_size=1000, block_size=64, n_layer=8, n_head=4, n_embd=256)
    model = GPT(config)
    assert model.lm_head.weight is model.transformer.wte.weight
    h0 = model.transformer.h[0]
    assert abs(h0.attn.c_attn.weight.std().item() - 0.02) < 0.002
    # residual projections are scaled by 1/sqrt(2 * n_layer)
    assert abs(h0.mlp.c_proj.weight.std().item() - 0.02 / math.sqrt(16)) < 0.001
    assert abs(h0.attn.c_proj.weight.std().item() - 0.02 / math.sqrt(16)) < 0.001
    assert torch.all(h0.mlp.c_fc.bias == 0) and torch.all(h0.ln_1.weight == 1)


def test_num_params_matches_hf_and_the_12_L_C2_rule(tiny):
    model = GPT(GPTConfig(**tiny))
    hf = hf_gpt2(tiny)
    assert model.num_params() == sum(p.numel() for p in hf.parameters())
    L, C, V, P = tiny["n_layer"], tiny["n_embd"], tiny["vocab_size"], tiny["block_size"]
    # per block: 12 C² weights + 13 C biases and LayerNorm parameters; plus the final LayerNorm
    assert model.num_params(non_embedding=True) == L * (12 * C * C + 13 * C) + 2 * C
    assert model.num_params() == model.num_params(non_embedding=True) + V * C + P * C


def test_gpt2_preset_has_124M_parameters():
    with torch.device("meta"):  # shapes only, no memory
        model = GPT(GPTConfig.from_preset("gpt2"))
    assert model.num_params() == 124_439_808  # the released GPT-2 "124M"


def test_causal_later_tokens_do_not_change_earlier_logits(tiny, seed):
    model = GPT(GPTConfig(**tiny)).eval()
    idx = torch.randint(0, tiny["vocab_size"], (2, 12))
    changed = idx.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % tiny["vocab_size"]
    a, b = model(idx, all_logits=True)[0], model(changed, all_logits=True)[0]
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_kv_cache_forward_equals_full_forward(tiny, seed, padded_batch):
    model = GPT(GPTConfig(**tiny)).eval()
    idx, mask = padded_batch(tiny["vocab_size"], [10, 6, 3], 10, "left")
    full = model(idx, attention_mask=mask, all_logits=True)[0]
    caches = model.new_kv_caches()
    assert all(isinstance(c, KVCache) for c in caches)
    parts = [model(idx[:, :4], attention_mask=mask[:, :4], kv_caches=caches, all_logits=True)[0]]
    for t in range(4, 10):  # then one token at a time
        parts.append(model(idx[:, t:t + 1], attention_mask=mask[:, :t + 1], kv_caches=caches, all_logits=True)[0])
    stepwise = torch.cat(parts, dim=1)
    real = mask.bool()
    torch.testing.assert_close(stepwise[real], full[real], atol=ATOL, rtol=0)


def test_left_padding_gives_the_unpadded_logits(tiny, seed, padded_batch):
    model = GPT(GPTConfig(**tiny)).eval()
    idx, mask = padded_batch(tiny["vocab_size"], [12, 5], 12, "left")
    alone = model(idx[1:, -5:], all_logits=True)[0]
    torch.testing.assert_close(model(idx, attention_mask=mask, all_logits=True)[0][1:, -5:], alone, atol=ATOL, rtol=0)
    pos = positions_from_mask(mask, 12)
    assert pos[1].tolist() == [0] * 8 + [1, 2, 3, 4]


def test_bad_inputs(tiny, seed):
    model = GPT(GPTConfig(**tiny))
    with pytest.raises(ValueError, match="exceed block_size=16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"attention_mask has shape \(1, 3\)"):
        model(torch.zeros(1, 4, dtype=torch.long), attention_mask=torch.ones(1, 3))
    with pytest.raises(ValueError, match="n_classes"):
        GPTClassifier(model, 0)


# ---- parity with Hugging Face GPT-2 (random weights, no download) ---------------------------------------

def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_from_hf_logits_equal(tiny, attn):
    hf = hf_gpt2(tiny, attn)
    ours = GPT.from_hf(hf)
    assert not ours.training and ours.lm_head.weight is ours.transformer.wte.weight
    idx = torch.randint(0, tiny["vocab_size"], (3, tiny["block_size"]))
    with torch.no_grad():
        assert max_diff(ours(idx, all_logits=True)[0], hf(idx).logits) < ATOL


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_parity_with_padding_both_directions(tiny, seed, attn, side, padded_batch):
    ours = GPT(GPTConfig(**tiny)).eval()
    with torch.no_grad():  # non-trivial biases and LayerNorms
        for name, p in ours.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    hf = ours.to_hf(attn)
    back = GPT.from_hf(hf)
    idx, mask = padded_batch(tiny["vocab_size"], [16, 9, 2], 16, side)
    # HF's forward counts positions 0..T-1 whatever the mask (its generate() does the cumsum); give it ours
    pos = positions_from_mask(mask, 16)
    real = mask.bool()
    with torch.no_grad():
        a = ours(idx, attention_mask=mask, all_logits=True)[0]
        b = hf(idx, attention_mask=mask, position_ids=pos).logits
        c = back(idx, attention_mask=mask, all_logits=True)[0]
    assert max_diff(a[real], b[real]) < ATOL
    assert max_diff(c[real], b[real]) < ATOL


def test_loss_matches_hf(tiny, seed):
    hf = hf_gpt2(tiny)
    ours = GPT.from_hf(hf)
    idx = torch.randint(0, tiny["vocab_size"], (2, 10))
    with torch.no_grad():
        hf_loss = hf(idx, labels=idx).loss  # HF shifts the labels itself
        targets = torch.cat([idx[:, 1:], torch.full((2, 1), -100)], dim=1)
        torch.testing.assert_close(ours(idx, targets)[1], hf_loss, atol=ATOL, rtol=0)


def test_export_keeps_mode_dropout_and_bias_free_models(tiny, seed):
    ours = GPT(GPTConfig(**{**tiny, "bias": False, "dropout": 0.1}))
    hf = ours.to_hf()
    assert hf.training and hf.config.resid_pdrop == 0.1 and hf.config.attn_pdrop == 0.1
    ours.eval(), hf.eval()
    idx = torch.randint(0, tiny["vocab_size"], (2, 9))
    with torch.no_grad():  # GPT-2 always has biases: exported as zeros, the same function
        assert max_diff(ours(idx, all_logits=True)[0], hf(idx).logits) < ATOL


def test_from_hf_rejects_other_architectures(tiny):
    with pytest.raises(ValueError, match="activation_function='relu'"):
        GPT.from_hf(hf_gpt2(tiny, activation_function="relu"))


@pytest.mark.parametrize("side", ["left", "right"])
def test_classifier_matches_hf_sequence_classification(tiny, seed, side, padded_batch):
    pad = 0
    hf_lm = hf_gpt2(tiny)
    hf_lm.config.pad_token_id = pad  # HF finds the last real token through pad_token_id
    hf_cls = GPT2ForSequenceClassification(GPT2Config(**{**hf_lm.config.to_dict(), "num_labels": 3})).eval()
    hf_cls.transformer.load_state_dict(hf_lm.transformer.state_dict())
    ours = GPTClassifier(GPT.from_hf(hf_lm), 3).eval()
    hf_cls.score.weight.data.copy_(ours.score.weight)
    idx, mask = padded_batch(tiny["vocab_size"], [16, 7, 1, 12], 16, side)
    labels = torch.tensor([0, 2, 1, 2])
    with torch.no_grad():
        logits, loss = ours(idx, attention_mask=mask, labels=labels)
        ref = hf_cls(idx, attention_mask=mask, position_ids=positions_from_mask(mask, 16), labels=labels)
    assert logits.shape == (4, 3)
    assert max_diff(logits, ref.logits) < ATOL
    torch.testing.assert_close(loss, ref.loss, atol=ATOL, rtol=0)


# ---- loading ---------------------------------------------------------------------------------------------

def test_from_pretrained_local_hf_folder(tiny, tmp_path):
    hf = hf_gpt2(tiny)
    hf.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(str(tmp_path))
    idx = torch.randint(0, tiny["vocab_size"], (1, 8))
    with torch.no_grad():
        assert max_diff(ours(idx, all_logits=True)[0], hf(idx).logits) < ATOL


def test_from_pretrained_llmguide_folder(tiny, seed, tmp_path):
    from safetensors.torch import save_file

    model = GPT(GPTConfig(**tiny)).eval()
    sd = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied: stored once
    save_file(sd, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({"model": model.config_dict()}))
    loaded = GPT.from_pretrained(str(tmp_path))
    idx = torch.randint(0, tiny["vocab_size"], (1, 8))
    torch.testing.assert_close(loaded(idx, all_logits=True)[0], model(idx, all_logits=True)[0], atol=0, rtol=0)


def test_from_pretrained_offline_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="save_pretrained"):
        GPT.from_pretrained("gpt2-this-name-is-not-cached")
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        GPT.from_pretrained(str(tmp_path / "missing"))
