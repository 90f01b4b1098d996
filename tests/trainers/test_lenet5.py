"""lenet5: LeNet-5 with dropout and Kaiming initialization; round trip on offline MNIST."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from trainers.networks.lenet5 import LeNet5, LeNet5Config
from trainers.testing import check_recipe


def test_lenet5_takes_28x28_images_to_ten_logits() -> None:
    model = LeNet5(LeNet5Config())
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert model.fc1.in_features == 16 * 5 * 5


def test_lenet5_kaiming_init_has_he_standard_deviation() -> None:
    model = LeNet5(LeNet5Config(channels=(32, 64), seed=0))
    weight = model.conv2.weight  # fan-in 32 * 5 * 5 = 800, 51 200 weights: a tight estimate
    assert float(weight.detach().std()) == pytest.approx(math.sqrt(2 / 800), rel=0.03)
    assert float(model.conv2.bias.detach().abs().max()) == 0.0


@pytest.mark.slow
def test_lenet5_reloads_to_identical_outputs(tmp_path: Path) -> None:
    report = check_recipe("lenet5", tmp_path, epochs=1)
    assert report.max_abs_diff == 0.0
    assert report.checkpoint["task"]["input_shape"] == [1, 28, 28]
    assert set(report.checkpoint["initial_weights"]) == {name for name, _ in report.subject.model.named_parameters()}
