"""``fashion-cnn``: the convolutional FashionMNIST classifier of the course (Conv + BatchNorm2d + dropout).

Two blocks of conv 3x3 (padding 1) -> BatchNorm2d -> ReLU -> max-pool 2, taking 28x28 to 7x7,
then flatten -> dropout -> linear to ``hidden`` -> ReLU -> dropout -> linear to 10 logits.
``--set augment=true`` trains with random vertical flips and rotations.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from trainers.augmentation import flip_rotate_for
from trainers.data import ImageDataset, load_fashion_mnist
from trainers.loop import TrainConfig
from trainers.network import Network
from trainers.options import AugmentOptions
from trainers.search_space import OPTIMIZER_SPACE, categorical, float_range
from trainers.settings import RunSettings


@dataclasses.dataclass(frozen=True)
class FashionCNNConfig:
    """How to build a FashionCNN.

    Attributes:
        channels: output channels of the two conv blocks.
        hidden: width of the dense layer after the convolutions.
        dropout: probability used by both dropout layers.
        batch_norm: whether each conv is followed by BatchNorm2d.
        image_size: side of the square grayscale input (divisible by 4).
        num_classes: outputs.
    """

    channels: tuple[int, int] = (16, 32)
    hidden: int = 128
    dropout: float = 0.1
    batch_norm: bool = True
    image_size: int = 28
    num_classes: int = 10


def _block(in_channels: int, out_channels: int, batch_norm: bool) -> nn.Sequential:
    norm: nn.Module = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=not batch_norm),
        norm,
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class FashionCNN(nn.Module):
    """Two conv blocks and two dense layers; returns logits."""

    def __init__(self, config: FashionCNNConfig) -> None:
        super().__init__()
        self.config = config
        first, second = config.channels
        self.block1 = _block(1, first, config.batch_norm)
        self.block2 = _block(first, second, config.batch_norm)
        side = config.image_size // 4
        self.flatten = nn.Flatten()
        self.drop = nn.Dropout(config.dropout)
        self.fc1 = nn.Linear(second * side * side, config.hidden)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(config.hidden, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of shape (N, 1, H, W)."""
        x = self.block2(self.block1(x))
        x = self.drop(self.act(self.fc1(self.drop(self.flatten(x)))))
        return self.fc2(x)


def load_data(settings: RunSettings, options: AugmentOptions) -> ImageDataset:
    """FashionMNIST from the run's data folder."""
    return load_fashion_mnist(settings.data_dir)


TRAIN = TrainConfig(epochs=15, batch_size=64, optimizer="adam", lr=1e-3, weight_decay=1e-4, patience=4)

SPACE = {
    **OPTIMIZER_SPACE,
    "dropout": float_range(0.0, 0.5, grid=(0.1, 0.3)),
    "channels": categorical((16, 32), (32, 64)),
}

NETWORK = Network(
    name="fashion-cnn",
    summary="FashionMNIST CNN with BatchNorm2d and dropout (--set augment=true: vertical flip + rotation).",
    config_class=FashionCNNConfig,
    model=FashionCNN,
    load_data=load_data,
    train=TRAIN,
    space=SPACE,
    quick_train_size=1000,
    options=AugmentOptions(),
    augment=flip_rotate_for,
)
