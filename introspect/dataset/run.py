"""The dataset pass of an analysis: every selected dataset analyzer's reducer fed in one pass.

The runner calls :func:`run_pass` once before the dataset analyzers run. Each analyzer's
``reducer`` factory makes its bounded state; the executor (``local`` here, ``ray`` in
:mod:`introspect.dataset.on_ray`) streams the data through the model once and feeds them all;
each analyzer then gets a :class:`Reduced` with its state and what the pass saw.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from introspect.dataset.passes import Progress, reduce_dataset
from introspect.dataset.plan import parse_executor
from introspect.dataset.preprocess import Preprocessing
from introspect.dataset.sources import batches
from introspect.errors import SkipAnalyzer

if TYPE_CHECKING:
    from introspect.spec import AnalyzerSpec
    from introspect.subject import Subject


@dataclasses.dataclass(frozen=True)
class Reduced:
    """What a dataset analyzer receives: its reducer after the pass, and what the pass read.

    Attributes:
        state: the analyzer's reducer, fed with every batch.
        seen: inputs streamed through the model.
        seconds: how long the one shared pass took.
        data: the plan's description ("the test split of mnist").
        preprocessing: what was done to each input before the model saw it.
        executor: where the pass ran.
        startup: seconds of ``seconds`` spent before the first input was read (starting Ray).
        resumed: inputs reduced by an earlier, interrupted run, read back from its record.
    """

    state: Any
    seen: int
    seconds: float
    data: str
    preprocessing: str
    executor: str
    startup: float = 0.0
    resumed: int = 0

    def describe(self) -> str:
        """A caption sentence: what was read, how, and how fast."""
        streaming = self.seconds - self.startup
        steps = f" ({self.preprocessing})" if self.preprocessing else ""
        startup = f" including {self.startup:.1f} s to start the executor" if self.startup else ""
        read = self.seen - self.resumed
        resumed = f"; the first {self.resumed} from an interrupted run's record" if self.resumed else ""
        rate = read / streaming if streaming > 0 else float("nan")
        return (
            f"Over {self.seen} inputs of {self.data}{steps}, read in one pass shared by the dataset analyzers "
            f"({self.seconds:.1f} s{startup}, {rate:.0f} inputs/s, {self.executor} executor{resumed})."
        )


@dataclasses.dataclass
class PassOutcome:
    """Per dataset analyzer: its :class:`Reduced`, or why it has none (a skip or the pass's failure)."""

    reduced: dict[str, Reduced] = dataclasses.field(default_factory=dict)
    problems: dict[str, BaseException] = dataclasses.field(default_factory=dict)
    #: Python warnings (numpy, torch) raised during the pass, as ``Category: message`` lines.
    warnings: tuple[str, ...] = ()


def make_reducers(
    subject: Subject, specs: Sequence[AnalyzerSpec], options: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, Any], dict[str, BaseException]]:
    """Each dataset analyzer's reducer, made with the options its factory names; a skip is kept as the reason."""
    reducers, problems = {}, {}
    for spec in specs:
        factory = spec.reducer
        accepted = inspect.signature(factory).parameters
        given = {key: value for key, value in options.get(spec.name, {}).items() if key in accepted}
        try:
            reducers[spec.name] = factory(subject, **given)
        except SkipAnalyzer as skip:
            problems[spec.name] = skip
        except Exception as error:  # a broken factory fails its analyzer only
            problems[spec.name] = error
    return reducers, problems


def run_pass(
    subject: Subject, specs: Sequence[AnalyzerSpec], options: Mapping[str, Mapping[str, Any]] | None = None
) -> PassOutcome:
    """Make the reducers, stream the data once through the model, and hand each analyzer its state."""
    reducers, problems = make_reducers(subject, specs, options or {})
    outcome = PassOutcome(problems=problems)
    if not reducers:
        return outcome
    plan = subject.data
    kind, address = parse_executor(plan.executor)
    start = time.perf_counter()
    resumed = 0
    try:
        with progress_bar(plan.size, f"dataset {plan.source.name}") as progress:
            startup = 0.0
            if kind == "ray":
                from introspect.dataset.on_ray import reduce_on_ray

                if plan.resume:
                    _say("--resume applies to the local executor; the Ray pass starts from the first input")
                seen, startup = reduce_on_ray(subject, reducers, address, progress)
            elif plan.record_dir is not None and plan.source.is_map_style:
                seen, resumed = reduce_locally_with_records(subject, reducers, options or {}, progress)
            else:
                seen = reduce_locally(subject, list(reducers.values()), progress)
    except Exception as error:  # the pass failed: every analyzer that needed it fails with the reason
        outcome.problems.update(dict.fromkeys(reducers, error))
        return outcome
    seconds = time.perf_counter() - start
    steps = Preprocessing(subject.task, plan.source).describe()
    executor = plan.executor if kind == "local" else f"Ray ({address or 'local cluster'})"
    for name, state in reducers.items():
        outcome.reduced[name] = Reduced(state, seen, seconds, plan.describe(), steps, executor, startup, resumed)
    return outcome


def reduce_locally(
    subject: Subject, reducers: Sequence[Any], progress: Progress | None = None, *, start: int = 0
) -> int:
    """The local executor: DataLoader workers read the data (from input ``start`` on), the model runs here."""
    plan = subject.data
    prepare = Preprocessing(subject.task, plan.source)
    read = batches(plan.source, plan.batch_size, plan.limit, workers=plan.workers, start=start)
    return reduce_dataset(subject.model, (prepare(batch) for batch in read), reducers, device=subject.device,
                          progress=progress)  # fmt: skip


def reduce_locally_with_records(
    subject: Subject, reducers: dict[str, Any], options: Mapping[str, Mapping[str, Any]], progress: Progress
) -> tuple[int, int]:
    """The local pass, recording its reducers as it goes and, with ``resume``, starting from an earlier record.

    ``reducers`` is updated in place when a record is used. Returns the inputs seen in all (the
    record's included) and how many of them came from the record.
    """
    from introspect.dataset import records

    plan = subject.data
    description = [plan.describe(), len(plan.source), plan.limit, plan.batch_size, plan.source.pixels]
    described_reducers = [
        (name, type(reducer).__qualname__, options.get(name, {})) for name, reducer in reducers.items()
    ]
    key = records.fingerprint(subject.model, [*description, *sorted(map(str, described_reducers))])
    resumed = 0
    if plan.resume:
        try:
            record = records.read_record(plan.record_dir, key, reducers)
        except records.RecordError as reason:
            _say(f"not resuming the dataset pass: {reason}; it starts from the first input")
        else:
            for reducer in record.reducers.values():
                if hasattr(reducer, "bind"):
                    reducer.bind(subject.model, subject.device)
            reducers.update(record.reducers)
            resumed = record.seen
            _say(f"resuming the dataset pass after {resumed} inputs (the record in {plan.record_dir})")
    last = time.monotonic()

    def record_and_show(seen: int) -> None:
        nonlocal last
        progress(seen)
        if time.monotonic() - last >= records.RECORD_INTERVAL_S:
            records.write_record(plan.record_dir, key, seen, reducers)
            last = time.monotonic()

    progress(resumed)
    seen = resumed + reduce_locally(
        subject, list(reducers.values()), lambda count: record_and_show(resumed + count), start=resumed
    )
    records.remove_record(plan.record_dir)
    return seen, resumed


def _say(line: str) -> None:
    """A line for the user on stderr, beside the progress bar."""
    print(f"introspect: {line}", file=sys.stderr)


@contextlib.contextmanager
def progress_bar(total: int | None, description: str) -> Iterator[Progress]:
    """A tqdm bar on stderr with inputs/s and the time left; silent when stderr is not a terminal."""
    from tqdm import tqdm

    with tqdm(
        total=total, desc=description, unit="img", unit_scale=True, disable=None, file=sys.stderr, leave=False
    ) as bar:
        shown = 0

        def update(seen: int) -> None:
            nonlocal shown
            bar.update(seen - shown)
            shown = seen

        yield update
