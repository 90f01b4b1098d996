"""Running analyzers: the common work done once, one failure never stopping the rest.

``--timeout`` gives each phase of an analysis the same limit: loading (with the probe check),
each analyzer, and the gallery writing. A phase past its limit is stopped by SIGALRM
(:func:`time_limit`) raising :class:`AnalyzerTimeout`, a ``BaseException`` that model code
catching ``Exception`` cannot swallow; one that still runs :data:`~introspect.watchdog.GRACE_SECONDS`
later (native code, a bare ``except:``) ends the process (:mod:`introspect.watchdog`).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import gc
import os
import signal
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from introspect.artifacts import AnalyzerResult, bounded_artifacts
from introspect.capture import evaluation_mode
from introspect.errors import IntrospectError, SkipAnalyzer
from introspect.memory import measured_memory
from introspect.plotting import MAX_NAME_CHARS, bounded_text
from introspect.spec import AnalyzerSpec
from introspect.subject import Subject
from introspect.watchdog import hard_limit

if TYPE_CHECKING:
    import torch

    from introspect.dataset.run import PassOutcome

T = TypeVar("T")
MAX_WARNINGS = 20

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
        timeout: seconds each analyzer may take before it is stopped and recorded as failed; one
            still running some seconds later (in native code) ends the process with exit code 2.
    """
    specs, options = list(specs), options or {}
    results = []
    with survivors_frozen():
        dataset = dataset_pass(subject, specs, options, timeout)  # one pass shared by every dataset analyzer
        for index, spec in enumerate(specs, start=1):
            result = run_one(subject, spec, options.get(spec.name, {}), timeout=timeout, dataset=dataset)
            results.append(result)
            if progress is not None:
                progress(index, len(specs), result)
    return results


class AnalyzerTimeout(BaseException):
    """A phase (an analyzer, loading, the gallery writing) ran past its time limit.

    A ``BaseException`` like ``KeyboardInterrupt``, so that model code catching ``Exception`` in
    a loop cannot swallow it.

    Attributes:
        limit: the :func:`time_limit` block that raised it, so that only that block's owner
            turns it into a result; an outer limit's timeout passes through.
    """

    def __init__(self, message: str, limit: object = None) -> None:
        super().__init__(message)
        self.limit = limit


class PhaseTimeout(IntrospectError):
    """Loading, the probe check or the gallery writing ran past ``--timeout``: one sentence, exit 2."""


@contextlib.contextmanager
def time_limit(seconds: float | None, *, limit: object = None) -> Iterator[None]:
    """Raise :class:`AnalyzerTimeout` in the block after ``seconds`` (main thread, Unix only).

    A signal interrupts the block between Python bytecodes, so it stops even inside a long
    loop; elsewhere (another thread, Windows) only the hard stop of :mod:`introspect.watchdog`
    applies. Native code that never returns to Python is not interrupted by this.

    Args:
        seconds: the limit; ``None`` or 0 sets none.
        limit: any object, carried by the exception as ``limit`` to say which block raised it.
    """
    usable = seconds and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise AnalyzerTimeout(f"ran past the time limit of {seconds:g} s", limit)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def within_limit(
    func: Callable[[], T],
    seconds: float | None,
    what: str,
    failure: str,
    *,
    gallery: str | os.PathLike[str] | None = None,
) -> T:
    """``func()`` with ``seconds`` to finish, Python warnings kept off stderr.

    Args:
        func: the phase.
        seconds: its limit (``None``: none).
        what: the phase for the hard stop's message, e.g. ``"loading model.pt"``.
        failure: what the :class:`PhaseTimeout` says when the phase runs past ``seconds``, e.g.
            ``"model.pt: did not finish loading"``; ``" within --timeout N s"`` is added.
        gallery: the gallery folder the phase writes (its staging folders go when the process is ended).

    Raises:
        PhaseTimeout: the phase ran past ``seconds``.
    """
    limit = object()
    try:
        with hard_limit(seconds, what, gallery=gallery), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with time_limit(seconds, limit=limit):
                return func()
    except AnalyzerTimeout as error:
        if error.limit is not limit:
            raise
        raise PhaseTimeout(f"{failure} within --timeout {seconds:g} s") from None


def run_one(
    subject: Subject,
    spec: AnalyzerSpec,
    options: Mapping[str, Any] | None = None,
    *,
    timeout: float | None = None,
    dataset: PassOutcome | None = None,
) -> AnalyzerResult:
    """Run one analyzer with its needs checked, the model protected and failures captured.

    Python warnings it raises are recorded in the result instead of printed. A dataset
    analyzer takes its state from ``dataset`` (the shared pass of :func:`run_analyzers`), or
    runs a pass of its own when there is none.
    """
    options = dict(options or {})
    missing = subject.missing_reason(spec.needs)
    if missing:
        return AnalyzerResult(name=spec.name, status="skipped", reason=missing, options=options)
    arguments: tuple[Any, ...] = ()
    if spec.reducer is not None:
        if dataset is None or spec.name not in (*dataset.reduced, *dataset.problems):
            dataset = dataset_pass(subject, [spec], {spec.name: options}, timeout)
        problem = dataset.problems.get(spec.name)
        if problem is not None:
            return _pass_problem(spec, problem, options)
        arguments = (dataset.reduced[spec.name],)
    with warnings.catch_warnings(record=True) as caught, measured_memory(release_memory) as memory:
        warnings.simplefilter("always")
        result = _run_guarded(subject, spec, arguments, options, timeout)
    noted = warning_lines(caught)
    if spec.reducer is not None and dataset is not None:
        noted = tuple(dict.fromkeys((*dataset.warnings, *noted)))[:MAX_WARNINGS]
    return dataclasses.replace(result, warnings=noted, options=options, memory=memory)


def dataset_pass(
    subject: Subject, specs: Sequence[AnalyzerSpec], options: Mapping[str, Mapping[str, Any]], timeout: float | None
) -> PassOutcome:
    """The one dataset pass for the dataset analyzers among ``specs`` whose needs are met, under ``timeout``."""
    from introspect.dataset.run import PassOutcome, run_pass

    wanted = [spec for spec in specs if spec.reducer is not None and not subject.missing_reason(spec.needs)]
    if not wanted:
        return PassOutcome()
    limit = object()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # recorded on the dataset analyzers' results, not printed
            with hard_limit(timeout, "the dataset pass"), _protected(subject), time_limit(timeout, limit=limit):
                outcome = run_pass(subject, wanted, options)
        return dataclasses.replace(outcome, warnings=warning_lines(caught))
    except AnalyzerTimeout as error:
        if error.limit is not limit:
            raise
        return PassOutcome(problems=dict.fromkeys((spec.name for spec in wanted), error))


def _pass_problem(spec: AnalyzerSpec, problem: BaseException, options: dict[str, Any]) -> AnalyzerResult:
    if isinstance(problem, SkipAnalyzer):
        return AnalyzerResult(name=spec.name, status="skipped", reason=str(problem), options=options)
    known = isinstance(problem, (AnalyzerTimeout, IntrospectError))
    reason = str(problem) if known else f"{type(problem).__name__}: {problem}"
    return AnalyzerResult(
        name=spec.name,
        status="failed",
        reason=bounded_text(f"the dataset pass failed: {reason}", MAX_NAME_CHARS),
        options=options,
        traceback="".join(traceback.format_exception(problem)),
    )


def _run_guarded(
    subject: Subject, spec: AnalyzerSpec, arguments: tuple[Any, ...], options: dict[str, Any], timeout: float | None
) -> AnalyzerResult:
    """The analyzer inside its time limits; a timeout of its own limit becomes a failed result."""
    start = time.perf_counter()
    limit = object()
    try:
        with hard_limit(timeout, f"the analyzer {spec.name}"), _protected(subject), time_limit(timeout, limit=limit):
            artifacts = spec.func(subject, *arguments, **options)
        artifacts, note = bounded_artifacts(spec, artifacts)
    except SkipAnalyzer as skip:
        return AnalyzerResult(name=spec.name, status="skipped", reason=str(skip), seconds=time.perf_counter() - start)
    except AnalyzerTimeout as error:
        if error.limit is not limit:  # an outer limit's: not this analyzer's to record
            raise
        return _failed(spec, str(error), start)
    except Exception as error:  # an analyzer may fail in any way; the others still run
        return _failed(spec, with_guess_hint(subject, f"{type(error).__name__}: {error}"), start)
    seconds = time.perf_counter() - start
    return AnalyzerResult(name=spec.name, status="ok", seconds=seconds, artifacts=tuple(artifacts), summary=note)


def with_guess_hint(subject: Subject, reason: str) -> str:
    """``reason``, and when the probe's input shape was guessed, which guess and how to give the right one.

    A random probe of a guessed shape (an LSTM's sequence length, a ViT's image size) is the usual
    cause of a forward pass failing, so the message says so rather than leave a shape error unexplained.
    """
    guess = subject.metadata.get("input_shape_guess")
    if not guess:
        return reason
    hint = f" ({bounded_text(guess, 400)}; if it is wrong, pass --input-shape with the shape of one input)"
    return bounded_text(reason, MAX_NAME_CHARS - len(hint)) + hint


def _failed(spec: AnalyzerSpec, reason: str, start: float) -> AnalyzerResult:
    return AnalyzerResult(
        name=spec.name,
        status="failed",
        reason=bounded_text(reason, MAX_NAME_CHARS),
        seconds=time.perf_counter() - start,
        traceback=traceback.format_exc(),
    )


def warning_lines(caught: list[warnings.WarningMessage]) -> tuple[str, ...]:
    """Distinct warnings as ``Category: message`` lines, at most :data:`MAX_WARNINGS`."""
    lines = dict.fromkeys(bounded_text(f"{item.category.__name__}: {item.message}", 500) for item in caught)
    return tuple(list(lines)[:MAX_WARNINGS])


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


#: RSS growth (MB) during an analyzer above which a full garbage collection follows it: one costs
#: 10 to 250 ms, too much after each of 60 analyzers that allocate little.
COLLECT_ABOVE_MB = 32.0


def release_memory(growth_mb: float = float("inf")) -> None:
    """Free cyclic garbage when a block's peak RSS grew by more than :data:`COLLECT_ABOVE_MB`; then trim the heap.

    Trimming hands glibc's free pages back to the system: glibc keeps memory freed after a peak
    resident, so without it the RSS stays near the largest peak so far. Inside
    :func:`survivors_frozen`, what survives the collection is frozen, so the next one skips it.
    """
    if growth_mb > COLLECT_ABOVE_MB:
        gc.collect()
        if _freezing_survivors:
            gc.freeze()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


_freezing_survivors = False


@contextlib.contextmanager
def survivors_frozen() -> Iterator[None]:
    """Keep long-lived objects out of the collections :func:`release_memory` runs during the block.

    A full collection walks every object Python tracks: with torch, matplotlib and captum
    imported that is about 240,000 objects and 60 to 130 ms, four times in LeNet-5's ``--all``.
    What exists when the run starts (modules, the model, the probe) and what survives a
    collection (results waiting for the gallery) lives until the run ends, so it is frozen
    (``gc.freeze``) and only newer objects are walked; everything is unfrozen at the end. A
    process that freezes objects itself (before forking workers) is left as it is.
    """
    global _freezing_survivors
    if _freezing_survivors or gc.get_freeze_count():
        yield
        return
    gc.freeze()
    _freezing_survivors = True
    try:
        yield
    finally:
        _freezing_survivors = False
        gc.unfreeze()


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or ``None`` with another C library."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
