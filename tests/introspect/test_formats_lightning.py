"""Lightning checkpoints as Lightning writes them, without the lightning package."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from introspect.cli import main
from introspect.loading import load_checkpoint


def exit_code_of(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(args)
    captured = capsys.readouterr()
    return caught.value.code, captured.out, captured.err


ARCH_CONFIG = {"sizes": [4, 8, 3], "activation": "relu"}


def trained_network() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    from introspect.testing import build_test_network

    torch.manual_seed(0)
    network = build_test_network(ARCH_CONFIG)
    optimizer = torch.optim.Adam(network.parameters())
    network(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    return network, optimizer


def lightning_checkpoint(path: Path, hyper_parameters: object) -> tuple[Path, torch.nn.Module]:
    """The dict ``Trainer.save_checkpoint`` writes for a LightningModule holding ``self.model``."""
    network, optimizer = trained_network()
    checkpoint = {
        "epoch": 3,
        "global_step": 120,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": {f"model.{name}": tensor for name, tensor in network.state_dict().items()},
        "hyper_parameters": hyper_parameters,
        "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [],
        "callbacks": {"ModelCheckpoint{}": {"best_model_score": torch.tensor(0.25)}},
        "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 3}}}},
    }
    torch.save(checkpoint, path)
    return path, network


def test_header_facts_and_prefixed_weights_load_with_arch(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path, network = lightning_checkpoint(tmp_path / "run.ckpt", {"lr": 0.001, "hidden": 8})
    weights_only = load_checkpoint(path, device="cpu")
    assert weights_only.metadata["format"] == "lightning" and weights_only.model is None
    assert set(weights_only.weights) == {"model.0.weight", "model.0.bias", "model.2.weight", "model.2.bias"}
    code, out, _ = exit_code_of(["info", str(path), "--json"], capsys)
    details = json.loads(out)["details"]
    assert code == 0 and details == {
        "epoch": 3,
        "global_step": 120,
        "lightning": "2.4.0",
        "hyper_parameters": {"lr": 0.001, "hidden": 8},
    }
    rebuilt = load_checkpoint(
        path, device="cpu", arch="introspect.testing:build_test_network", arch_kwargs={"config": ARCH_CONFIG}
    )
    inputs = torch.randn(5, 4)
    assert torch.equal(rebuilt.model(inputs), network(inputs))  # the "model." prefix was stripped to fit


def test_object_in_hyper_parameters_is_named_with_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path, _ = lightning_checkpoint(tmp_path / "run.ckpt", argparse.Namespace(lr=0.1))
    out_dir = tmp_path / "gallery"
    code, _, err = exit_code_of(["analyze", str(path), "--all", "-o", str(out_dir)], capsys)
    assert code == 2 and "argparse.Namespace" in err and "--trust-code" in err
    assert len(err.strip().splitlines()) == 1 and not out_dir.exists()
    trusted = load_checkpoint(path, device="cpu", trust_code=True)
    assert trusted.metadata["format"] == "lightning" and trusted.metadata["details"]["global_step"] == 120
