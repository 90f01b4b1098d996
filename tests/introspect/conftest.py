"""Fixtures for the introspect tests: checkpoints of every kind, written on the fly."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest
import torch

from introspect import architectures
from introspect.checkpoint import make_checkpoint, save_checkpoint
from introspect.subject import Task
from introspect.testing import build_test_network

TEST_ARCHITECTURE = "test-network"
TEST_CONFIG = {"sizes": [4, 8, 6, 3], "activation": "tanh"}


@pytest.fixture
def registered_test_architecture(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register ``introspect.testing:build_test_network`` as the architecture ``test-network``."""
    entry_point = metadata.EntryPoint(
        name=TEST_ARCHITECTURE, value="introspect.testing:build_test_network", group=architectures.ARCHITECTURE_GROUP
    )
    original = architectures.registered_architectures
    monkeypatch.setattr(
        architectures, "registered_architectures", lambda: {**original(), TEST_ARCHITECTURE: entry_point}
    )
    return TEST_ARCHITECTURE


@pytest.fixture
def test_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_test_network(TEST_CONFIG)


@pytest.fixture
def introspect_checkpoint(tmp_path: Path, test_model: torch.nn.Module, registered_test_architecture: str) -> Path:
    """An introspect-format checkpoint of the test network with a labelled probe and history."""
    inputs = torch.randn(12, 4, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(12) % 3
    checkpoint = make_checkpoint(
        test_model,
        architecture=registered_test_architecture,
        config=TEST_CONFIG,
        task=Task(kind="classification", input_shape=(4,), class_names=("a", "b", "c"), dataset="toy").to_dict(),
        probe_inputs=inputs,
        probe_labels=labels,
        history={"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "best_epoch": 2},
        metrics={"test_accuracy": 0.75},
    )
    return save_checkpoint(tmp_path / "toy.pt", checkpoint)
