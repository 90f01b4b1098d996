"""Memory per analyzer: the RSS before and after, the peak growth, recorded in the result and the manifest."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from introspect import Artifact, Needs, analyzer
from introspect.memory import SAMPLE_SECONDS, TRACEMALLOC_VARIABLE, measured_memory
from introspect.report import write_gallery
from introspect.runner import run_analyzers
from introspect.spec import spec_of
from introspect.testing import weights_only_subject

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="memory is read from /proc/self/status")

HELD_BYTES = 120_000_000
TRANSIENT_BYTES = 200_000_000
MB = 1e6


def touched(size: int) -> np.ndarray:
    """``size`` bytes that are resident: every page written, not merely reserved."""
    array = np.empty(size, dtype=np.uint8)
    array.fill(1)
    return array


@analyzer(needs=Needs.WEIGHTS)
def holding(subject, /):
    """Keeps HELD_BYTES in its artifact's data."""
    return [Artifact(name="held", caption="held", table=[{"a": 1}], data={"array": touched(HELD_BYTES)})]


@analyzer(needs=Needs.WEIGHTS)
def transient(subject, /):
    """Touches TRANSIENT_BYTES and lets go of them before returning."""
    array = touched(TRANSIENT_BYTES)
    total = int(array[:: 1 << 20].sum())  # one byte per MiB, so the array is used
    del array
    return [Artifact(name="sum", caption="sum", table=[{"total": total}])]


def test_memory_is_recorded_per_analyzer_from_what_it_allocates() -> None:
    held, passing = run_analyzers(weights_only_subject(), [spec_of(holding), spec_of(transient)])
    assert held.ok and passing.ok
    held_growth = held.memory["rss_after_mb"] - held.memory["rss_before_mb"]
    # Pages an earlier test freed may still be resident and be reused, so the RSS can grow by less than
    # was allocated; never by more.
    assert held_growth <= HELD_BYTES / MB * 1.2, held.memory
    assert held.memory["peak_growth_mb"] >= HELD_BYTES / MB * 0.9
    # What the transient analyzer freed is handed back (malloc_trim, or numpy's large blocks unmapped).
    assert passing.memory["peak_growth_mb"] >= TRANSIENT_BYTES / MB * 0.9, passing.memory
    assert passing.memory["rss_after_mb"] - passing.memory["rss_before_mb"] < 0.2 * TRANSIENT_BYTES / MB
    assert passing.memory["rss_before_mb"] >= held.memory["rss_after_mb"] - 10  # the held array is still there
    assert {held.memory["peak_method"], passing.memory["peak_method"]} <= {"VmHWM", "sampled"}
    assert "python_peak_mb" not in held.memory  # tracemalloc only when asked for


def test_skipped_for_missing_needs_records_no_memory() -> None:
    @analyzer(needs=Needs.FORWARD)
    def forward_only(subject, /):
        """Needs a forward pass."""
        return []

    (result,) = run_analyzers(weights_only_subject(), [spec_of(forward_only)])
    assert result.status == "skipped" and result.memory == {}


def test_tracemalloc_peak_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TRACEMALLOC_VARIABLE, "1")
    (result,) = run_analyzers(weights_only_subject(), [spec_of(transient)])
    assert TRANSIENT_BYTES / MB <= result.memory["python_peak_mb"] <= TRANSIENT_BYTES / MB * 1.1, result.memory


def test_a_peak_below_the_process_mark_is_sampled() -> None:
    first = touched(TRANSIENT_BYTES)  # raises the process's high-water mark
    del first
    with measured_memory() as memory:
        second = touched(TRANSIENT_BYTES // 2)
        time.sleep(20 * SAMPLE_SECONDS)  # held for longer than the sampling interval, as a sampled peak must be
        del second
    assert memory["peak_method"] == "sampled"
    assert memory["peak_growth_mb"] >= TRANSIENT_BYTES / 2 / MB * 0.9, memory


def test_manifest_has_the_memory_beside_the_seconds(tmp_path: Path) -> None:
    subject = weights_only_subject()
    specs = [spec_of(holding)]
    results = run_analyzers(subject, specs)
    write_gallery(subject, specs, results, tmp_path / "gallery")
    (entry,) = json.loads((tmp_path / "gallery" / "manifest.json").read_text())["analyzers"]
    assert entry["memory"] == dict(results[0].memory)
    assert set(entry["memory"]) == {"rss_before_mb", "rss_after_mb", "peak_growth_mb", "peak_method"}
