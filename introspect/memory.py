"""How much memory an analyzer used: the RSS before and after it, and its peak, read from ``/proc/self/status``."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

#: Set to 1 to record tracemalloc's peak of Python allocations per analyzer as ``python_peak_mb``;
#: off by default, since tracing every allocation slows Python code several times over.
TRACEMALLOC_VARIABLE = "INTROSPECT_TRACEMALLOC"
#: Seconds between two readings of the RSS while an analyzer runs (each costs about 0.1 ms).
SAMPLE_SECONDS = 0.01
_MB = 1e6


@contextlib.contextmanager
def measured_memory(release: Callable[[float], None] | None = None) -> Iterator[dict[str, Any]]:
    """The block's memory use, filled into the yielded dict (MB) when it ends: :attr:`AnalyzerResult.memory`.

    ``release``, when given, is called with the peak growth before the RSS after is read
    (the runner's :func:`~introspect.runner.release_memory`).

    ``peak_growth_mb`` is the peak RSS during the block less the RSS before. Where the block
    raised the process's high-water mark ``VmHWM``, that mark is its peak, exactly
    (``peak_method`` ``"VmHWM"``); else the RSS sampled every :data:`SAMPLE_SECONDS` by a thread
    (``"sampled"``), which can miss shorter peaks. The mark is never reset (``clear_refs``), since
    that would hide the process's true peak from ``getrusage``, ``wait4`` and ``time -v``.
    Nothing is recorded where ``/proc/self/status`` is missing (not Linux).
    """
    record: dict[str, Any] = {}
    start = _status_mb()
    sampler, tracing, cuda = _RssSampler(start.get("VmRSS")), _start_tracing(), _cuda_reset()
    try:
        yield record
    finally:
        sampler.stop()
        status = _status_mb()
        if not (start and status) and release is not None:
            release(0.0)
        if start and status:
            held, mark = status["VmRSS"], status["VmHWM"]
            raised = mark > start["VmHWM"]
            growth = (mark if raised else max(sampler.peak, held)) - start["VmRSS"]
            if release is not None:
                release(growth)
            record.update(rss_before_mb=round(start["VmRSS"], 1), rss_after_mb=round(_status_mb()["VmRSS"], 1))
            record.update(peak_growth_mb=round(growth, 1), peak_method="VmHWM" if raised else "sampled")
        if tracing:
            record["python_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / _MB, 1)
            tracemalloc.stop()
        if cuda is not None:
            record["cuda_peak_mb"] = round(cuda.max_memory_allocated() / _MB, 1)


class _RssSampler:
    """A daemon thread reading the RSS every :data:`SAMPLE_SECONDS` until stopped; ``peak`` is the largest read."""

    def __init__(self, start_mb: float | None) -> None:
        self.peak = start_mb or 0.0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="introspect-rss", daemon=True)
        if start_mb is not None:
            self._thread.start()

    def _sample(self) -> None:
        while not self._stopped.wait(SAMPLE_SECONDS):
            self.peak = max(self.peak, _status_mb().get("VmRSS", 0.0))

    def stop(self) -> None:
        """End the thread and wait for it."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()


def _status_mb() -> dict[str, float]:
    """The ``kB`` fields of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MB; empty where there is none."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            fields = [line.split() for line in status if line.startswith("Vm")]
    except OSError:
        return {}
    return {parts[0].rstrip(":"): int(parts[1]) * 1024 / _MB for parts in fields if len(parts) == 3}


def _start_tracing() -> bool:
    """Start tracemalloc when :data:`TRACEMALLOC_VARIABLE` asks and nobody traces yet; whether it was started."""
    if os.environ.get(TRACEMALLOC_VARIABLE, "") in ("", "0") or tracemalloc.is_tracing():
        return False
    tracemalloc.start()
    return True


def _cuda_reset() -> Any:
    """``torch.cuda`` with its peak statistics reset, when CUDA is in use; else ``None``."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return None
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda
