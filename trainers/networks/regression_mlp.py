"""``regression-mlp``: an MLP fitting the homework's 1-D function, with its output curve over epochs.

Dense input and output layers around a middle block whose depth, width, dropout, activation and
initialization are configurable; Adam with weight decay; MSE. The checkpoint records the
network's output on a grid of x at regular epochs (``snapshots``) so its evolution can be
animated, and the data and the true function (``extras["regression"]``) so they can be drawn.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from trainers.data import RegressionData, regression_data
from trainers.layers import ACTIVATIONS, INITS, activation, check_choice, initialize, seeded
from trainers.loop import TrainConfig
from trainers.network import Network
from trainers.search_space import categorical, float_range, int_range, log_float
from trainers.settings import RunSettings

#: The task is one fixed data set (as in the homework); the run's seed varies the network only.
DATA_SEED = 0


@dataclasses.dataclass(frozen=True)
class RegressionMLPConfig:
    """Shape of the regression MLP.

    Attributes:
        width: units in every hidden layer.
        depth: hidden-to-hidden layers in the middle block (0 gives one hidden layer in all).
        dropout: dropout after each middle layer's activation.
        activation: ``sigmoid`` (the homework's default), ``relu`` or ``tanh``.
        init: ``default``, ``xavier``, ``kaiming`` or ``normal``.
        seed: seeds the initial weights.
    """

    width: int = 64
    depth: int = 2
    dropout: float = 0.0
    activation: str = "sigmoid"
    init: str = "xavier"
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("init", self.init, INITS)
        if self.width < 1 or self.depth < 0 or not 0.0 <= self.dropout < 1.0:
            raise ValueError("width must be >= 1, depth >= 0 and dropout in [0, 1)")


class RegressionMLP(nn.Module):
    """x → dense input layer → ``depth`` × (dense, activation, dropout) → dense output → y."""

    def __init__(self, config: RegressionMLPConfig) -> None:
        super().__init__()
        self.config = config
        with seeded(config.seed):
            self.input = nn.Sequential(nn.Linear(1, config.width), activation(config.activation))
            middle: list[nn.Module] = []
            for _ in range(config.depth):
                middle += [
                    nn.Linear(config.width, config.width),
                    activation(config.activation),
                    nn.Dropout(config.dropout),
                ]
            self.middle = nn.Sequential(*middle)
            self.output = nn.Linear(config.width, 1)
            initialize(self, config.init, config.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 1]`` inputs to ``[N, 1]`` outputs."""
        return self.output(self.middle(self.input(x)))


def load_data(settings: RunSettings, options: None) -> RegressionData:
    """The homework's 1-D regression task (training points with gaps, uniform test points)."""
    return regression_data(seed=DATA_SEED)


TRAIN = TrainConfig(
    epochs=1500, batch_size=16, optimizer="adam", lr=0.01, weight_decay=1e-3, scheduler="cosine", loss="mse"
)

SPACE = {
    "lr": log_float(1e-4, 3e-2, grid=(1e-3, 1e-2)),
    "weight_decay": log_float(1e-6, 1e-2, grid=(1e-4,)),
    "width": int_range(8, 128, grid=(32, 64)),
    "depth": int_range(0, 3, grid=(1, 2)),
    "dropout": float_range(0.0, 0.3, grid=(0.0,)),
    "activation": categorical("sigmoid", "tanh", "relu"),
    "optimizer": categorical("adam", "sgd"),
    "batch_size": categorical(8, 16, 32),
}

NETWORK = Network(
    name="regression-mlp",
    summary="MLP (sigmoid by default) on the synthetic 1-D regression task; Adam, MSE, output snapshots.",
    config_class=RegressionMLPConfig,
    model=RegressionMLP,
    load_data=load_data,
    train=TRAIN,
    space=SPACE,
    quick_epochs=400,
    quick_train_size=None,
)
