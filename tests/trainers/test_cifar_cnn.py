"""cifar-cnn: the spatial arithmetic, the options, and a quick epoch that reloads exactly."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from _network_checks import accuracy, quick_train, reload, tiny_cifar

from trainers.networks.cifar_cnn import NETWORK, CifarCNN, CifarCNNConfig


def test_flatten_is_256_by_4_by_4_for_32_pixel_input() -> None:
    model = CifarCNN(CifarCNNConfig())
    assert model.fc1.in_features == 256 * 4 * 4 and model.fc1.out_features == 4096
    features = model.pool(model.conv_final(model.conv3(model.conv2(model.conv1(torch.zeros(1, 3, 32, 32))))))
    assert tuple(features.shape) == (1, 256, 4, 4)
    channels = [
        model.conv1[0].out_channels,
        model.conv2[0].out_channels,
        model.conv3[0].out_channels,
        model.conv_final[0].out_channels,
    ]
    assert channels == [128, 128, 128, 256]
    assert model.conv1[0].kernel_size == (5, 5) and model.conv1[0].stride == (2, 2)


def test_options_batch_norm_dropout_width() -> None:
    model = CifarCNN(CifarCNNConfig(width=32, hidden=64, batch_norm=True, dropout=0.5))
    norms = [module.num_features for module in model.modules() if isinstance(module, torch.nn.BatchNorm2d)]
    assert norms == [32, 32, 32, 64]
    assert model.fc1.in_features == 64 * 4 * 4
    assert model.drop.p == 0.5
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_quick_epoch_reloads_to_identical_outputs(tmp_path) -> None:
    data = tiny_cifar()
    small = dataclasses.replace(NETWORK, load_data=lambda settings, options: data, quick_train_size=100)
    checkpoint = quick_train(small, width="16", hidden="64", batch_norm="true", dropout="0.2", augment="true")
    subject, difference = reload(checkpoint, tmp_path / "cifar-cnn.pt")
    assert difference == 0.0
    assert checkpoint["architecture"]["config"]["width"] == 16
    assert accuracy(subject.model, data.test) == pytest.approx(checkpoint["metrics"]["test_accuracy"], abs=1e-12)
    assert checkpoint["extras"]["options"]["augment"] is True
    assert (
        "conv1.0.weight" in checkpoint["initial_weights"] and "fc1.weight" in checkpoint["initial_weights"]
    )  # small width: all kept
