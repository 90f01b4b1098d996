"""A small timing harness: warm-up, alternating repetitions, medians, and child-process usage.

Two pieces of work are compared *side by side*: each repetition runs both, alternating which
goes first, so a load spike from other processes on a shared machine hits both about equally.
The reported ratio is the median over repetitions of the per-repetition ratio; the medians of
each side are reported too. Wall time comes from :func:`time.perf_counter`; CPU time (all
threads of the process, or of a child) is recorded beside it because on a busy machine it
moves far less than wall time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO


@dataclasses.dataclass(frozen=True)
class Timing:
    """One measured run.

    Attributes:
        wall: elapsed seconds.
        cpu: CPU seconds (user + system) spent by the process or child.
        peak_rss: the child's peak resident set size in bytes (process runs only).
    """

    wall: float
    cpu: float
    peak_rss: int | None = None


Measured = Callable[[], Timing]


def timed(work: Callable[[], Any]) -> Measured:
    """Wrap a plain function so each call returns its :class:`Timing` (in this process)."""

    def run() -> Timing:
        started_wall, started_cpu = time.perf_counter(), time.process_time()
        work()
        return Timing(wall=time.perf_counter() - started_wall, cpu=time.process_time() - started_cpu)

    return run


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Paired timings of a numerator (introspect) and a denominator (the reference)."""

    numerator: tuple[Timing, ...]
    denominator: tuple[Timing, ...]

    @property
    def ratio(self) -> float:
        """Median over repetitions of numerator wall / denominator wall."""
        return statistics.median(a.wall / b.wall for a, b in zip(self.numerator, self.denominator))

    @property
    def cpu_ratio(self) -> float:
        """The same ratio of CPU times."""
        return statistics.median(a.cpu / max(b.cpu, 1e-9) for a, b in zip(self.numerator, self.denominator))

    @property
    def numerator_wall(self) -> float:
        """Median wall seconds of the numerator."""
        return statistics.median(timing.wall for timing in self.numerator)

    @property
    def denominator_wall(self) -> float:
        """Median wall seconds of the denominator."""
        return statistics.median(timing.wall for timing in self.denominator)


def compare(numerator: Measured, denominator: Measured, *, repeats: int, warmup: int = 1) -> Comparison:
    """Run both ``warmup`` times untimed, then ``repeats`` times each, alternating which goes first."""
    for _ in range(warmup):
        numerator()
        denominator()
    first, second = [], []
    for index in range(repeats):
        if index % 2 == 0:
            first.append(numerator())
            second.append(denominator())
        else:
            second.append(denominator())
            first.append(numerator())
    return Comparison(numerator=tuple(first), denominator=tuple(second))


def repeat(work: Measured, *, repeats: int, warmup: int = 0) -> tuple[Timing, ...]:
    """``work`` run ``warmup`` times untimed, then ``repeats`` times."""
    for _ in range(warmup):
        work()
    return tuple(work() for _ in range(repeats))


def median_wall(timings: Sequence[Timing]) -> float:
    """Median wall seconds."""
    return statistics.median(timing.wall for timing in timings)


class ProcessFailed(RuntimeError):
    """A benchmarked command exited with a non-zero status."""


#: Run by a small Python between this process and the measured command, so that the command is
#: forked from it and not from here: Linux counts the RSS a process had when it called ``exec``
#: into its peak (``ru_maxrss``), and a command forked from this process, which holds 1 to 2 GB
#: by the later rows, would report at least that. It writes the command's own peak (KiB).
_LAUNCHER = (
    "import os, subprocess, sys; process = subprocess.Popen(sys.argv[2:]); "
    "_, status, usage = os.wait4(process.pid, 0); open(sys.argv[1], 'w').write(str(usage.ru_maxrss)); "
    "sys.exit(os.waitstatus_to_exitcode(status))"
)


def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    own_peak: bool = False,
) -> Timing:
    """Run ``argv`` to completion; wall time from here, CPU time and peak RSS from the kernel.

    ``os.wait4`` reports the child's resource usage (its peak RSS in KiB on Linux), so no
    sampling is needed. With ``own_peak`` the command is started through a small launcher
    (:data:`_LAUNCHER`), so its peak is its own and not this process's size at the fork; the
    launcher's start-up (about 20 ms) is then in the wall and CPU times.

    Raises:
        ProcessFailed: the command exited with a non-zero status (its stderr tail is in the message).
    """
    environment = {**child_environment(), **(env or {})}
    with open(os.devnull, "wb") as devnull, _stderr_file(cwd) as (stderr, stderr_path), _peak_file(cwd) as peak_path:
        command = [sys.executable, "-S", "-c", _LAUNCHER, peak_path, *argv] if own_peak else list(argv)
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=devnull, stderr=stderr, env=environment, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            stderr.flush()
            tail = Path(stderr_path).read_text(encoding="utf-8", errors="replace")[-2000:]
            raise ProcessFailed(f"{' '.join(argv)} exited with {process.returncode}: {tail}")
        peak_kib = int(Path(peak_path).read_text(encoding="utf-8")) if own_peak else usage.ru_maxrss
    return Timing(wall=wall, cpu=usage.ru_utime + usage.ru_stime, peak_rss=peak_kib * 1024)


@contextlib.contextmanager
def _peak_file(folder: str | os.PathLike[str] | None) -> Iterator[str]:
    """A temporary file the launcher writes the command's peak RSS into, deleted afterwards."""
    descriptor, path = tempfile.mkstemp(prefix="bench-peak-", dir=folder)
    os.close(descriptor)
    try:
        yield path
    finally:
        os.unlink(path)


@contextlib.contextmanager
def _stderr_file(folder: str | os.PathLike[str] | None) -> Iterator[tuple[BinaryIO, str]]:
    """A temporary file for a child's stderr, deleted afterwards."""
    descriptor, path = tempfile.mkstemp(prefix="bench-stderr-", dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle, path
    finally:
        os.unlink(path)


def child_environment() -> dict[str, str]:
    """This environment, with the Agg backend and this checkout first on ``PYTHONPATH``.

    ``benchmarks`` is not installed, so children that run ``python -m benchmarks.*`` need the
    folder that holds it on their path wherever they are started from.
    """
    root = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(part for part in (root, os.environ.get("PYTHONPATH", "")) if part)
    return {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": path}


def python_command(*args: str) -> list[str]:
    """``python args...`` with this interpreter."""
    return [sys.executable, *args]


def console_script(name: str) -> list[str]:
    """The installed console script ``name`` beside this interpreter, else ``python -m name``."""
    script = Path(sys.executable).parent / name
    return [str(script)] if script.exists() else python_command("-m", name)
