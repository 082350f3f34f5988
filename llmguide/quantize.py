"""Quantization (量化): storing weights as 8- or 4-bit integers, by hand and through the maintained libraries.

*By hand.* Symmetric quantization maps a group of weights w to integers q = round(w / s) with one scale
``s = max|w| / qmax`` per group (qmax = 127 for int8, 7 for int4), and back to ŵ = s q. Because
``|w| <= max|w|``, ``|w / s| <= qmax``: no weight is clipped, and rounding moves w / s by at most 1/2, so

    |w - ŵ| = s |w / s - round(w / s)| <= s / 2   for every weight.

A Linear's output ``y_i = sum_j W_ij x_j`` then moves by at most ``(s_i / 2) sum_j |x_j|``. int8 uses one
scale per output channel (a row of W); int4's 15 levels are too coarse for a whole row, so it uses a scale
per group of ``group_size`` weights of a row (Dettmers et al. 2022, "LLM.int8()"; Frantar et al. 2023,
"GPTQ", for the group-wise int4 that llama.cpp and torchao ship). :class:`QuantLinear` keeps the integers
and the scales and computes from them: int8 quantizes each row of its input too (dynamic activation
quantization, one scale per token) and multiplies int8 by int8 into int32 (``torch._int_mm``, VNNI on x86),
then multiplies by both scales; int4 unpacks and dequantizes its weight in each call (memory, not speed).

*Activation outliers.* A few input channels of an LLM's Linears carry values 10-100x the others (Dettmers
et al. 2022), so one scale per token spends the int8 range on them. SmoothQuant (Xiao et al. 2023) rescales
channel j by ``s_j = max|x_j|^α / max|W_:,j|^(1-α)`` measured on calibration text: ``W x = (W diag(s))
(diag(s)^-1 x)`` exactly in float, and both factors are then easier to quantize. :func:`quantize_model`
does this when given a ``calibrate`` function (α = 0.5); the layer keeps ``1/s`` and multiplies its input
by it (SmoothQuant folds it into the LayerNorm before; one multiply per call is simpler).

*Maintained paths* (:func:`torchao_quantize`, :func:`onnx_quantize`, :func:`torch_dynamic_quantize`):
torchao's ``quantize_`` (int8 dynamic activation + int8 weight, int8 weight-only, and int4 weight-only on
CPU through its prototype ``Int4OpaqueTensor``; the stable ``Int4WeightOnlyConfig`` needs CUDA or the
``mslk`` kernels), ONNX Runtime's dynamic int8 quantization of an exported graph, and PyTorch's
``torch.ao.quantization.quantize_dynamic`` (deprecated: PyTorch 2.13 warns that ``torch.ao.quantization``
"will be removed in 2.10" and points to torchao's ``quantize_``; it still runs).

*Folders.* :func:`quantize_folder` writes a model folder (:mod:`llmguide.folder`) whose config.json has a
"quantization" entry and whose ``model.safetensors`` holds int8 (or packed int4) tensors and fp32 scales;
:func:`llmguide.folder.load_folder` rebuilds the model, swaps in :class:`QuantLinear` layers with
:func:`prepare_quantized`, then loads the weights, so ``llmguide predict`` and ``serve`` read it as they
read any folder. Shapes: out = out_features, in = in_features, G = in / group_size.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from llmguide.folder import check_output, load_folder, read_meta, save_folder

SCHEMES = ("int8", "int4")
QMAX = {"int8": 127, "int4": 7}  # symmetric: -qmax..qmax (int4 leaves -8 unused, int8 leaves -128)
_EPS = 1e-12  # an all-zero row gets a tiny scale instead of a division by zero


# ---------------------------------------------------------------- by hand
def quantize_int8(w: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric per-output-channel int8 quantization.

    Args:
        w: (out, in) float weight.
    Returns:
        ``(q, scale)``: q (out, in) int8 in [-127, 127], scale (out,) float32; ``w ≈ q * scale[:, None]``
        with ``|w - ŵ| <= scale / 2``.
    """
    scale = (w.detach().abs().amax(dim=1).float() / QMAX["int8"]).clamp(min=_EPS)  # (out,)
    q = torch.round(w.detach().float() / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


def dequantize_int8(q: Tensor, scale: Tensor) -> Tensor:
    """``q * scale`` per row: (out, in) int8 and (out,) -> (out, in) float32."""
    return q.float() * scale[:, None]


def pack_int4(q: Tensor) -> Tensor:
    """Two int4 values in [-8, 7] per byte: (out, in) int8 -> (out, in / 2) uint8 (low nibble first)."""
    u = (q.to(torch.int16) & 0xF).to(torch.uint8)  # two's complement nibbles
    return u[:, 0::2] | (u[:, 1::2] << 4)


def unpack_int4(packed: Tensor) -> Tensor:
    """The inverse of :func:`pack_int4`: (out, in / 2) uint8 -> (out, in) int8."""
    lo, hi = (packed & 0xF).to(torch.int8), (packed >> 4).to(torch.int8)
    q = torch.stack([lo, hi], dim=-1).flatten(-2)  # (out, in), interleaved back
    return torch.where(q > 7, q - 16, q)  # nibbles 8..15 are -8..-1


def quantize_int4(w: Tensor, group_size: int = 32) -> tuple[Tensor, Tensor]:
    """Symmetric group-wise int4 quantization: one scale per ``group_size`` consecutive weights of a row.

    Args:
        w: (out, in) float weight; ``in`` must be divisible by ``group_size`` (and even).
        group_size: weights per scale (32, 64, 128 are usual).
    Returns:
        ``(packed, scale)``: packed (out, in / 2) uint8, scale (out, G) float32.
    """
    out_f, in_f = w.shape
    if group_size < 2 or group_size % 2 or in_f % group_size:
        raise ValueError(f"group_size={group_size} must be even and divide in_features={in_f} "
                         "(e.g. 32 or 64)")
    g = w.detach().float().view(out_f, in_f // group_size, group_size)  # (out, G, group)
    scale = (g.abs().amax(dim=-1) / QMAX["int4"]).clamp(min=_EPS)  # (out, G)
    q = torch.round(g / scale[..., None]).clamp(-7, 7).to(torch.int8).view(out_f, in_f)
    return pack_int4(q), scale


def dequantize_int4(packed: Tensor, scale: Tensor) -> Tensor:
    """(out, in / 2) uint8 and (out, G) scales -> the (out, in) float32 weight."""
    q = unpack_int4(packed).float()
    out_f, in_f = q.shape
    return (q.view(out_f, scale.shape[1], -1) * scale[..., None]).view(out_f, in_f)


class QuantLinear(nn.Module):
    """A Linear whose weight is stored as int8 (per-channel) or packed int4 (per-group) with fp32 scales.

    Args:
        in_features, out_features: as ``nn.Linear``.
        bias: whether there is a (float) bias.
        scheme: "int8" (int8 x int8 matmul with per-token activation scales) or "int4" (weight-only).
        group_size: int4's weights per scale.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, scheme: str = "int8",
                 group_size: int = 32, smooth: bool = False) -> None:
        super().__init__()
        if scheme not in SCHEMES:
            raise ValueError(f"unknown quantization scheme {scheme!r}: use one of {SCHEMES}")
        self.in_features, self.out_features, self.scheme, self.group_size = in_features, out_features, scheme, group_size
        if scheme == "int8":
            self.register_buffer("weight", torch.zeros(out_features, in_features, dtype=torch.int8))
            self.register_buffer("scale", torch.ones(out_features))
        else:
            self.register_buffer("weight", torch.zeros(out_features, in_features // 2, dtype=torch.uint8))
            self.register_buffer("scale", torch.ones(out_features, in_features // group_size))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        # SmoothQuant's 1 / s per input channel (in,), or None
        self.register_buffer("smooth", torch.ones(in_features) if smooth else None)

    @classmethod
    def from_linear(cls, linear: nn.Linear, scheme: str = "int8", group_size: int = 32,
                    act_amax: Tensor | None = None, alpha: float = 0.5) -> QuantLinear:
        """Quantize an ``nn.Linear`` (its weight (out, in)); the bias stays float.

        Args:
            act_amax: (in,) max |input| per channel on calibration data: smooth with it (SmoothQuant).
            alpha: how much of the activations' range moves into the weights (0: none; SmoothQuant uses 0.5).
        """
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None, scheme, group_size,
                    smooth=act_amax is not None)
        w = linear.weight.detach().float()
        if act_amax is not None:
            s = act_amax.float().clamp(min=1e-5) ** alpha / w.abs().amax(0).clamp(min=1e-5) ** (1 - alpha)  # (in,)
            w = w * s
            layer.smooth.copy_(1 / s)
        q, scale = quantize_int8(w) if scheme == "int8" else quantize_int4(w, group_size)
        layer.weight.copy_(q)
        layer.scale.copy_(scale)
        if linear.bias is not None:
            layer.bias.data.copy_(linear.bias.detach().float())
        return layer.to(linear.weight.device)

    def dequantized_weight(self) -> Tensor:
        """ŵ (out, in) float32."""
        if self.scheme == "int8":
            return dequantize_int8(self.weight, self.scale)
        return dequantize_int4(self.weight, self.scale)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        x2 = x.reshape(-1, self.in_features).float()  # (M, in)
        if self.smooth is not None:
            x2 = x2 * self.smooth
        if self.scheme == "int8" and x2.device.type == "cpu":
            # dynamic activation quantization: one scale per row (token), as torchao's int8 dynamic config;
            # in-place ops and int32 x float promotion keep it to 7 kernels (decode is dispatch-bound)
            sx = x2.abs().amax(dim=1, keepdim=True).clamp_(min=_EPS).div_(127)  # (M, 1)
            xq = (x2 / sx).round_().to(torch.int8)
            y = torch._int_mm(xq, self.weight.t()) * (sx * self.scale)  # int32 (M, out) -> float
        else:  # int4 (and int8 off the CPU, where _int_mm wants M > 16): weight-only, dequantize per call
            y = x2 @ self.dequantized_weight().t()
        if self.bias is not None:
            y = y + self.bias
        return y.view(*shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        g = f", group_size={self.group_size}" if self.scheme == "int4" else ""
        return f"in_features={self.in_features}, out_features={self.out_features}, scheme={self.scheme}{g}"


def _linears(model: nn.Module, skip: Sequence[str]) -> list[str]:
    return [name for name, m in model.named_modules() if type(m) is nn.Linear and name not in skip]


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def _input_amax(model: nn.Module, names: list[str], calibrate: Callable[[nn.Module], object]) -> dict[str, Tensor]:
    """max |input| per channel of each named Linear while ``calibrate(model)`` runs."""
    amax: dict[str, Tensor] = {}

    def hook(name):
        def record(module, args):
            a = args[0].detach().abs().reshape(-1, args[0].shape[-1]).amax(0).float()
            amax[name] = torch.maximum(amax[name], a) if name in amax else a
        return record

    handles = [model.get_submodule(n).register_forward_pre_hook(hook(n)) for n in names]
    try:
        with torch.no_grad():
            calibrate(model)
    finally:
        for h in handles:
            h.remove()
    return amax


def quantize_model(model: nn.Module, scheme: str = "int8", group_size: int = 32,
                   skip: Sequence[str] = (), calibrate: Callable[[nn.Module], object] | None = None,
                   alpha: float = 0.5) -> list[str]:
    """Replace every ``nn.Linear`` of ``model`` (in place) by a :class:`QuantLinear`.

    Args:
        model: any module (our GPT, a GPTClassifier, a Hugging Face model).
        scheme: "int8" or "int4".
        group_size: int4's weights per scale; a Linear whose in_features it does not divide stays float.
        skip: module names to leave in float (e.g. an LM head the model never runs).
        calibrate: runs the float model on calibration data (e.g. ``lambda m: m(ids)``); given, each
            layer is smoothed with the inputs it saw (SmoothQuant, see the module docstring).
        alpha: SmoothQuant's migration strength.
    Returns:
        The names of the replaced modules (what a folder's "quantization" entry records).
    """
    done = []
    names = _linears(model, skip)
    amax = _input_amax(model, names, calibrate) if calibrate is not None else {}
    for name in names:
        linear = model.get_submodule(name)
        if scheme == "int4" and linear.in_features % group_size:
            continue
        _set_module(model, name, QuantLinear.from_linear(linear, scheme, group_size, amax.get(name), alpha))
        done.append(name)
    return done


# ---------------------------------------------------------------- model folders
def prepare_quantized(model: nn.Module, spec: dict[str, Any]) -> nn.Module:
    """Swap the Linears named in a folder's "quantization" entry for empty :class:`QuantLinear` layers, so
    that the folder's int weights load into them (called by :func:`llmguide.folder.load_folder`)."""
    scheme, group_size = spec.get("scheme"), spec.get("group_size", 32)
    if scheme not in SCHEMES:
        raise ValueError(f"quantization scheme {scheme!r} is unknown to this llmguide: known {SCHEMES}")
    for name in spec.get("modules", []):
        old = model.get_submodule(name)
        _set_module(model, name, QuantLinear(old.in_features, old.out_features, old.bias is not None, scheme,
                                             group_size, smooth=bool(spec.get("smooth"))))
    return model


def quantize_folder(src: str | Path, out: str | Path, scheme: str = "int8", group_size: int = 32,
                    calibrate: Callable[[nn.Module], object] | None = None, overwrite: bool = False) -> Path:
    """Write a quantized copy of a model folder (``llmguide quantize MODEL_DIR --out DIR``).

    Every Linear the model runs is stored as int8 (or packed int4) plus fp32 scales in ``model.safetensors``;
    embeddings, LayerNorms and biases stay fp32. A classifier's unused LM head is left out of the
    quantization (it is tied to the embedding, so it costs nothing on disk).

    Args:
        src: a model folder (any kind :func:`llmguide.folder.load_folder` reads).
        out: the folder to write.
        scheme: "int8" or "int4".
        group_size: int4's weights per scale.
        calibrate: runs the float model on calibration inputs, to smooth activation outliers (SmoothQuant).
        overwrite: replace an ``out`` that already holds a model (refused by default).
    Returns:
        ``out`` as a Path.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown quantization scheme {scheme!r}: use one of {SCHEMES}")
    check_output(out, read_meta(src)["kind"], inputs=(src,), overwrite=overwrite)  # fail before any work
    model, tokenizer, meta = load_folder(src)
    if "quantization" in meta:
        raise ValueError(f"{src} is already quantized ({meta['quantization']['scheme']}): quantize the float folder")
    labels = meta.pop("labels", None)
    skip = ("gpt.lm_head",) if meta["kind"] == "gpt-classifier" else ()
    modules = quantize_model(model, scheme, group_size, skip=skip, calibrate=calibrate)
    keep = {k: v for k, v in meta.items() if k not in ("format_version", "kind", "model", "task", "n_classes")}
    keep["quantization"] = {"scheme": scheme, "group_size": group_size if scheme == "int4" else None,
                            "smooth": calibrate is not None, "modules": modules, "source": str(src)}
    return save_folder(out, model, tokenizer, keep, labels=labels)


# ---------------------------------------------------------------- maintained paths
def _torchao():
    try:
        import torchao.quantization as tq
    except ImportError as err:
        raise ImportError("torchao is needed: pip install torchao (or llmguide[efficiency])") from err
    return tq


def torchao_quantize(model: nn.Module, scheme: str = "int8-dynamic", group_size: int = 32) -> nn.Module:
    """Quantize a copy of ``model``'s Linears with torchao's ``quantize_``.

    Args:
        model: the float model (left unchanged).
        scheme: "int8-dynamic" (int8 activations per token x int8 weights per channel), "int8-weight"
            (weight-only), or "int4-weight" (group-wise, CPU prototype ``PrototypeInt4WeightOnlyConfig``).
        group_size: int4's weights per scale.
    Returns:
        The quantized copy.
    """
    tq = _torchao()
    configs: dict[str, Callable[[], Any]] = {
        "int8-dynamic": tq.Int8DynamicActivationInt8WeightConfig,
        "int8-weight": tq.Int8WeightOnlyConfig,
    }
    if scheme == "int4-weight":
        from torchao.prototype.quantization.int4 import PrototypeInt4WeightOnlyConfig

        configs[scheme] = lambda: PrototypeInt4WeightOnlyConfig(group_size=group_size)
    if scheme not in configs:
        raise ValueError(f"unknown torchao scheme {scheme!r}: use int8-dynamic, int8-weight or int4-weight")
    quantized = copy.deepcopy(model)
    tq.quantize_(quantized, configs[scheme]())
    return quantized


def torch_dynamic_quantize(model: nn.Module) -> nn.Module:
    """PyTorch's older eager dynamic quantization (``torch.ao.quantization.quantize_dynamic``, fbgemm int8).

    Deprecated: PyTorch warns that ``torch.ao.quantization`` "will be removed in 2.10" (it still runs in 2.13)
    and points to torchao's ``quantize_``. Kept to compare against: it is what PyTorch's BERT tutorial used (438 -> 181 MB).
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)


def onnx_quantize(model: nn.Module, example: tuple[Tensor, ...], path: str | Path,
                  input_names: Sequence[str] = ("idx",)) -> tuple[Path, Path]:
    """Export ``model`` to ONNX and quantize the graph with ONNX Runtime's dynamic int8 quantization.

    Args:
        model: the float model; its forward's first output is kept (the logits).
        example: example inputs, of the shapes the graph will take (exported static).
        path: the float ``.onnx`` file to write; the int8 one is written beside it (``*.int8.onnx``).
        input_names: one name per example input.
    Returns:
        ``(float path, int8 path)``.
    """
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as err:
        raise ImportError("onnx and onnxruntime are needed: pip install onnx onnxruntime onnxscript") from err

    class FirstOutput(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: Tensor) -> Tensor:
            out = self.inner(*args)
            return out[0] if isinstance(out, tuple) else out

    path = Path(path)
    # Static shapes: our attention picks its mask by Python tests on T and S (``build_mask``), which a graph
    # with a symbolic sequence length cannot take; export once per (batch, length) you run.
    torch.onnx.export(FirstOutput(model).eval(), example, str(path), input_names=list(input_names),
                      output_names=["logits"], dynamo=True, verbose=False)
    q_path = path.with_suffix(".int8.onnx")
    quantize_dynamic(str(path), str(q_path), weight_type=QuantType.QInt8)
    return path, q_path


# ---------------------------------------------------------------- one comparison row
def compare(model: nn.Module, batch: dict[str, Tensor], score: Callable[[nn.Module], float],
            schemes: Sequence[str] = ("int8", "int4"), repeats: int = 5) -> list[dict[str, Any]]:
    """fp32 against the hand schemes on one model: bytes of weights, seconds per forward, a quality score.

    Args:
        model: a float model in eval mode (left unchanged).
        batch: the keyword inputs of one timed forward (e.g. ``{"idx": ids}``).
        score: model -> quality (accuracy, perplexity), computed for each variant.
        schemes: hand schemes to compare with fp32.
        repeats: the fastest of this many forwards is kept.
    Returns:
        One dict per variant: ``{"variant", "weight_bytes", "seconds", "score"}``.
    """
    from llmguide.profiling import best_time

    rows = []
    for variant in ("fp32", *schemes):
        m = model if variant == "fp32" else copy.deepcopy(model)
        if variant != "fp32":
            quantize_model(m, variant)
        size = sum(t.nbytes for t in {id(t): t for t in [*m.parameters(), *m.buffers()]}.values())
        with torch.no_grad():
            seconds = best_time(lambda m=m: m(**batch), repeats)
            rows.append({"variant": variant, "weight_bytes": size, "seconds": seconds, "score": float(score(m))})
    return rows
