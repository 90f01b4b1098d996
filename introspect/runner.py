"""Running analyzers: the common work done once, one failure never stopping the rest."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from introspect.artifacts import AnalyzerResult, Artifact
from introspect.capture import evaluation_mode
from introspect.errors import SkipAnalyzer
from introspect.spec import AnalyzerSpec
from introspect.subject import Subject

if TYPE_CHECKING:
    import torch

ProgressCallback = Callable[[int, int, AnalyzerResult], None]


def run_analyzers(
    subject: Subject,
    specs: Iterable[AnalyzerSpec],
    *,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    progress: ProgressCallback | None = None,
    timeout: float | None = None,
) -> list[AnalyzerResult]:
    """Run each analyzer whose needs ``subject`` meets; skip the others with the reason.

    The model is in eval mode during each analyzer and gets its own modes back afterwards;
    parameter gradients are restored to what they were, so no ``.grad`` is left behind.

    Args:
        subject: what to analyze.
        specs: the analyzers, in order.
        options: per-analyzer keyword arguments, by analyzer name.
        progress: called as ``progress(done, total, result)`` after each analyzer.
        timeout: seconds each analyzer may take before it is stopped and recorded as failed.
    """
    specs = list(specs)
    results = []
    for index, spec in enumerate(specs, start=1):
        result = run_one(subject, spec, (options or {}).get(spec.name, {}), timeout=timeout)
        results.append(result)
        if progress is not None:
            progress(index, len(specs), result)
    return results


class AnalyzerTimeout(Exception):
    """An analyzer ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`AnalyzerTimeout` in the block after ``seconds`` (main thread, Unix only).

    A signal interrupts the analyzer between Python bytecodes, so it stops even inside a long
    loop; elsewhere (another thread, Windows) the block runs without a limit.
    """
    usable = seconds and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise AnalyzerTimeout(f"ran past the time limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_one(subject: Subject, spec: AnalyzerSpec, options: Mapping[str, Any] | None = None, *, timeout: float | None = None) -> AnalyzerResult:
    """Run one analyzer with its needs checked, the model protected and failures captured."""
    missing = subject.missing_reason(spec.needs)
    if missing:
        return AnalyzerResult(name=spec.name, status="skipped", reason=missing)
    start = time.perf_counter()
    try:
        with _protected(subject), time_limit(timeout):
            artifacts = spec.func(subject, **dict(options or {}))
        _check_artifacts(spec, artifacts)
    except SkipAnalyzer as skip:
        return AnalyzerResult(name=spec.name, status="skipped", reason=str(skip), seconds=time.perf_counter() - start)
    except Exception as error:  # an analyzer may fail in any way; the others still run
        return AnalyzerResult(
            name=spec.name,
            status="failed",
            reason=f"{type(error).__name__}: {error}",
            seconds=time.perf_counter() - start,
            traceback=traceback.format_exc(),
        )
    return AnalyzerResult(name=spec.name, status="ok", seconds=time.perf_counter() - start, artifacts=tuple(artifacts))


def _check_artifacts(spec: AnalyzerSpec, artifacts: Any) -> None:
    if not isinstance(artifacts, (list, tuple)) or not all(isinstance(item, Artifact) for item in artifacts):
        raise TypeError(f"analyzer {spec.name!r} must return a list of Artifact, not {type(artifacts).__name__}")


class _protected:
    """Eval mode, and parameter gradients and ``requires_grad`` flags restored, around an analyzer."""

    def __init__(self, subject: Subject) -> None:
        self.model = subject.model
        self.mode = evaluation_mode(self.model) if self.model is not None else None
        self.saved: list[tuple[torch.nn.Parameter, bool, torch.Tensor | None]] = []

    def __enter__(self) -> None:
        if self.model is None:
            return
        self.saved = [(p, p.requires_grad, p.grad) for p in self.model.parameters()]
        self.mode.__enter__()

    def __exit__(self, *exc_info: object) -> None:
        if self.model is None:
            return
        self.mode.__exit__(*exc_info)
        for parameter, requires_grad, grad in self.saved:
            parameter.requires_grad_(requires_grad)
            parameter.grad = grad
