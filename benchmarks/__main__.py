"""``python -m benchmarks [--quick] [--json PATH] [--only ROW] [--repeats N] [--threads N] [--device cpu|cuda]``

Prints the table and writes the JSON file. A row that fails is reported as not measured with
the error, and the others still run; the exit status is 1 when any row failed that way.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from benchmarks import compute, drawing, passes, processes
from benchmarks.fixtures import Sizes, full_sizes, quick_sizes
from benchmarks.report import (
    Row,
    format_table,
    machine_description,
    source_revision,
    unmeasured,
    write_json,
)

DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"


@dataclasses.dataclass(frozen=True)
class Group:
    """Rows measured together: their names, units and targets (for failures), and how to measure them."""

    rows: tuple[tuple[str, str, float | None], ...]
    measure: Callable[[Sizes, Path, str], list[Row]]


GROUPS = (
    Group((("capture", "x", compute.CAPTURE_TARGET),), lambda sizes, folder, device: compute.capture_rows(sizes)),
    Group((("capture_vs_torchlens", "x", 0.10),), lambda sizes, folder, device: compute.torchlens_rows(sizes)),
    Group((("saliency", "x", 1.05),), lambda sizes, folder, device: compute.saliency_rows(sizes)),
    Group(
        (("scorecard", "x", compute.SCORECARD_TARGET),),
        lambda sizes, folder, device: compute.scorecard_rows(sizes, folder),
    ),
    Group((("kernel_grid", "x", 0.10),), lambda sizes, folder, device: drawing.kernel_grid_rows(sizes, folder)),
    Group((("gif", "x", 0.25),), lambda sizes, folder, device: drawing.gif_rows(sizes, folder)),
    Group((("training", "x", 1.15),), lambda sizes, folder, device: compute.training_rows(sizes)),
    Group((("startup", "s", 0.5),), lambda sizes, folder, device: processes.startup_rows(sizes)),
    Group((("gallery", "x", processes.GALLERY_TARGET), ("gallery_wall", "s", 10.0)), processes.gallery_rows),
    Group((("scale", "x", 4.0), ("memory", "GB", processes.MEMORY_LIMIT_GB)), processes.scale_rows),
    Group((("many_tensors", "s", processes.MANY_TENSORS_LIMIT_S),), processes.many_tensors_rows),
    Group((("dataset_pass", "x", passes.PASS_TARGET),), lambda sizes, folder, device: passes.pass_rows(sizes)),
    Group((("dataset_saliency", "x", None),), lambda sizes, folder, device: passes.saliency_rows(sizes)),
    Group(
        (("dataset_memory", "MB", passes.MEMORY_GROWTH_LIMIT_MB),),
        lambda sizes, folder, device: passes.memory_rows(sizes, folder),
    ),
    Group((("ray_vs_local", "x", None),), lambda sizes, folder, device: passes.ray_rows(sizes)),
)
ROW_NAMES = tuple(name for group in GROUPS for name, _, _ in group.rows)
#: Rows whose target is ``value < target`` (the others are ``<=``), for the rows of a group that failed.
STRICT_ROWS = frozenset({"gallery_wall", "dataset_memory", "many_tensors"})


def run_group(group: Group, sizes: Sizes, folder: Path, device: str) -> list[Row]:
    """Measure one group; on an error, its rows say so instead of stopping the run."""
    try:
        return group.measure(sizes, folder, device)
    except Exception as error:  # noqa: BLE001 - one broken row must not hide the others
        traceback.print_exc(file=sys.stderr)
        reason = f"failed: {type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"
        return [
            unmeasured(name, "", unit, target, reason, strict=name in STRICT_ROWS) for name, unit, target in group.rows
        ]


def set_threads(count: int) -> None:
    """Use ``count`` threads in torch here and (through the environment) in every child process.

    On a shared machine, more threads than free cores make OpenMP wait for descheduled threads,
    which slows a forward pass many times over and drowns the differences being measured.
    """
    import torch

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(count)
    torch.set_num_threads(count)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="introspect's benchmarks: side-by-side ratios against targets."
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, one repetition (checks the harness; numbers mean nothing)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="where to write the results [default: benchmarks/results.json; none with --quick]",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=ROW_NAMES,
        metavar="ROW",
        help=f"measure only this row's group (repeatable): {', '.join(ROW_NAMES)}",
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="repetitions of the in-process rows in the full run [default: 5]"
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="--device for the introspect processes [default: cpu]"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads here and in every child process [default: torch's own choice]",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the selected rows, print the table, write the JSON; 1 when a row failed."""
    args = parse_arguments(argv)
    if args.threads is not None:
        set_threads(args.threads)
    sizes = quick_sizes() if args.quick else full_sizes(args.repeats)
    groups = [group for group in GROUPS if not args.only or any(name in args.only for name, _, _ in group.rows)]
    machine, revision = machine_description(), source_revision()
    print(
        f"machine: {machine['nproc']} cores, {machine['cpu_model']}, {machine['memory_gb']} GB, torch "
        f"{machine['torch']}, load {machine['load_average']}",
        flush=True,
    )
    started, started_utc = time.perf_counter(), datetime.datetime.now(datetime.UTC)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="introspect-bench-") as scratch:
        for group in groups:
            group_started = time.perf_counter()
            rows.extend(run_group(group, sizes, Path(scratch), args.device))
            print(
                f"  {', '.join(name for name, _, _ in group.rows)}: {time.perf_counter() - group_started:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    machine["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    print(format_table(rows))
    json_path = args.json or (None if args.quick else DEFAULT_JSON)
    if json_path is not None:
        write_json(
            json_path,
            rows,
            machine,
            mode="quick" if args.quick else "full",
            seconds=round(time.perf_counter() - started, 1),
            device=args.device,
            threads=args.threads,
            revision=revision,
            started_utc=started_utc.isoformat(timespec="seconds"),
        )
        print(f"results: {json_path}")
    failed = [row for row in rows if row.note.startswith("failed:")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
