"""layer_drift and the checkpoint's ``drift`` entry: read with bounds, drawn with the file's own numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from introspect.analyzers import representation_drift
from introspect.checkpoint import make_checkpoint
from introspect.errors import SkipAnalyzer
from introspect.loading import load_checkpoint
from introspect.needs import Needs
from introspect.runner import run_one
from introspect.spec import spec_of
from introspect.subject import Task
from tests.introspect.conftest import TEST_CONFIG
from trainers.drift import DriftRecorder, drift_probe
from trainers.loop import TensorSplit, TrainConfig, fit

EPOCHS = 5


def _payload(model: torch.nn.Module, architecture: str, drift: Any) -> dict[str, Any]:
    inputs = torch.randn(12, 4, generator=torch.Generator().manual_seed(1))
    payload = make_checkpoint(
        model,
        architecture=architecture,
        config=TEST_CONFIG,
        task=Task(kind="classification", input_shape=(4,), class_names=("a", "b", "c")).to_dict(),
        probe_inputs=inputs,
        probe_labels=torch.arange(12) % 3,
        history={"epoch": [1, 2], "train_loss": [1.0, 0.5]},
    )
    return {**payload, "drift": drift}


def _saved(tmp_path: Path, payload: dict[str, Any]) -> Path:
    path = tmp_path / "drift.pt"
    torch.save(payload, path)  # raw, so the drift entry can hold anything
    return path


@pytest.fixture
def trained(test_model: torch.nn.Module) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The test network fitted for a few epochs on random labels, with its drift recorded."""
    generator = torch.Generator().manual_seed(0)
    train = TensorSplit(torch.randn(96, 4, generator=generator), torch.randint(0, 3, (96,), generator=generator))
    recorder = DriftRecorder(drift_probe(train.inputs), num_epochs=EPOCHS)
    fit(test_model, train, None, TrainConfig(epochs=EPOCHS, batch_size=16, lr=0.02), on_epoch=recorder)
    return test_model, recorder.drift(test_model)


def test_reader_keeps_the_recorded_numbers(tmp_path: Path, trained, registered_test_architecture: str) -> None:
    model, drift = trained
    subject = load_checkpoint(_saved(tmp_path, _payload(model, registered_test_architecture, drift)), device="cpu")
    assert Needs.DRIFT in subject.available()
    assert subject.drift["epochs"] == tuple(range(EPOCHS + 1)) and subject.drift["layers"] == ("0", "2", "4")
    np.testing.assert_array_equal(subject.drift["cka_to_final"], drift["cka_to_final"].double().numpy())
    np.testing.assert_array_equal(subject.drift["relative_change"], drift["relative_change"].double().numpy())
    np.testing.assert_allclose(subject.drift["cka_to_final"][-1], 1.0, atol=1e-6)


def test_analyzer_data_are_the_checkpoints_numbers(tmp_path: Path, trained, registered_test_architecture: str) -> None:
    model, drift = trained
    subject = load_checkpoint(_saved(tmp_path, _payload(model, registered_test_architecture, drift)), device="cpu")
    result = run_one(subject, spec_of(representation_drift.layer_drift))
    assert result.status == "ok", result.reason
    artifact = result.artifacts[0]
    cka = drift["cka_to_final"].double().numpy()
    np.testing.assert_array_equal(artifact.data["cka_to_final"], cka)
    np.testing.assert_array_equal(artifact.data["relative_change"], drift["relative_change"].double().numpy())
    assert artifact.data["epochs"].tolist() == drift["epochs"] and artifact.data["layers"] == drift["layers"]
    # Settled: the first epoch after the last one below 0.9, found here by a plain scan from the end.
    for column, settled in enumerate(artifact.summary["settled_epoch"]):
        index = len(cka)
        while index > 0 and cka[index - 1, column] >= 0.9:
            index -= 1
        assert settled == drift["epochs"][index]
    assert artifact.summary["first_cka_to_final"] == pytest.approx(cka[0].tolist(), abs=1e-4)
    assert "0-to-1 scale" in artifact.caption


def test_analyzer_skips_a_checkpoint_without_drift(introspect_checkpoint: Path) -> None:
    subject = load_checkpoint(introspect_checkpoint, device="cpu")
    assert subject.drift is None and Needs.DRIFT not in subject.available()
    result = run_one(subject, spec_of(representation_drift.layer_drift))
    assert result.status == "skipped" and "no layer drift over epochs" in result.reason
    with pytest.raises(SkipAnalyzer, match="no layer drift over epochs"):
        representation_drift.layer_drift(subject)


def _good(num_epochs: int = 3, num_layers: int = 2) -> dict[str, Any]:
    return {
        "epochs": list(range(num_epochs)),
        "layers": [f"layer{index}" for index in range(num_layers)],
        "cka_to_final": torch.full((num_epochs, num_layers), 0.5),
        "relative_change": torch.full((num_epochs, num_layers), 0.1),
    }


MALFORMED = {
    "not a dict": ("every epoch", "drift must be a dict"),
    "wrong shape": ({**_good(), "cka_to_final": torch.zeros(2, 3)}, "drift.cka_to_final must have shape (3, 2)"),
    "NaN": ({**_good(), "relative_change": torch.tensor([[0.1, float("nan")]] * 3)}, "holds NaN"),
    "too many epochs": (_good(num_epochs=201), "drift.epochs must be a list of 2 to 200"),
    "too many layers": (_good(num_layers=2001), "drift.layers must be a list of 1 to 2000"),
    "epochs not increasing": ({**_good(), "epochs": [0, 2, 1]}, "drift.epochs must increase"),
    "CKA above 1": ({**_good(), "cka_to_final": torch.full((3, 2), 1.5)}, "between 0 and 1"),
    "negative change": ({**_good(), "relative_change": torch.full((3, 2), -0.1)}, "must not be negative"),
    "list, not tensor": ({**_good(), "cka_to_final": [[0.5, 0.5]] * 3}, "must be a floating-point tensor"),
    "repeated layer": ({**_good(), "layers": ["a", "a"]}, "must not repeat"),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_malformed_drift_is_left_out_with_a_warning_and_the_rest_loads(
    tmp_path: Path, test_model: torch.nn.Module, registered_test_architecture: str, case: str
) -> None:
    drift, message = MALFORMED[case]
    subject = load_checkpoint(_saved(tmp_path, _payload(test_model, registered_test_architecture, drift)), device="cpu")
    assert subject.drift is None and subject.model is not None and subject.history
    warnings = "\n".join(subject.metadata["warnings"])
    assert message in warnings and "it was left out" in warnings
