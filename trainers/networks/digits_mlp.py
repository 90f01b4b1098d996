"""``digits-mlp``: an MLP on scikit-learn's bundled 8x8 digits (no download, trains in seconds).

The demo network: 64 pixels in, hidden dense layers with dropout, 10 logits out. Inputs are the
flattened images (``input_shape`` [64]) shown as 8x8 pictures (``image_shape`` [1, 8, 8]).
"""

from __future__ import annotations

import dataclasses

from trainers.data import ImageDataset, load_digits
from trainers.layers import DenseClassifier, check_dense_config
from trainers.loop import TrainConfig
from trainers.network import Network
from trainers.search_space import OPTIMIZER_SPACE, categorical, float_range
from trainers.settings import RunSettings


@dataclasses.dataclass(frozen=True)
class DigitsMLPConfig:
    """Shape of the digits MLP.

    Attributes:
        hidden: widths of the hidden layers, in order.
        activation: nonlinearity after each hidden layer.
        dropout: dropout after each hidden activation.
        init: ``default``, ``xavier``, ``kaiming`` or ``normal``.
        seed: seeds the initial weights.
    """

    hidden: tuple[int, ...] = (64, 32)
    activation: str = "relu"
    dropout: float = 0.1
    init: str = "kaiming"
    seed: int = 0

    def __post_init__(self) -> None:
        check_dense_config(self)


class DigitsMLP(DenseClassifier):
    """64 → hidden[0] → ... → 10 on the flattened 8x8 digits (pixels in [0, 1])."""

    def __init__(self, config: DigitsMLPConfig) -> None:
        super().__init__(64, config)


def load_data(settings: RunSettings, options: None) -> ImageDataset:
    """The bundled digits, split with a fixed seed: the run's seed varies the network only."""
    return load_digits(seed=0)


TRAIN = TrainConfig(epochs=40, batch_size=64, optimizer="adam", lr=2e-3, weight_decay=1e-4)

SPACE = {
    **OPTIMIZER_SPACE,
    "hidden": categorical((64, 32), (128, 64)),
    "dropout": float_range(0.0, 0.4, grid=(0.0, 0.1)),
}

NETWORK = Network(
    name="digits-mlp",
    summary="MLP on scikit-learn's 8x8 digits (bundled, no download); Adam, cross-entropy.",
    config_class=DigitsMLPConfig,
    model=DigitsMLP,
    load_data=load_data,
    train=TRAIN,
    space=SPACE,
    quick_epochs=15,
    quick_train_size=None,  # small enough that quick mode keeps every image and only trims epochs
    flatten=True,
)
