"""Result rows, the printed table, the JSON file and the machine description."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.harness import Comparison

UNIT_TEXT = {"x": "", "s": " s", "MB": " MB", "GB": " GB"}


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the table.

    Attributes:
        name: short key (``capture``, ``scale``...).
        what: what was measured, in words.
        value: the number compared with the target (``None``: not measured; ``note`` says why).
        unit: ``x`` for a ratio, ``s`` for seconds, ``MB`` for 10^6 bytes, ``GB`` for 10^9 bytes.
        target: the most ``value`` may be; ``None`` when the row is only reported.
        strict: the target is ``value < target`` rather than ``<=``.
        numerator_s: median wall seconds of introspect's side.
        denominator_s: median wall seconds of the reference side.
        cpu_ratio: the same ratio computed from CPU seconds (steadier on a busy machine).
        repeats: timed repetitions per side.
        note: how it was measured, or why it was not.
        details: further numbers, kept in the JSON.
    """

    name: str
    what: str
    value: float | None
    unit: str
    target: float | None
    strict: bool = False
    numerator_s: float | None = None
    denominator_s: float | None = None
    cpu_ratio: float | None = None
    repeats: int = 0
    note: str = ""
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def measured(self) -> bool:
        """Whether there is a value."""
        return self.value is not None

    @property
    def met(self) -> bool | None:
        """Whether the target is met; ``None`` when unmeasured or only reported."""
        if self.value is None or self.target is None:
            return None
        return self.value < self.target if self.strict else self.value <= self.target

    @property
    def target_text(self) -> str:
        """``<= 1.10``, ``< 10 s`` or ``report``."""
        if self.target is None:
            return "report"
        number = f"{self.target:.2f}" if self.unit == "x" else f"{self.target:g}"
        return f"{'<' if self.strict else '<='} {number}{UNIT_TEXT[self.unit]}"

    def to_dict(self) -> dict[str, Any]:
        """Plain values for the JSON file."""
        fields = dataclasses.asdict(self)
        return {**fields, "measured": self.measured, "met": self.met, "target_text": self.target_text}


def ratio_row(
    name: str, what: str, comparison: Comparison, target: float | None, note: str = "", **details: Any
) -> Row:
    """A row whose value is the side-by-side wall-time ratio of ``comparison``."""
    walls = {
        "numerator_walls": [round(t.wall, 4) for t in comparison.numerator],
        "denominator_walls": [round(t.wall, 4) for t in comparison.denominator],
    }
    return Row(
        name=name,
        what=what,
        value=comparison.ratio,
        unit="x",
        target=target,
        numerator_s=comparison.numerator_wall,
        denominator_s=comparison.denominator_wall,
        cpu_ratio=comparison.cpu_ratio,
        repeats=len(comparison.numerator),
        note=note,
        details={**details, **walls},
    )


def unmeasured(name: str, what: str, unit: str, target: float | None, reason: str, strict: bool = False) -> Row:
    """A row that could not be measured, saying why."""
    return Row(name=name, what=what, value=None, unit=unit, target=target, strict=strict, note=reason)


def format_value(row: Row) -> str:
    """The value with its unit, or ``not measured``."""
    if row.value is None:
        return "not measured"
    if row.unit == "x":
        return f"{row.value:.3f}"
    return f"{row.value:.2f}{UNIT_TEXT[row.unit]}"


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a fixed-width text table."""
    header = ("row", "value", "target", "met", "introspect", "reference", "cpu ratio", "n")
    lines = [header]
    for row in rows:
        met = {True: "yes", False: "NO", None: "-"}[row.met]
        lines.append(
            (
                row.name,
                format_value(row),
                row.target_text,
                met,
                _seconds(row.numerator_s),
                _seconds(row.denominator_s),
                "-" if row.cpu_ratio is None else f"{row.cpu_ratio:.3f}",
                str(row.repeats or "-"),
            )
        )
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
    notes = [f"  {row.name}: {row.note}" for row in rows if row.note]
    return "\n".join(text + (["", "notes:"] + notes if notes else []))


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def machine_description() -> dict[str, Any]:
    """Cores, CPU model, memory, load and library versions of this machine."""
    import torch

    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": _memory_gb(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def source_revision() -> str:
    """The checkout's commit, with ``+changes`` when the working tree differs from it ("unknown" outside git)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if changed else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) * 1024 / 1e9, 1)
    except OSError:
        pass
    return None


def write_json(path: str | os.PathLike[str], rows: Sequence[Row], machine: dict[str, Any], **extra: Any) -> Path:
    """Write ``{"machine", "rows", ...}`` to ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine, **extra, "rows": [row.to_dict() for row in rows]}
    target.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return target
