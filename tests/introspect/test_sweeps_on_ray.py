"""Several checkpoints analyzed on a local Ray cluster: the collection a local run writes."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from introspect.checkpoint import make_checkpoint, save_checkpoint
from introspect.subject import Task
from trainers.networks.lenet5 import NETWORK

ANALYZERS = ["weight_histograms", "activations", "dataset_confusion"]


def lenet5_checkpoint(path: Path, seed: int) -> Path:
    config = dataclasses.replace(NETWORK.config_class(), seed=seed)
    model = NETWORK.model(config)
    task = Task(kind="classification", input_shape=(1, 28, 28), image_shape=(1, 28, 28),
                class_names=tuple(str(digit) for digit in range(10)), dataset="mnist",
                normalization={"mean": [0.1307], "std": [0.3081]})  # fmt: skip
    probe = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    checkpoint = make_checkpoint(model, architecture="lenet5", config=dataclasses.asdict(config),
                                 task=task.to_dict(), probe_inputs=probe, probe_labels=torch.arange(8))  # fmt: skip
    save_checkpoint(path, checkpoint)
    return path


def introspect(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "from introspect.cli import main; main()", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def page_facts(folder: Path) -> dict:
    """Per page: its folder, each analyzer's status and summary, and the files its figures name."""
    index = json.loads((folder / "manifest.json").read_text())
    facts = {}
    for page in index["pages"]:
        manifest = json.loads((folder / page["slug"] / "manifest.json").read_text())
        facts[page["slug"]] = [
            (entry["name"], entry["status"], entry["summary"], [figure["file"] for figure in entry["figures"]])
            for entry in manifest["analyzers"]
        ]
        for figures in facts[page["slug"]]:
            assert all((folder / page["slug"] / file).is_file() for file in figures[3] if file)
    return facts


@pytest.mark.slow
def test_a_sweep_on_ray_writes_the_collection_a_local_run_writes(tmp_path: Path) -> None:
    checkpoints = [str(lenet5_checkpoint(tmp_path / f"seed{seed}.pt", seed)) for seed in (0, 1)]
    names = [item for name in ANALYZERS for item in ("-a", name)]
    data = ["--data", "mnist", "--limit", "200"]
    local = introspect("analyze", *checkpoints, *names, *data, "-o", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    on_ray = introspect("analyze", *checkpoints, *names, *data, "--executor", "ray", "-o", str(tmp_path / "ray"))
    assert on_ray.returncode == 0, on_ray.stderr
    assert "[2/2]" in on_ray.stderr and "analyzed on Ray" in on_ray.stderr
    local_facts, ray_facts = page_facts(tmp_path / "local"), page_facts(tmp_path / "ray")
    assert list(ray_facts) == ["seed0", "seed1"] and ray_facts == local_facts
    assert (tmp_path / "ray" / "seed1" / "index.html").read_text().count('href="../index.html"') == 1
