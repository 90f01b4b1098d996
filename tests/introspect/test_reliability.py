"""Reliability: interrupted runs, repeatability, NaN weights, and a fuzzed loader."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from introspect.api import analyze
from introspect.errors import CheckpointError
from introspect.loading import load_checkpoint
from introspect.registry import Registry
from introspect.report import write_gallery
from introspect.testing import dense_image_subject

INTERRUPTED_RUN = textwrap.dedent(
    """
    import signal, sys, time
    from pathlib import Path
    import introspect.report.files as files

    # A process started in the background inherits an ignored SIGINT; a user's terminal does not.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    marker = Path(sys.argv[2])
    original = files.write_artifact_file

    def slow_write(*args, **kwargs):
        name = original(*args, **kwargs)
        marker.touch()
        time.sleep(60)
        return name

    files.write_artifact_file = slow_write
    from introspect.cli import main
    main(["analyze", sys.argv[1], "-a", "weight_histograms", "-o", sys.argv[3], "--force", "--device", "cpu"])
    """
)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGKILL])
def test_a_run_killed_while_writing_leaves_the_previous_gallery(
    introspect_checkpoint: Path, tmp_path: Path, stop_signal: int
) -> None:
    target = tmp_path / "gallery"
    write_gallery(dense_image_subject(), [], [], target)  # --force replaces only an earlier gallery
    (target / "index.html").write_text("previous gallery")
    marker = tmp_path / "writing"
    env = {**os.environ, "INTROSPECT_DISABLE_PLUGIN_AUTOLOAD": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_RUN, str(introspect_checkpoint), str(marker), str(target)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), process.stderr.read() if process.poll() is not None else "the run never started writing"
    process.send_signal(stop_signal)
    process.wait(timeout=60)
    assert (target / "index.html").read_text() == "previous gallery"
    assert sorted(p.name for p in target.iterdir()) == ["index.html", "manifest.json"]
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".gallery")]
    if stop_signal == signal.SIGINT:
        assert process.returncode == 130 and leftovers == []
        assert "interrupted" in process.stderr.read()


def comparable(manifest: dict) -> dict:
    """The manifest without what may differ between identical runs: times and the date."""
    manifest = json.loads(json.dumps(manifest))
    manifest.pop("created")
    for entry in manifest["analyzers"]:
        entry.pop("seconds")
        entry.pop("memory")  # RSS readings differ from run to run, as timings do
    return manifest


def test_running_twice_gives_the_same_manifest_apart_from_timings(introspect_checkpoint: Path, tmp_path: Path) -> None:
    registry = Registry.default(load_plugins=False)
    manifests = []
    for run in range(2):
        analyze(introspect_checkpoint, out_dir=tmp_path / f"run{run}", registry=registry, device="cpu")
        manifests.append(comparable(json.loads((tmp_path / f"run{run}" / "manifest.json").read_text())))
    assert manifests[0] == manifests[1]
    statuses = {entry["name"]: entry["status"] for entry in manifests[0]["analyzers"]}
    assert "failed" not in statuses.values(), statuses


def test_nan_and_inf_weights_still_analyzed_and_said(tmp_path: Path, test_model: torch.nn.Module) -> None:
    state = test_model.state_dict()
    state["0.weight"][0, 0] = float("nan")
    state["2.weight"][1, 1] = float("inf")
    torch.save(state, tmp_path / "nan.pt")
    report = analyze(
        tmp_path / "nan.pt",
        analyzers=["weight_histograms"],
        registry=Registry.default(load_plugins=False),
        device="cpu",
    )
    result = report.result("weight_histograms")
    assert result.status == "ok"
    caption = " ".join(artifact.caption for artifact in result.artifacts)
    assert "0.weight: 1 NaN/Inf values left out" in caption and "2.weight: 1 NaN/Inf values left out" in caption


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_files_load_or_fail_with_a_checkpoint_error(
    introspect_checkpoint: Path, tmp_path: Path, data: st.DataObject
) -> None:
    """Random bytes, and valid checkpoints with bytes flipped, cut or inserted: never a crash."""
    original = introspect_checkpoint.read_bytes()
    mode = data.draw(st.sampled_from(["random", "flip", "cut", "insert"]))
    if mode == "random":
        content = data.draw(st.binary(max_size=2048))
    else:
        position = data.draw(st.integers(0, len(original) - 1))
        if mode == "flip":
            content = (
                original[:position]
                + bytes([original[position] ^ data.draw(st.integers(1, 255))])
                + original[position + 1 :]
            )
        elif mode == "cut":
            content = original[:position]
        else:
            content = original[:position] + data.draw(st.binary(min_size=1, max_size=64)) + original[position:]
    path = tmp_path / "fuzzed.pt"
    path.write_bytes(content)
    try:
        load_checkpoint(path, device="cpu")
    except CheckpointError as error:
        assert "\n" not in str(error)
