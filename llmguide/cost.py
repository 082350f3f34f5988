"""What a model costs: parameters, FLOPs per token, and memory, as formulas checked against measurement.

The formulas count this project's GPT (:class:`llmguide.model.GPT`, GPT-2's layout) exactly where they
can and say where they approximate. Symbols: L = n_layer, C = n_embd, V = vocab_size, T = the context
length a token attends over, N = parameters, D = training tokens.

*FLOPs* (one multiply-add = 2 FLOPs) follow the counting of Hoffmann et al. 2022 ("Chinchilla", App. F):
every matmul counts, the LM head included, and attention counts its two T x T matmuls (QK^T and the
weighted sum of V) in full, as ``torch.utils.flop_counter`` does; element-wise work (LayerNorm, GELU,
softmax, biases) is left out, under 1% here. Per token, a forward pass costs ``2 N_matmul + 4 L T C``,
where ``N_matmul = 12 L C^2 + C V`` are the weights that multiply activations (embeddings are lookups).
Training costs three forward passes for the weights (the backward pass computes one gradient for the
input and one for the weight of every matmul) and 3.5 for attention: the fused (flash) kernel recomputes
QK^T in its backward pass rather than keeping the T x T scores, 5 matmuls for the forward's 2. Kaplan et al. 2020 ("Scaling Laws for Neural Language Models") drop the
attention term and the embeddings: C ≈ 6 N D to train, 2 N per generated token, which
:func:`gpt3_estimate` uses as Brown et al. 2020 did for GPT-3.

*Memory* for training with Adam (Kingma & Ba 2015) is counted in bytes per parameter
(:data:`BYTES_PER_PARAM`), with the convention of the ZeRO paper (Rajbhandari et al. 2020, section 3.1):
mixed precision keeps 16-bit weights and gradients plus an fp32 master copy and Adam's two fp32 moments,
2 + 2 + 12 = 16 bytes, the same as plain fp32 (4 + 4 + 8). Mixed precision saves activation memory and
time, not optimizer memory. Activations (:func:`activation_bytes_per_token`) follow Korthikanti et al. 2022
("Reducing Activation Recomputation in Large Transformer Models"), without dropout masks and with a fused
attention kernel that keeps no T x T matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from torch import nn

from llmguide.model import GPTConfig


# ---------------------------------------------------------------- parameters
def param_count(config: GPTConfig) -> int:
    """The exact number of parameters of ``GPT(config)``, the tied LM head counted once.

    Per block: LayerNorms 2 x 2C, attention (C x 3C + C x C), MLP (C x 4C + 4C x C), and their biases
    (3C + C + 4C + C); plus the token (V x C) and position (block_size x C) embeddings and the final LayerNorm.

    Args:
        config: the sizes (``GPTConfig.from_preset("gpt2")`` gives GPT-2 small: 124,439,808).
    Returns:
        The count.
    """
    C, b = config.n_embd, int(config.bias)
    per_block = 12 * C * C + b * 9 * C + 2 * (1 + b) * C  # matmul weights, biases, two LayerNorms
    return (config.vocab_size + config.block_size) * C + config.n_layer * per_block + (1 + b) * C


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Parameters of any module, counting a tied (shared) tensor once.

    Args:
        model: any ``nn.Module``.
        trainable_only: count only parameters with ``requires_grad``.
    Returns:
        The count.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def matmul_params(config: GPTConfig, head: bool = True) -> int:
    """The weights that multiply activations: ``12 L C^2`` in the blocks, plus ``C V`` for the LM head."""
    return 12 * config.n_layer * config.n_embd**2 + (config.n_embd * config.vocab_size if head else 0)


# ---------------------------------------------------------------- FLOPs
def flops_per_token(config: GPTConfig, context: int | None = None, training: bool = False,
                    head: bool = True) -> float:
    """FLOPs to process one token (Chinchilla counting, see the module docstring).

    Args:
        config: the sizes.
        context: T, how many positions the token attends over (default ``block_size``). For a forward
            pass over a sequence of T tokens, as ``flop_counter`` counts it, this is T; for decoding the
            t-th token with a KV cache it is t.
        head: whether the LM head runs for this token (every position in training; only the last one in
            a forward without targets, see ``GPT.forward``).
        training: forward + backward: 3x the forward for the weights, 3.5x for attention (see above).
    Returns:
        FLOPs per token: ``2 N_matmul + 4 L T C`` for a forward, ``6 N_matmul + 14 L T C`` to train.
    """
    T = config.block_size if context is None else context
    weights, attention = 2 * matmul_params(config, head), 4 * config.n_layer * T * config.n_embd
    return float(3 * weights + 3.5 * attention if training else weights + attention)


def kaplan_flops(n_params: float, n_tokens: float, training: bool = True) -> float:
    """Kaplan et al. 2020's approximation: ``6 N D`` to train on D tokens, ``2 N D`` to run on them."""
    return (6.0 if training else 2.0) * n_params * n_tokens


# ---------------------------------------------------------------- memory
@dataclass(frozen=True)
class ParamBytes:
    """Bytes kept per parameter, by what they are for."""

    weights: float  # the weights the forward pass reads
    grads: float  # their gradients
    master: float  # an fp32 copy of the weights that the optimizer updates (mixed precision only)
    optimizer: float  # Adam's first and second moments

    @property
    def total(self) -> float:
        return self.weights + self.grads + self.master + self.optimizer


BYTES_PER_PARAM: dict[str, ParamBytes] = {
    "fp32": ParamBytes(weights=4, grads=4, master=0, optimizer=8),  # training with AdamW in fp32
    "bf16-mixed": ParamBytes(weights=2, grads=2, master=4, optimizer=8),  # ZeRO's 2 + 2 + 12 = 16
    "bf16": ParamBytes(weights=2, grads=0, master=0, optimizer=0),  # inference in bf16
    "int8": ParamBytes(weights=1, grads=0, master=0, optimizer=0),  # inference, int8 weights (+ scales)
    "int4": ParamBytes(weights=0.5, grads=0, master=0, optimizer=0),  # inference, two weights per byte
}


def param_memory(n_params: int, precision: str = "fp32") -> dict[str, float]:
    """Bytes for the weights, gradients, master copy and Adam states of ``n_params`` parameters.

    Args:
        n_params: the parameter count.
        precision: a key of :data:`BYTES_PER_PARAM` ("fp32", "bf16-mixed" train; "bf16", "int8", "int4" serve).
    Returns:
        ``{"weights", "grads", "master", "optimizer", "total"}`` in bytes. Quantized weights also need a
        scale per group of weights (one fp32 per output channel or per 32..128 weights): under 1-3% more.
    """
    if precision not in BYTES_PER_PARAM:
        raise ValueError(f"unknown precision {precision!r}: use one of {sorted(BYTES_PER_PARAM)}")
    per = BYTES_PER_PARAM[precision]
    out = {f.name: getattr(per, f.name) * n_params for f in fields(per)}
    out["total"] = per.total * n_params
    return out


def activation_bytes_per_token(config: GPTConfig, bytes_per_value: int = 4, head: bool = True) -> float:
    """Bytes that a training forward pass keeps for the backward pass, per token of the batch.

    Korthikanti et al. 2022 count the inputs of every matmul and LayerNorm and the GELU's input. In this
    GPT that is, per layer and token: C (ln_1's input) + C (the QKV matmul's) + 3C (q, k, v) + C
    (attention's output, also the projection's input) + C (ln_2's) + C (c_fc's) + 4C (GELU's) + 4C
    (c_proj's) = 16C values, plus each LayerNorm's mean and 1/std and one log-sum-exp per head (fp32).
    Without dropout no masks are kept, and the fused attention kernel keeps no T x T scores. Around the
    blocks: the final LayerNorm's and the head's inputs (2C + 2), the token ids and targets (int64) and,
    with the head, the log-softmax of the logits (V, fp32 for the loss).

    Args:
        config: the sizes.
        bytes_per_value: 4 for fp32 activations, 2 for bf16 autocast.
        head: count the LM head on every position (training a language model).
    Returns:
        Bytes per token; multiply by batch x sequence length.
    """
    C = config.n_embd
    per_layer = 16 * C * bytes_per_value + 4 * (4 + config.n_head)  # + LayerNorm stats, log-sum-exp
    outside = 2 * C * bytes_per_value + 4 * 2 + 2 * 8 + (4 * config.vocab_size if head else 0)
    return config.n_layer * per_layer + outside


def kv_cache_bytes_per_token(config: GPTConfig, bytes_per_value: int = 4) -> int:
    """Bytes the KV cache holds per token of context: a key and a value of C numbers in every layer."""
    return 2 * config.n_layer * config.n_embd * bytes_per_value


def training_memory(config: GPTConfig, batch_size: int, seq_len: int, precision: str = "fp32") -> dict[str, float]:
    """Bytes to train ``GPT(config)`` with AdamW: parameter states plus the activations of one batch.

    Returns:
        ``{"weights", "grads", "master", "optimizer", "activations", "total"}`` in bytes.
    """
    out = param_memory(param_count(config), precision)
    act = activation_bytes_per_token(config, 2 if precision.startswith("bf16") else 4)
    out["activations"] = act * batch_size * seq_len
    out["total"] += out["activations"]
    return out


# ---------------------------------------------------------------- scaling up: GPT-3
@dataclass(frozen=True)
class ScaleEstimate:
    """The cost of training and serving one model, every assumption a field (printed by the notebook)."""

    name: str = "GPT-3 175B"
    n_params: float = 175e9  # Brown et al. 2020, Table 2.1
    n_tokens: float = 300e9  # training tokens (Brown et al. 2020, section 2.2)
    n_layer: int = 96
    n_embd: int = 12288
    context: int = 2048
    flops_per_param_token: float = 6.0  # Kaplan's 6 N D: forward 2, backward 4; attention left out
    gpu: str = "NVIDIA A100 80GB"
    peak_flops: float = 312e12  # A100 dense bf16 tensor-core peak, FLOP/s (NVIDIA datasheet)
    utilisation: float = 0.40  # model FLOPs utilisation (MFU); large runs report 0.3-0.5 (PaLM: 0.46)
    gpu_memory: float = 80e9  # bytes per GPU
    price_per_gpu_hour: float = 2.0  # USD, a cloud on-demand price for one A100 (stated, not measured)
    serve_bytes_per_param: float = 2.0  # bf16 weights when serving
    serve_batch_tokens: int = 2048  # tokens of KV cache to hold while serving (one full-context request)

    @property
    def train_flops(self) -> float:
        return kaplan_flops(self.n_params, self.n_tokens)

    @property
    def attention_flops(self) -> float:
        """What 6ND leaves out: attention's 14 L T C per token (:func:`flops_per_token`), 3.3% more for GPT-3."""
        return 14 * self.n_layer * self.context * self.n_embd * self.n_tokens

    @property
    def gpu_seconds(self) -> float:
        return self.train_flops / (self.peak_flops * self.utilisation)

    @property
    def gpu_days(self) -> float:
        return self.gpu_seconds / 86400

    @property
    def dollars(self) -> float:
        return self.gpu_seconds / 3600 * self.price_per_gpu_hour

    @property
    def serve_weight_bytes(self) -> float:
        return self.n_params * self.serve_bytes_per_param

    @property
    def kv_bytes_per_token(self) -> float:
        return 2 * self.n_layer * self.n_embd * self.serve_bytes_per_param

    @property
    def serve_bytes(self) -> float:
        return self.serve_weight_bytes + self.kv_bytes_per_token * self.serve_batch_tokens

    @property
    def serve_gpus(self) -> int:
        return math.ceil(self.serve_bytes / self.gpu_memory)

    @property
    def train_memory_bytes(self) -> float:
        return self.n_params * BYTES_PER_PARAM["bf16-mixed"].total

    def summary(self) -> dict[str, float | str]:
        """Every assumption and every result, for printing as a table."""
        out: dict[str, float | str] = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("train_flops", "attention_flops", "gpu_days", "dollars", "train_memory_bytes",
                     "serve_weight_bytes", "kv_bytes_per_token", "serve_bytes", "serve_gpus"):
            out[name] = getattr(self, name)
        return out


def gpt3_estimate(**overrides: float | str) -> ScaleEstimate:
    """GPT-3's training and serving cost (Brown et al. 2020: 3.14e23 FLOPs), any assumption overridden.

    Args:
        **overrides: fields of :class:`ScaleEstimate`, e.g. ``utilisation=0.5, price_per_gpu_hour=1.5``.
    Returns:
        The estimate: ``.train_flops`` (≈ 3.15e23), ``.gpu_days``, ``.dollars``, ``.serve_bytes``, ...
    """
    known = {f.name for f in fields(ScaleEstimate)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown ScaleEstimate field(s) {unknown}: the fields are {sorted(known)}")
    return ScaleEstimate(**overrides)  # type: ignore[arg-type]
