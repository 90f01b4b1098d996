"""fashion-mlp: builds, trains a quick epoch, reloads to identical outputs, augments on request."""

from __future__ import annotations

import os

import pytest
import torch
from _network_checks import accuracy, quick_checkpoint, reload, state_equal

from trainers.data import load_fashion_mnist
from trainers.networks.fashion_mlp import NETWORK, FashionMLP, FashionMLPConfig


def test_shape_and_dropout_parameter() -> None:
    model = FashionMLP(FashionMLPConfig(dropout=0.4))
    assert [layer.out_features for layer in (model.fc1, model.fc2, model.fc3)] == [256, 128, 10]
    assert model.drop.p == 0.4
    assert model(torch.zeros(2, 1, 28, 28)).shape == model(torch.zeros(2, 784)).shape == (2, 10)
    rebuilt = NETWORK({"dropout": 0.4, "num_inputs": 784, "hidden": [256, 128], "num_classes": 10})
    assert rebuilt.config == model.config


def test_quick_epoch_reloads_to_identical_outputs(tmp_path) -> None:
    checkpoint = quick_checkpoint("fashion-mlp")
    subject, difference = reload(checkpoint, tmp_path / "fashion-mlp.pt")
    assert difference == 0.0
    assert state_equal(subject.model.state_dict(), checkpoint["state_dict"])
    assert checkpoint["history"]["epoch"] == [1]
    assert checkpoint["metrics"]["num_train"] + checkpoint["metrics"]["num_validation"] == 1000
    test = load_fashion_mnist(os.environ["INTROSPECT_DATA"]).test.map_inputs(lambda x: x.flatten(1))
    assert accuracy(subject.model, test) == pytest.approx(checkpoint["metrics"]["test_accuracy"], abs=1e-9)
    assert checkpoint["metrics"]["test_accuracy"] > 0.4  # ten classes: chance is 0.1
    assert subject.task.input_shape == (784,) and subject.task.image_shape == (1, 28, 28)


def test_augmented_run_differs_from_clean_and_is_recorded() -> None:
    clean = quick_checkpoint("fashion-mlp")
    augmented = quick_checkpoint("fashion-mlp", augment="true")
    again = quick_checkpoint("fashion-mlp", augment="true")
    assert augmented["extras"]["options"] == {"augment": True, "rotation": 15.0}
    assert clean["extras"]["options"]["augment"] is False
    assert not torch.equal(clean["state_dict"]["fc1.weight"], augmented["state_dict"]["fc1.weight"])
    assert state_equal(augmented["state_dict"], again["state_dict"])  # seeded augmentation
