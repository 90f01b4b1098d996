"""The memory and size budget a loaded file must fit, fixed by the user and never by the file.

Every number a checkpoint declares (tensor sizes, storage sizes, a config's layer widths, a
probe's batch size) is checked against a :class:`Budget` before anything of that size is
allocated, so a file of a few kilobytes cannot make introspect allocate gigabytes.
"""

from __future__ import annotations

import dataclasses
import os
import re

from introspect.errors import IntrospectError

#: Share of the memory available at start-up that one run may plan to use by default: loaded
#: weights are copied (model, weights view, snapshots), so this leaves room for those copies.
DEFAULT_MEMORY_SHARE = 0.25
#: Used when the available memory cannot be read (no /proc, no sysconf).
FALLBACK_MAX_MEMORY = 2 << 30
DEFAULT_MAX_PROBE = 256
#: Decompressed bytes per compressed byte that a zip entry may claim; torch writes entries
#: uncompressed (ratio 1), and ordinary deflate stays far below this.
MAX_INFLATION = 50
#: Elements of one synthetic probe input: 3x1024x1024 covers every image model people analyze.
MAX_SYNTHETIC_INPUT_ELEMENTS = 3 * 1024 * 1024
MAX_TENSORS = 200_000
MAX_NESTING = 32

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@dataclasses.dataclass(frozen=True)
class Budget:
    """Limits on what one loaded file may make introspect allocate.

    Attributes:
        max_memory: bytes that the file's tensors, the rebuilt model and the probe may take together.
        max_probe: probe inputs kept; a larger stored or given probe is cut to this many.
        max_inflation: decompressed bytes allowed per compressed byte of a zip entry.
        max_tensors: tensors one file may hold.
        max_nesting: depth of nested containers one file may hold.
    """

    max_memory: int = dataclasses.field(default_factory=lambda: default_max_memory())
    max_probe: int = DEFAULT_MAX_PROBE
    max_inflation: int = MAX_INFLATION
    max_tensors: int = MAX_TENSORS
    max_nesting: int = MAX_NESTING

    def check_bytes(self, nbytes: int, what: str) -> None:
        """Refuse ``what`` when it would take more than :attr:`max_memory`."""
        if nbytes > self.max_memory:
            raise BudgetError(
                f"{what} needs {format_bytes(nbytes)}, more than the memory budget of "
                f"{format_bytes(self.max_memory)} (raise it with --max-memory)"
            )


class BudgetError(IntrospectError):
    """A file asks for more memory or more objects than the budget allows."""


def available_memory() -> int | None:
    """Bytes of memory available now (``MemAvailable``), or ``None`` when it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_max_memory() -> int:
    """A quarter of the memory available now, or 2 GiB when that cannot be read."""
    available = available_memory()
    return int(available * DEFAULT_MEMORY_SHARE) if available else FALLBACK_MAX_MEMORY


def parse_size(text: str) -> int:
    """``"512M"``, ``"4G"``, ``"1.5GB"`` or plain bytes → bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not match:
        raise IntrospectError(f"{text!r} is not a size: use bytes or a number with K, M, G or T, e.g. 4G")
    number, unit = match.groups()
    size = int(float(number) * _UNITS[unit.upper()])
    if size <= 0:
        raise IntrospectError(f"{text!r} must be a positive size, e.g. 4G")
    return size


def format_bytes(nbytes: int) -> str:
    """``1536`` → ``"1.5 KiB"``."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
