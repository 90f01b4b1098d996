"""--task, and the task read from --probe's labels, for checkpoints that do not say what their network does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from introspect.cli import main


class SmallClassifier(nn.Module):
    """A dense network from 6 inputs to 4 scores."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "weights.pt"
    torch.save(SmallClassifier().state_dict(), path)
    return path


def run(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return int(exit_info.value.code), capsys.readouterr().err


def analyzed(weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture, *extra: str) -> dict:
    out_dir = tmp_path / "gallery"
    args = [
        "analyze",
        str(weights),
        "--arch",
        f"{__name__}:SmallClassifier",
        "-a",
        "confusion_matrix",
        "-o",
        str(out_dir),
    ]
    code, err = run([*args, "--force", *extra], capsys)
    assert code == 0, err
    return json.loads((out_dir / "manifest.json").read_text())


def probe_file(tmp_path: Path, labels: torch.Tensor) -> Path:
    path = tmp_path / "probe.pt"
    torch.save(
        {"inputs": torch.randn(len(labels), 6, generator=torch.Generator().manual_seed(1)), "labels": labels}, path
    )
    return path


def test_integer_probe_labels_make_a_foreign_checkpoint_a_classifier(
    weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    labels = torch.tensor([0, 1, 2, 1, 0, 2, 2, 1])
    manifest = analyzed(weights, tmp_path, capsys, "--probe", str(probe_file(tmp_path, labels)))
    assert manifest["header"]["task"] == "classification"
    assert manifest["header"]["class_names"] == ["0", "1", "2", "3"]  # the model gives 4 scores, labels reach 2
    (confusion,) = manifest["analyzers"]
    assert confusion["status"] == "ok"
    model = SmallClassifier()
    model.load_state_dict(torch.load(weights))
    inputs = torch.load(tmp_path / "probe.pt")["inputs"]
    predicted = model(inputs).argmax(dim=1)
    expected_accuracy = float((predicted == labels).double().mean())
    summary = next(figure for figure in confusion["figures"] if "accuracy" in figure["summary"])["summary"]
    assert summary["accuracy"] == pytest.approx(expected_accuracy)


def test_task_classification_without_labels_takes_its_classes_from_the_output_width(
    weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    manifest = analyzed(weights, tmp_path, capsys, "--input-shape", "6", "--task", "classification")
    assert manifest["header"]["task"] == "classification"
    assert manifest["header"]["class_names"] == ["0", "1", "2", "3"]
    assert manifest["analyzers"][0]["status"] == "skipped"  # a random probe has no labels to compare with


def test_task_regression_overrides_integer_labels(weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    labels = torch.tensor([0, 1, 2, 1])
    manifest = analyzed(weights, tmp_path, capsys, "--probe", str(probe_file(tmp_path, labels)), "--task", "regression")
    assert manifest["header"]["task"] == "regression" and manifest["header"]["class_names"] == []
    assert "not classification" in manifest["analyzers"][0]["reason"]


def test_an_unknown_task_is_one_line_and_exit_2(weights: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = run(["analyze", str(weights), "--task", "segmentation"], capsys)
    assert code == 2 and "segmentation" in err and "Traceback" not in err
