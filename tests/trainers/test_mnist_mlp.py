"""mnist-mlp: 784-96-24-10 tanh with early stopping; round trip on the offline MNIST subset."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainers.networks.mnist_mlp import NETWORK
from trainers.testing import check_recipe


def test_mnist_mlp_has_the_homework_parameter_count() -> None:
    model = NETWORK({})
    expected = (784 * 96 + 96) + (96 * 24 + 24) + (24 * 10 + 10)
    assert sum(parameter.numel() for parameter in model.parameters()) == expected


@pytest.mark.slow
def test_mnist_mlp_reloads_to_identical_outputs(tmp_path: Path) -> None:
    report = check_recipe("mnist-mlp", tmp_path, epochs=1)
    assert report.max_abs_diff == 0.0
    checkpoint = report.checkpoint
    assert checkpoint["task"]["input_shape"] == [784] and checkpoint["task"]["image_shape"] == [1, 28, 28]
    assert checkpoint["hyperparameters"]["train"]["patience"] == 3
    assert checkpoint["metrics"]["test_accuracy"] > 0.3  # one quick epoch is far above chance (0.1)
