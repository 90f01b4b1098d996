"""regression-wide: 1-512-256-1 tanh net trained with SGD momentum; round trip."""

from __future__ import annotations

from pathlib import Path

import torch

from trainers.networks.regression_wide import NETWORK
from trainers.testing import check_recipe


def test_regression_wide_has_the_homework_shape() -> None:
    model = NETWORK({})
    linears = [module for module in model.modules() if isinstance(module, torch.nn.Linear)]
    assert [tuple(layer.weight.shape) for layer in linears] == [(512, 1), (256, 512), (1, 256)]
    assert sum(isinstance(module, torch.nn.Tanh) for module in model.modules()) == 2


def test_regression_wide_reloads_to_identical_outputs(tmp_path: Path) -> None:
    report = check_recipe("regression-wide", tmp_path, epochs=2)
    assert report.max_abs_diff == 0.0
    train = report.checkpoint["hyperparameters"]["train"]
    assert (train["optimizer"], train["momentum"], train["weight_decay"]) == ("sgd", 0.9, 1e-3)
    assert report.checkpoint["snapshots"]["outputs"].shape[0] == 3
