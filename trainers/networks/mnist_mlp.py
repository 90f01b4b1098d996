"""``mnist-mlp``: the homework's 784-Nh1-Nh2-10 tanh MLP on MNIST, with early stopping.

Defaults Nh1 = 96, Nh2 = 24 (the homework's best: 97.1 % on the full data set). Inputs are
flattened normalized images (``input_shape`` [784]) shown as 28x28 pictures.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from trainers.data import ImageDataset, load_mnist
from trainers.layers import ACTIVATIONS, INITS, activation, check_choice, initialize, seeded
from trainers.loop import TrainConfig
from trainers.network import Network
from trainers.search_space import OPTIMIZER_SPACE, int_range
from trainers.settings import RunSettings


@dataclasses.dataclass(frozen=True)
class MNISTMLPConfig:
    """Shape of the MNIST MLP.

    Attributes:
        hidden1: units in the first hidden layer (Nh1).
        hidden2: units in the second hidden layer (Nh2).
        activation: nonlinearity after both hidden layers.
        dropout: dropout after each hidden activation (the homework used none).
        init: ``default``, ``xavier``, ``kaiming`` or ``normal``.
        seed: seeds the initial weights.
    """

    hidden1: int = 96
    hidden2: int = 24
    activation: str = "tanh"
    dropout: float = 0.0
    init: str = "xavier"
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("init", self.init, INITS)
        if min(self.hidden1, self.hidden2) < 1 or not 0.0 <= self.dropout < 1.0:
            raise ValueError("hidden widths must be positive and dropout in [0, 1)")


class MNISTMLP(nn.Module):
    """784 → Nh1 → Nh2 → 10 with an activation (and optional dropout) after each hidden layer."""

    def __init__(self, config: MNISTMLPConfig) -> None:
        super().__init__()
        self.config = config
        with seeded(config.seed):
            self.fc1 = nn.Linear(784, config.hidden1)
            self.act1 = activation(config.activation)
            self.fc2 = nn.Linear(config.hidden1, config.hidden2)
            self.act2 = activation(config.activation)
            self.dropout = nn.Dropout(config.dropout)
            self.fc3 = nn.Linear(config.hidden2, 10)
            initialize(self, config.init, config.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 784]`` normalized pixels to ``[N, 10]`` logits."""
        x = self.dropout(self.act1(self.fc1(x)))
        x = self.dropout(self.act2(self.fc2(x)))
        return self.fc3(x)


def load_data(settings: RunSettings, options: None) -> ImageDataset:
    """MNIST from the run's data folder (flattened by the pipeline, as ``flatten`` says)."""
    return load_mnist(settings.data_dir)


#: SGD with momentum 0.9, batch 32, cosine-annealed over at most 40 epochs, early stopping with
#: patience 3 (the homework's). On the offline subset this gives a mean of 93.1 % over seeds 0-19
#: (bar 92 %); the former Adam lr 1e-3, batch 64, no schedule gave 91.0-93.0 % (seeds 0-2), the
#: noisy validation loss often stopping it early. See trainers/RESULTS.md.
TRAIN = TrainConfig(
    epochs=40, batch_size=32, optimizer="sgd", lr=0.04, momentum=0.9, weight_decay=2e-3, scheduler="cosine", patience=3
)

#: The homework searched the two widths; the optimizer's knobs come with them.
SPACE = {**OPTIMIZER_SPACE, "hidden1": int_range(32, 256, grid=(96, 128)), "hidden2": int_range(8, 64, grid=(24, 32))}

NETWORK = Network(
    name="mnist-mlp",
    summary="784-96-24-10 tanh MLP on MNIST; SGD with momentum, cosine schedule, early stopping with patience 3.",
    config_class=MNISTMLPConfig,
    model=MNISTMLP,
    load_data=load_data,
    train=TRAIN,
    space=SPACE,
    quick_epochs=5,
    quick_train_size=2000,
    flatten=True,
)
