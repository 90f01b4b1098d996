"""``regression-wide``: the homework's 1-512-256-1 tanh network for the 1-D regression task.

Trained with SGD, momentum 0.9 and weight decay 1e-3, as in the homework report; the checkpoint
has the same snapshots and data extras as ``regression-mlp``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from trainers.catalog import RunSettings, register
from trainers.layers import ACTIVATIONS, INITS, activation, check_choice, config_from_dict, initialize, seeded
from trainers.loop import TrainConfig
from trainers.regression_mlp import train_regressor
from trainers.runs import configs_for

ARCHITECTURE = "regression-wide"


@dataclasses.dataclass(frozen=True)
class RegressionWideConfig:
    """Shape of the wide regression network.

    Attributes:
        hidden: widths of the two hidden layers.
        activation: nonlinearity after each hidden layer (``tanh`` in the homework).
        init: ``default``, ``xavier``, ``kaiming`` or ``normal``.
        seed: seeds the initial weights.
    """

    hidden: tuple[int, ...] = (512, 256)
    activation: str = "tanh"
    init: str = "default"
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("init", self.init, INITS)
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError("hidden needs at least one positive width")


class RegressionWide(nn.Module):
    """1 → 512 → 256 → 1 with tanh after each hidden layer."""

    def __init__(self, config: RegressionWideConfig) -> None:
        super().__init__()
        self.config = config
        widths = (1, *config.hidden)
        with seeded(config.seed):
            layers: list[nn.Module] = []
            for width_in, width_out in zip(widths, widths[1:]):
                layers += [nn.Linear(width_in, width_out), activation(config.activation)]
            self.hidden = nn.Sequential(*layers)
            self.output = nn.Linear(widths[-1], 1)
            initialize(self, config.init, config.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 1]`` inputs to ``[N, 1]`` outputs."""
        return self.output(self.hidden(x))


def build(config: dict[str, Any]) -> RegressionWide:
    """The ``introspect.architectures`` factory: a network from a checkpoint's config dict."""
    return RegressionWide(config_from_dict(RegressionWideConfig, config))


TRAIN = TrainConfig(epochs=1000, batch_size=16, optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=1e-3, loss="mse")


@register(ARCHITECTURE)
def train_regression_wide(settings: RunSettings) -> dict[str, Any]:
    """1-512-256-1 tanh net on the 1-D regression task; SGD with momentum 0.9, weight decay 1e-3."""
    config, train_config = configs_for(settings, RegressionWideConfig(), TRAIN, quick_epochs=200)
    return train_regressor(RegressionWide(config), ARCHITECTURE, config, train_config, settings)
