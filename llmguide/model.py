"""The GPT model: a decoder-only transformer with GPT-2's exact layout, and GPT-2 interop both ways.

Token + learned position embeddings, ``n_layer`` pre-LayerNorm blocks (causal self-attention, then a
GELU MLP, each added back to a residual stream), a final LayerNorm and a language-model head that shares
its weight with the token embedding. The layout, names and initialisation follow GPT-2 (Radford et al.
2019, "Language Models are Unsupervised Multitask Learners"), built on the transformer of Vaswani et al.
2017 ("Attention Is All You Need"), so that :meth:`GPT.from_hf` / :meth:`GPT.to_hf` copy weights to and
from Hugging Face's ``GPT2LMHeadModel`` and give the same logits.

Shapes: B batch, T new tokens, S all key positions (cached + new), C = n_embd, V = vocab_size.

Why one module of ~440 lines: the config, the blocks, the GPT, its Hugging Face interop both ways and the
classifier head on it are read together; each class is about a screen.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from llmguide.attention import AttentionMask, KVCache, MultiHeadAttention, build_mask
from llmguide.download import from_hub
from llmguide.folder import CONFIG, LABELS, WEIGHTS, ModelKind, load_folder, register_kind
from llmguide.profiles import MODEL_SIZES
from llmguide.runtime import check_positive_int

PRESETS = MODEL_SIZES  # the old name of the table of model sizes



@dataclass
class GPTConfig:
    """The sizes of a GPT, with GPT-2's field names."""

    vocab_size: int = 50257  # number of token ids (GPT-2's BPE has 50257); normally from the tokenizer
    block_size: int = 1024  # longest sequence the model sees: the number of learned position embeddings
    n_layer: int = 12  # number of transformer blocks
    n_head: int = 12  # attention heads per block; each head has n_embd // n_head dimensions
    n_embd: int = 768  # width of the residual stream (embedding size)
    dropout: float = 0.0  # dropout probability in training (embeddings, attention, residual branches)
    bias: bool = True  # biases in Linear and LayerNorm layers, as in GPT-2 (False: slightly smaller)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            check_positive_int(getattr(self, name), f"GPTConfig.{name}", "a positive int")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"GPTConfig.n_embd={self.n_embd} must be divisible by n_head={self.n_head}: "
                f"each head gets n_embd // n_head dimensions (e.g. n_embd={self.n_head * 64})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.bias, bool):
            raise ValueError(f"GPTConfig.bias must be True or False, got {self.bias!r}")

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> GPTConfig:
        """A config from a named size ("cpu", "gpu", "gpt2"; :data:`llmguide.profiles.MODEL_SIZES`), with any
        field overridden.

        Args:
            name: a key of ``MODEL_SIZES``.
            **overrides: GPTConfig fields, e.g. ``vocab_size=tokenizer.vocab_size``.
        Returns:
            The config.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}: use one of {sorted(PRESETS)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown GPTConfig field(s) {unknown}: the fields are {sorted(known)}")
        return cls(**{**PRESETS[name], **overrides})


class MLP(nn.Module):
    """The position-wise feed-forward network: C -> 4C -> GELU -> C."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        # GPT-2 uses the tanh approximation of GELU ("gelu_new" in transformers); exact GELU differs by ~1e-3.
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        y = self.c_proj(self.gelu(self.c_fc(x)))  # (B, T, C)
        # Dropout is the identity in eval mode; skipping the module call saves per-token time in generation.
        return self.dropout(y) if self.training else y


class Block(nn.Module):
    """One transformer block, pre-LayerNorm: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = MultiHeadAttention(config.n_embd, config.n_head, config.dropout, config.bias, causal=True)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, mask: AttentionMask, kv_cache: KVCache | None = None) -> Tensor:
        # The residual stream x is only ever added to, so gradients flow straight from the loss to every layer.
        x = x + self.attn(self.ln_1(x), kv_cache=kv_cache, mask=mask)[0]
        return x + self.mlp(self.ln_2(x))  # (B, T, C)


def positions_from_mask(attention_mask: Tensor, T: int) -> Tensor:
    """Position ids for left- or right-padded rows, as Hugging Face computes them.

    Each row counts its own real tokens: position = cumsum(mask) - 1, clipped at 0 on the padding, so a
    left-padded prompt starts at position 0 just like an unpadded one.

    Args:
        attention_mask: (B, S) 0/1 over all key positions (cached + new).
        T: the number of new positions.
    Returns:
        (B, T) long position ids of the last T positions.
    """
    pos = attention_mask.long().cumsum(-1) - 1
    return pos.clamp_(min=0)[:, -T:]


class GPT(nn.Module):
    """A GPT-2-style language model.

    Args:
        config: the sizes.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embeddings (V, C)
            wpe=nn.Embedding(config.block_size, config.n_embd),  # learned position embeddings (block_size, C)
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying (Press & Wolf 2017): the output layer scores each token by its input embedding,
        # saving V*C parameters (38.6M of GPT-2's 124M).
        self.transformer.wte.weight = self.lm_head.weight
        # Activation checkpointing (Chen et al. 2016): in training, keep only each block's input and recompute
        # its activations in the backward pass: less peak memory for about one more forward pass of time.
        self.activation_checkpointing = False
        self.apply(self._init_weights)
        # GPT-2 scales the init of each residual projection by 1/sqrt(2*n_layer) (two per block), so the
        # residual stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = False) -> int:
        """Number of parameters (the tied embedding / LM head counted once).

        Args:
            non_embedding: leave out the token and position embeddings, leaving what the
                ``12 * n_layer * n_embd**2`` rule counts (plus biases and LayerNorms).
        Returns:
            The count.
        """
        n = sum(p.numel() for p in self.parameters())  # parameters() yields a tied tensor once
        if non_embedding:
            n -= self.transformer.wte.weight.numel() + self.transformer.wpe.weight.numel()
        return n

    def hidden_states(
        self,
        idx: Tensor,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        kv_caches: list[KVCache] | None = None,
    ) -> Tensor:
        """The final-LayerNorm output for each position (what the heads read).

        Args and shapes as in :meth:`forward`.
        Returns:
            (B, T, C).
        """
        if idx.dim() != 2 or idx.dtype not in (torch.long, torch.int32, torch.int64):
            raise ValueError(f"idx must be a (B, T) tensor of token ids, got shape {tuple(idx.shape)} {idx.dtype}")
        B, T = idx.shape
        past = len(kv_caches[0]) if kv_caches else 0
        if kv_caches is not None and len(kv_caches) != self.config.n_layer:
            raise ValueError(f"kv_caches has {len(kv_caches)} entries, need one per layer ({self.config.n_layer})")
        if attention_mask is not None and tuple(attention_mask.shape) != (B, past + T):
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)}, expected (B, cached + new) = "
                f"{(B, past + T)}: it covers every key position, cached ones included"
            )
        if position_ids is None:
            if past + T > self.config.block_size:
                raise ValueError(
                    f"{past} cached + {T} new tokens exceed block_size={self.config.block_size}: crop the input "
                    f"to its last {self.config.block_size} tokens (generate() does this)"
                )
            if attention_mask is not None:
                position_ids = positions_from_mask(attention_mask, T)  # (B, T)
            else:
                position_ids = torch.arange(past, past + T, device=idx.device).unsqueeze(0)  # (1, T)
        x = self.transformer.wte(idx) + self.transformer.wpe(position_ids)  # (B, T, C)
        x = self.transformer.drop(x) if self.training else x  # dropout is the identity in eval mode
        mask = build_mask(attention_mask, T, past + T, causal=True, device=idx.device)  # once, for every layer
        for i, block in enumerate(self.transformer.h):
            if self.activation_checkpointing and self.training and torch.is_grad_enabled() and kv_caches is None:
                x = checkpoint(block, x, mask, use_reentrant=False)
            else:
                x = block(x, mask, kv_caches[i] if kv_caches is not None else None)
        return self.transformer.ln_f(x)  # (B, T, C)

    def forward(
        self,
        idx: Tensor,
        targets: Tensor | None = None,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        kv_caches: list[KVCache] | None = None,
        all_logits: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Next-token logits, and the loss when targets are given: the one way to get logits from a GPT.

        As in nanoGPT, without targets only the last position's logits are computed (what generation
        needs): the (C x V) head is the largest matrix of a small model, and running it on every position
        would be most of the work of a decoding step.

        Args:
            idx: (B, T) token ids.
            targets: (B, T) the next token at each position; -100 = ignore that position.
            attention_mask: (B, S) 1 for real tokens, 0 for padding, over all key positions (cached + new).
            position_ids: (B, T) or (1, T); default: counted from ``attention_mask`` (left padding starts at
                0), else ``past .. past + T - 1``.
            kv_caches: one :class:`KVCache` per layer, updated in place (for generation).
            all_logits: return every position's logits even without targets (e.g. to score a text).
        Returns:
            logits (B, T, V) with targets or ``all_logits``, else (B, 1, V); and the mean cross-entropy loss
            (a scalar) or None.
        """
        x = self.hidden_states(idx, attention_mask, position_ids, kv_caches)  # (B, T, C)
        if targets is None and not all_logits:
            return self.lm_head(x[:, -1:]), None  # (B, 1, V)
        logits = self.lm_head(x)  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)
        return logits, loss

    def new_kv_caches(self) -> list[KVCache]:
        """Empty key/value caches, one per layer, for :meth:`forward` (see ``llmguide.generate``)."""
        return [KVCache(self.config.block_size) for _ in range(self.config.n_layer)]

    # ---- Hugging Face interop -------------------------------------------------------------------------

    @classmethod
    def from_hf(cls, hf_model: nn.Module) -> GPT:
        """Build a GPT with the weights of a ``transformers`` GPT-2 model.

        Args:
            hf_model: a ``GPT2LMHeadModel`` (or ``GPT2Model``).
        Returns:
            A GPT in the same train/eval mode, on the same device, giving the same logits.
        """
        hf_config = hf_model.config
        if getattr(hf_config, "model_type", None) != "gpt2":
            raise ValueError(f"from_hf needs a GPT-2 model, got model_type={getattr(hf_config, 'model_type', None)!r}")
        unsupported = {
            "activation_function": (hf_config.activation_function, ("gelu_new", "gelu_pytorch_tanh")),
            "layer_norm_epsilon": (hf_config.layer_norm_epsilon, (1e-5,)),
            "scale_attn_by_inverse_layer_idx": (hf_config.scale_attn_by_inverse_layer_idx, (False,)),
            "scale_attn_weights": (hf_config.scale_attn_weights, (True,)),
            "add_cross_attention": (hf_config.add_cross_attention, (False,)),
        }
        for key, (value, ok) in unsupported.items():
            if value not in ok:
                raise ValueError(f"GPT-2 config {key}={value!r} is not supported: GPT needs one of {ok}")
        config = GPTConfig(
            vocab_size=hf_config.vocab_size, block_size=hf_config.n_positions, n_layer=hf_config.n_layer,
            n_head=hf_config.n_head, n_embd=hf_config.n_embd, dropout=float(hf_config.resid_pdrop), bias=True,
        )
        hf_sd = hf_model.state_dict()
        prefix = "transformer." if any(k.startswith("transformer.") for k in hf_sd) else ""
        p = next(hf_model.parameters())
        with torch.device("meta"):
            model = cls(config)
        sd = {}
        for name in model.state_dict():
            if name == "lm_head.weight":
                continue  # tied to transformer.wte.weight
            w = hf_sd[prefix + name.removeprefix("transformer.")]
            # HF GPT-2 keeps OpenAI's Conv1D layers: weight (in, out), the transpose of nn.Linear's (out, in).
            sd[name] = w.t() if name.endswith(_CONV1D) else w
        model.load_state_dict(sd, strict=False, assign=True)
        model.lm_head.weight = model.transformer.wte.weight  # re-tie after assign
        return model.to(device=p.device, dtype=p.dtype).train(hf_model.training)

    def to_hf(self, attn_implementation: str = "sdpa") -> nn.Module:
        """Export to a ``transformers`` ``GPT2LMHeadModel`` with the same weights (and logits).

        Args:
            attn_implementation: "sdpa" or "eager" (Hugging Face's attention code paths).
        Returns:
            The HF model, in the same train/eval mode and on the same device.
        """
        from transformers import GPT2Config, GPT2LMHeadModel

        c = self.config
        hf_config = GPT2Config(
            vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd, n_layer=c.n_layer, n_head=c.n_head,
            resid_pdrop=c.dropout, embd_pdrop=c.dropout, attn_pdrop=c.dropout, activation_function="gelu_new",
            layer_norm_epsilon=1e-5, tie_word_embeddings=True,
            # GPT-2's <|endoftext|> id only exists in its own vocabulary
            bos_token_id=50256 if c.vocab_size > 50256 else None, eos_token_id=50256 if c.vocab_size > 50256 else None,
        )
        hf_config._attn_implementation = attn_implementation
        hf_model = GPT2LMHeadModel(hf_config)
        hf_sd = hf_model.state_dict()
        ours = self.state_dict()
        new = {}
        for key, target in hf_sd.items():
            if key == "lm_head.weight" or key.endswith((".attn.bias", ".attn.masked_bias")):
                continue
            name = "transformer." + key.removeprefix("transformer.")
            w = ours.get(name)
            if w is None:  # bias=False here: GPT-2 always has biases, and zeros are the same function
                w = torch.zeros_like(target)
            new[key] = (w.t() if name.endswith(_CONV1D) else w).detach().clone()
        hf_model.load_state_dict(new, strict=False)
        hf_model.tie_weights()
        p = next(self.parameters())
        return hf_model.to(device=p.device, dtype=p.dtype).train(self.training)

    @classmethod
    def from_pretrained(cls, name_or_path: str = "gpt2") -> GPT:
        """Load released GPT-2 weights: a hub name when online, or a local folder offline.

        Args:
            name_or_path: a hub name ("gpt2", "gpt2-medium", "openai-community/gpt2", ...), a folder
                written by ``GPT2LMHeadModel.save_pretrained``, or a llmguide model folder
                (``model.safetensors`` + ``config.json`` with a "model" entry).
        Returns:
            The GPT, in eval mode.
        Raises:
            llmguide.download.OfflineError: the weights are neither local nor cached and the hub is unreachable.
        """
        path = Path(name_or_path).expanduser()
        if path.is_dir() and (path / CONFIG).is_file():
            if "model" in json.loads((path / CONFIG).read_text(encoding="utf-8")):  # llmguide's own folder
                return load_folder(path, kind="gpt-lm")[0]
        elif path.exists() or str(name_or_path).startswith((".", "/", "~")):
            raise FileNotFoundError(
                f"{name_or_path!r} is not a model folder (no config.json there): pass a hub name like 'gpt2' "
                "or a folder written by save_pretrained"
            )
        from transformers import GPT2LMHeadModel

        fix = (
            "With internet, run once: GPT2LMHeadModel.from_pretrained('gpt2').save_pretrained('gpt2-local'); "
            "then GPT.from_pretrained('gpt2-local') works offline. Offline, a small packaged model loads with "
            "llmguide.pretrained.load_pretrained_lm()."
        )
        name = str(name_or_path)
        hf_model = from_hub(name, lambda: GPT2LMHeadModel.from_pretrained(name),
                            lambda: GPT2LMHeadModel.from_pretrained(name, local_files_only=True), fix)
        return cls.from_hf(hf_model).eval()

    def config_dict(self) -> dict[str, Any]:
        """``asdict(config)``: what a model folder's config.json stores under "model"."""
        return asdict(self.config)


# Names of the weights that HF's Conv1D stores transposed.
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


class GPTClassifier(nn.Module):
    """A GPT body with a fresh linear ``score`` head that reads the last real token of each sequence.

    In a causal model only the last position has seen the whole text, so it summarises it; with padding
    (left or right) that is the rightmost position whose attention mask is 1, as in HF's
    ``GPT2ForSequenceClassification``.

    Args:
        gpt: the (usually pre-trained) body; its LM head is unused.
        n_classes: number of labels.
    """

    def __init__(self, gpt: GPT, n_classes: int) -> None:
        super().__init__()
        check_positive_int(n_classes, "n_classes", "a positive int")
        self.gpt = gpt
        self.n_classes = n_classes
        self.score = nn.Linear(gpt.config.n_embd, n_classes, bias=False)  # as HF: no bias
        nn.init.normal_(self.score.weight, mean=0.0, std=0.02)

    def forward(
        self, idx: Tensor, attention_mask: Tensor | None = None, labels: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Class logits, and the cross-entropy loss when labels are given.

        Args:
            idx: (B, T) token ids.
            attention_mask: (B, T) 1 for real tokens, 0 for padding (left or right).
            labels: (B,) class ids.
        Returns:
            logits (B, n_classes) and the loss (a scalar) or None.
        """
        h = self.gpt.hidden_states(idx, attention_mask=attention_mask)  # (B, T, C)
        B, T, _ = h.shape
        if attention_mask is None:
            last = torch.full((B,), T - 1, device=idx.device)
        else:
            # rightmost position with mask 1 works for left and right padding alike
            last = (torch.arange(T, device=idx.device) * attention_mask.long()).argmax(-1)  # (B,)
        logits = self.score(h[torch.arange(B, device=idx.device), last])  # (B, n_classes)
        loss = None if labels is None else F.cross_entropy(logits.float(), labels)
        return logits, loss


# The two kinds of model folder this module's models are saved as (see llmguide.folder).
register_kind(ModelKind(
    "gpt-lm", GPT, describe=lambda m: {"model": asdict(m.config)},
    build=lambda meta: GPT(GPTConfig(**meta["model"])), config_class=GPTConfig))
register_kind(ModelKind(
    "gpt-classifier", GPTClassifier,
    describe=lambda m: {"model": asdict(m.gpt.config), "task": "classification", "n_classes": m.n_classes},
    build=lambda meta: GPTClassifier(GPT(GPTConfig(**meta["model"])), len(meta["labels"])),
    files=(WEIGHTS, CONFIG, LABELS), config_class=GPTConfig))
