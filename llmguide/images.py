"""Image classification data, and training and scoring image models with the guide's one training loop.

Two datasets, one per profile (:data:`llmguide.profiles.VISION_SETTINGS`):

* **digits** (cpu): scikit-learn's bundled copy of the UCI optical handwritten digits (Alpaydin & Kaynak
  1998): 1,797 grey 8 x 8 images of 0-9, pixel values 0-16, shipped inside scikit-learn (no download).
  :func:`load_digits_split` splits it once, stratified by class, with a fixed seed: 1,293 train,
  144 validation, 360 test images.
* **CIFAR-10** (gpu): 60,000 colour 32 x 32 images of 10 classes (Krizhevsky 2009), from the Hugging Face
  hub (``uoft-cs/cifar10``) through :func:`llmguide.data.load_hub_dataset`: offline it fails with the one
  :class:`~llmguide.download.OfflineError` line every hub path gives.

Pixels are standardised with the *training* images' mean and standard deviation per channel (the test set
must not leak into the preprocessing). Augmentation (数据增强) shifts each training image by up to ``shift``
pixels, padding with the background: a digit moved by a pixel is still the same digit, which is exactly the
translation invariance a CNN has built in and a ViT must learn (notebook 11).

A batch is ``{"pixel_values": (B, Ch, H, W), "labels": (B,)}``, so :func:`llmguide.train.train` trains these
models as it trains the GPT, and :func:`llmguide.evaluate.evaluate` scores them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmguide.cnn import CNN, CNNConfig
from llmguide.data import load_hub_dataset
from llmguide.evaluate import evaluate
from llmguide.folder import HISTORY, save_folder
from llmguide.profiles import VISION_SETTINGS
from llmguide.runtime import check_positive_int, get_profile
from llmguide.train import TrainConfig, train
from llmguide.vit import ViT, ViTConfig

DIGIT_LABELS = [str(d) for d in range(10)]
CIFAR10_HUB = "uoft-cs/cifar10"
CIFAR10_LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
Batch = dict[str, Tensor]


@dataclass
class ImageSet(torch.utils.data.Dataset):
    """Standardised images with their labels; ``get_batch`` gives the batches :func:`llmguide.train.train` reads."""

    images: Tensor  # (N, Ch, H, W) float, standardised
    labels: Tensor  # (N,) long class ids
    label_names: list[str]  # class names in id order
    background: float = 0.0  # the standardised value of a blank pixel (what a shift pads with)
    shift: int = 0  # augmentation: shift each training image by up to this many pixels (0: none)

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(f"images must be (N, Ch, H, W) with one label each, got images "
                             f"{tuple(self.images.shape)} and labels {tuple(self.labels.shape)}")
        if not isinstance(self.shift, int) or self.shift < 0:
            raise ValueError(f"shift must be an int >= 0 (pixels), got {self.shift!r}")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Batch:
        return {k: v[0] for k, v in self.get_batch([i]).items()}

    def get_batch(self, indices: Tensor | Sequence[int]) -> Batch:
        idx = torch.as_tensor(indices, dtype=torch.long)
        x = self.images[idx]
        if self.shift:
            x = shift_images(x, self.shift, self.background)
        return {"pixel_values": x, "labels": self.labels[idx]}

    def subset(self, indices: Tensor | Sequence[int]) -> ImageSet:
        """The same set restricted to ``indices``."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return replace(self, images=self.images[idx], labels=self.labels[idx])

    def augmented(self, shift: int) -> ImageSet:
        """The same images, shifted at random by up to ``shift`` pixels in every batch."""
        return replace(self, shift=shift)

    def batches(self, batch_size: int = 256) -> Iterator[Batch]:
        """The whole set in order, without augmentation (for evaluation)."""
        for start in range(0, len(self), batch_size):
            yield {"pixel_values": self.images[start:start + batch_size], "labels": self.labels[start:start + batch_size]}


def shift_images(images: Tensor, max_shift: int, background: float = 0.0,
                 generator: torch.Generator | None = None) -> Tensor:
    """Move each image by a random (dy, dx) in [-max_shift, max_shift]^2, filling with ``background``.

    Args:
        images: (B, Ch, H, W).
        max_shift: the largest shift in pixels.
        background: the value of the uncovered border.
        generator: random generator (default: torch's global one, which the training loop seeds).
    Returns:
        (B, Ch, H, W).
    """
    B, _, H, W = images.shape
    s = max_shift
    padded = F.pad(images, (s, s, s, s), value=background)  # (B, Ch, H + 2s, W + 2s)
    offsets = torch.randint(0, 2 * s + 1, (B, 2), generator=generator).tolist()
    return torch.stack([padded[b, :, dy:dy + H, dx:dx + W] for b, (dy, dx) in enumerate(offsets)])


@dataclass
class ImageSplit:
    """A dataset split once: train / validation / test :class:`ImageSet` and the standardisation used."""

    train: ImageSet
    val: ImageSet
    test: ImageSet
    mean: list[float]  # per channel, of the raw training pixels
    std: list[float]
    name: str  # "digits" or "cifar10"


def _make_split(name: str, images: np.ndarray, labels: np.ndarray, names: list[str], parts: dict[str, np.ndarray],
                scale: float) -> ImageSplit:
    x = torch.tensor(images, dtype=torch.float32) / scale  # (N, Ch, H, W) in [0, 1]
    y = torch.tensor(labels, dtype=torch.long)
    train = x[parts["train"]]
    mean = train.mean(dim=(0, 2, 3), keepdim=True)  # (1, Ch, 1, 1): statistics of the training images only
    std = train.std(dim=(0, 2, 3), keepdim=True)
    x = (x - mean) / std
    background = float(((0 - mean) / std).flatten()[0])  # a black pixel after standardisation
    sets = {k: ImageSet(x[torch.as_tensor(v)], y[torch.as_tensor(v)], names, background) for k, v in parts.items()}
    return ImageSplit(sets["train"], sets["val"], sets["test"], mean.flatten().tolist(), std.flatten().tolist(), name)


def load_digits_split(test_size: int = 360, val_size: int = 144, seed: int = 0) -> ImageSplit:
    """scikit-learn's 8 x 8 digits, split once, stratified by class (no download).

    Args:
        test_size: test images (default 360, 20 %).
        val_size: validation images taken from the rest (default 144, 10 % of all).
        seed: the split's random state (the guide's results use 0).
    Returns:
        An :class:`ImageSplit` of (N, 1, 8, 8) images.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    y = digits.target
    rest, test = train_test_split(np.arange(len(y)), test_size=test_size, stratify=y, random_state=seed)
    train, val = train_test_split(rest, test_size=val_size, stratify=y[rest], random_state=seed)
    parts = {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}
    return _make_split("digits", digits.images[:, None], y, DIGIT_LABELS, parts, 16.0)


def load_cifar10_split(val_size: int = 5000, seed: int = 0, max_train: int | None = None) -> ImageSplit:
    """CIFAR-10 from the Hugging Face hub: 50,000 training images (less ``val_size`` for validation), 10,000 test.

    Args:
        val_size: training images held out for validation, stratified.
        seed: the validation split's random state.
        max_train: keep at most this many training images (a quick run), stratified.
    Returns:
        An :class:`ImageSplit` of (N, 3, 32, 32) images.
    Raises:
        OfflineError: the hub cannot be reached and the dataset is not cached (one line).
        ImportError: the ``datasets`` library is missing (the message has the install line).
    """
    from sklearn.model_selection import train_test_split

    def arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
        ds = load_hub_dataset(CIFAR10_HUB, split=split)
        images = np.stack([np.asarray(im.convert("RGB")) for im in ds["img"]]).transpose(0, 3, 1, 2)
        return images, np.asarray(ds["label"])

    train_x, train_y = arrays("train")
    test_x, test_y = arrays("test")
    idx = np.arange(len(train_y))
    train, val = train_test_split(idx, test_size=val_size, stratify=train_y, random_state=seed)
    if max_train is not None and max_train < len(train):
        train = train[stratified_subset(train_y[train], max_train, seed).numpy()]
    n = len(train_y)
    parts = {"train": np.sort(train), "val": np.sort(val), "test": np.arange(n, n + len(test_y))}
    return _make_split("cifar10", np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y]),
                       CIFAR10_LABELS, parts, 255.0)


def stratified_subset(labels: Tensor | np.ndarray, n: int, seed: int = 0) -> Tensor:
    """Indices of ``n`` examples with the classes in the same proportions as ``labels`` (a learning-curve point).

    Args:
        labels: (N,) class ids.
        n: how many to keep, at least one per class and at most N.
        seed: which ones.
    Returns:
        (n,) sorted long indices into ``labels``.
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    k = len(np.unique(labels))
    if not isinstance(n, int) or not k <= n <= len(labels):
        raise ValueError(f"n must be an int from {k} (one per class) to {len(labels)} (all), got {n!r}")
    if n == len(labels):
        return torch.arange(n)
    keep, _ = train_test_split(np.arange(len(labels)), train_size=n, stratify=labels, random_state=seed)
    return torch.as_tensor(np.sort(keep))


# ---------------------------------------------------------------- training and scoring
def accuracy(model: nn.Module, data: ImageSet, batch_size: int = 256) -> float:
    """Test accuracy: the fraction of images whose highest logit is the true class."""
    report = evaluate(model, list(data.batches(batch_size)), labels=data.label_names)
    return float(report.accuracy)


def fit(model: nn.Module, train_data: ImageSet, settings: dict, val_data: ImageSet | None = None,
        seed: int = 0, device: str | None = None) -> pd.DataFrame:
    """Train an image classifier with :func:`llmguide.train.train`.

    Args:
        model: ``logits, loss = model(pixel_values, labels)`` (:class:`~llmguide.vit.ViT`, :class:`~llmguide.cnn.CNN`).
        train_data: the training set (with its augmentation).
        settings: :class:`~llmguide.train.TrainConfig` fields; ``batch_size`` is cut to the set's size.
        val_data: optional validation set.
        seed: the seed of the data order and dropout.
        device: where to train (default: the best available).
    Returns:
        The training history (see :func:`llmguide.train.train`).
    """
    settings = {"progress": False, **settings, "seed": seed, "device": device}
    settings["batch_size"] = min(settings.get("batch_size", 32), len(train_data))
    return train(model, train_data, val_data, TrainConfig(**settings))


def learning_curve(models: dict[str, Callable[[], nn.Module]], split: ImageSplit, sizes: Sequence[int],
                   settings: dict[str, dict], seeds: Sequence[int] = (0,), shift: int = 0,
                   device: str | None = None) -> pd.DataFrame:
    """Test accuracy against training-set size for several models, on the same split and subsets.

    Args:
        models: name -> a function building a fresh model (called with the seed set).
        split: the data; every model sees the same stratified subset for a given size and seed.
        sizes: training-set sizes.
        settings: name -> TrainConfig fields for that model.
        seeds: one run per seed (a different subset, initialisation and data order).
        shift: augmentation (pixels), 0 for none.
        device: where to train.
    Returns:
        One row per (model, n_train, seed): columns model, n_train, seed, shift, steps, test_acc, train_s.
    """
    rows = []
    for n in sizes:
        check_positive_int(n, "learning_curve size")
        for seed in seeds:
            subset = split.train.subset(stratified_subset(split.train.labels, n, seed)).augmented(shift)
            for name, build in models.items():
                torch.manual_seed(seed)
                model = build()
                history = fit(model, subset, settings[name], seed=seed, device=device)
                rows.append({"model": name, "n_train": n, "seed": seed, "shift": shift,
                             "steps": int(history["step"].iloc[-1]), "test_acc": accuracy(model, split.test),
                             "train_s": float(history["elapsed_s"].iloc[-1])})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- the profile's recipe
def vision_settings(profile: str | None = None) -> dict[str, Any]:
    """The profile's entry of :data:`llmguide.profiles.VISION_SETTINGS` (data, model sizes, training)."""
    return VISION_SETTINGS[get_profile(profile).name]


def load_split(profile: str | None = None) -> ImageSplit:
    """The profile's data: the digits (cpu) or CIFAR-10 from the hub (gpu; OfflineError offline)."""
    return load_digits_split() if vision_settings(profile)["data"] == "digits" else load_cifar10_split()


def build_models(profile: str | None = None) -> dict[str, Callable[[], nn.Module]]:
    """{"CNN": ..., "ViT": ...}: functions that build the profile's two models with fresh weights."""
    s = vision_settings(profile)
    return {"CNN": lambda: CNN(CNNConfig(**s["cnn"])), "ViT": lambda: ViT(ViTConfig(**s["vit"]))}


def train_settings(profile: str | None = None) -> dict[str, dict]:
    """{"CNN": TrainConfig fields, "ViT": ...} of the profile."""
    s = vision_settings(profile)
    return {"CNN": dict(s["cnn_train"]), "ViT": dict(s["vit_train"])}


def make_vit_folder(out_dir: str | Path, profile: str | None = "cpu", seed: int = 0,
                    device: str | None = None) -> Path:
    """Train the profile's ViT on all its training images (with the profile's shift) and save a model folder.

    The folder (kind "vit-classifier") records the recipe (``train``, ``data``) and its test accuracy in
    config.json, and the training history in history.csv; ``data/vit-digits`` is this run with the defaults.

    Args:
        out_dir: the folder to write.
        profile: whose sizes and data ("cpu": the digits).
        seed: initialisation and data order.
        device: where to train.
    Returns:
        The folder.
    """
    s = vision_settings(profile)
    split = load_split(profile)
    torch.manual_seed(seed)
    model = build_models(profile)["ViT"]()
    settings = train_settings(profile)["ViT"]
    history = fit(model, split.train.augmented(s["shift"]), settings, seed=seed, device=device)
    model = model.cpu().eval()
    meta = {"train": asdict(TrainConfig(**{**settings, "seed": seed})), "task": "image-classification",
            "data": {"name": split.name, "shift": s["shift"], "n_train": len(split.train), "n_test": len(split.test),
                     "mean": split.mean, "std": split.std},
            "results": {"test_accuracy": accuracy(model, split.test), "val_accuracy": accuracy(model, split.val)}}
    return save_folder(out_dir, model, labels=split.train.label_names, meta=meta,
                       files={HISTORY: lambda p: history.to_csv(p, index=False)})
