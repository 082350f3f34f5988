"""The ViT, the CNN and the image data: parity with Hugging Face's ViT (both ways), the patch embedding as
patches + a Linear, attention maps through the interpret hooks, model folders, data splits, augmentation,
the offline CIFAR-10 path and a training sanity check."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from transformers import ViTConfig as HFViTConfig
from transformers import ViTForImageClassification

from llmguide import download
from llmguide.attention import attention
from llmguide.cnn import CNN, CNNConfig
from llmguide.download import OfflineError
from llmguide.folder import load_folder, save_folder
from llmguide.images import (
    DIGIT_LABELS,
    ImageSet,
    accuracy,
    fit,
    learning_curve,
    load_cifar10_split,
    load_digits_split,
    shift_images,
    stratified_subset,
)
from llmguide.interpret import run_with_hooks
from llmguide.vit import ViT, ViTConfig, cls_attention, patchify

ATOL = 1e-5
TINY_VIT = dict(image_size=8, patch_size=2, num_channels=1, num_classes=10, n_layer=2, n_head=4, n_embd=32)


def hf_vit(seed: int = 0, **extra) -> ViTForImageClassification:
    """A tiny, randomly initialised HF ViT (no download), with non-trivial LayerNorm and token weights."""
    torch.manual_seed(seed)
    config = HFViTConfig(image_size=8, patch_size=2, num_channels=3, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=4, intermediate_size=128, num_labels=5, **extra)
    model = ViTForImageClassification(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layernorm" in name or "token" in name or "position" in name:
                p.add_(torch.randn_like(p) * 0.5)  # HF initialises these to 1/0; make the test see them
    return model


@pytest.fixture
def images():
    return torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def test_from_hf_logits_equal(images, one_thread):
    hf = hf_vit()
    ours = ViT.from_hf(hf).eval()
    assert ours.config.num_channels == 3 and ours.config.num_classes == 5 and ours.config.layer_norm_eps == 1e-12
    assert ours.num_params() == sum(p.numel() for p in hf.parameters())
    with torch.no_grad():
        assert (ours(images)[0] - hf(images).logits).abs().max() < ATOL
        labels = torch.tensor([0, 1, 2, 4])
        torch.testing.assert_close(ours(images, labels)[1], hf(images, labels=labels).loss, atol=ATOL, rtol=0)


def test_to_hf_and_back(images, one_thread):
    torch.manual_seed(0)
    ours = ViT(ViTConfig(**{**TINY_VIT, "num_channels": 3, "num_classes": 5, "layer_norm_eps": 1e-6})).eval()
    hf = ours.to_hf()
    assert not hf.training and hf.config.layer_norm_eps == 1e-6 and hf.config.hidden_act == "gelu"
    back = ViT.from_hf(hf)
    with torch.no_grad():
        assert (ours(images)[0] - hf(images).logits).abs().max() < ATOL
        assert torch.equal(back(images)[0], ours(images)[0])


def test_from_hf_rejects_what_it_cannot_copy():
    with pytest.raises(ValueError, match="hidden_act='relu' is not supported"):
        ViT.from_hf(hf_vit(hidden_act="relu"))
    with pytest.raises(ValueError, match="ViTForImageClassification"):
        ViT.from_hf(hf_vit().vit)  # the bare ViTModel has no classifier head


def test_patch_embedding_is_unfolded_patches_times_a_linear(images):
    vit = ViT(ViTConfig(**{**TINY_VIT, "num_channels": 3}))
    conv = vit.patch_embed.proj  # weight (C, Ch, P, P)
    patches = patchify(images, 2)  # (B, 16, 3 * 2 * 2)
    assert patches.shape == (4, 16, 12)
    # patch (row 1, column 2) of image 0 is pixels [2:4, 4:6] of every channel
    torch.testing.assert_close(patches[0, 1 * 4 + 2], images[0, :, 2:4, 4:6].flatten())
    by_linear = patches @ conv.weight.flatten(1).T + conv.bias  # (B, N, C)
    torch.testing.assert_close(vit.patch_embed(images), by_linear, atol=1e-6, rtol=1e-5)


def test_bad_config_and_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="image_size=8 is not a multiple of patch_size=3"):
        ViTConfig(patch_size=3)
    with pytest.raises(ValueError, match="n_embd=30 must be divisible by n_head=4"):
        ViTConfig(n_embd=30)
    with pytest.raises(ValueError, match=r"images must be \(B, 1, 8, 8\)"):
        ViT(ViTConfig(**TINY_VIT))(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="divisible by 4"):
        CNNConfig(image_size=10)
    with pytest.raises(ValueError, match=r"pixel_values must be \(B, 1, 8, 8\)"):
        CNN(CNNConfig())(torch.zeros(2, 8, 8))


def test_attention_is_not_causal_and_cls_maps_come_from_the_interpret_hooks(one_thread):
    torch.manual_seed(0)
    vit = ViT(ViTConfig(**TINY_VIT)).eval()
    x = torch.randn(2, 1, 8, 8)
    logits, rec = run_with_hooks(vit, x)
    torch.testing.assert_close(logits, vit(x)[0])  # recording changes nothing
    weights = rec.attention(1)  # (B, nh, T, T)
    # the explicit attention of the package's MultiHeadAttention with need_weights gives the same weights
    _, direct = vit.transformer.h[1].attn(rec["attn_in.1"], need_weights=True)
    torch.testing.assert_close(weights, direct, atol=1e-6, rtol=0)
    assert (weights[:, :, 0, 1:] > 0).all()  # the class token (position 0) sees every patch after it
    maps = cls_attention(vit, x, layer=-1)
    assert maps.shape == (2, 4, 4, 4)
    torch.testing.assert_close(maps.flatten(2).sum(-1) + weights[:, :, 0, 0], torch.ones(2, 4))
    # changing one patch changes the class token's output: no causal mask hides later positions
    y = x.clone()
    y[:, :, 6:, 6:] += 1.0
    assert not torch.allclose(vit(x)[0], vit(y)[0])
    with pytest.raises(ValueError, match="layer=2 is out of range"):
        cls_attention(vit, x, layer=2)


def test_hand_attention_matches_recording(one_thread):
    torch.manual_seed(0)
    vit = ViT(ViTConfig(**TINY_VIT)).eval()
    x = torch.randn(1, 1, 8, 8)
    _, rec = run_with_hooks(vit, x)
    attn = vit.transformer.h[0].attn
    h = rec["attn_in.0"]  # (1, T, C)
    q, k, v = attn.c_attn(h).split(32, dim=-1)
    heads = [t.view(1, 17, 4, 8).transpose(1, 2) for t in (q, k, v)]
    _, w = attention(*heads)  # no mask
    torch.testing.assert_close(rec.attention(0), w, atol=1e-6, rtol=0)


@pytest.mark.parametrize("make", [lambda: ViT(ViTConfig(**TINY_VIT)), lambda: CNN(CNNConfig(channels=(4, 8)))])
def test_folder_save_load_gives_identical_logits(make, tmp_path):
    torch.manual_seed(0)
    model = make().eval()
    save_folder(tmp_path / "m", model, labels=DIGIT_LABELS, meta={"data": "digits"})
    loaded, tokenizer, meta = load_folder(tmp_path / "m")
    assert tokenizer is None and meta["labels"] == DIGIT_LABELS and meta["data"] == "digits"
    assert type(loaded) is type(model) and loaded.config == model.config
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x)[0], model(x)[0])
    kind = "vit-classifier" if isinstance(model, ViT) else "cnn-classifier"
    assert meta["kind"] == kind
    with pytest.raises(ValueError, match="expected a 'gpt-lm' one"):
        load_folder(tmp_path / "m", kind="gpt-lm")


def test_digits_split_is_fixed_stratified_and_standardised_on_train():
    split = load_digits_split()
    assert (len(split.train), len(split.val), len(split.test)) == (1293, 144, 360)
    assert split.train.images.shape[1:] == (1, 8, 8) and split.train.images.dtype == torch.float32
    # the training pixels have mean 0 and std 1 after standardisation; the test ones only roughly
    assert abs(split.train.images.mean().item()) < 1e-5 and abs(split.train.images.std().item() - 1) < 1e-4
    counts = np.bincount(split.test.labels.numpy(), minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: ~36 of each digit
    again = load_digits_split()
    assert torch.equal(again.test.images, split.test.images)
    # the three parts are disjoint images of the 1,797
    from sklearn.datasets import load_digits
    raw = torch.tensor(load_digits().images, dtype=torch.float32)
    back = torch.cat([s.images for s in (split.train, split.val, split.test)]) * split.std[0] + split.mean[0]
    assert len({tuple(r) for r in (back * 16).round().flatten(1).tolist()}) == len(
        {tuple(r) for r in raw.flatten(1).tolist()})
    assert abs(split.train.background - (0 - split.mean[0]) / split.std[0]) < 1e-6


def test_shift_augmentation_moves_pixels_and_pads_with_background():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    out = shift_images(x, 1, background=-5.0, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert (out == x).all(dim=(1, 2, 3)).any()  # (0, 0) is one of the 9 shifts
    moved = out[~(out == x).all(dim=(1, 2, 3))]
    assert len(moved) > 0 and (moved == -5.0).any(dim=(1, 2, 3)).all()  # a border uncovered in each
    data = ImageSet(x[:8], torch.zeros(8, dtype=torch.long), DIGIT_LABELS, -5.0, shift=1)
    assert data.get_batch([0, 1])["pixel_values"].shape == (2, 1, 4, 4)
    assert torch.equal(next(data.batches())["pixel_values"], x[:8])  # evaluation never augments
    with pytest.raises(ValueError, match="shift must be an int >= 0"):
        data.augmented(-1)


def test_stratified_subset_keeps_class_proportions():
    labels = np.repeat(np.arange(10), 20)
    idx = stratified_subset(labels, 50, seed=0)
    assert len(idx) == 50 and (np.bincount(labels[idx.numpy()]) == 5).all()
    assert not torch.equal(idx, stratified_subset(labels, 50, seed=1))
    with pytest.raises(ValueError, match="n must be an int from 10"):
        stratified_subset(labels, 5)


@pytest.fixture
def fake_datasets(monkeypatch):
    """A stand-in for the `datasets` library that fails like it does without a network."""
    module = types.ModuleType("datasets")

    def load_dataset(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'uoft-cs/cifar10' on the Hub (LocalEntryNotFoundError)\nmore lines")

    module.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", module)
    return module


def test_cifar10_offline_gives_the_one_line_error(fake_datasets, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(download.socket, "create_connection",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("no network")))
    with pytest.raises(OfflineError) as info:
        load_cifar10_split()
    message = str(info.value)
    assert "\n" not in message and "uoft-cs/cifar10" in message and "offline mode" in message


def test_training_learns_digits_and_learning_curve_rows(one_thread):
    split = load_digits_split()
    torch.manual_seed(0)
    cnn = CNN(CNNConfig(channels=(8, 16), hidden=32))
    before = accuracy(cnn, split.test)
    settings = dict(learning_rate=1e-2, warmup_steps=5, batch_size=64, max_steps=120, eval_interval=0)
    history = fit(cnn, split.train, settings)
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0] * 0.5
    after = accuracy(cnn, split.test)
    assert before < 0.3 and after > 0.85, (before, after)
    curve = learning_curve({"cnn": lambda: CNN(CNNConfig(channels=(4, 8), hidden=16))}, split, [20, 40],
                           {"cnn": {**settings, "max_steps": 5}}, seeds=(0,), shift=1)
    assert list(curve.columns) == ["model", "n_train", "seed", "shift", "steps", "test_acc", "train_s"]
    assert curve["n_train"].tolist() == [20, 40] and curve["test_acc"].between(0, 1).all()
