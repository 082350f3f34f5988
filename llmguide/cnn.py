"""A small convolutional network (CNN, 卷积神经网络) in the style of LeNet, the baseline a ViT is measured against.

LeCun et al. 1998, "Gradient-Based Learning Applied to Document Recognition": convolution -> nonlinearity ->
pooling, twice, then fully connected layers. A convolution applies one small filter at every position of the
image, so the network assumes two things a ViT has to learn from data (Goodfellow et al. 2016, ch. 9):
*locality* (a feature depends on nearby pixels) and *translation equivariance* (the same feature anywhere
is detected by the same weights). With little data these built-in assumptions (inductive bias, 归纳偏置)
win; notebook 11 shows where the ViT catches up.

Here each convolution keeps the size (3 x 3 kernel, padding 1) and each 2 x 2 max-pool halves it, so an
8 x 8 digit becomes 4 x 4 and then 2 x 2 before the classifier. Same contract as every model of the guide:
``logits, loss = model(pixel_values, labels)``.

Shapes: B batch, Ch channels, H, W height and width, K classes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from llmguide.folder import CONFIG, LABELS, WEIGHTS, ModelKind, register_kind
from llmguide.runtime import check_positive_int


@dataclass
class CNNConfig:
    """The sizes of a LeNet-style CNN."""

    image_size: int = 8  # height = width of the input; must be divisible by 4 (two 2 x 2 poolings)
    num_channels: int = 1  # input channels (1 grey, 3 RGB)
    num_classes: int = 10  # outputs
    channels: tuple[int, int] = (16, 32)  # filters of the two convolutions
    hidden: int = 64  # width of the fully connected layer
    dropout: float = 0.0  # dropout before the last layer, in training

    def __post_init__(self) -> None:
        for name in ("image_size", "num_channels", "num_classes", "hidden"):
            check_positive_int(getattr(self, name), f"CNNConfig.{name}", "a positive int")
        self.channels = tuple(check_positive_int(c, "CNNConfig.channels", "two positive ints") for c in self.channels)
        if len(self.channels) != 2:
            raise ValueError(f"CNNConfig.channels must be two ints (one per convolution), got {self.channels!r}")
        if self.image_size % 4:
            raise ValueError(f"CNNConfig.image_size={self.image_size} must be divisible by 4: two 2 x 2 poolings "
                             "halve it twice")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"CNNConfig.dropout must be in [0, 1), got {self.dropout!r}")


class CNN(nn.Module):
    """conv 3x3 -> ReLU -> maxpool 2 -> conv 3x3 -> ReLU -> maxpool 2 -> Linear -> ReLU -> Linear.

    Args:
        config: the sizes.
    """

    def __init__(self, config: CNNConfig) -> None:
        super().__init__()
        self.config = config
        c1, c2 = config.channels
        self.conv1 = nn.Conv2d(config.num_channels, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.fc = nn.Linear(c2 * (config.image_size // 4) ** 2, config.hidden)
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.hidden, config.num_classes)

    def forward(self, pixel_values: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Class scores of a batch of images.

        Args:
            pixel_values: (B, Ch, H, W).
            labels: (B,) class ids, or None.
        Returns:
            ``(logits (B, K), loss)``: mean cross-entropy, None without labels.
        """
        c = self.config
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != (c.num_channels, c.image_size, c.image_size):
            raise ValueError(f"pixel_values must be (B, {c.num_channels}, {c.image_size}, {c.image_size}), got "
                             f"shape {tuple(pixel_values.shape)}")
        x = F.max_pool2d(F.relu(self.conv1(pixel_values)), 2)  # (B, c1, H/2, W/2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (B, c2, H/4, W/4)
        x = self.drop(F.relu(self.fc(x.flatten(1))))  # (B, hidden)
        logits = self.out(x)  # (B, K)
        loss = None if labels is None else F.cross_entropy(logits.float(), labels)
        return logits, loss

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


register_kind(ModelKind(
    "cnn-classifier", CNN,
    describe=lambda m: {"model": asdict(m.config), "task": "image-classification", "n_classes": m.config.num_classes},
    build=lambda meta: CNN(CNNConfig(**meta["model"])),
    files=(WEIGHTS, CONFIG, LABELS)))
