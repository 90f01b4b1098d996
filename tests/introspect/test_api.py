"""The Python API: a bare module and a tensor are enough."""

from __future__ import annotations

import subprocess
import sys

import torch

import introspect


def test_import_introspect_does_not_import_torch() -> None:
    code = "import sys, introspect; introspect.Needs; introspect.analyzer; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


def test_public_names_resolve() -> None:
    for name in introspect.__all__:
        assert getattr(introspect, name) is not None


def test_analyze_a_plain_module_and_tensor_without_checkpoint() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 2))
    inputs = torch.randn(9, 5)
    report = introspect.analyze(model, inputs, analyzers=["weight_histograms", "activations"], load_plugins=False)
    assert report.exit_code == 0 and report.index_path is None
    relu = next(a for a in report.result("activations").artifacts if a.layer == "1")
    expected = torch.relu(model[0](inputs)).detach().numpy()
    assert (relu.data["output"] == expected).all()


def test_list_analyzers_returns_specs_with_summaries() -> None:
    specs = introspect.list_analyzers(load_plugins=False)
    assert all(spec.summary for spec in specs)
    assert [spec.name for spec in specs][:2] == ["weight_histograms", "activations"]
