"""torch.export programs exported at one batch size, analyzed at any: chunks of the exported size, padding dropped."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from introspect.cli import main
from introspect.loading import load_checkpoint
from introspect.readers.exported import exported_batch_size


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 4)
    ).eval()  # fmt: skip


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Path, nn.Module]:
    model = small_cnn()
    path = tmp_path / "cnn.pt2"
    torch.export.save(torch.export.export(model, (torch.rand(4, 1, 6, 6),)), str(path))
    return path, model


def test_an_exported_program_takes_batches_of_any_size(exported: tuple[Path, nn.Module]) -> None:
    path, model = exported
    subject = load_checkpoint(path, device="cpu")
    assert exported_batch_size(subject.model) == 4
    inputs = torch.rand(11, 1, 6, 6, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = model(inputs)
        for size in (1, 3, 4, 5, 11):  # shorter, equal, longer and several chunks with a padded last one
            torch.testing.assert_close(subject.model(inputs[:size]), expected[:size], rtol=1e-5, atol=1e-6)


def test_gradients_flow_through_the_chunks_and_a_deep_copy_keeps_the_batching(exported: tuple[Path, nn.Module]) -> None:
    path, model = exported
    subject = load_checkpoint(path, device="cpu")
    inputs = torch.rand(6, 1, 6, 6, generator=torch.Generator().manual_seed(4), requires_grad=True)
    subject.model(inputs)[:, 2].sum().backward()
    reference = inputs.detach().clone().requires_grad_(True)
    model(reference)[:, 2].sum().backward()
    torch.testing.assert_close(inputs.grad, reference.grad, rtol=1e-5, atol=1e-6)
    copied = copy.deepcopy(subject.model)  # what the weight-randomizing analyzers take
    with torch.no_grad():
        torch.testing.assert_close(copied(inputs[:5]), model(inputs[:5]), rtol=1e-5, atol=1e-6)


def test_analyze_runs_the_probe_based_analyzers_on_a_program_exported_at_batch_4(
    exported: tuple[Path, nn.Module], tmp_path: Path
) -> None:
    path, model = exported
    out_dir = tmp_path / "gallery"
    args = ["analyze", str(path), "-o", str(out_dir), "--input-shape", "1,6,6", "--max-probe", "6"]
    for name in ("activations", "input_saliency", "occlusion"):
        args += ["-a", name]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0
    results = {result["name"]: result for result in json.loads((out_dir / "manifest.json").read_text())["analyzers"]}
    assert results["input_saliency"]["status"] == results["occlusion"]["status"] == "ok"
    # An exported graph has no layer modules to hook: said plainly, not a shape error.
    assert results["activations"]["status"] == "skipped"
    assert "cannot be hooked" in results["activations"]["reason"]


def test_kernel_grids_read_the_conv_weights_of_exported_and_torchscript_models(
    exported: tuple[Path, nn.Module], tmp_path: Path
) -> None:
    import introspect

    path, model = exported
    scripted = tmp_path / "cnn-scripted.pt"
    torch.jit.save(torch.jit.script(model), str(scripted))
    kernels = model[0].weight.detach().double().numpy()[:, 0]  # one input channel: (out, 3, 3)
    norms = np.sqrt((kernels**2).reshape(len(kernels), -1).sum(axis=1))
    for source, trust in ((path, False), (scripted, True)):
        report = introspect.analyze(str(source), analyzers=["kernel_grids"], trust_code=trust, load_plugins=False)
        result = report.result("kernel_grids")
        assert result.status == "ok", (source.name, result.reason)
        artifact = result.artifacts[0]
        assert artifact.summary["shape"] == [3, 1, 3, 3]
        np.testing.assert_allclose(artifact.data["kernel_norms"], norms, rtol=1e-6)
