"""cifar-mlp: the full 3072-4096-4096-10 sigmoid network trains a quick epoch and reloads exactly."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from _network_checks import accuracy, quick_train, reload, tiny_cifar

from trainers.networks import cifar_mlp


def test_architecture_is_the_homeworks() -> None:
    model = cifar_mlp.CifarMLP(cifar_mlp.CifarMLPConfig())
    shapes = [tuple(parameter.shape) for name, parameter in model.named_parameters() if name.endswith("weight")]
    assert shapes == [(4096, 3072), (4096, 4096), (10, 4096)]
    assert isinstance(model.act, torch.nn.Sigmoid)


def test_quick_epoch_reloads_to_identical_outputs(tmp_path) -> None:
    data = tiny_cifar()
    checkpoint = quick_train(
        dataclasses.replace(cifar_mlp.NETWORK, load_data=lambda settings, options: data, quick_train_size=100)
    )
    subject, difference = reload(checkpoint, tmp_path / "cifar-mlp.pt")
    assert difference == 0.0
    assert checkpoint["metrics"]["num_train"] == 90 and checkpoint["metrics"]["num_test"] == 40
    test = data.test.map_inputs(lambda x: x.flatten(1))
    assert accuracy(subject.model, test) == pytest.approx(checkpoint["metrics"]["test_accuracy"], abs=1e-12)
    assert subject.task.input_shape == (3072,) and subject.task.image_shape == (3, 32, 32)
    assert sorted(checkpoint["initial_weights"]) == [
        "fc1.bias",
        "fc2.bias",
        "fc3.bias",
        "fc3.weight",
    ]  # no 4096-wide copies
