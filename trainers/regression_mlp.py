"""``regression-mlp``: an MLP fitting the homework's 1-D function, with its output curve over epochs.

Dense input and output layers around a middle block whose depth, width, dropout, activation and
initialization are configurable; Adam with weight decay; MSE. The checkpoint records the
network's output on a grid of x at regular epochs (``snapshots``) so its evolution can be
animated, and the data and the true function (``extras["regression"]``) so they can be drawn.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from introspect.checkpoint import make_checkpoint
from introspect.subject import Task
from trainers.catalog import RunSettings, register
from trainers.data import REGRESSION_DOMAIN, RegressionData, regression_data, true_function
from trainers.layers import ACTIVATIONS, INITS, activation, check_choice, config_from_dict, initialize, seeded
from trainers.loop import TrainConfig, evaluate, fit, split_train_validation
from trainers.runs import configs_for, hyperparameters_of, initial_parameters

ARCHITECTURE = "regression-mlp"
NUM_SNAPSHOTS = 60
GRID_SIZE = 201
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
                middle += [nn.Linear(config.width, config.width), activation(config.activation), nn.Dropout(config.dropout)]
            self.middle = nn.Sequential(*middle)
            self.output = nn.Linear(config.width, 1)
            initialize(self, config.init, config.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 1]`` inputs to ``[N, 1]`` outputs."""
        return self.output(self.middle(self.input(x)))


def build(config: dict[str, Any]) -> RegressionMLP:
    """The ``introspect.architectures`` factory: a network from a checkpoint's config dict."""
    return RegressionMLP(config_from_dict(RegressionMLPConfig, config))


TRAIN = TrainConfig(epochs=1500, batch_size=16, optimizer="adam", lr=0.01, weight_decay=1e-3, scheduler="cosine", loss="mse")


@register(ARCHITECTURE)
def train_regression_mlp(settings: RunSettings) -> dict[str, Any]:
    """MLP (sigmoid by default) on the synthetic 1-D regression task; Adam, MSE, output snapshots."""
    config, train_config = configs_for(settings, RegressionMLPConfig(), TRAIN, quick_epochs=400)
    return train_regressor(RegressionMLP(config), ARCHITECTURE, config, train_config, settings)


def train_regressor(
    model: nn.Module, architecture: str, model_config: Any, train_config: TrainConfig, settings: RunSettings
) -> dict[str, Any]:
    """Train a scalar regressor on :func:`~trainers.data.regression_data` and checkpoint it.

    Shared by every regression network. A fifth of the training points is held out for
    validation (the best-validation weights are kept); the test MSE is measured on the final
    weights and compared with the test noise variance.
    """
    # The task is one fixed data set (as in the homework); the run's seed varies the network only.
    data = regression_data(seed=DATA_SEED)
    train, validation = split_train_validation(data.train, 0.2, settings.seed)
    recorder = SnapshotRecorder(every=max(1, train_config.epochs // NUM_SNAPSHOTS))
    initial = initial_parameters(model)
    result = fit(model, train, validation, train_config, progress=settings.progress, on_epoch=recorder)
    model.cpu()
    metrics = {
        "test_mse": evaluate(model, data.test, train_config)["loss"],
        "train_mse": evaluate(model, data.train, train_config)["loss"],
        "noise_variance": data.test_noise_variance,
        # What the noise-free function itself scores on this particular noisy test set.
        "true_function_test_mse": float(((true_function(data.test.inputs) - data.test.targets) ** 2).mean()),
        "train_noise_variance": data.train_noise_std**2,
        "best_val_mse": result.best("val_loss"),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
    }
    grid = recorder.grid
    task = Task(kind="regression", input_shape=(1,), dataset="synthetic 1-D regression", domain=REGRESSION_DOMAIN)
    return make_checkpoint(
        model,
        architecture=architecture,
        config=dataclasses.asdict(model_config),
        task=task.to_dict(),
        probe_inputs=grid[:, None],
        probe_labels=true_function(grid)[:, None],
        history=result.history,
        hyperparameters=hyperparameters_of(model_config, train_config, settings),
        metrics=metrics,
        snapshots=recorder.snapshots(),
        initial_weights=initial,
        best_state_dict=result.best_state_dict,
        extras={"regression": _regression_extras(data)},
    )


class SnapshotRecorder:
    """An ``on_epoch`` callback recording the network's output on a grid of x every few epochs."""

    def __init__(self, every: int, grid_size: int = GRID_SIZE) -> None:
        self.every = every
        self.grid = torch.linspace(*REGRESSION_DOMAIN, grid_size)
        self.epochs: list[int] = []
        self.outputs: list[torch.Tensor] = []

    def __call__(self, epoch: int, model: nn.Module) -> None:
        if epoch % self.every == 0:
            device = next(model.parameters()).device
            self.epochs.append(epoch)
            self.outputs.append(model(self.grid[:, None].to(device)).flatten().cpu())

    def snapshots(self) -> dict[str, Any]:
        """``{"epochs": [E], "inputs": [N], "outputs": [E, N]}`` as the checkpoint stores them."""
        return {"epochs": list(self.epochs), "inputs": self.grid.clone(), "outputs": torch.stack(self.outputs)}


def _regression_extras(data: RegressionData) -> dict[str, torch.Tensor]:
    return {
        "train_inputs": data.train.inputs.flatten(),
        "train_targets": data.train.targets.flatten(),
        "test_inputs": data.test.inputs.flatten(),
        "test_targets": data.test.targets.flatten(),
        "true_inputs": data.true_inputs,
        "true_outputs": data.true_outputs,
    }
