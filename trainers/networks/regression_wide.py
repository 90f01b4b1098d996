"""``regression-wide``: the homework's 1-512-256-1 tanh network for the 1-D regression task.

Trained with SGD, momentum 0.9 and weight decay 1e-3, as in the homework report; the checkpoint
has the same snapshots and data extras as ``regression-mlp``.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from trainers.data import RegressionData, regression_data
from trainers.layers import ACTIVATIONS, INITS, activation, check_choice, initialize, seeded
from trainers.loop import TrainConfig
from trainers.network import Network
from trainers.search_space import categorical, log_float
from trainers.settings import RunSettings

#: The task is one fixed data set (as in the homework); the run's seed varies the network only.
DATA_SEED = 0


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


def load_data(settings: RunSettings, options: None) -> RegressionData:
    """The homework's 1-D regression task, the same one ``regression-mlp`` fits."""
    return regression_data(seed=DATA_SEED)


TRAIN = TrainConfig(epochs=1000, batch_size=16, optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=1e-3, loss="mse")

SPACE = {
    "lr": log_float(1e-3, 3e-2, grid=(3e-3, 1e-2)),
    "weight_decay": log_float(1e-5, 1e-2, grid=(1e-3,)),
    "activation": categorical("tanh", "relu"),
    "batch_size": categorical(8, 16, 32),
}

NETWORK = Network(
    name="regression-wide",
    summary="1-512-256-1 tanh net on the 1-D regression task; SGD with momentum 0.9, weight decay 1e-3.",
    config_class=RegressionWideConfig,
    model=RegressionWide,
    load_data=load_data,
    train=TRAIN,
    space=SPACE,
    quick_epochs=200,
    quick_train_size=None,
)
