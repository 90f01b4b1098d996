"""``mnist-ffnn``: the homework's wider feed-forward net, 784-256-512-256-10 with dropout 0.5."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from trainers.catalog import RunSettings, register
from trainers.data import load_mnist
from trainers.layers import ACTIVATIONS, INITS, check_choice, config_from_dict, dense_stack, initialize, seeded
from trainers.loop import TrainConfig
from trainers.runs import configs_for, train_classifier

ARCHITECTURE = "mnist-ffnn"


@dataclasses.dataclass(frozen=True)
class MNISTFFNNConfig:
    """Shape of the feed-forward net.

    Attributes:
        hidden: widths of the hidden layers, in order.
        dropout: dropout after each hidden activation.
        activation: nonlinearity after each hidden layer.
        init: ``default``, ``xavier``, ``kaiming`` or ``normal``.
        seed: seeds the initial weights.
    """

    hidden: tuple[int, ...] = (256, 512, 256)
    dropout: float = 0.5
    activation: str = "relu"
    init: str = "kaiming"
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("init", self.init, INITS)
        if not self.hidden or min(self.hidden) < 1 or not 0.0 <= self.dropout < 1.0:
            raise ValueError("hidden needs at least one positive width, and dropout lies in [0, 1)")


class MNISTFFNN(nn.Module):
    """784 → 256 → 512 → 256 → 10; each hidden layer: linear, activation, dropout."""

    def __init__(self, config: MNISTFFNNConfig) -> None:
        super().__init__()
        self.config = config
        widths = (784, *config.hidden)
        with seeded(config.seed):
            self.hidden = dense_stack(widths, config.activation, config.dropout)
            self.classifier = nn.Linear(widths[-1], 10)
            initialize(self, config.init, config.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 784]`` normalized pixels to ``[N, 10]`` logits."""
        return self.classifier(self.hidden(x))


def build(config: dict[str, Any]) -> MNISTFFNN:
    """The ``introspect.architectures`` factory: a network from a checkpoint's config dict."""
    return MNISTFFNN(config_from_dict(MNISTFFNNConfig, config))


TRAIN = TrainConfig(epochs=30, batch_size=64, optimizer="adam", lr=1e-3, weight_decay=0.0, patience=5, loss="cross_entropy")


@register(ARCHITECTURE)
def train_mnist_ffnn(settings: RunSettings) -> dict[str, Any]:
    """784-256-512-256-10 ReLU feed-forward net with dropout 0.5 on MNIST; Adam."""
    config, train_config = configs_for(settings, MNISTFFNNConfig(), TRAIN, quick_epochs=5)
    data = load_mnist(settings.data_dir)
    return train_classifier(MNISTFFNN(config), ARCHITECTURE, config, train_config, data, settings, flatten=True, quick_train_size=2000)
