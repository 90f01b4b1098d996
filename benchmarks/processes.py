"""Rows that time whole ``introspect`` processes: gallery, scale, memory, many tensors and start-up.

Wall time is measured from here around the child; CPU time and peak RSS come from the kernel
(``os.wait4``), so they cover exactly that process.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path
from typing import Any

from benchmarks import fixtures
from benchmarks.fixtures import Sizes
from benchmarks.harness import (
    Timing,
    compare,
    console_script,
    median_wall,
    python_command,
    repeat,
    run_process,
)
from benchmarks.report import Row, ratio_row

GALLERY_LIMIT_S = 10.0
#: `analyze --all` on LeNet-5 over loading it plus one forward and backward (issue 14).
GALLERY_TARGET = 3.0
MEMORY_LIMIT_GB = 2.0
STARTUP_LIMIT_S = 0.5
MANY_TENSORS_LIMIT_S = 10.0
#: Analyzers of the ResNet50 run listed in the memory row's details, the largest peak growth first.
LARGEST_ANALYZERS = 8


def analyze_command(checkpoint: Path, out_dir: Path, sizes: Sizes, device: str, *extra: str) -> list[str]:
    """``introspect analyze`` with ``--all`` (or the quick run's analyzers) into ``out_dir``."""
    selection = ["--all"] if not sizes.analyzers else [part for name in sizes.analyzers for part in ("-a", name)]
    return [
        *console_script("introspect"),
        "analyze",
        str(checkpoint),
        *selection,
        "-o",
        str(out_dir),
        "--force",
        "--no-plugins",
        "--device",
        device,
        *extra,
    ]


def gallery_rows(sizes: Sizes, folder: Path, device: str) -> list[Row]:
    """``gallery`` and ``gallery_wall``: the whole CLI on LeNet-5 against load + forward + backward."""
    checkpoint, made = fixtures.lenet5_checkpoint(folder, trained=sizes.trained_lenet5)
    command = analyze_command(checkpoint, folder / "gallery-lenet5", sizes, device)
    baseline = python_command("-m", "benchmarks.load_forward_backward", str(checkpoint), "--device", device)
    comparison = compare(
        lambda: run_process(command), lambda: run_process(baseline), repeats=sizes.process_repeats, warmup=sizes.warmup
    )
    selection = "--all" if not sizes.analyzers else ", ".join(sizes.analyzers)
    what = (
        f"introspect analyze {selection} on LeNet-5, whole process / a process that loads the checkpoint and "
        "runs one forward and one backward pass over the probe"
    )
    wall = comparison.numerator_wall
    cpu = statistics.median(timing.cpu for timing in comparison.numerator)
    return [
        ratio_row("gallery", what, comparison, GALLERY_TARGET, f"checkpoint: {made}"),
        Row(
            name="gallery_wall",
            what=f"introspect analyze {selection} on LeNet-5: wall seconds of the whole process",
            value=wall,
            unit="s",
            target=GALLERY_LIMIT_S,
            strict=True,
            numerator_s=wall,
            repeats=len(comparison.numerator),
            note=f"median CPU time {cpu:.2f} s (user + system)",
            details={"cpu_s": cpu},
        ),
    ]


def scale_rows(sizes: Sizes, folder: Path, device: str) -> list[Row]:
    """``scale`` and ``memory``: ``--all`` on the big model against the small one; the big one's peak RSS."""
    (big, big_shape), (small, small_shape) = sizes.big_model, sizes.small_model

    def command(name: str, shape: tuple[int, int, int]) -> list[str]:
        checkpoint = fixtures.resnet_state_dict(folder, name)
        size = ",".join(map(str, shape))
        return analyze_command(
            checkpoint,
            folder / f"gallery-{name}-{shape[1]}",
            sizes,
            device,
            "--arch",
            f"torchvision.models:{name}",
            "--input-shape",
            size,
        )

    big_command, small_command = command(big, big_shape), command(small, small_shape)
    big_manifest = folder / f"gallery-{big}-{big_shape[1]}" / "manifest.json"
    comparison = compare(
        lambda: run_process(big_command, own_peak=True),
        lambda: run_process(small_command, own_peak=True),
        repeats=sizes.scale_repeats,
        warmup=0,
    )
    peak = max(timing.peak_rss or 0 for timing in comparison.numerator)
    big_text, small_text = f"{big} {'x'.join(map(str, big_shape))}", f"{small} {'x'.join(map(str, small_shape))}"
    selection = "--all" if not sizes.analyzers else ", ".join(sizes.analyzers)
    cpu_note = (
        f"CPU seconds {statistics.median(t.cpu for t in comparison.numerator):.1f} / "
        f"{statistics.median(t.cpu for t in comparison.denominator):.1f}"
    )
    return [
        ratio_row(
            "scale",
            f"introspect analyze {selection} on {big_text} / on {small_text} (state_dict + --arch, random probe of 16)",
            comparison,
            4.0,
            cpu_note,
        ),
        Row(
            name="memory",
            what=f"peak RSS of introspect analyze {selection} on {big_text} (probe of 16)",
            value=peak / 1e9,
            unit="GB",
            target=MEMORY_LIMIT_GB,
            repeats=len(comparison.numerator),
            note=f"{peak / 2**30:.2f} GiB; the largest of the runs",
            details={
                "peak_rss_bytes": peak,
                "per_run_bytes": [timing.peak_rss for timing in comparison.numerator],
                "largest_analyzers": largest_analyzers(big_manifest),
            },
        ),
    ]


def largest_analyzers(manifest: Path, count: int = LARGEST_ANALYZERS) -> list[dict[str, Any]]:
    """The analyzers of a gallery's manifest (the last run's) with the largest peak RSS growth, and their memory."""
    entries = json.loads(manifest.read_text(encoding="utf-8"))["analyzers"]
    measured = [entry for entry in entries if entry.get("memory")]
    measured.sort(key=lambda entry: entry["memory"]["peak_growth_mb"], reverse=True)
    return [{"name": entry["name"], "seconds": entry["seconds"], **entry["memory"]} for entry in measured[:count]]


def many_tensors_rows(sizes: Sizes, folder: Path, device: str) -> list[Row]:
    """``many_tensors``: ``introspect analyze --all`` on a state_dict of very many small tensors, whole process."""
    checkpoint = fixtures.many_tensors_state_dict(folder, sizes.many_tensors)
    command = analyze_command(
        checkpoint, folder / "gallery-many-tensors", dataclasses.replace(sizes, analyzers=()), device
    )
    timings = repeat(lambda: run_process(command, own_peak=True), repeats=sizes.process_repeats, warmup=0)
    wall = median_wall(timings)
    return [
        Row(
            name="many_tensors",
            what=f"introspect analyze --all on a state_dict of {sizes.many_tensors:,} small tensors, whole process",
            value=wall,
            unit="s",
            target=MANY_TENSORS_LIMIT_S,
            strict=True,
            numerator_s=wall,
            repeats=len(timings),
            note=f"median CPU time {statistics.median(t.cpu for t in timings):.2f} s; peak RSS "
            f"{max(t.peak_rss or 0 for t in timings) / 1e6:.0f} MB",
            details={"cpu_s": [t.cpu for t in timings], "wall_s": [t.wall for t in timings]},
        )
    ]


def startup_rows(sizes: Sizes) -> list[Row]:
    """``startup``: wall time of ``introspect --help``."""
    command = [*console_script("introspect"), "--help"]
    timings: tuple[Timing, ...] = repeat(lambda: run_process(command), repeats=sizes.process_repeats + 2, warmup=1)
    wall = median_wall(timings)
    return [
        Row(
            name="startup",
            what="introspect --help, whole process (wall)",
            value=wall,
            unit="s",
            target=STARTUP_LIMIT_S,
            numerator_s=wall,
            repeats=len(timings),
            note=f"median CPU time {statistics.median(t.cpu for t in timings):.2f} s",
        )
    ]
