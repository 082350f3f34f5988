"""BERT: config checks, bidirectionality, padding, parity with randomly initialised Hugging Face BERTs both ways
(masked LM, sequence and token classification), and the model-folder kinds."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import BertConfig as HFBertConfig
from transformers import BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification

from llmguide.bert import BERT, BertClassifier, BertConfig, BertTagger
from llmguide.folder import load_folder, save_folder
from llmguide.tokenizer import CharTokenizer

ATOL = 1e-5  # the parity target for logits
pytestmark = pytest.mark.usefixtures("one_thread")


def bert_config(tiny: dict, **extra) -> BertConfig:
    return BertConfig(**tiny, dropout=0.0, **extra)


def hf_config(tiny: dict, **extra) -> HFBertConfig:
    sizes = dict(vocab_size=tiny["vocab_size"], hidden_size=tiny["n_embd"], num_hidden_layers=tiny["n_layer"],
                 num_attention_heads=tiny["n_head"], intermediate_size=4 * tiny["n_embd"],
                 max_position_embeddings=tiny["block_size"])
    return HFBertConfig(**{**sizes, **extra})


def perturb(model: torch.nn.Module) -> None:
    """Non-trivial biases and LayerNorms, so a mix-up of any of them shows."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name or ".ln" in name or name.startswith(("ln", "mlm_ln")):
                p.add_(0.1 * torch.randn_like(p))


def hf_bert(tiny: dict, attn: str = "eager", **extra) -> BertForMaskedLM:
    torch.manual_seed(0)
    config = hf_config(tiny, **extra)
    config._attn_implementation = attn
    model = BertForMaskedLM(config).eval()
    perturb(model)
    return model


def batch(tiny: dict, lengths=(16, 9, 2)):
    T = tiny["block_size"]
    idx = torch.randint(1, tiny["vocab_size"], (len(lengths), T))
    mask = (torch.arange(T)[None] < torch.tensor(lengths)[:, None]).long()  # right padding, as BERT pads
    types = (torch.arange(T)[None] >= torch.tensor(lengths)[:, None] // 2).long() * mask  # sentence A then B
    return idx.masked_fill(mask == 0, 0), mask, types


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# ---- config and the model itself --------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [("n_layer", 0), ("n_head", -1), ("vocab_size", 2.5), ("dropout", 1.0),
                                          ("type_vocab_size", 0), ("layer_norm_eps", 0.0)])
def test_config_rejects_bad_values_naming_them(tiny, field, value):
    with pytest.raises(ValueError, match=field):
        BertConfig(**{**tiny, field: value})


def test_config_heads_must_divide_width(tiny):
    with pytest.raises(ValueError, match="n_embd=30 must be divisible by n_head=4"):
        BertConfig(**{**tiny, "n_embd": 30})


def test_initial_mlm_loss_is_log_vocab_and_the_decoder_is_tied(tiny, seed):
    model = BERT(bert_config(tiny))
    assert model.lm_head.weight is model.wte.weight
    idx = torch.randint(4, tiny["vocab_size"], (4, tiny["block_size"]))
    targets = torch.full_like(idx, -100)
    targets[:, ::3] = idx[:, ::3]
    logits, loss = model(idx, targets)
    assert logits.shape == (int((targets != -100).sum()), tiny["vocab_size"])
    assert abs(loss.item() - math.log(tiny["vocab_size"])) < 0.15
    full, none = model(idx)
    assert full.shape == (4, tiny["block_size"], tiny["vocab_size"]) and none is None
    torch.testing.assert_close(full[targets != -100], logits)  # the gathered logits are the full ones


def test_num_params_matches_hf(tiny):
    ours = BERT(bert_config(tiny))
    hf = BertForMaskedLM(hf_config(tiny))
    pooler = tiny["n_embd"] ** 2 + tiny["n_embd"]  # W and b of tanh(W h_[CLS] + b)
    assert ours.num_params() == sum(p.numel() for p in hf.parameters()) + pooler  # HF's MLM model has no pooler


def test_bidirectional_a_later_token_changes_earlier_positions(tiny, seed):
    # The opposite of GPT's causality test: every position reads the whole sequence.
    model = BERT(bert_config(tiny)).eval()
    idx = torch.randint(4, tiny["vocab_size"], (2, 12))
    changed = idx.clone()
    changed[:, -1] = (changed[:, -1] + 1) % tiny["vocab_size"]
    with torch.no_grad():
        a, b = model.hidden_states(idx), model.hidden_states(changed)
    assert (a[:, 0] - b[:, 0]).abs().max() > 1e-4


def test_padding_does_not_change_the_real_positions(tiny, seed):
    model = BERT(bert_config(tiny)).eval()
    idx, mask, _ = batch(tiny, (16, 5))
    with torch.no_grad():
        padded = model(idx, attention_mask=mask)[0]
        alone = model(idx[1:, :5])[0]
    assert max_diff(padded[1, :5], alone[0]) < ATOL


def test_bad_inputs(tiny, seed):
    model = BERT(bert_config(tiny))
    with pytest.raises(ValueError, match="exceed block_size=16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"attention_mask has shape \(1, 3\)"):
        model(torch.zeros(1, 4, dtype=torch.long), attention_mask=torch.ones(1, 3))
    with pytest.raises(ValueError, match="targets must have"):
        model(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="n_classes"):
        BertClassifier(model, 0)
    with pytest.raises(ValueError, match="n_tags"):
        BertTagger(model, 0)


# ---- parity with Hugging Face (random weights, no download) -----------------------------------------------

@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_from_hf_mlm_logits_equal_with_padding_and_segments(tiny, attn):
    hf = hf_bert(tiny, attn)
    ours = BERT.from_hf(hf)
    assert not ours.training and ours.lm_head.weight is ours.wte.weight
    idx, mask, types = batch(tiny)
    real = mask.bool()
    with torch.no_grad():
        a = ours(idx, attention_mask=mask, token_type_ids=types)[0]
        b = hf(idx, attention_mask=mask, token_type_ids=types).logits
    assert max_diff(a[real], b[real]) < ATOL


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_to_hf_and_back_give_the_same_logits(tiny, seed, attn):
    ours = BERT(bert_config(tiny)).eval()
    perturb(ours)
    hf = ours.to_hf(attn)
    assert not hf.training
    back = BERT.from_hf(hf)
    idx, mask, types = batch(tiny, (16, 11, 1))
    real = mask.bool()
    with torch.no_grad():
        a = ours(idx, attention_mask=mask, token_type_ids=types)[0]
        b = hf(idx, attention_mask=mask, token_type_ids=types).logits
        c = back(idx, attention_mask=mask, token_type_ids=types)[0]
    assert max_diff(a[real], b[real]) < ATOL
    assert max_diff(c[real], b[real]) < ATOL


def test_mlm_loss_matches_hf(tiny, seed):
    hf = hf_bert(tiny)
    ours = BERT.from_hf(hf)
    idx, mask, _ = batch(tiny)
    labels = torch.where((torch.rand(idx.shape) < 0.3) & mask.bool(), idx, -100)
    with torch.no_grad():
        torch.testing.assert_close(ours(idx, labels, mask)[1], hf(idx, attention_mask=mask, labels=labels).loss,
                                   atol=ATOL, rtol=0)


def test_export_keeps_train_mode_and_dropout(tiny, seed):
    hf = BERT(BertConfig(**tiny, dropout=0.1)).to_hf()
    assert hf.training and hf.config.hidden_dropout_prob == 0.1 and hf.config.attention_probs_dropout_prob == 0.1


def test_from_hf_rejects_other_architectures(tiny):
    with pytest.raises(ValueError, match="hidden_act='relu'"):
        BERT.from_hf(hf_bert(tiny, hidden_act="relu"))
    with pytest.raises(ValueError, match="intermediate_size"):
        BERT.from_hf(BertForMaskedLM(hf_config(tiny, intermediate_size=64)))


def test_classifier_matches_hf_sequence_classification(tiny, seed):
    torch.manual_seed(0)
    hf = BertForSequenceClassification(hf_config(tiny, num_labels=3)).eval()
    perturb(hf)
    ours = BertClassifier(BERT(bert_config(tiny)), 3).eval()
    # the body (pooler included) from HF's; the head copied over
    body = {k.removeprefix("bert."): v for k, v in hf.state_dict().items() if k.startswith("bert.")}
    mlm = BertForMaskedLM(hf.config)
    mlm.bert.load_state_dict(body, strict=False)
    ours.bert = BERT.from_hf(mlm).eval()
    with torch.no_grad():
        ours.bert.pooler.weight.copy_(hf.bert.pooler.dense.weight)
        ours.bert.pooler.bias.copy_(hf.bert.pooler.dense.bias)
        ours.score.weight.copy_(hf.classifier.weight)
        ours.score.bias.copy_(hf.classifier.bias)
    idx, mask, types = batch(tiny, (16, 7, 1, 12))
    labels = torch.tensor([0, 2, 1, 2])
    with torch.no_grad():
        logits, loss = ours(idx, mask, labels, types)
        ref = hf(idx, attention_mask=mask, token_type_ids=types, labels=labels)
    assert logits.shape == (4, 3)
    assert max_diff(logits, ref.logits) < ATOL and abs(loss.item() - ref.loss.item()) < ATOL


def test_tagger_matches_hf_token_classification(tiny, seed):
    torch.manual_seed(0)
    hf = BertForTokenClassification(hf_config(tiny, num_labels=4)).eval()
    perturb(hf)
    mlm = BertForMaskedLM(hf.config)
    mlm.bert.load_state_dict(hf.bert.state_dict(), strict=False)
    ours = BertTagger(BERT.from_hf(mlm), 4).eval()
    with torch.no_grad():
        ours.score.weight.copy_(hf.classifier.weight)
        ours.score.bias.copy_(hf.classifier.bias)
    idx, mask, _ = batch(tiny, (16, 7, 3))
    labels = torch.randint(0, 4, idx.shape).masked_fill(mask == 0, -100)
    with torch.no_grad():
        logits, loss = ours(idx, mask, labels)
        ref = hf(idx, attention_mask=mask, labels=labels)
    real = mask.bool()
    assert logits.shape == (3, tiny["block_size"], 4)
    assert max_diff(logits[real], ref.logits[real]) < ATOL and abs(loss.item() - ref.loss.item()) < ATOL


# ---- model folders -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["bert-mlm", "bert-classifier", "bert-tagger"])
def test_folders_save_and_load_through_llmguide_folder(tiny, seed, tmp_path, kind):
    body = BERT(bert_config(tiny))
    perturb(body)
    model, labels = {"bert-mlm": (body, None), "bert-classifier": (BertClassifier(body, 2), ["neg", "pos"]),
                     "bert-tagger": (BertTagger(body, 4), list("BMES"))}[kind]
    model.eval()
    tok = CharTokenizer([chr(0x4E00 + i) for i in range(tiny["vocab_size"] - 4)])  # one id per model token
    save_folder(tmp_path / kind, model, tok, {"note": 1}, labels=labels)
    loaded, tok2, meta = load_folder(tmp_path / kind, kind=kind)
    assert meta["kind"] == kind and type(loaded) is type(model) and tok2.itos == tok.itos
    assert meta.get("labels") == labels
    idx, mask, _ = batch(tiny)
    with torch.no_grad():
        torch.testing.assert_close(loaded(idx, attention_mask=mask)[0], model(idx, attention_mask=mask)[0],
                                   atol=0, rtol=0)
    with pytest.raises(ValueError, match="expected a 'gpt-lm' one"):
        load_folder(tmp_path / kind, kind="gpt-lm")
