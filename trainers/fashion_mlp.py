"""FashionMLP: the dense FashionMNIST classifier of the course, whose only parameter is dropout.

784 -> 256 -> ReLU -> dropout -> 128 -> ReLU -> dropout -> 10 logits. The shape is fixed, as in
the homework; the dropout probability is the one knob (the hyperparameter search also tunes the
optimizer around it). Inputs are (N, 1, 28, 28) images or flat (N, 784) vectors.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from trainers.augmentation import background_value, flip_rotate
from trainers.catalog import RunSettings, register
from trainers.data import load_fashion_mnist
from trainers.data import ImageDataset
from trainers.layers import config_from_dict, seeded
from trainers.loop import AugmentFn, TrainConfig
from trainers.options import AugmentOptions, as_plain, configs_with_options
from trainers.runs import train_classifier
from trainers.search_space import OPTIMIZER_SPACE, SearchProblem, categorical, classifier_problem, float_range, searchable

TRAIN = TrainConfig(epochs=20, batch_size=64, optimizer="adam", lr=1e-3, weight_decay=1e-5, patience=4)
QUICK_TRAIN_SIZE = 1000


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


def build(config: dict[str, Any]) -> FashionMLP:
    """Entry point for ``introspect.architectures``: a FashionMLP from its stored config."""
    return FashionMLP(config_from_dict(FashionMLPConfig, config))


def _prepare(settings: RunSettings) -> tuple[AugmentOptions, FashionMLPConfig, TrainConfig, ImageDataset, AugmentFn | None]:
    options, config, train_config = configs_with_options(settings, AugmentOptions(), FashionMLPConfig(), TRAIN)
    data = load_fashion_mnist(settings.data_dir)
    fill = background_value(data.normalization)
    augment = flip_rotate(data.image_shape, options.rotation, fill) if options.augment else None
    return options, config, train_config, data, augment


@register("fashion-mlp", architecture="fashion-mlp")
def train_fashion_mlp(settings: RunSettings) -> dict[str, Any]:
    """Dense FashionMNIST classifier with dropout (--set augment=true: vertical flip + rotation)."""
    options, config, train_config, data, augment = _prepare(settings)
    with seeded(settings.seed):
        model = FashionMLP(config)
    return train_classifier(
        model, "fashion-mlp", config, train_config, data, settings,
        flatten=True, quick_train_size=QUICK_TRAIN_SIZE, augment=augment, extras={"options": as_plain(options)},
    )


SPACE = {
    **OPTIMIZER_SPACE,
    "dropout": float_range(0.0, 0.5, grid=(0.1, 0.3)),
    "hidden": categorical((256, 128), (512, 256)),
}


@searchable("fashion-mlp", space=SPACE)
def fashion_mlp_problem(settings: RunSettings) -> SearchProblem:
    """Cross-validation problem of ``fashion-mlp`` for :mod:`trainers.search`."""
    _, config, train_config, data, augment = _prepare(settings)
    return classifier_problem(
        data, settings, lambda: FashionMLP(config), train_config,
        quick_train_size=QUICK_TRAIN_SIZE, flatten=True, augment=augment,
    )
