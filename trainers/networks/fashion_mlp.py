"""``fashion-mlp``: the dense FashionMNIST classifier of the course, whose only parameter is dropout.

784 -> 256 -> ReLU -> dropout -> 128 -> ReLU -> dropout -> 10 logits. The shape is fixed, as in
the homework; the dropout probability is the one knob (the hyperparameter search also tunes the
optimizer around it). Inputs are (N, 1, 28, 28) images or flat (N, 784) vectors.
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
class FashionMLPConfig:
    """How to build a FashionMLP.

    Attributes:
        dropout: probability of zeroing a hidden unit during training.
        num_inputs: pixels per image.
        hidden: widths of the two hidden layers (fixed by the homework; kept for the search).
        num_classes: outputs.
    """

    dropout: float = 0.2
    num_inputs: int = 784
    hidden: tuple[int, int] = (256, 128)
    num_classes: int = 10


class FashionMLP(nn.Module):
    """Dense layers, ReLU activations and dropout; returns logits."""

    def __init__(self, config: FashionMLPConfig) -> None:
        super().__init__()
        self.config = config
        first, second = config.hidden
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(config.num_inputs, first)
        self.fc2 = nn.Linear(first, second)
        self.fc3 = nn.Linear(second, config.num_classes)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images or flat vectors."""
        x = self.drop(self.act(self.fc1(self.flatten(x))))
        x = self.drop(self.act(self.fc2(x)))
        return self.fc3(x)


def load_data(settings: RunSettings, options: AugmentOptions) -> ImageDataset:
    """FashionMNIST from the run's data folder (flattened by the pipeline, as ``flatten`` says)."""
    return load_fashion_mnist(settings.data_dir)


TRAIN = TrainConfig(epochs=20, batch_size=64, optimizer="adam", lr=1e-3, weight_decay=1e-5, patience=4)

SPACE = {
    **OPTIMIZER_SPACE,
    "dropout": float_range(0.0, 0.5, grid=(0.1, 0.3)),
    "hidden": categorical((256, 128), (512, 256)),
}

NETWORK = Network(
    name="fashion-mlp",
    summary="Dense FashionMNIST classifier with dropout (--set augment=true: vertical flip + rotation).",
    config_class=FashionMLPConfig,
    model=FashionMLP,
    load_data=load_data,
    train=TRAIN,
    space=SPACE,
    quick_train_size=1000,
    flatten=True,
    options=AugmentOptions(),
    augment=flip_rotate_for,
)
