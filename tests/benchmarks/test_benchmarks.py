"""The benchmark command still runs end to end (tiny sizes); timings are not asserted."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPECTED_ROWS = {
    "capture",
    "capture_vs_torchlens",
    "saliency",
    "scorecard",
    "kernel_grid",
    "gif",
    "training",
    "startup",
    "gallery",
    "gallery_wall",
    "scale",
    "memory",
    "many_tensors",
    "dataset_pass",
    "dataset_saliency",
    "dataset_memory",
    "ray_vs_local",
}
# Measured only where the 'bench' extra (torchlens) is installed and works on this torch; ray_vs_local
# never in --quick (each Ray pass starts a cluster, about 25 s), test_ray_row_measures_both_executors runs it.
OPTIONAL_ROWS = {"capture_vs_torchlens", "ray_vs_local"}
# Rows without a target: their value is only reported.
REPORTED_ROWS = {"dataset_saliency", "ray_vs_local"}
# A difference of two peaks, which can be zero (or below) at the quick run's tiny sizes.
DIFFERENCE_ROWS = {"dataset_memory"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``python -m benchmarks --quick`` once for the module: its output and its JSON."""
    json_path = tmp_path_factory.mktemp("bench") / "bench.json"
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    finished = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(json_path)],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-3000:]
    return finished, json.loads(json_path.read_text(encoding="utf-8"))


def test_quick_benchmark_writes_every_row(quick_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    _, payload = quick_run
    assert {row["name"] for row in payload["rows"]} == EXPECTED_ROWS
    assert payload["mode"] == "quick"
    assert payload["machine"]["nproc"] >= 1 and payload["machine"]["torch"]


@pytest.mark.parametrize("name", sorted(EXPECTED_ROWS))
def test_quick_benchmark_row_has_a_value_and_a_target(
    quick_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]], name: str
) -> None:
    row = {row["name"]: row for row in quick_run[1]["rows"]}[name]
    if name in REPORTED_ROWS:
        assert row["target"] is None and row["target_text"] == "report"
    else:
        assert isinstance(row["target"], float) and row["target"] > 0
    if name in OPTIONAL_ROWS and not row["measured"]:
        assert row["value"] is None and row["note"].startswith("not measured")
        return
    assert row["measured"], row["note"]
    assert isinstance(row["value"], float) and (name in DIFFERENCE_ROWS or row["value"] > 0)
    assert row["met"] is None if row["target"] is None else isinstance(row["met"], bool)


def test_quick_benchmark_prints_the_table(quick_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    lines = quick_run[0].stdout.splitlines()
    assert lines[1].split()[:4] == ["row", "value", "target", "met"]
    for name in EXPECTED_ROWS:
        assert any(line.startswith(name + " ") for line in lines), name


@pytest.mark.slow
def test_ray_row_measures_both_executors(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Ray row, left out of --quick, at the quick sizes with one pair (about 30 s: a cluster start)."""
    pytest.importorskip("ray")
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    from benchmarks.fixtures import quick_sizes
    from benchmarks.passes import ray_rows

    (row,) = ray_rows(dataclasses.replace(quick_sizes(), ray_repeats=1))
    assert row.name == "ray_vs_local" and row.measured and row.target is None, row.note
    assert row.value > 0 and row.numerator_s > 0 and row.denominator_s > 0 and row.cpu_ratio is None
    assert 0 < row.details["startup_s"][0] < row.numerator_s
    assert row.details["transfer_bytes"]["states_per_batch"] > 0
    assert "to start the executor" in row.note
