"""BERT: a bidirectional transformer encoder, pre-trained by masked-language modelling (双向编码器).

Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding"
(https://arxiv.org/abs/1810.04805). Where GPT (:mod:`llmguide.model`) lets each position see only the
past, BERT lets every position see the whole sequence (no causal mask), so it cannot generate text left to
right, but each position's vector is built from both sides: what tagging and classification need.

Layout, with Hugging Face's ``BertForMaskedLM`` names in brackets so :meth:`BERT.from_hf` / :meth:`BERT.to_hf`
copy weights both ways:

* embeddings: token (``word_embeddings``) + learned position (``position_embeddings``) + segment / token
  type (``token_type_embeddings``, sentence A or B), then LayerNorm and dropout;
* ``n_layer`` *post*-LayerNorm blocks (the original transformer's order, unlike GPT-2's pre-LN):
  ``x = LN(x + attn(x))``, ``x = LN(x + mlp(x))``; attention is :class:`llmguide.attention.MultiHeadAttention`
  with ``causal=False``; the MLP uses exact (erf) GELU;
* a pooler: ``tanh(W h_[CLS] + b)``, the sentence vector a sequence classifier reads;
* the MLM head: dense + GELU + LayerNorm, then a decoder whose weight is the token embedding (tied) plus
  a bias per token.

Heads for fine-tuning: :class:`BertClassifier` (pooler -> dropout -> linear, as ``BertForSequenceClassification``)
and :class:`BertTagger` (every position -> dropout -> linear, as ``BertForTokenClassification``; e.g. BMES
word-segmentation tags). All three are model-folder kinds: "bert-mlm", "bert-classifier", "bert-tagger".

Shapes: B batch, T positions, C = n_embd, V = vocab_size, K classes or tags, N predicted (masked) positions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmguide.attention import AttentionMask, MultiHeadAttention, build_mask
from llmguide.folder import CONFIG, LABELS, WEIGHTS, ModelKind, register_kind
from llmguide.runtime import check_positive_int


@dataclass
class BertConfig:
    """The sizes of a BERT, with GPT-2's field names where they apply (HF's names in comments)."""

    vocab_size: int = 30522  # token ids, [MASK] included (vocab_size); bert-base-uncased has 30522
    block_size: int = 512  # learned positions: the longest input (max_position_embeddings)
    n_layer: int = 12  # encoder blocks (num_hidden_layers)
    n_head: int = 12  # attention heads per block (num_attention_heads)
    n_embd: int = 768  # width of the residual stream (hidden_size); the MLP is 4x wider (intermediate_size)
    dropout: float = 0.1  # on embeddings, attention weights and residual branches (hidden/attention dropout)
    type_vocab_size: int = 2  # segment ids: sentence A = 0, sentence B = 1 (type_vocab_size)
    layer_norm_eps: float = 1e-12  # BERT's LayerNorm epsilon (layer_norm_eps); GPT-2 uses 1e-5

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "type_vocab_size"):
            check_positive_int(getattr(self, name), f"BertConfig.{name}", "a positive int")
        if self.n_embd % self.n_head:
            raise ValueError(f"BertConfig.n_embd={self.n_embd} must be divisible by n_head={self.n_head}: each "
                             f"head gets n_embd // n_head dimensions (e.g. n_embd={self.n_head * 64})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"BertConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if not 0.0 < self.layer_norm_eps < 1.0:
            raise ValueError(f"BertConfig.layer_norm_eps must be in (0, 1), got {self.layer_norm_eps!r}")


class BertMLP(nn.Module):
    """The position-wise feed-forward network: C -> 4C -> GELU (exact, erf) -> C."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)  # intermediate.dense
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)  # output.dense
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))  # (B, T, C)


class BertBlock(nn.Module):
    """One post-LN encoder block: x = LN(x + attn(x)); x = LN(x + mlp(x)), attention over all positions."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(config.n_embd, config.n_head, config.dropout, bias=True, causal=False)
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps)  # attention.output.LayerNorm
        self.mlp = BertMLP(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps)  # output.LayerNorm

    def forward(self, x: Tensor, mask: AttentionMask) -> Tensor:
        # Post-LN normalises the residual stream itself after each sub-layer (Vaswani et al. 2017); it
        # trains less easily than pre-LN at depth (Xiong et al. 2020), which is why GPT-2 moved the LN.
        x = self.ln_1(x + self.attn(x, mask=mask)[0])
        return self.ln_2(x + self.mlp(x))  # (B, T, C)


class BERT(nn.Module):
    """BERT with its masked-language-model head (HF ``BertForMaskedLM`` plus the pooler).

    Args:
        config: the sizes.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        C = config.n_embd
        self.wte = nn.Embedding(config.vocab_size, C)  # token embeddings (V, C)
        self.wpe = nn.Embedding(config.block_size, C)  # learned positions (block_size, C)
        self.wtt = nn.Embedding(config.type_vocab_size, C)  # segment (token type) embeddings
        self.ln_emb = nn.LayerNorm(C, eps=config.layer_norm_eps)
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList([BertBlock(config) for _ in range(config.n_layer)])
        self.pooler = nn.Linear(C, C)  # tanh(W h_[CLS] + b): the sentence vector
        self.mlm_dense = nn.Linear(C, C)  # cls.predictions.transform
        self.mlm_ln = nn.LayerNorm(C, eps=config.layer_norm_eps)
        self.lm_head = nn.Linear(C, config.vocab_size)  # decoder; its bias is cls.predictions.bias
        self.apply(self._init_weights)
        # Tied: a position's prediction scores each token by the token's own input embedding (Press & Wolf 2017).
        self.lm_head.weight = self.wte.weight

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # BERT's init: N(0, 0.02) for every matrix and embedding, zero biases, LayerNorm (1, 0).
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self) -> int:
        """Number of parameters (the tied embedding / decoder weight counted once)."""
        return sum(p.numel() for p in self.parameters())

    def hidden_states(self, idx: Tensor, attention_mask: Tensor | None = None,
                      token_type_ids: Tensor | None = None) -> Tensor:
        """The last block's output at every position (what the heads read).

        Args:
            idx: (B, T) token ids, T <= block_size.
            attention_mask: (B, T) 1 = real token, 0 = padding (padding is never attended to).
            token_type_ids: (B, T) segment ids (default all 0).
        Returns:
            (B, T, C).
        """
        if idx.dim() != 2 or idx.dtype not in (torch.long, torch.int32):
            raise ValueError(f"idx must be a (B, T) tensor of token ids, got shape {tuple(idx.shape)} {idx.dtype}")
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"{T} tokens exceed block_size={self.config.block_size}: cut the input to "
                             f"{self.config.block_size} tokens")
        if attention_mask is not None and tuple(attention_mask.shape) != (B, T):
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected (B, T) = {(B, T)}")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(idx)
        pos = torch.arange(T, device=idx.device)  # absolute positions: BERT pads on the right
        x = self.wte(idx) + self.wpe(pos) + self.wtt(token_type_ids)  # (B, T, C)
        x = self.drop(self.ln_emb(x))
        mask = build_mask(attention_mask, T, T, causal=False, device=idx.device)  # once, for every layer
        for block in self.h:
            x = block(x, mask)
        return x  # (B, T, C)

    def pooled(self, h: Tensor) -> Tensor:
        """The pooler: tanh(W h[:, 0] + b) on the first ([CLS]) position. (B, T, C) -> (B, C)."""
        return torch.tanh(self.pooler(h[:, 0]))

    def mlm_logits(self, h: Tensor) -> Tensor:
        """The MLM head on hidden states (..., C) -> logits (..., V)."""
        return self.lm_head(self.mlm_ln(F.gelu(self.mlm_dense(h))))

    def forward(self, idx: Tensor, targets: Tensor | None = None, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Masked-token logits, and the MLM loss when targets are given: the one way to get BERT's logits.

        Args:
            idx: (B, T) token ids, some replaced by [MASK] (see :mod:`llmguide.mlm`).
            targets: (B, T) the original token at each predicted position, -100 elsewhere.
            attention_mask: (B, T) 1 = real token, 0 = padding.
            token_type_ids: (B, T) segment ids.
        Returns:
            Without targets: logits (B, T, V) and None. With targets: the logits of the predicted positions
            only, (N, V) in row-major order (the head is the largest matrix and ~85% of positions predict
            nothing; the original BERT code gathers them the same way), and the mean cross-entropy over them.
        """
        h = self.hidden_states(idx, attention_mask, token_type_ids)  # (B, T, C)
        if targets is None:
            return self.mlm_logits(h), None  # (B, T, V)
        if targets.shape != idx.shape:
            raise ValueError(f"targets must have idx's shape {tuple(idx.shape)}, got {tuple(targets.shape)}")
        keep = targets != -100  # (B, T)
        logits = self.mlm_logits(h[keep])  # (N, V)
        return logits, F.cross_entropy(logits.float(), targets[keep])

    # ---- Hugging Face interop -------------------------------------------------------------------------

    @classmethod
    def from_hf(cls, hf_model: nn.Module) -> BERT:
        """Build a BERT with the weights of a ``transformers`` BERT (``BertForMaskedLM``, ``BertForPreTraining``).

        The pooler is copied when the HF model has one (``BertForMaskedLM`` has none: ours keeps its init).

        Returns:
            A BERT in the HF model's train/eval mode, on its device, with the same MLM logits.
        """
        c = hf_model.config
        if getattr(c, "model_type", None) != "bert":
            raise ValueError(f"from_hf needs a BERT model, got model_type={getattr(c, 'model_type', None)!r}")
        checks = {"hidden_act": (c.hidden_act, ("gelu",)), "intermediate_size": (c.intermediate_size, (4 * c.hidden_size,)),
                  "position_embedding_type": (getattr(c, "position_embedding_type", "absolute"), ("absolute",)),
                  "is_decoder": (c.is_decoder, (False,))}
        for key, (value, ok) in checks.items():
            if value not in ok:
                raise ValueError(f"BERT config {key}={value!r} is not supported: BERT here needs one of {ok}")
        config = BertConfig(vocab_size=c.vocab_size, block_size=c.max_position_embeddings, n_layer=c.num_hidden_layers,
                            n_head=c.num_attention_heads, n_embd=c.hidden_size, dropout=float(c.hidden_dropout_prob),
                            type_vocab_size=c.type_vocab_size, layer_norm_eps=c.layer_norm_eps)
        model = cls(config)
        hf = hf_model.state_dict()
        ours = {}
        for name, hf_name in _name_map(config).items():
            if isinstance(hf_name, tuple):  # q, k, v -> one c_attn
                if hf_name[0] in hf:
                    ours[name] = torch.cat([hf[n] for n in hf_name])
            elif hf_name in hf:
                ours[name] = hf[hf_name]
        missing = sorted(set(model.state_dict()) - set(ours) - {"lm_head.weight", "pooler.weight", "pooler.bias"})
        if missing:
            raise ValueError(f"the HF model lacks weights for {missing[:4]}: pass a BertForMaskedLM or BertForPreTraining")
        model.load_state_dict(ours, strict=False)
        p = next(hf_model.parameters())
        return model.to(device=p.device, dtype=p.dtype).train(hf_model.training)

    def to_hf(self, attn_implementation: str = "eager") -> nn.Module:
        """Export to a ``transformers`` ``BertForMaskedLM`` with the same weights and MLM logits (no pooler:
        ``BertForMaskedLM`` has none).

        Args:
            attn_implementation: "eager" or "sdpa".
        Returns:
            The HF model, in this model's train/eval mode and on its device.
        """
        from transformers import BertConfig as HFBertConfig
        from transformers import BertForMaskedLM

        c = self.config
        hf_config = HFBertConfig(vocab_size=c.vocab_size, hidden_size=c.n_embd, num_hidden_layers=c.n_layer,
                                 num_attention_heads=c.n_head, intermediate_size=4 * c.n_embd, hidden_act="gelu",
                                 hidden_dropout_prob=c.dropout, attention_probs_dropout_prob=c.dropout,
                                 max_position_embeddings=c.block_size, type_vocab_size=c.type_vocab_size,
                                 layer_norm_eps=c.layer_norm_eps, pad_token_id=0, tie_word_embeddings=True)
        hf_config._attn_implementation = attn_implementation
        hf_model = BertForMaskedLM(hf_config)
        ours = self.state_dict()
        hf_sd = {}
        C = c.n_embd
        for name, hf_name in _name_map(c).items():
            if name.startswith("pooler."):
                continue
            if isinstance(hf_name, tuple):
                for i, n in enumerate(hf_name):
                    hf_sd[n] = ours[name][i * C:(i + 1) * C].clone()
            else:
                hf_sd[hf_name] = ours[name].detach().clone()
        result = hf_model.load_state_dict(hf_sd, strict=False)
        left = [k for k in result.missing_keys if not k.endswith(("position_ids", "decoder.weight", "decoder.bias"))]
        if left or result.unexpected_keys:
            raise RuntimeError(f"to_hf: unmatched weights {left} {result.unexpected_keys}")
        hf_model.tie_weights()
        p = next(self.parameters())
        return hf_model.to(device=p.device, dtype=p.dtype).train(self.training)


def _name_map(config: BertConfig) -> dict[str, Any]:
    """Our state_dict names -> HF BertForMaskedLM names (a tuple: our fused q|k|v from three HF matrices)."""
    e, p = "bert.embeddings.", "cls.predictions."
    names: dict[str, Any] = {"wte.weight": e + "word_embeddings.weight", "wpe.weight": e + "position_embeddings.weight",
                             "wtt.weight": e + "token_type_embeddings.weight", "ln_emb.weight": e + "LayerNorm.weight",
                             "ln_emb.bias": e + "LayerNorm.bias", "pooler.weight": "bert.pooler.dense.weight",
                             "pooler.bias": "bert.pooler.dense.bias", "mlm_dense.weight": p + "transform.dense.weight",
                             "mlm_dense.bias": p + "transform.dense.bias", "mlm_ln.weight": p + "transform.LayerNorm.weight",
                             "mlm_ln.bias": p + "transform.LayerNorm.bias", "lm_head.bias": p + "bias"}
    for i in range(config.n_layer):
        h, L = f"h.{i}.", f"bert.encoder.layer.{i}."
        for w in ("weight", "bias"):
            names[h + "attn.c_attn." + w] = tuple(L + f"attention.self.{n}.{w}" for n in ("query", "key", "value"))
            names[h + "attn.c_proj." + w] = L + "attention.output.dense." + w
            names[h + "ln_1." + w] = L + "attention.output.LayerNorm." + w
            names[h + "mlp.c_fc." + w] = L + "intermediate.dense." + w
            names[h + "mlp.c_proj." + w] = L + "output.dense." + w
            names[h + "ln_2." + w] = L + "output.LayerNorm." + w
    return names


class WithCLS:
    """A tokenizer that starts every text with [CLS] (our tokenizers' ``<bos>``): what BERT's pooler reads.

    Everything else (``pad_id``, ``vocab_size``, ``decode``, ...) is the wrapped tokenizer's, so it can be
    passed wherever a tokenizer is (e.g. :func:`llmguide.classify.review_datasets` with ``end_id`` = [SEP]).
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.cls_id = tokenizer.bos_id

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [self.cls_id, *self.tokenizer.encode(text)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tokenizer, name)


class BertClassifier(nn.Module):
    """Sequence classification: the pooled [CLS] vector -> dropout -> linear (HF ``BertForSequenceClassification``).

    Args:
        bert: the (usually pre-trained) body; its MLM head is unused.
        n_classes: K.
    """

    def __init__(self, bert: BERT, n_classes: int) -> None:
        super().__init__()
        self.n_classes = check_positive_int(n_classes, "n_classes", "a positive int (the number of classes)")
        self.bert = bert
        self.drop = nn.Dropout(bert.config.dropout)
        self.score = nn.Linear(bert.config.n_embd, n_classes)
        nn.init.normal_(self.score.weight, std=0.02)
        nn.init.zeros_(self.score.bias)

    def forward(self, idx: Tensor, attention_mask: Tensor | None = None, labels: Tensor | None = None,
                token_type_ids: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Class logits (B, K), and the cross-entropy loss when labels (B,) are given.

        ``idx`` should start with the [CLS] token (our tokenizers' ``<bos>``): the pooler reads position 0.
        """
        h = self.bert.hidden_states(idx, attention_mask, token_type_ids)  # (B, T, C)
        logits = self.score(self.drop(self.bert.pooled(h)))  # (B, K)
        return logits, None if labels is None else F.cross_entropy(logits.float(), labels)


class BertTagger(nn.Module):
    """Token classification (tagging, e.g. BMES word segmentation): every position's hidden state -> dropout ->
    linear (HF ``BertForTokenClassification``).

    Args:
        bert: the (usually pre-trained) body.
        n_tags: K.
    """

    def __init__(self, bert: BERT, n_tags: int) -> None:
        super().__init__()
        self.n_classes = check_positive_int(n_tags, "n_tags", "a positive int (the number of tags)")
        self.bert = bert
        self.drop = nn.Dropout(bert.config.dropout)
        self.score = nn.Linear(bert.config.n_embd, n_tags)
        nn.init.normal_(self.score.weight, std=0.02)
        nn.init.zeros_(self.score.bias)

    def forward(self, idx: Tensor, attention_mask: Tensor | None = None, labels: Tensor | None = None,
                token_type_ids: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Tag logits (B, T, K), and the mean cross-entropy over labelled positions when labels (B, T) are given
        (-100 = no label: padding, [CLS], [SEP])."""
        h = self.bert.hidden_states(idx, attention_mask, token_type_ids)  # (B, T, C)
        logits = self.score(self.drop(h))  # (B, T, K)
        if labels is None:
            return logits, None
        return logits, F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)


# The model-folder kinds of this module (see llmguide.folder).
register_kind(ModelKind("bert-mlm", BERT, describe=lambda m: {"model": asdict(m.config)},
                        build=lambda meta: BERT(BertConfig(**meta["model"]))))
register_kind(ModelKind(
    "bert-classifier", BertClassifier,
    describe=lambda m: {"model": asdict(m.bert.config), "task": "classification", "n_classes": m.n_classes},
    build=lambda meta: BertClassifier(BERT(BertConfig(**meta["model"])), len(meta["labels"])),
    files=(WEIGHTS, CONFIG, LABELS)))
register_kind(ModelKind(
    "bert-tagger", BertTagger,
    describe=lambda m: {"model": asdict(m.bert.config), "task": "tagging", "n_classes": m.n_classes},
    build=lambda meta: BertTagger(BERT(BertConfig(**meta["model"])), len(meta["labels"])),
    files=(WEIGHTS, CONFIG, LABELS)))
