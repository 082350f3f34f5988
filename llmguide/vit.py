"""The Vision Transformer (ViT): an image read as a sequence of patches by the GPT's attention, unmasked.

Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words" (https://arxiv.org/abs/2010.11929), eq. 1-4:

    z_0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos        patches -> vectors, a class token, learned positions
    z_l = z_l-1 + MSA(LN(z_l-1));  z_l = z_l + MLP(LN(z_l))   pre-LN blocks (the GPT's, without a causal mask)
    y   = head(LN(z_L^0))                                 classify from the class token's final vector

The patch embedding ``E`` is a strided convolution (kernel = stride = patch size): the same as cutting
the image into patches (:func:`patchify`), flattening each one and applying one Linear layer (tested).
Every patch sees every other patch from the first layer on; nothing tells the model that neighbouring
pixels belong together, which a CNN (:mod:`llmguide.cnn`) has built in. That missing *inductive bias* is
why a ViT needs more data than a CNN (notebook 11's learning curves).

:meth:`ViT.from_hf` / :meth:`ViT.to_hf` copy weights to and from ``transformers``'
``ViTForImageClassification``; the model saves and loads as the model-folder kind "vit-classifier".
The blocks are laid out like the GPT's (``transformer.h[i].ln_1/attn/ln_2/mlp``), so
:mod:`llmguide.interpret`'s hooks record them too: :func:`cls_attention` reads attention maps that way.

Shapes: B batch, Ch channels, H, W image height and width, P patch size, N = (H/P)(W/P) patches,
T = N + 1 positions (class token first), C = n_embd, nh = n_head, K classes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmguide.attention import MultiHeadAttention
from llmguide.folder import CONFIG, LABELS, WEIGHTS, ModelKind, register_kind
from llmguide.interpret import run_with_hooks
from llmguide.runtime import check_positive_int


@dataclass
class ViTConfig:
    """The sizes of a ViT classifier, with GPT-2's field names where they apply."""

    image_size: int = 8  # height = width of the input images in pixels (8 for scikit-learn's digits)
    patch_size: int = 2  # side of a square patch; the image must be a whole number of patches
    num_channels: int = 1  # 1 for grey images, 3 for RGB
    num_classes: int = 10  # outputs of the head
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads per block
    n_embd: int = 64  # width of the residual stream
    dropout: float = 0.0  # dropout in training (embeddings, attention weights, residual branches)
    layer_norm_eps: float = 1e-12  # Hugging Face ViT's default (the paper's code uses 1e-6)

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "num_channels", "num_classes", "n_layer", "n_head", "n_embd"):
            check_positive_int(getattr(self, name), f"ViTConfig.{name}", "a positive int")
        if self.image_size % self.patch_size:
            raise ValueError(f"ViTConfig.image_size={self.image_size} is not a multiple of patch_size="
                             f"{self.patch_size}: the image must split into whole patches (e.g. patch_size="
                             f"{max(d for d in range(1, self.image_size) if self.image_size % d == 0)})")
        if self.n_embd % self.n_head:
            raise ValueError(f"ViTConfig.n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ViTConfig.dropout must be in [0, 1), got {self.dropout!r}")

    @property
    def grid(self) -> int:
        """Patches per side: the patches form a grid x grid square."""
        return self.image_size // self.patch_size

    @property
    def n_patches(self) -> int:
        return self.grid ** 2


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """Cut images into non-overlapping square patches, row by row, each flattened as (channel, row, column).

    Args:
        images: (B, Ch, H, W), H and W multiples of ``patch_size``.
        patch_size: P.
    Returns:
        (B, N, Ch * P * P): patch n = (row r, column c) of the grid is n = r * (W / P) + c; its vector lists
        channel 0's P x P pixels row by row, then channel 1's, ... (the order of a Conv2d weight's entries).
    """
    if images.dim() != 4 or images.size(2) % patch_size or images.size(3) % patch_size:
        raise ValueError(f"images must be (B, Ch, H, W) with H, W multiples of patch_size={patch_size}, "
                         f"got shape {tuple(images.shape)}")
    B, Ch, H, W = images.shape
    p = images.unfold(2, patch_size, patch_size).unfold(3, patch_size, patch_size)  # (B, Ch, H/P, W/P, P, P)
    return p.permute(0, 2, 3, 1, 4, 5).reshape(B, (H // patch_size) * (W // patch_size), Ch * patch_size ** 2)


class PatchEmbedding(nn.Module):
    """Patches -> vectors: ``Conv2d(kernel = stride = P)``, i.e. one Linear applied to every flattened patch."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(config.num_channels, config.n_embd, config.patch_size, stride=config.patch_size)
        self.config = config

    def forward(self, images: Tensor) -> Tensor:
        c = self.config
        if images.dim() != 4 or tuple(images.shape[1:]) != (c.num_channels, c.image_size, c.image_size):
            raise ValueError(f"images must be (B, {c.num_channels}, {c.image_size}, {c.image_size}) for this "
                             f"ViTConfig, got shape {tuple(images.shape)}")
        return self.proj(images).flatten(2).transpose(1, 2)  # (B, C, H/P, W/P) -> (B, N, C)


class MLP(nn.Module):
    """C -> 4C -> GELU (exact, as ViT uses) -> C."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))  # (B, T, C)


class Block(nn.Module):
    """A pre-LN encoder block: x + attn(ln(x)), then x + mlp(ln(x)); every position sees every position."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.attn = MultiHeadAttention(config.n_embd, config.n_head, config.dropout, causal=False)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.mlp = MLP(config)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))[0]
        return x + self.mlp(self.ln_2(x))  # (B, T, C)


class ViT(nn.Module):
    """A Vision Transformer classifier: ``logits, loss = model(pixel_values, labels)``.

    Args:
        config: the sizes.
    """

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        C = config.n_embd
        self.patch_embed = PatchEmbedding(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, C))  # a learned "summary" position, read by the head
        self.pos_embed = nn.Parameter(torch.zeros(1, config.n_patches + 1, C))  # learned, one per position
        self.drop = nn.Dropout(config.dropout)
        self.transformer = nn.ModuleDict(dict(h=nn.ModuleList(Block(config) for _ in range(config.n_layer))))
        self.ln_f = nn.LayerNorm(C, eps=config.layer_norm_eps)
        self.head = nn.Linear(C, config.num_classes)
        self.apply(self._init)
        # truncated normal with std 0.02, as the reference implementations initialise the learned tokens
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    def embed(self, pixel_values: Tensor) -> Tensor:
        """The input of block 0: [class token; patch vectors] + positions, (B, T, C)."""
        x = self.patch_embed(pixel_values)  # (B, N, C)
        cls = self.cls_token.expand(x.size(0), -1, -1)  # (B, 1, C)
        return self.drop(torch.cat([cls, x], dim=1) + self.pos_embed)  # (B, T, C)

    def forward(self, pixel_values: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Class scores of a batch of images.

        Args:
            pixel_values: (B, Ch, H, W) float images.
            labels: (B,) class ids, or None.
        Returns:
            ``(logits (B, K), loss)``: the loss is the mean cross-entropy, None without labels.
        """
        x = self.embed(pixel_values)
        for block in self.transformer.h:
            x = block(x)
        logits = self.head(self.ln_f(x[:, 0]))  # the class token's final vector -> (B, K)
        loss = None if labels is None else F.cross_entropy(logits.float(), labels)
        return logits, loss

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ---- Hugging Face interop -------------------------------------------------------------------------

    @classmethod
    def from_hf(cls, hf_model: nn.Module) -> ViT:
        """Build a ViT with the weights of a ``transformers`` ``ViTForImageClassification``.

        Args:
            hf_model: the Hugging Face model (transformers >= 5 parameter names).
        Returns:
            A ViT in the same train/eval mode, on the same device, giving the same logits.
        """
        h = hf_model.config
        if getattr(h, "model_type", None) != "vit" or not hasattr(hf_model, "classifier"):
            raise ValueError("from_hf needs a transformers ViTForImageClassification, got "
                             f"{type(hf_model).__name__} (model_type={getattr(h, 'model_type', None)!r})")
        need = {"hidden_act": (h.hidden_act, "gelu"), "intermediate_size": (h.intermediate_size, 4 * h.hidden_size),
                "qkv_bias": (h.qkv_bias, True)}
        for key, (value, ok) in need.items():
            if value != ok:
                raise ValueError(f"ViT config {key}={value!r} is not supported: ViT needs {ok!r}")
        size = h.image_size if isinstance(h.image_size, int) else h.image_size[0]
        patch = h.patch_size if isinstance(h.patch_size, int) else h.patch_size[0]
        config = ViTConfig(image_size=size, patch_size=patch, num_channels=h.num_channels, num_classes=h.num_labels,
                           n_layer=h.num_hidden_layers, n_head=h.num_attention_heads, n_embd=h.hidden_size,
                           dropout=float(h.hidden_dropout_prob), layer_norm_eps=h.layer_norm_eps)
        theirs = hf_model.state_dict()
        model = cls(config)
        sd = {}
        for ours, names in _hf_names(config).items():
            try:
                parts = [theirs[n] for n in names]
            except KeyError as err:
                raise ValueError(f"{err} is not in the Hugging Face model: from_hf reads transformers >= 5's "
                                 "ViTForImageClassification parameter names") from None
            sd[ours] = torch.cat(parts) if len(parts) > 1 else parts[0]
        model.load_state_dict(sd)
        p = next(hf_model.parameters())
        return model.to(device=p.device, dtype=p.dtype).train(hf_model.training)

    def to_hf(self) -> nn.Module:
        """Export to a ``transformers`` ``ViTForImageClassification`` with the same weights (and logits).

        Returns:
            The HF model, in the same train/eval mode and on the same device.
        """
        from transformers import ViTConfig as HFViTConfig
        from transformers import ViTForImageClassification

        c = self.config
        hf_model = ViTForImageClassification(HFViTConfig(
            image_size=c.image_size, patch_size=c.patch_size, num_channels=c.num_channels, num_labels=c.num_classes,
            hidden_size=c.n_embd, num_hidden_layers=c.n_layer, num_attention_heads=c.n_head,
            intermediate_size=4 * c.n_embd, hidden_act="gelu", hidden_dropout_prob=c.dropout,
            attention_probs_dropout_prob=c.dropout, layer_norm_eps=c.layer_norm_eps, qkv_bias=True))
        ours = self.state_dict()
        new = {}
        for name, names in _hf_names(c).items():
            pieces = ours[name].chunk(len(names)) if len(names) > 1 else [ours[name]]
            new.update({n: t.detach().clone() for n, t in zip(names, pieces, strict=True)})
        hf_model.load_state_dict(new)
        p = next(self.parameters())
        return hf_model.to(device=p.device, dtype=p.dtype).train(self.training)


def _hf_names(config: ViTConfig) -> dict[str, tuple[str, ...]]:
    """Our parameter name -> the Hugging Face names it is made of (q, k, v are one matrix here)."""
    names = {"cls_token": ("vit.embeddings.cls_token",), "pos_embed": ("vit.embeddings.position_embeddings",),
             "patch_embed.proj.weight": ("vit.embeddings.patch_embeddings.projection.weight",),
             "patch_embed.proj.bias": ("vit.embeddings.patch_embeddings.projection.bias",),
             "ln_f.weight": ("vit.layernorm.weight",), "ln_f.bias": ("vit.layernorm.bias",),
             "head.weight": ("classifier.weight",), "head.bias": ("classifier.bias",)}
    for i in range(config.n_layer):
        ours, hf = f"transformer.h.{i}.", f"vit.layers.{i}."
        for w in ("weight", "bias"):
            names[ours + f"attn.c_attn.{w}"] = tuple(hf + f"attention.{x}_proj.{w}" for x in "qkv")
            names[ours + f"attn.c_proj.{w}"] = (hf + f"attention.o_proj.{w}",)
            names[ours + f"ln_1.{w}"] = (hf + f"layernorm_before.{w}",)
            names[ours + f"ln_2.{w}"] = (hf + f"layernorm_after.{w}",)
            names[ours + f"mlp.c_fc.{w}"] = (hf + f"mlp.fc1.{w}",)
            names[ours + f"mlp.c_proj.{w}"] = (hf + f"mlp.fc2.{w}",)
    return names


@torch.no_grad()
def cls_attention(model: ViT, pixel_values: Tensor, layer: int = -1) -> Tensor:
    """Where the class token looks: its attention over the patches, as images on the patch grid.

    Recorded with :func:`llmguide.interpret.run_with_hooks` (the same hooks as for the GPT), the weights
    recomputed from what the layer's attention read, in eval mode.

    Args:
        model: a ViT.
        pixel_values: (B, Ch, H, W).
        layer: which block (negative counts from the end).
    Returns:
        (B, nh, grid, grid): head h's weight from the class token to each patch; with the weight on the class
        token itself (left out here), each (grid, grid) map sums to at most 1.
    """
    L = model.config.n_layer
    if not -L <= layer < L:
        raise ValueError(f"layer={layer} is out of range for a ViT with n_layer={L}: use 0..{L - 1} or -1")
    was_training = model.training
    model.eval()
    try:
        _, rec = run_with_hooks(model, pixel_values)
    finally:
        model.train(was_training)
    weights = rec.attention(layer % L)  # (B, nh, T, T)
    g = model.config.grid
    return weights[:, :, 0, 1:].reshape(weights.size(0), weights.size(1), g, g)


# The model-folder kind of a ViT classifier (see llmguide.folder): labels.json holds the class names.
register_kind(ModelKind(
    "vit-classifier", ViT,
    describe=lambda m: {"model": asdict(m.config), "task": "image-classification", "n_classes": m.config.num_classes},
    build=lambda meta: ViT(ViTConfig(**meta["model"])),
    files=(WEIGHTS, CONFIG, LABELS)))
