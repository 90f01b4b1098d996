"""Child processes of the dataset rows: one pass for ``dataset_memory``, the Ray pair for ``ray_vs_local``.

``python -m benchmarks.pass_side memory IMAGES.npy LABELS.npy --limit N --batch 256 --report OUT.json``
    runs the pass of all six dataset analyzers over the first N inputs and writes the inputs
    seen and this process's own peak RSS (``VmHWM``) to OUT.json.

``python -m benchmarks.pass_side ray [--limit N] --batch 256 --repeats 3``
    times the pass with executor ray (each one starting a local cluster, as ``--executor ray``
    does) and with executor local, alternately, and prints the timings as one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import pickle
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import fixtures
from benchmarks.harness import compare, timed
from benchmarks.passes import ALL_DATASET_ANALYZERS, PASS_ANALYZERS, checked_pass, dataset_specs

if TYPE_CHECKING:
    from introspect.spec import AnalyzerSpec
    from introspect.subject import Subject


def memory_pass(images: str, labels: str, limit: int, batch_size: int) -> dict[str, int]:
    """The pass over ``images`` opened as ``--data images.npy --data-labels labels.npy`` opens it;
    the inputs seen and the peak RSS of this process in bytes."""
    from introspect.dataset.sources import open_source

    source = open_source(images, labels=labels)
    subject = fixtures.lenet5_on_data(source, limit=limit, batch_size=batch_size)
    outcome = checked_pass(subject, dataset_specs(ALL_DATASET_ANALYZERS))
    return {"seen": next(iter(outcome.reduced.values())).seen, "peak_rss": own_peak_rss()}


def own_peak_rss() -> int:
    """This process's peak resident set size in bytes, counted from its own ``exec``.

    Not ``ru_maxrss``: Linux carries into it the high-water mark of the memory the process had
    before ``exec``, which for a child of the benchmark is the benchmark's own RSS at the fork
    (a ``python -c pass`` started by a parent holding 1 GB reports 965 MB). ``VmHWM`` is that of
    the process's own address space only.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # no /proc: not Linux
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on the BSDs


def measure_ray(limit: int | None, batch_size: int, repeats: int) -> dict[str, Any]:
    """Ray passes against local ones, alternately, after one untimed local pass; each Ray pass starts its cluster."""
    source, made = fixtures.mnist_source()
    local = fixtures.lenet5_on_data(source, limit=limit, batch_size=batch_size)
    on_ray = dataclasses.replace(local, data=dataclasses.replace(local.data, executor="ray"))
    specs = dataset_specs(PASS_ANALYZERS)
    started = time.perf_counter()
    import ray
    import ray.data

    # A user's process pays this once; kept out of the timed passes so that they are comparable.
    import_s = time.perf_counter() - started
    checked_pass(local, specs)
    outcomes = []
    comparison = compare(
        timed(lambda: outcomes.append(checked_pass(on_ray, specs))),
        timed(lambda: checked_pass(local, specs)),
        repeats=repeats,
        warmup=0,
    )
    reduced = [next(iter(outcome.reduced.values())) for outcome in outcomes]
    return {
        "ray_version": ray.__version__,
        "cpus": os.cpu_count(),
        "data": made,
        "import_s": import_s,
        "startup_s": [item.startup for item in reduced],
        "caption": reduced[-1].describe(),
        "transfer_bytes": transfer_bytes(local, specs),
        "ray": [dataclasses.asdict(timing) for timing in comparison.numerator],
        "local": [dataclasses.asdict(timing) for timing in comparison.denominator],
    }


def transfer_bytes(subject: Subject, specs: Sequence[AnalyzerSpec]) -> dict[str, int]:
    """What the Ray executor sends, pickled: the dataset and the model once per actor, the reducers' states
    once per batch (measured on the first batch, fed into fresh reducers as an actor feeds them)."""
    from introspect.dataset.passes import reduce_dataset
    from introspect.dataset.preprocess import Preprocessing
    from introspect.dataset.run import make_reducers
    from introspect.dataset.sources import batches

    plan = subject.data
    reducers, _ = make_reducers(subject, specs, {})
    first = next(batches(plan.source, plan.batch_size, plan.batch_size))
    reduce_dataset(subject.model, [Preprocessing(subject.task, plan.source)(first)], list(reducers.values()))
    return {
        "dataset": len(pickle.dumps(plan.source)),
        "model": len(pickle.dumps(subject.model)),
        "states_per_batch": len(pickle.dumps(reducers)),
    }


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """File descriptor 1 pointed at stderr, so that whatever Ray or its processes print (they inherit the
    descriptor) cannot mix with the JSON this process prints on stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def main(argv: list[str] | None = None) -> None:
    """Parse the command, run it; ``ray`` prints JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    memory = commands.add_parser("memory", help="one pass over a .npy, for its peak RSS")
    memory.add_argument("images")
    memory.add_argument("labels")
    memory.add_argument("--limit", type=int, required=True)
    memory.add_argument("--batch", type=int, default=256)
    memory.add_argument("--report", type=Path, required=True, help="where to write the inputs seen and the peak RSS")
    on_ray = commands.add_parser("ray", help="Ray and local passes, timed alternately")
    on_ray.add_argument("--limit", type=int, default=None)
    on_ray.add_argument("--batch", type=int, default=256)
    on_ray.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.command == "memory":
        args.report.write_text(json.dumps(memory_pass(args.images, args.labels, args.limit, args.batch)))
        return
    with stdout_to_stderr():
        result = measure_ray(args.limit, args.batch, args.repeats)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
