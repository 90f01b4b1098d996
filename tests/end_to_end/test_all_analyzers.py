"""`--all` on real trained checkpoints of the course's networks and on a torchvision ResNet18.

Each checkpoint is trained for one quick epoch on the offline data; every analyzer must either
run or be skipped for a stated reason, and a few numbers are checked against the checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from introspect.api import analyze
from introspect.registry import Registry

pytestmark = pytest.mark.slow
NETWORKS = ("regression-mlp", "mnist-mlp", "lenet5", "neta1-hf")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from trainers.catalog import RunSettings, train

    folder = tmp_path_factory.mktemp("checkpoints")
    settings = RunSettings(quick=True, epochs=1, device="cpu", seed=0)
    return {name: train(name, settings, folder / f"{name}.pt") for name in NETWORKS}


def run_all(path: Path, out_dir: Path, **load_options: object):  # noqa: ANN201
    report = analyze(path, out_dir=out_dir, registry=Registry.default(load_plugins=False), device="cpu", **load_options)
    failed = {r.name: r.reason for r in report.results if r.status == "failed"}
    assert failed == {}
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert [entry["status"] for entry in manifest["analyzers"]] == [r.status for r in report.results]
    return report


def statuses(report) -> dict[str, str]:  # noqa: ANN001
    return {result.name: result.status for result in report.results}


def test_regression_mlp(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    report = run_all(checkpoints["regression-mlp"], tmp_path / "g")
    ran = statuses(report)
    assert ran["regression_fit"] == ran["response_curves"] == ran["activation_gifs"] == "ok"
    assert ran["kernel_grids"] == ran["confusion_matrix"] == "skipped"
    fit = report.result("regression_fit").artifacts[0].summary
    assert fit["final_mse"] == pytest.approx(report.subject.metadata["metrics"]["test_mse"], rel=1e-4)


def test_dense_mnist_net(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    report = run_all(checkpoints["mnist-mlp"], tmp_path / "g")
    ran = statuses(report)
    assert ran["linear_receptive_fields"] == ran["confusion_matrix"] == ran["input_saliency"] == "ok"
    first = report.result("linear_receptive_fields").artifacts[0]
    weight = next(t for name, t in report.subject.weights.items() if t.dim() == 2)
    fields = np.asarray(first.data["fields"]).reshape(len(first.data["units"]), -1)
    np.testing.assert_allclose(fields, weight.double().numpy()[first.data["units"]])


def test_lenet5(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    report = run_all(checkpoints["lenet5"], tmp_path / "g")
    ran = statuses(report)
    for name in (
        "kernel_grids",
        "feature_maps",
        "grad_cam",
        "occlusion",
        "saliency_sanity",
        "confusion_matrix",
        "training_curves",
    ):
        assert ran[name] == "ok", name
    confusion = report.result("confusion_matrix").artifacts[0].summary
    with torch.no_grad():
        predictions = report.subject.model(report.subject.probe_inputs).argmax(1)
    assert confusion["accuracy"] == pytest.approx(float((predictions == report.subject.probe_labels).double().mean()))


def test_hand_initialized_neta1_frozen_kernels_do_not_drift(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    report = run_all(checkpoints["neta1-hf"], tmp_path / "g")
    conv1 = next(a for a in report.result("kernel_grids").artifacts if a.layer == "conv1")
    assert conv1.summary["drift_norm"] == 0.0
    assert report.subject.metadata["config"]["scheme"] == "hf"


def test_torchvision_resnet18_state_dict(tmp_path: Path) -> None:
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), tmp_path / "resnet18.pt")
    report = run_all(
        tmp_path / "resnet18.pt",
        tmp_path / "g",
        arch="torchvision.models:resnet18",
        arch_kwargs={"num_classes": 10},
        input_shape=(3, 32, 32),
    )
    ran = statuses(report)
    assert ran["kernel_grids"] == ran["feature_maps"] == ran["grad_cam"] == "ok"
    assert ran["linear_receptive_fields"] == "skipped"
    assert len(report.result("kernel_grids").artifacts) <= 16
