"""``cifar-mlp``: the "old-style" fully connected CIFAR-10 network of the course.

3072 -> 4096 -> sigmoid -> 4096 -> sigmoid -> 10 logits, exactly as in the homework. Inputs are
(N, 3, 32, 32) images or flat (N, 3072) vectors. ``--quick`` keeps the full widths and trains one
epoch on a few hundred images (generated CIFAR-shaped ones when no CIFAR-10 files are present).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from trainers.data import ImageDataset, load_cifar10
from trainers.loop import TrainConfig
from trainers.network import Network
from trainers.search_space import OPTIMIZER_SPACE
from trainers.settings import RunSettings


@dataclasses.dataclass(frozen=True)
class CifarMLPConfig:
    """How to build a CifarMLP.

    Attributes:
        num_inputs: values per image (3 * 32 * 32).
        hidden: width of both hidden layers.
        num_classes: outputs.
    """

    num_inputs: int = 3 * 32 * 32
    hidden: int = 4096
    num_classes: int = 10


class CifarMLP(nn.Module):
    """Two sigmoid hidden layers; returns logits."""

    def __init__(self, config: CifarMLPConfig) -> None:
        super().__init__()
        self.config = config
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(config.num_inputs, config.hidden)
        self.fc2 = nn.Linear(config.hidden, config.hidden)
        self.fc3 = nn.Linear(config.hidden, config.num_classes)
        self.act = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images or flat vectors."""
        x = self.act(self.fc1(self.flatten(x)))
        x = self.act(self.fc2(x))
        return self.fc3(x)


def load_data(settings: RunSettings, options: None) -> ImageDataset:
    """CIFAR-10, or in quick mode a generated stand-in when no files can be had."""
    return load_cifar10(settings.data_dir, quick=settings.quick, seed=settings.seed)


TRAIN = TrainConfig(epochs=20, batch_size=128, optimizer="sgd", lr=0.01, momentum=0.9, patience=4)

NETWORK = Network(
    name="cifar-mlp",
    summary="CIFAR-10 MLP 3072-4096-4096-10 with sigmoid activations.",
    config_class=CifarMLPConfig,
    model=CifarMLP,
    load_data=load_data,
    train=TRAIN,
    space=OPTIMIZER_SPACE,
    quick_train_size=600,
    flatten=True,
    max_initial_elements=1_000_000,  # the biases and the 10-way head, not the 4096-wide layers
)
