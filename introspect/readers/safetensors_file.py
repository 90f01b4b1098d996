"""safetensors files: the header checked here first, then the tensors read by the safetensors library.

A safetensors file is an 8-byte little-endian header length, a JSON header naming each tensor's
dtype, shape and byte range, then the raw bytes. Nothing in it is code, but every number in the
header is the file's word: the library would map a header length of terabytes or a byte range
past the end. So the header is parsed and checked here against the file's real size and the
memory budget before the library opens the file.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from introspect._lazy import lazy_import
from introspect.budget import Budget, BudgetError, format_bytes
from introspect.errors import CheckpointError

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")

LENGTH_BYTES = 8
#: The safetensors library's own limit on the header (100 MB); an honest header is far smaller.
MAX_HEADER_BYTES = 100_000_000
MAX_DIMENSIONS = 32
METADATA_KEY = "__metadata__"
#: safetensors dtype → (torch dtype name, bytes per element).
DTYPES = {
    "BOOL": ("bool", 1),
    "U8": ("uint8", 1),
    "I8": ("int8", 1),
    "I16": ("int16", 2),
    "U16": ("uint16", 2),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "I32": ("int32", 4),
    "U32": ("uint32", 4),
    "F32": ("float32", 4),
    "F64": ("float64", 8),
    "I64": ("int64", 8),
    "U64": ("uint64", 8),
    "F8_E4M3": ("float8_e4m3fn", 1),
    "F8_E5M2": ("float8_e5m2", 1),
}
INSTALL_HINT = "pip install 'introspect[safetensors]'"


@dataclasses.dataclass(frozen=True)
class TensorEntry:
    """One tensor the header declares: its bytes are ``[begin, end)`` of the data section."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclasses.dataclass(frozen=True)
class SafetensorsHeader:
    """A header that passed every check: entries sorted by offset, the free-text metadata, data size."""

    path: Path
    entries: tuple[TensorEntry, ...]
    metadata: dict[str, str]
    data_bytes: int

    @property
    def names(self) -> set[str]:
        return {entry.name for entry in self.entries}


def looks_like_safetensors(head: bytes, file_size: int) -> bool:
    """Whether the first bytes are a header length that fits the file followed by a JSON object."""
    if len(head) <= LENGTH_BYTES or file_size <= LENGTH_BYTES:
        return False
    length = int.from_bytes(head[:LENGTH_BYTES], "little")
    return 2 <= length and head[LENGTH_BYTES : LENGTH_BYTES + 1] == b"{"


def read_header(path: Path, budget: Budget) -> SafetensorsHeader:
    """Parse and check the header of ``path``; nothing of the data section is read.

    Raises:
        CheckpointError: the header is larger than the file, is not JSON, names a dtype it
            cannot hold, or declares byte ranges past the end, overlapping, or of the wrong size.
        BudgetError: the tensors would take more than the memory budget.
    """
    file_size = path.stat().st_size
    with open(path, "rb") as handle:
        length = int.from_bytes(handle.read(LENGTH_BYTES), "little")
        if length > MAX_HEADER_BYTES:
            raise CheckpointError(
                f"{path}: declares a safetensors header of {format_bytes(length)}, more than the "
                f"{format_bytes(MAX_HEADER_BYTES)} any real file has (forged or corrupted)"
            )
        if LENGTH_BYTES + length > file_size:
            raise CheckpointError(
                f"{path}: declares a safetensors header of {length:,} bytes, larger than the file "
                f"({file_size:,} bytes): truncated or forged"
            )
        raw = handle.read(length)
    header = _parsed_json(raw, path)
    metadata = _metadata(header.pop(METADATA_KEY, None), path)
    if len(header) > budget.max_tensors:
        raise BudgetError(f"{path}: holds {len(header):,} tensors, more than the {budget.max_tensors:,} allowed")
    entries = sorted((_entry(name, value, path) for name, value in header.items()), key=lambda e: (e.begin, e.end))
    data_bytes = file_size - LENGTH_BYTES - length
    _check_layout(entries, data_bytes, path)
    budget.check_bytes(sum(entry.end - entry.begin for entry in entries), f"{path}: its tensors")
    return SafetensorsHeader(path=path, entries=tuple(entries), metadata=metadata, data_bytes=data_bytes)


def _parsed_json(raw: bytes, path: Path) -> dict[str, Any]:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise CheckpointError(f"{path}: its safetensors header is not valid JSON (truncated or forged)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: its safetensors header is a {type(header).__name__}, not a JSON object")
    return header


def _metadata(value: Any, path: Path) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise CheckpointError(f"{path}: its safetensors {METADATA_KEY} is not a mapping of strings to strings")
    return value


def _entry(name: str, value: Any, path: Path) -> TensorEntry:
    where = f"{path}: tensor {name[:100]!r}"
    if not isinstance(value, dict):
        raise CheckpointError(f"{where} is declared by a {type(value).__name__}, not an object")
    dtype, shape, offsets = value.get("dtype"), value.get("shape"), value.get("data_offsets")
    if dtype not in DTYPES:
        known = ", ".join(DTYPES)
        raise CheckpointError(f"{where} has dtype {str(dtype)[:40]!r}, which introspect does not know ({known})")
    if not _ints(shape) or len(shape) > MAX_DIMENSIONS:
        raise CheckpointError(f"{where} has a malformed shape {str(shape)[:80]}")
    if not _ints(offsets) or len(offsets) != 2 or offsets[0] > offsets[1]:
        raise CheckpointError(f"{where} has malformed data_offsets {str(offsets)[:80]}")
    expected = math.prod(shape) * DTYPES[dtype][1]
    if offsets[1] - offsets[0] != expected:
        raise CheckpointError(
            f"{where} spans {offsets[1] - offsets[0]:,} bytes, but {dtype} of shape {list(shape)} takes {expected:,}"
        )
    return TensorEntry(name=name, dtype=dtype, shape=tuple(shape), begin=offsets[0], end=offsets[1])


def _ints(value: Any) -> bool:
    return isinstance(value, list) and all(type(item) is int and item >= 0 for item in value)


def _check_layout(entries: list[TensorEntry], data_bytes: int, path: Path) -> None:
    """The byte ranges tile the data section exactly, as the safetensors format requires."""
    position = 0
    for entry in entries:
        if entry.end > data_bytes:
            raise CheckpointError(
                f"{path}: tensor {entry.name[:100]!r} ends at byte {entry.end:,} of a data section of "
                f"{data_bytes:,} bytes (offsets past the end of the file)"
            )
        if entry.begin < position:
            raise CheckpointError(f"{path}: tensor {entry.name[:100]!r} overlaps the tensor before it")
        if entry.begin > position:
            raise CheckpointError(f"{path}: leaves bytes {position:,}-{entry.begin:,} unclaimed by any tensor")
        position = entry.end
    if position != data_bytes:
        raise CheckpointError(f"{path}: holds {data_bytes - position:,} bytes after its last tensor")


def read_tensors(header: SafetensorsHeader) -> dict[str, torch.Tensor]:
    """The tensors of a checked file, read by the safetensors library (no pickle, no code)."""
    try:
        from safetensors import safe_open
    except ImportError:
        raise CheckpointError(
            f"{header.path}: reading safetensors files needs the safetensors package ({INSTALL_HINT})"
        ) from None
    try:
        with safe_open(str(header.path), framework="pt", device="cpu") as handle:
            # Copies, so that the file's memory map is released when the reader closes.
            return {entry.name: handle.get_tensor(entry.name).clone() for entry in header.entries}
    except Exception as error:  # the library raises its own error type for every broken file
        raise CheckpointError(
            f"{header.path}: cannot be read as safetensors ({type(error).__name__}: {error})"
        ) from None


def read_safetensors(path: Path, budget: Budget) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and free-text metadata of one safetensors file, its header checked first."""
    header = read_header(path, budget)
    return read_tensors(header), header.metadata
