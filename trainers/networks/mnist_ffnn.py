"""``mnist-ffnn``: the homework's wider feed-forward net, 784-256-512-256-10 with dropout 0.5."""

from __future__ import annotations

import dataclasses

from trainers.data import ImageDataset, load_mnist
from trainers.layers import DenseClassifier, check_dense_config
from trainers.loop import TrainConfig
from trainers.network import Network
from trainers.search_space import OPTIMIZER_SPACE, float_range
from trainers.settings import RunSettings


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


def load_data(settings: RunSettings, options: None) -> ImageDataset:
    """MNIST from the run's data folder (flattened by the pipeline, as ``flatten`` says)."""
    return load_mnist(settings.data_dir)


TRAIN = TrainConfig(epochs=30, batch_size=64, optimizer="adam", lr=1e-3, weight_decay=0.0, patience=5)

SPACE = {**OPTIMIZER_SPACE, "dropout": float_range(0.0, 0.6, grid=(0.3, 0.5))}

NETWORK = Network(
    name="mnist-ffnn",
    summary="784-256-512-256-10 ReLU feed-forward net with dropout 0.5 on MNIST; Adam.",
    config_class=MNISTFFNNConfig,
    model=MNISTFFNN,
    load_data=load_data,
    train=TRAIN,
    space=SPACE,
    quick_epochs=5,
    quick_train_size=2000,
    flatten=True,
)
