"""Rows that time the dataset pass (``--data``): against a bare loop, against captum, its memory and Ray.

The pass is timed as the runner calls it, :func:`introspect.dataset.run.run_pass`, without the
analyzers that draw from its reducers afterwards. The memory row runs whole child processes
(:mod:`benchmarks.pass_side`), which report their own peak RSS; the Ray row runs in a child
too, because a Ray cluster starts processes and threads that would stay behind in this one.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import statistics
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import fixtures
from benchmarks.fixtures import Sizes
from benchmarks.harness import Comparison, Timing, child_environment, compare, python_command, run_process, timed
from benchmarks.report import Row, ratio_row, unmeasured

if TYPE_CHECKING:
    import torch

    from introspect.dataset.run import PassOutcome
    from introspect.dataset.sources import DataSource
    from introspect.spec import AnalyzerSpec
    from introspect.subject import Subject

#: The dataset analyzers whose reducers only read the forward pass (class_saliency runs a backward of its own).
PASS_ANALYZERS = ("dataset_confusion", "dataset_health", "top_activations", "embedding_projection", "linear_probes")
ALL_DATASET_ANALYZERS = (*PASS_ANALYZERS, "class_saliency")
#: The issue asks for a throughput of at least 0.7x the bare loop's, which is a time ratio of at most 1 / 0.7.
PASS_TARGET = 1 / 0.7
MEMORY_GROWTH_LIMIT_MB = 100.0
#: Ray is told not to try to send usage statistics (the benchmark machine may have no network).
RAY_ENVIRONMENT = {"RAY_USAGE_STATS_ENABLED": "0"}
#: Seconds allowed per pass of the Ray child (Ray or local) before it is stopped.
RAY_PASS_LIMIT_S = 120

PASS_WHAT = (
    "run_pass feeding the reducers of {analyzers} on LeNet-5 over {data}, batch {batch} / a bare no-grad loop of "
    "model(x) over the same DataLoader with the same normalization"
)
SALIENCY_WHAT = (
    "run_pass feeding class_saliency's reducer on LeNet-5 over {data}, batch {batch} / captum Saliency.attribute "
    "(abs) over the same DataLoader with the same normalization, maps summed per class"
)
MEMORY_WHAT = (
    "peak RSS of a process running the pass of all six dataset analyzers on LeNet-5 over {large} inputs, less that "
    "over {small} inputs (generated MNIST-shaped uint8 .npy, memory-mapped), in MB"
)
RAY_WHAT = (
    "run_pass of {analyzers} with executor ray (a local cluster started for each pass) / the same pass with "
    "executor local, on LeNet-5 over {data}, batch {batch}"
)


def dataset_specs(names: Sequence[str]) -> list[AnalyzerSpec]:
    """The built-in analyzers called ``names``, from the registry the CLI uses (without plugins)."""
    from introspect.registry import Registry

    return Registry.default(load_plugins=False).select(names)


def checked_pass(subject: Subject, specs: Sequence[AnalyzerSpec]) -> PassOutcome:
    """:func:`~introspect.dataset.run.run_pass` as the runner calls it; a reducer that was skipped or
    failed raises, because a pass with fewer reducers would be timed as if it had them all."""
    from introspect.dataset.run import run_pass

    outcome = run_pass(subject, specs, {})
    if outcome.problems:
        name, problem = next(iter(outcome.problems.items()))
        raise RuntimeError(f"the dataset pass left out {name}: {type(problem).__name__}: {problem}")
    return outcome


def bare_loader(source: DataSource, limit: int | None, batch_size: int) -> torch.utils.data.DataLoader:
    """The DataLoader the local executor reads with: the first ``limit`` inputs in order, no workers."""
    import torch

    count = len(source) if limit is None else min(limit, len(source))
    return torch.utils.data.DataLoader(
        torch.utils.data.Subset(source.dataset, range(count)), batch_size=batch_size, shuffle=False
    )


def normalizer() -> Callable[[torch.Tensor], torch.Tensor]:
    """Pixels in [0, 1] to LeNet-5's inputs: (N, 1, 28, 28), MNIST's mean and std, as the checkpoint states them."""
    from trainers.data import MNIST_NORMALIZATION

    mean, std = MNIST_NORMALIZATION["mean"][0], MNIST_NORMALIZATION["std"][0]

    def normalized(pixels: torch.Tensor) -> torch.Tensor:
        # generated arrays come as (N, 28, 28); torchvision's MNIST as (N, 1, 28, 28)
        return (pixels.reshape(len(pixels), *fixtures.MNIST_SHAPE) - mean) / std

    return normalized


def pass_rows(sizes: Sizes) -> list[Row]:
    """``dataset_pass``: the shared pass of the five forward-only dataset analyzers against a bare forward loop."""
    import torch

    source, made = fixtures.mnist_source()
    subject = fixtures.lenet5_on_data(source, limit=sizes.dataset_limit, batch_size=sizes.dataset_batch)
    specs = dataset_specs(PASS_ANALYZERS)
    model, normalized = subject.model, normalizer()

    def bare() -> None:
        with torch.no_grad():
            for pixels, _ in bare_loader(source, sizes.dataset_limit, sizes.dataset_batch):
                model(normalized(pixels))

    comparison = compare(
        timed(lambda: checked_pass(subject, specs)), timed(bare), repeats=sizes.cheap_repeats, warmup=sizes.warmup + 1
    )
    what = PASS_WHAT.format(analyzers=", ".join(PASS_ANALYZERS), data=made, batch=sizes.dataset_batch)
    count = subject.data.size
    note = f"throughput {1 / comparison.ratio:.2f}x the bare loop's (target: at least 0.70x); {count} inputs of {made}"
    return [ratio_row("dataset_pass", what, comparison, PASS_TARGET, note, inputs=count)]


def saliency_rows(sizes: Sizes) -> list[Row]:
    """``dataset_saliency``: the pass of class_saliency's reducer against a bare captum Saliency loop."""
    import torch
    from captum.attr import Saliency

    source, made = fixtures.mnist_source()
    subject = fixtures.lenet5_on_data(source, limit=sizes.dataset_limit, batch_size=sizes.dataset_batch)
    specs = dataset_specs(("class_saliency",))
    model, normalized = subject.model, normalizer()

    def direct() -> None:
        saliency = Saliency(model)
        # the reference ends with what the analyzer draws from (per-class sums), at a cost of microseconds
        sums = torch.zeros(len(fixtures.MNIST_CLASSES), *fixtures.MNIST_SHAPE[1:])
        for pixels, labels in bare_loader(source, sizes.dataset_limit, sizes.dataset_batch):
            inputs = normalized(pixels).requires_grad_(True)  # a leaf, as a user passes it, so captum does not warn
            maps = saliency.attribute(inputs, target=labels, abs=True)
            sums.index_add_(0, labels, maps.amax(dim=1))

    comparison = compare(
        timed(lambda: checked_pass(subject, specs)), timed(direct), repeats=sizes.repeats, warmup=sizes.warmup + 1
    )
    what = SALIENCY_WHAT.format(data=made, batch=sizes.dataset_batch)
    note = (
        "the pass runs a no-grad forward for every reducer before class_saliency's own forward and backward, "
        f"then scales each map to its maximum and keeps float64 sums and squares; {subject.data.size} inputs of {made}"
    )
    return [ratio_row("dataset_saliency", what, comparison, None, note, inputs=subject.data.size)]


def memory_rows(sizes: Sizes, folder: Path) -> list[Row]:
    """``dataset_memory``: peak RSS of a whole process passing over the large count, less over the small one."""
    small, large = sizes.memory_counts
    images, labels = fixtures.mnist_like_npy(folder, large)
    kernel_peaks: dict[int, list[int | None]] = {small: [], large: []}

    def measured(count: int) -> Callable[[], Timing]:
        report = folder / f"pass-memory-{count}.json"
        command = python_command(
            "-m",
            "benchmarks.pass_side",
            "memory",
            str(images),
            str(labels),
            "--limit",
            str(count),
            "--batch",
            str(sizes.dataset_batch),
            "--report",
            str(report),
        )

        def run() -> Timing:
            timing = run_process(command)
            reported = json.loads(report.read_text(encoding="utf-8"))
            if reported["seen"] != count:
                raise RuntimeError(f"the pass over {count} inputs saw {reported['seen']}")
            kernel_peaks[count].append(timing.peak_rss)
            # The child's own high-water mark: the kernel's ru_maxrss counts this process's RSS at the fork.
            return dataclasses.replace(timing, peak_rss=reported["peak_rss"])

        return run

    comparison = compare(measured(large), measured(small), repeats=sizes.process_repeats, warmup=0)
    # Peak RSS hardly varies between runs; the largest growth of a pair is reported, as the memory row reports its
    # largest peak.
    growths = [(a.peak_rss or 0) - (b.peak_rss or 0) for a, b in zip(comparison.numerator, comparison.denominator)]
    growth = max(growths)
    large_peak = max(timing.peak_rss or 0 for timing in comparison.numerator)
    small_peak = max(timing.peak_rss or 0 for timing in comparison.denominator)
    note = (
        f"peak RSS (VmHWM) {large_peak / 1e6:.0f} MB over {large} inputs, {small_peak / 1e6:.0f} MB over {small}; "
        f"the largest growth of {len(growths)} pairs; it includes the pages of the mapped file that were read "
        f"({(large - small) * 784 / 1e6:.1f} MB more)"
    )
    return [
        Row(
            name="dataset_memory",
            what=MEMORY_WHAT.format(small=small, large=large),
            value=growth / 1e6,
            unit="MB",
            target=MEMORY_GROWTH_LIMIT_MB,
            strict=True,
            numerator_s=comparison.numerator_wall,
            denominator_s=comparison.denominator_wall,
            repeats=len(growths),
            note=note,
            details={
                "growth_bytes": growths,
                "large_peak_rss_bytes": [timing.peak_rss for timing in comparison.numerator],
                "small_peak_rss_bytes": [timing.peak_rss for timing in comparison.denominator],
                "kernel_maxrss_bytes": {str(count): peaks for count, peaks in kernel_peaks.items()},
            },
        )
    ]


def ray_rows(sizes: Sizes) -> list[Row]:
    """``ray_vs_local``: the pass on a local Ray cluster against the local executor, in a child process."""
    what = RAY_WHAT.format(analyzers=", ".join(PASS_ANALYZERS), data="MNIST", batch=sizes.dataset_batch)
    if not sizes.ray_repeats:
        reason = "not measured: left out of --quick (each Ray pass starts a local cluster, about 25 s)"
        return [unmeasured("ray_vs_local", what, "x", None, reason)]
    if importlib.util.find_spec("ray") is None:
        return [unmeasured("ray_vs_local", what, "x", None, "not measured: ray is not installed (the 'ray' extra)")]
    command = python_command(
        "-m",
        "benchmarks.pass_side",
        "ray",
        "--batch",
        str(sizes.dataset_batch),
        "--repeats",
        str(sizes.ray_repeats),
        *(() if sizes.dataset_limit is None else ("--limit", str(sizes.dataset_limit))),
    )
    environment = {**child_environment(), **RAY_ENVIRONMENT}
    # A cluster that never comes up must not hang the whole run: far more than a pass takes here (about 25 s).
    limit = RAY_PASS_LIMIT_S * (2 * sizes.ray_repeats + 1)
    finished = subprocess.run(command, capture_output=True, text=True, check=False, env=environment, timeout=limit)
    if finished.returncode != 0:
        reason = (finished.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the Ray side exited with {finished.returncode}: {reason}")
    result: dict[str, Any] = json.loads(finished.stdout)
    comparison = Comparison(
        numerator=tuple(Timing(**timing) for timing in result["ray"]),
        denominator=tuple(Timing(**timing) for timing in result["local"]),
    )
    startup = statistics.median(result["startup_s"])
    streaming = statistics.median(
        (ray.wall - start) / local.wall
        for ray, local, start in zip(comparison.numerator, comparison.denominator, result["startup_s"])
    )
    note = (
        f"ray {result['ray_version']}, a local cluster of {result['cpus']} CPUs (one actor per CPU but one, "
        f"each with 1 torch thread): {startup:.1f} s of each Ray pass went to starting the cluster and its actors "
        f"(Reduced.startup, median); the rest (streaming, then ray.shutdown) took {streaming:.2f}x the local pass; "
        f"importing ray took {result['import_s']:.1f} s once, before the timed passes. Caption: {result['caption']}"
    )
    row = ratio_row(
        "ray_vs_local",
        RAY_WHAT.format(analyzers=", ".join(PASS_ANALYZERS), data=result["data"], batch=sizes.dataset_batch),
        comparison,
        None,
        note,
        startup_s=result["startup_s"],
        streaming_ratio=streaming,
        import_s=result["import_s"],
        transfer_bytes=result["transfer_bytes"],
    )
    # This process's CPU time leaves out the cluster's processes, where Ray's work runs: no CPU ratio.
    return [dataclasses.replace(row, cpu_ratio=None)]
