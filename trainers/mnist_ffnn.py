"""``mnist-ffnn``: the homework's wider feed-forward net, 784-256-512-256-10 with dropout 0.5."""

from __future__ import annotations

import dataclasses
from typing import Any


from trainers.catalog import RunSettings, register
from trainers.data import load_mnist
from trainers.layers import DenseClassifier, check_dense_config, config_from_dict
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
        check_dense_config(self)


class MNISTFFNN(DenseClassifier):
    """784 → 256 → 512 → 256 → 10 on flattened, normalized MNIST images."""

    def __init__(self, config: MNISTFFNNConfig) -> None:
        super().__init__(784, config)


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
