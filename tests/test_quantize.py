"""Quantization by hand (llmguide.quantize) against its error bound, against torchao on the same weights, and
through a model folder that predict loads unchanged."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch import nn

from llmguide import quantize as Q
from llmguide.folder import WEIGHTS, load_folder
from llmguide.model import GPT, GPTClassifier, GPTConfig

REVIEW_CLASSIFIER = Path(__file__).resolve().parents[1] / "data" / "review-classifier"


def _weight(out_f: int = 64, in_f: int = 128) -> torch.Tensor:
    w = torch.randn(out_f, in_f, generator=torch.Generator().manual_seed(0)) * 0.05
    w[3] *= 20  # one row with outliers: per-channel scales keep it from coarsening the others
    return w


def test_int8_error_is_at_most_half_a_step():
    w = _weight()
    q, scale = Q.quantize_int8(w)
    assert q.dtype == torch.int8 and scale.shape == (64,) and q.abs().max() <= 127
    err = (w - Q.dequantize_int8(q, scale)).abs()
    assert (err <= scale[:, None] / 2 + 1e-7).all()  # |w - ŵ| <= s / 2, the bound of the module docstring
    assert (q.abs().amax(1) == 127).all()  # each row's largest weight uses the full range
    assert err[0].max() < err[3].max() / 5  # the outlier row's coarser step stays in its row


def test_int4_pack_roundtrip_and_error_bound():
    q = torch.arange(-8, 8, dtype=torch.int8).repeat(3, 2)  # every int4 value, (3, 32)
    assert torch.equal(Q.unpack_int4(Q.pack_int4(q)), q)
    w = _weight()
    packed, scale = Q.quantize_int4(w, group_size=32)
    assert packed.dtype == torch.uint8 and packed.shape == (64, 64) and scale.shape == (64, 4)
    err = (w - Q.dequantize_int4(packed, scale)).abs().view(64, 4, 32)
    assert (err <= scale[..., None] / 2 + 1e-7).all()
    with pytest.raises(ValueError, match="group_size=48 must be even and divide in_features=128"):
        Q.quantize_int4(w, group_size=48)


@pytest.mark.parametrize("scheme", ["int8", "int4"])
def test_quant_linear_matches_its_dequantized_weight(scheme):
    torch.manual_seed(0)
    linear = nn.Linear(128, 64)
    layer = Q.QuantLinear.from_linear(linear, scheme)
    x = torch.randn(2, 5, 128)
    with torch.no_grad():
        y, ref = layer(x), nn.functional.linear(x, layer.dequantized_weight(), linear.bias)
        exact = linear(x)
    step = layer.scale[:, None].expand(64, 128) if scheme == "int8" else layer.scale.repeat_interleave(32, 1)
    weight_bound = x.abs() @ (step / 2).t()  # sum_j |x_j| s_ij / 2: the bound of the module docstring
    act_bound = torch.zeros_like(weight_bound)
    if scheme == "int8":  # the input is quantized per token too: each x_j moves by at most s_x / 2
        act_bound = layer.dequantized_weight().abs().sum(1) * (x.abs().amax(-1, keepdim=True) / 127) / 2
        assert ((y - ref).abs() <= act_bound + 1e-5).all()
    else:
        torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    assert ((y - exact).abs() <= weight_bound + act_bound + 1e-5).all()


def test_smoothquant_moves_outliers_into_the_weights():
    torch.manual_seed(0)
    linear = nn.Linear(128, 64)
    x = torch.randn(4, 16, 128)
    x[..., 5] *= 50  # one outlier channel, as LLM activations have
    model = nn.Sequential(linear)
    plain, smooth = copy.deepcopy(model), copy.deepcopy(model)
    Q.quantize_model(plain, "int8")
    Q.quantize_model(smooth, "int8", calibrate=lambda m: m(x))
    layer = smooth[0]
    assert layer.smooth is not None and plain[0].smooth is None
    with torch.no_grad():
        ref = linear(x)
        # in float the rescaling is exact: (W diag(s)) (diag(1/s) x) = W x
        torch.testing.assert_close(nn.functional.linear(x * layer.smooth, layer.dequantized_weight(), linear.bias),
                                   ref, rtol=0, atol=0.05)
        err_plain, err_smooth = (plain(x) - ref).abs().mean(), (smooth(x) - ref).abs().mean()
    assert err_smooth < 0.5 * err_plain


def test_hand_int8_matches_torchao_to_one_step():
    ao = pytest.importorskip("torchao.quantization")
    w = _weight()
    linear = nn.Linear(128, 64, bias=False)
    linear.weight.data.copy_(w)
    ao.quantize_(linear, ao.Int8WeightOnlyConfig())
    q_ao, s_ao = linear.weight.qdata, linear.weight.scale.flatten()
    q, scale = Q.quantize_int8(w)
    torch.testing.assert_close(scale, s_ao, rtol=1e-2, atol=0)  # torchao divides max|w| by 127.5, we by 127
    assert (q.int() - q_ao.int()).abs().max() <= 1  # the same integers, to one quantization step
    assert ((Q.dequantize_int8(q, scale) - linear.weight.dequantize()).abs() <= scale[:, None]).all()


def test_hand_int4_matches_torchao_to_one_step():
    pytest.importorskip("torchao.quantization")
    w = _weight()
    linear = nn.Linear(128, 64, bias=False)
    linear.weight.data.copy_(w)
    quantized = Q.torchao_quantize(linear, "int4-weight", group_size=32)  # asymmetric, with zero points
    with torch.no_grad():  # torchao's packed int4 has no dequantize(): read its weight off the identity
        w_ao = quantized(torch.eye(128)).t()  # (out, in)
    packed, scale = Q.quantize_int4(w, group_size=32)
    # each is within half its own step of w, and torchao's step (max - min) / 15 <= 2 max|w| / 15 < ours
    diff = (Q.dequantize_int4(packed, scale) - w_ao).abs().view(64, 4, 32)
    assert (diff <= scale[..., None] + 1e-3).all()


def test_quantized_gpt_generates_with_kv_cache(tiny_gpt, one_thread):
    model = tiny_gpt.eval()
    idx = torch.randint(0, 100, (2, 8))
    with torch.no_grad():
        ref = model(idx, all_logits=True)[0]
        names = Q.quantize_model(model, "int8")
        out = model(idx, all_logits=True)[0]
        caches = model.new_kv_caches()
        step = torch.cat([model(idx[:, :7], kv_caches=caches)[0], model(idx[:, 7:], kv_caches=caches)[0]], 1)
    assert "lm_head" in names and len(names) == 4 * 2 + 1  # four Linears per block and the head
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()
    torch.testing.assert_close(step[:, -1], out[:, -1], rtol=1e-4, atol=1e-4)  # cache == full recompute


@pytest.mark.parametrize("scheme,smooth", [("int8", False), ("int4", False), ("int8", True)])
def test_quantize_folder_roundtrip(tmp_path, tiny, animal_tok, scheme, smooth):
    from llmguide.classify import save_classifier

    torch.manual_seed(0)
    clf = GPTClassifier(GPT(GPTConfig(**{**tiny, "vocab_size": animal_tok.vocab_size})), 2).eval()
    src = save_classifier(clf, animal_tok, ["neg", "pos"], tmp_path / "float", {"block_size": tiny["block_size"]})
    calib = torch.randint(0, animal_tok.vocab_size, (4, tiny["block_size"]))
    calibrate = (lambda m: m(calib)) if smooth else None
    out = Q.quantize_folder(src, tmp_path / scheme, scheme, calibrate=calibrate)
    meta = json.loads((out / "config.json").read_text())
    assert meta["kind"] == "gpt-classifier" and meta["quantization"]["scheme"] == scheme
    assert "gpt.lm_head" not in meta["quantization"]["modules"]
    with safe_open(str(out / WEIGHTS), framework="pt") as f:
        dtype = f.get_tensor("gpt.transformer.h.0.mlp.c_fc.weight").dtype
    assert dtype == (torch.int8 if scheme == "int8" else torch.uint8)
    loaded, _, _ = load_folder(out, kind="gpt-classifier")
    expected = GPTClassifier(GPT(GPTConfig(**{**tiny, "vocab_size": animal_tok.vocab_size})), 2)
    expected.load_state_dict(clf.state_dict())
    Q.quantize_model(expected.eval(), scheme, skip=("gpt.lm_head",), calibrate=calibrate)
    assert meta["quantization"]["smooth"] is smooth
    idx = torch.randint(0, animal_tok.vocab_size, (3, 10))
    with torch.no_grad():
        torch.testing.assert_close(loaded(idx)[0], expected(idx)[0])  # the folder holds exactly that model
    with pytest.raises(ValueError, match="already quantized"):
        Q.quantize_folder(out, tmp_path / "again", scheme)
    with pytest.raises(ValueError, match="unknown quantization scheme 'int3'"):
        Q.quantize_folder(src, tmp_path / "bad", "int3")


@pytest.mark.skipif(not REVIEW_CLASSIFIER.is_dir(), reason="needs the shipped data/review-classifier")
def test_int8_review_classifier_keeps_its_accuracy(tmp_path):
    from llmguide.data import load_reviews
    from llmguide.inference import load_classifier

    test = load_reviews("test").iloc[::3]  # 579 reviews: one point is ~6 reviews
    out = Q.quantize_folder(REVIEW_CLASSIFIER, tmp_path / "int8", "int8")
    acc = {}
    for name, folder in (("fp32", REVIEW_CLASSIFIER), ("int8", out)):
        clf = load_classifier(folder, device="cpu")  # what `llmguide predict` and `serve` load
        probs, _ = clf.predict_proba(test.text.tolist())
        acc[name] = 100 * float((probs.argmax(1) == test.label.to_numpy()).mean())
    assert acc["fp32"] > 70  # a trained classifier, or the comparison means nothing
    assert abs(acc["int8"] - acc["fp32"]) <= 0.5, acc
    size = {p: (p / WEIGHTS).stat().st_size for p in (REVIEW_CLASSIFIER, out)}
    assert size[out] < 0.6 * size[REVIEW_CLASSIFIER]  # the blocks shrink 4x; embeddings stay fp32


def test_maintained_paths_agree_with_float(tiny_gpt, tmp_path, one_thread):
    pytest.importorskip("onnxruntime")
    import numpy as np
    import onnxruntime as ort

    model = tiny_gpt.eval()
    idx = torch.randint(0, 100, (2, 16))
    with torch.no_grad():
        ref = model(idx, all_logits=True)[0]
        dyn = Q.torch_dynamic_quantize(model)(idx, all_logits=True)[0]
    assert (dyn - ref).abs().max() < 0.05 * ref.abs().max()

    class AllLogits(nn.Module):  # the exported graph returns every position's logits
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, idx):
            return self.m(idx, all_logits=True)[0]

    fp, q8 = Q.onnx_quantize(AllLogits(model), (idx,), tmp_path / "gpt.onnx")
    for path, tol in ((fp, 1e-4), (q8, 0.05)):
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(sess.run(None, {"idx": idx.numpy().astype(np.int64)})[0])
        assert (got - ref).abs().max() <= tol * max(1.0, ref.abs().max().item()), path.name
    import onnx

    ops = {node.op_type for node in onnx.load(str(q8)).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops  # int8 x int8 matmuls, activations quantized at run time
    with pytest.raises(ValueError, match="unknown torchao scheme"):
        Q.torchao_quantize(model, "int2")


def test_compare_gives_one_row_per_variant(tiny_gpt, one_thread):
    model = tiny_gpt.eval()
    idx = torch.randint(0, 100, (2, 16))
    with torch.no_grad():
        ref = model(idx, all_logits=True)[0]

    def agreement(m):  # share of positions whose top token is fp32's
        with torch.no_grad():
            return float((m(idx, all_logits=True)[0].argmax(-1) == ref.argmax(-1)).float().mean())

    rows = Q.compare(model, {"idx": idx}, agreement, repeats=2)
    assert [r["variant"] for r in rows] == ["fp32", "int8", "int4"]
    assert rows[0]["score"] == 1.0 and rows[1]["score"] > 0.8
    assert rows[1]["weight_bytes"] < rows[0]["weight_bytes"] and rows[2]["weight_bytes"] < rows[1]["weight_bytes"]
    assert all(r["seconds"] > 0 for r in rows)
    assert isinstance(model.lm_head, nn.Linear)  # the model passed in is left in float


def test_cli_quantize_then_predict(tmp_path, tiny, animal_tok, capsys):
    from llmguide.classify import save_classifier
    from llmguide.cli import main

    torch.manual_seed(0)
    clf = GPTClassifier(GPT(GPTConfig(**{**tiny, "vocab_size": animal_tok.vocab_size})), 2).eval()
    src = save_classifier(clf, animal_tok, ["neg", "pos"], tmp_path / "float", {"block_size": tiny["block_size"]})
    out = tmp_path / "int8"
    assert main(["quantize", str(src), "--out", str(out)]) == 0
    assert "wrote the int8 model folder" in capsys.readouterr().out
    for folder in (src, out):
        assert main(["predict", str(folder), "猫很可爱", "dogs bark", "--format", "json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    float_rows, int8_rows = [json.loads(x) for x in lines[:2]], [json.loads(x) for x in lines[2:]]
    assert [r["label"] for r in int8_rows] == [r["label"] for r in float_rows]
    assert main(["quantize", str(src), "--out", str(out)]) == 2  # refuses to replace a model without --overwrite
    assert "--overwrite" in capsys.readouterr().err
