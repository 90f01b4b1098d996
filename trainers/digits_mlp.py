"""``digits-mlp``: an MLP on scikit-learn's bundled 8x8 digits (no download, trains in seconds).

The demo network: 64 pixels in, hidden dense layers with dropout, 10 logits out. Inputs are the
flattened images (``input_shape`` [64]) shown as 8x8 pictures (``image_shape`` [1, 8, 8]).
"""

from __future__ import annotations

import dataclasses
from typing import Any


from trainers.catalog import RunSettings, register
from trainers.data import load_digits
from trainers.layers import DenseClassifier, check_dense_config, config_from_dict
from trainers.loop import TrainConfig
from trainers.runs import configs_for, train_classifier

ARCHITECTURE = "digits-mlp"


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


def build(config: dict[str, Any]) -> DigitsMLP:
    """The ``introspect.architectures`` factory: a network from a checkpoint's config dict."""
    return DigitsMLP(config_from_dict(DigitsMLPConfig, config))


TRAIN = TrainConfig(epochs=40, batch_size=64, optimizer="adam", lr=2e-3, weight_decay=1e-4, loss="cross_entropy")


@register(ARCHITECTURE)
def train_digits_mlp(settings: RunSettings) -> dict[str, Any]:
    """MLP on scikit-learn's 8x8 digits (bundled, no download); Adam, cross-entropy."""
    config, train_config = configs_for(settings, DigitsMLPConfig(), TRAIN, quick_epochs=15)
    data = load_digits(seed=0)
    # Digits is small enough that quick mode keeps every image and only trims epochs.
    return train_classifier(DigitsMLP(config), ARCHITECTURE, config, train_config, data, settings, flatten=True, quick_train_size=len(data.train))
