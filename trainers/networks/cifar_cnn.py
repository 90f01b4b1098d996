"""``cifar-cnn``: the convolutional CIFAR-10 network of the course.

conv 3->128 (k5, s2) -> conv 128->128 (k3) -> conv 128->128 (k3) -> conv 128->256 (k3) ->
max-pool 2 -> fc 256*4*4 -> 4096 -> [dropout] -> fc 4096 -> 10, ReLU after each layer.

The spatial arithmetic for a 32x32 input needs no padding: (32 - 5) // 2 + 1 = 14, then each
3x3 conv takes 2 away (12, 10, 8) and the pool halves it to 4, so the flatten is 256 * 4 * 4
(``width`` scales the 128 and the 256 together). Options: batch norm after every conv, dropout
before the last fc, the width, the fc width; ``--set augment=true`` trains with random horizontal
flips and random crops after 4-pixel padding. ``--quick`` keeps the real architecture and trains
one epoch on a few hundred images (generated CIFAR-shaped ones when no CIFAR-10 files are present).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from trainers.augmentation import flip_crop_for
from trainers.data import ImageDataset, load_cifar10
from trainers.loop import TrainConfig
from trainers.network import Network
from trainers.options import AugmentOptions
from trainers.search_space import OPTIMIZER_SPACE, categorical, float_range
from trainers.settings import RunSettings


@dataclasses.dataclass(frozen=True)
class CifarCNNConfig:
    """How to build a CifarCNN.

    Attributes:
        width: channels of the first three convs; the last conv has twice as many.
        hidden: width of the first fully connected layer.
        batch_norm: BatchNorm2d after every conv.
        dropout: probability of the dropout before the last fc (0 leaves it out).
        image_size: side of the square RGB input.
        num_classes: outputs.
    """

    width: int = 128
    hidden: int = 4096
    batch_norm: bool = False
    dropout: float = 0.0
    image_size: int = 32
    num_classes: int = 10

    @property
    def final_side(self) -> int:
        """Side of the feature map after the pool (4 for a 32x32 input)."""
        side = (self.image_size - 5) // 2 + 1
        return (side - 3 * 2) // 2


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int, batch_norm: bool) -> nn.Sequential:
    norm: nn.Module = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, stride=stride), norm)


class CifarCNN(nn.Module):
    """Four convs, a max-pool and two fully connected layers; returns logits."""

    def __init__(self, config: CifarCNNConfig) -> None:
        super().__init__()
        self.config = config
        width = config.width
        self.conv1 = _conv(3, width, 5, 2, config.batch_norm)
        self.conv2 = _conv(width, width, 3, 1, config.batch_norm)
        self.conv3 = _conv(width, width, 3, 1, config.batch_norm)
        self.conv_final = _conv(width, 2 * width, 3, 1, config.batch_norm)
        self.pool = nn.MaxPool2d(2)
        self.act = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(2 * width * config.final_side**2, config.hidden)
        self.drop = nn.Dropout(config.dropout)
        self.fc2 = nn.Linear(config.hidden, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of shape (N, 3, 32, 32)."""
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        x = self.act(self.conv3(x))
        x = self.act(self.pool(self.conv_final(x)))
        x = self.act(self.fc1(self.flatten(x)))
        return self.fc2(self.drop(x))


def load_data(settings: RunSettings, options: AugmentOptions) -> ImageDataset:
    """CIFAR-10, or in quick mode a generated stand-in when no files can be had."""
    return load_cifar10(settings.data_dir, quick=settings.quick, seed=settings.seed)


TRAIN = TrainConfig(epochs=20, batch_size=128, optimizer="sgd", lr=0.01, momentum=0.9, patience=4)

SPACE = {
    **OPTIMIZER_SPACE,
    "dropout": float_range(0.0, 0.5, grid=(0.0, 0.3)),
    "batch_norm": categorical(False, True),
    "width": categorical(64, 128),
}

NETWORK = Network(
    name="cifar-cnn",
    summary="CIFAR-10 CNN: four convs, max-pool, fc 4096 (--set batch_norm/dropout/width/augment).",
    config_class=CifarCNNConfig,
    model=CifarCNN,
    load_data=load_data,
    train=TRAIN,
    space=SPACE,
    quick_train_size=600,
    options=AugmentOptions(),
    augment=flip_crop_for,
    max_initial_elements=1_000_000,  # the conv kernels and biases, not the 4096-wide fc layers
)
