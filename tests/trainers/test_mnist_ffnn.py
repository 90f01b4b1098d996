"""mnist-ffnn: 784-256-512-256-10 with dropout 0.5; round trip on the offline MNIST subset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainers.networks.mnist_ffnn import NETWORK
from trainers.testing import check_recipe


def test_mnist_ffnn_layers_and_dropout() -> None:
    model = NETWORK({})
    linears = [module for module in model.modules() if isinstance(module, torch.nn.Linear)]
    assert [layer.out_features for layer in linears] == [256, 512, 256, 10]
    assert [module.p for module in model.modules() if isinstance(module, torch.nn.Dropout)] == [0.5, 0.5, 0.5]


@pytest.mark.slow
def test_mnist_ffnn_reloads_to_identical_outputs(tmp_path: Path) -> None:
    report = check_recipe("mnist-ffnn", tmp_path, epochs=1)
    assert report.max_abs_diff == 0.0
    assert report.checkpoint["metrics"]["num_test"] == 1000
