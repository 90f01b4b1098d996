"""fashion-cnn: Conv + BatchNorm2d + dropout; a quick epoch reloads to identical outputs."""

from __future__ import annotations

import os

import pytest
import torch
from _network_checks import accuracy, quick_checkpoint, reload, state_equal

from trainers.data import load_fashion_mnist
from trainers.networks.fashion_cnn import FashionCNN, FashionCNNConfig


def test_layers_and_feature_size() -> None:
    model = FashionCNN(FashionCNNConfig(channels=(8, 12), hidden=32, dropout=0.25))
    norms = [module for module in model.modules() if isinstance(module, torch.nn.BatchNorm2d)]
    assert [norm.num_features for norm in norms] == [8, 12]
    assert model.fc1.in_features == 12 * 7 * 7
    assert model.drop.p == 0.25
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    plain = FashionCNN(FashionCNNConfig(batch_norm=False))
    assert not any(isinstance(module, torch.nn.BatchNorm2d) for module in plain.modules())


def test_quick_epoch_reloads_to_identical_outputs(tmp_path) -> None:
    checkpoint = quick_checkpoint("fashion-cnn", augment="true")
    subject, difference = reload(checkpoint, tmp_path / "fashion-cnn.pt")
    assert difference == 0.0
    assert state_equal(subject.model.state_dict(), checkpoint["state_dict"])  # BatchNorm running stats too
    assert checkpoint["state_dict"]["block1.1.num_batches_tracked"].item() == 15  # ceil(900 / 64) batches
    test = load_fashion_mnist(os.environ["INTROSPECT_DATA"]).test
    assert accuracy(subject.model, test) == pytest.approx(checkpoint["metrics"]["test_accuracy"], abs=1e-12)
    assert checkpoint["metrics"]["test_accuracy"] > 0.3
    assert checkpoint["extras"]["options"]["augment"] is True
