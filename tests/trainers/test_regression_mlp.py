"""regression-mlp: configurable MLP, round trip through a checkpoint, snapshots and data extras."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainers.networks.regression_mlp import NETWORK, RegressionMLP, RegressionMLPConfig
from trainers.testing import check_recipe


def test_regression_mlp_reloads_to_identical_outputs(tmp_path: Path) -> None:
    report = check_recipe("regression-mlp", tmp_path, epochs=3)
    assert report.max_abs_diff == 0.0
    checkpoint = report.checkpoint
    assert checkpoint["task"]["kind"] == "regression" and checkpoint["task"]["input_shape"] == [1]
    assert checkpoint["task"]["domain"] == [-5.0, 5.0]
    assert len(checkpoint["history"]["train_loss"]) == 3
    assert checkpoint["metrics"]["noise_variance"] == pytest.approx(0.09)
    assert checkpoint["metrics"]["test_mse"] > 0


def test_regression_checkpoint_has_snapshots_from_epoch_zero_and_the_data(tmp_path: Path) -> None:
    report = check_recipe("regression-mlp", tmp_path, epochs=4)
    snapshots = report.checkpoint["snapshots"]
    assert snapshots["epochs"] == [0, 1, 2, 3, 4]
    assert snapshots["outputs"].shape == (5, len(snapshots["inputs"]))
    # The last snapshot is the saved network's own curve.
    model = report.subject.model.eval()
    with torch.no_grad():
        final = model(snapshots["inputs"][:, None]).flatten()
    assert torch.equal(final, snapshots["outputs"][-1])
    regression = report.checkpoint["extras"]["regression"]
    assert {len(regression[key]) for key in ("train_inputs", "train_targets", "test_inputs", "test_targets")} == {100}
    assert report.subject.snapshots is not None


def test_depth_width_and_activation_shape_the_network() -> None:
    config = RegressionMLPConfig(width=8, depth=3, activation="relu", dropout=0.2, seed=1)
    model = RegressionMLP(config)
    linears = [module for module in model.modules() if isinstance(module, torch.nn.Linear)]
    assert [tuple(layer.weight.shape) for layer in linears] == [(8, 1), (8, 8), (8, 8), (8, 8), (1, 8)]
    assert sum(isinstance(module, torch.nn.ReLU) for module in model.modules()) == 4
    assert sum(isinstance(module, torch.nn.Dropout) for module in model.modules()) == 3


def test_same_seed_builds_identical_weights_without_touching_global_rng() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = NETWORK({"seed": 4})
    after = torch.rand(1)
    second = NETWORK({"seed": 4})
    assert torch.equal(before, after)  # building did not consume the caller's random numbers
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b)


def test_set_overrides_reach_the_network(tmp_path: Path) -> None:
    report = check_recipe("regression-mlp", tmp_path, epochs=1, width="8", activation="tanh", lr="0.02")
    config = report.checkpoint["architecture"]["config"]
    assert (config["width"], config["activation"]) == (8, "tanh")
    assert report.checkpoint["hyperparameters"]["train"]["lr"] == 0.02
    assert report.subject.model.input[0].weight.shape == (8, 1)
