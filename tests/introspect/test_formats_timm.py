"""timm networks by registered name (``--arch timm:NAME``, or a timm folder's config.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

timm = pytest.importorskip("timm")
pytest.importorskip("safetensors")
from safetensors.torch import save_file  # noqa: E402

from introspect.cli import main  # noqa: E402
from introspect.loading import load_checkpoint  # noqa: E402

SMALL = "pretrained_cfg_overlay={'input_size': (3, 32, 32), 'mean': (0.5, 0.4, 0.3), 'std': (0.2, 0.2, 0.2)}"


def exit_code_of(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(args)
    captured = capsys.readouterr()
    return caught.value.code, captured.out, captured.err


def saved(model: torch.nn.Module, path: Path) -> Path:
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("resnet18", pretrained=False, num_classes=4).eval()


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_arch_timm_name_rebuilds_resnet18_with_its_pretrained_cfg(
    resnet: torch.nn.Module, tmp_path: Path, suffix: str
) -> None:
    path = saved(resnet, tmp_path / f"resnet18{suffix}")
    subject = load_checkpoint(path, device="cpu", arch="timm:resnet18", arch_kwargs=_kwargs("num_classes=4", SMALL))
    inputs = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(subject.model(inputs), resnet(inputs))
    assert subject.task.input_shape == (3, 32, 32) and subject.probe_inputs.shape == (16, 3, 32, 32)
    assert subject.task.normalization == {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2]}
    assert subject.task.kind == "classification" and len(subject.task.class_names) == 4


def _kwargs(*pairs: str) -> dict:
    from introspect.architectures import parse_factory_kwargs

    return parse_factory_kwargs(list(pairs))


@pytest.mark.slow
def test_resnet18_safetensors_runs_the_convolution_and_gradient_analyzers(resnet, tmp_path: Path, capsys) -> None:
    path = saved(resnet, tmp_path / "resnet18.safetensors")
    out_dir = tmp_path / "gallery"
    args = ["analyze", str(path), "-o", str(out_dir), "--device", "cpu", "--arch", "timm:resnet18"]
    args += ["--arch-kwarg", "num_classes=4", "--arch-kwarg", SMALL]
    for analyzer in ("kernel_grids", "feature_maps", "input_saliency", "grad_cam"):
        args += ["-a", analyzer]
    code, _, err = exit_code_of(args, capsys)
    assert code == 0, err
    statuses = {r["name"]: r["status"] for r in json.loads((out_dir / "manifest.json").read_text())["analyzers"]}
    assert set(statuses.values()) == {"ok"}, statuses


@pytest.mark.parametrize(
    ("name", "kwargs", "suffix"),
    [
        ("vit_tiny_patch16_224", ("img_size=32", "num_classes=3"), ".safetensors"),
        ("convnext_atto", ("num_classes=3",), ".pt"),
    ],
)
def test_vit_tiny_and_convnext_atto_rebuild_to_the_same_outputs(
    tmp_path: Path, name: str, kwargs: tuple[str, ...], suffix: str
) -> None:
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, **_kwargs(*kwargs)).eval()
    path = saved(model, tmp_path / f"{name}{suffix}")
    subject = load_checkpoint(
        path, device="cpu", arch=f"timm:{name}", arch_kwargs=_kwargs(*kwargs), input_shape=(3, 32, 32)
    )
    assert subject.task.image_shape == (3, 32, 32) and subject.probe_inputs.shape == (16, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(subject.model(subject.probe_inputs), model(subject.probe_inputs))


@pytest.mark.slow
def test_vit_tiny_runs_the_activation_and_gradient_analyzers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, num_classes=3)
    path = saved(model, tmp_path / "vit.safetensors")
    out_dir = tmp_path / "gallery"
    args = ["analyze", str(path), "-o", str(out_dir), "--device", "cpu", "--arch", "timm:vit_tiny_patch16_224"]
    args += [
        "--arch-kwarg",
        "img_size=32",
        "--arch-kwarg",
        "num_classes=3",
        "-a",
        "activations",
        "-a",
        "input_saliency",
    ]
    for analyzer in ("attention_maps", "attention_rollout", "grad_cam", "kernel_grids"):
        args += ["-a", analyzer]
    code, _, err = exit_code_of(args, capsys)
    assert code == 0, err
    results = {r["name"]: r for r in json.loads((out_dir / "manifest.json").read_text())["analyzers"]}
    assert {name: result["status"] for name, result in results.items()} == dict.fromkeys(
        ("activations", "input_saliency", "attention_maps", "attention_rollout", "grad_cam", "kernel_grids"), "ok"
    )
    # The patch embedding's 192 kernels of 3x16x16, said to be one: the only conv layer of a ViT.
    (patches,) = results["kernel_grids"]["figures"]
    assert patches["layer"] == "patch_embed.proj" and patches["summary"]["shape"] == [192, 3, 16, 16]
    assert patches["summary"]["patch"] is True and "patch embedding" in patches["caption"]
    # Grad-CAM on the tokens the last attention layer reads, laid on the 2x2 patch grid (not the patch-embedding conv).
    assert results["grad_cam"]["figures"][0]["layer"] == "blocks.11.norm1"


def test_timm_hub_folder_names_its_architecture_and_labels(resnet: torch.nn.Module, tmp_path: Path) -> None:
    from timm.models import save_for_hf

    folder = tmp_path / "timm-resnet"
    save_for_hf(resnet, str(folder), model_config={"label_names": ["a", "b", "c", "d"]})
    for arch in (None, "timm"):
        subject = load_checkpoint(folder, device="cpu", arch=arch, input_shape=(3, 32, 32))
        assert subject.metadata["format"] == "timm-folder"
        assert subject.task.class_names == ("a", "b", "c", "d")
        assert subject.task.normalization["mean"] == pytest.approx([0.485, 0.456, 0.406])
        inputs = torch.randn(1, 3, 32, 32)
        with torch.no_grad():
            assert torch.equal(subject.model(inputs), resnet(inputs))


@pytest.mark.parametrize(
    ("arch", "config", "words"),
    [
        ("timm:hf-hub:timm/resnet18", None, "not an architecture timm knows"),
        ("timm:not_a_network", None, "not an architecture timm knows"),
        ("timm", {"architecture": "resnet18", "model_args": {"checkpoint_path": "/etc/passwd"}}, "is not taken"),
        ("timm", {"architecture": "resnet18", "model_args": {"pretrained": True}}, "is not taken"),
    ],
    ids=["hub-prefix", "unknown-name", "checkpoint-path", "pretrained"],
)
def test_timm_names_and_arguments_that_would_fetch_or_read_files_are_refused(
    resnet, tmp_path: Path, arch: str, config: dict | None, words: str, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    saved(resnet, folder / "model.safetensors")
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    out_dir = tmp_path / "gallery"
    code, _, err = exit_code_of(["analyze", str(folder), "--all", "-o", str(out_dir), "--arch", arch], capsys)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not out_dir.exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "kwargs", "suffix"),
    [
        ("resnet18", [], ".pt"),
        ("convnext_atto", [], ".safetensors"),
        ("vit_tiny_patch16_224", ["img_size=32"], ".pt"),
    ],
)
def test_every_analyzer_runs_on_a_timm_network_or_says_why_not(
    name: str, kwargs: list[str], suffix: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    torch.manual_seed(0)
    extra = {key: int(value) for key, value in (item.split("=") for item in kwargs)}
    model = timm.create_model(name, pretrained=False, num_classes=3, **extra)
    path, out_dir = saved(model, tmp_path / f"{name}{suffix}"), tmp_path / "gallery"
    args = [
        "analyze",
        str(path),
        "--all",
        "-o",
        str(out_dir),
        "--arch",
        f"timm:{name}",
        "--arch-kwarg",
        "num_classes=3",
    ]
    for item in kwargs:
        args += ["--arch-kwarg", item]
    args += ["--task", "classification", "--max-probe", "8"] + ([] if kwargs else ["--input-shape", "3,64,64"])
    code, _, err = exit_code_of(args, capsys)
    results = json.loads((out_dir / "manifest.json").read_text())["analyzers"]
    failed = {result["name"]: result["reason"] for result in results if result["status"] == "failed"}
    assert code == (1 if failed else 0), err
    assert not failed, failed
    statuses = {result["name"]: result["status"] for result in results}
    for analyzer in ("kernel_grids", "activations", "input_saliency", "grad_cam", "saliency_sanity"):
        assert statuses[analyzer] == "ok", (analyzer, next(r["reason"] for r in results if r["name"] == analyzer))
