"""NetA1/NetA2 recipes: quick epochs, reloads, the frozen first conv of hf, identical shared starts."""

from __future__ import annotations

import os

import pytest
import torch
from _network_checks import accuracy, quick_checkpoint, reload

from trainers.catalog import get_recipe
from trainers.data import load_fashion_mnist
from trainers.networks.neta import NETA1, NETA2, hand_kernels

NAMES = NETA1.recipe_names() + NETA2.recipe_names()


@pytest.fixture(scope="module")
def checkpoints() -> dict[str, dict]:
    return {name: quick_checkpoint(name) for name in NAMES}


def test_all_six_recipes_are_registered() -> None:
    assert NAMES == ["neta1-hf", "neta1-ht", "neta1-dt", "neta2-hf", "neta2-ht", "neta2-dt"]
    assert [get_recipe(name).architecture for name in NAMES] == ["neta1"] * 3 + ["neta2"] * 3


@pytest.mark.parametrize("name", NAMES)
def test_quick_epoch_reloads_to_identical_outputs(name: str, checkpoints: dict, tmp_path) -> None:
    checkpoint = checkpoints[name]
    subject, difference = reload(checkpoint, tmp_path / f"{name}.pt")
    assert difference == 0.0
    test = load_fashion_mnist(os.environ["INTROSPECT_DATA"]).test
    assert accuracy(subject.model, test) == pytest.approx(checkpoint["metrics"]["test_accuracy"], abs=1e-12)
    assert checkpoint["task"]["dataset"] == "FashionMNIST"
    assert checkpoint["extras"]["scheme"] == name.split("-")[1]


@pytest.mark.parametrize("name", ["neta1-hf", "neta2-hf"])
def test_hf_first_conv_is_bit_identical_after_training(name: str, checkpoints: dict) -> None:
    state, initial = checkpoints[name]["state_dict"], checkpoints[name]["initial_weights"]
    assert torch.equal(state["conv1.weight"], hand_kernels())
    assert torch.equal(state["conv1.bias"], torch.zeros(4))
    assert torch.equal(initial["conv1.weight"], hand_kernels())
    assert torch.linalg.vector_norm(state["linear1.weight"] - initial["linear1.weight"]).item() > 0.0
    assert checkpoints[name]["extras"]["frozen_layers"] == ["conv1"]


@pytest.mark.parametrize("name", ["neta1-ht", "neta2-ht", "neta1-dt", "neta2-dt"])
def test_trained_schemes_move_the_first_conv(name: str, checkpoints: dict) -> None:
    state, initial = checkpoints[name]["state_dict"], checkpoints[name]["initial_weights"]
    assert torch.linalg.vector_norm(state["conv1.weight"] - initial["conv1.weight"]).item() > 0.0


def test_recorded_starting_weights_are_identical_where_shared(checkpoints: dict) -> None:
    def norm_of_difference(first: str, second: str, tensor: str) -> float:
        return torch.linalg.vector_norm(
            checkpoints[first]["initial_weights"][tensor] - checkpoints[second]["initial_weights"][tensor]
        ).item()

    for architecture in ("neta1", "neta2"):
        shared = ["linear1.weight", "linear1.bias"] + (
            ["conv2.weight", "conv2.bias"] if architecture == "neta2" else []
        )
        for tensor in shared:
            assert norm_of_difference(f"{architecture}-hf", f"{architecture}-ht", tensor) == 0.0
            assert norm_of_difference(f"{architecture}-hf", f"{architecture}-dt", tensor) == 0.0
        assert norm_of_difference(f"{architecture}-hf", f"{architecture}-ht", "conv1.weight") == 0.0
    for scheme in ("hf", "ht", "dt"):
        for tensor in ("conv1.weight", "conv1.bias"):
            assert norm_of_difference(f"neta1-{scheme}", f"neta2-{scheme}", tensor) == 0.0


def test_mnist_option_switches_the_dataset() -> None:
    checkpoint = quick_checkpoint("neta1-dt", dataset="mnist")
    assert checkpoint["task"]["dataset"] == "MNIST"
    assert checkpoint["extras"]["options"] == {"dataset": "mnist"}
