"""Sharded safetensors checkpoints: a ``*.safetensors.index.json`` naming the shard of each tensor.

The index is the file's word too: its shard names may only be plain file names in the index's own
folder (never a path elsewhere), every shard's header is checked before any tensor is read, and
all shards together must fit the memory budget.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from introspect.budget import Budget
from introspect.errors import CheckpointError
from introspect.readers.archive import check_regular_file
from introspect.readers.safetensors_file import SafetensorsHeader, read_header, read_tensors

if TYPE_CHECKING:
    import torch

#: An index lists one line per tensor; a few MiB covers the largest models published.
MAX_INDEX_BYTES = 64 << 20
MAX_SHARDS = 10_000
INDEX_SUFFIX = ".safetensors.index.json"


def read_json_file(path: Path, max_bytes: int, what: str) -> dict[str, Any]:
    """A small JSON object file, refused when larger than ``max_bytes`` or not an object."""
    check_regular_file(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise CheckpointError(f"{path}: the {what} is {size:,} bytes, more than the {max_bytes:,} allowed")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise CheckpointError(f"{path}: the {what} is not valid JSON ({type(error).__name__})") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: the {what} is a JSON {type(value).__name__}, not an object")
    return value


def is_index(value: dict[str, Any]) -> bool:
    """Whether a JSON object is a sharded checkpoint's index (it has a ``weight_map``)."""
    return isinstance(value.get("weight_map"), dict)


def shard_map(index_path: Path) -> dict[str, list[str]]:
    """Shard file name → the tensor names the index places in it, after checking every name."""
    index = read_json_file(index_path, MAX_INDEX_BYTES, "shard index")
    weight_map = index.get("weight_map")
    if not is_index(index):
        raise CheckpointError(f"{index_path}: is a JSON file without a weight_map, so not a sharded checkpoint")
    shards: dict[str, list[str]] = {}
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or not _plain_file_name(shard):
            raise CheckpointError(
                f"{index_path}: places {name[:100]!r} in {str(shard)[:100]!r}, which is not a file name in the "
                "index's own folder"
            )
        shards.setdefault(shard, []).append(name)
    if not shards:
        raise CheckpointError(f"{index_path}: its weight_map names no tensors")
    if len(shards) > MAX_SHARDS:
        raise CheckpointError(f"{index_path}: names {len(shards):,} shards, more than the {MAX_SHARDS:,} allowed")
    return shards


def _plain_file_name(name: str) -> bool:
    return bool(name) and name == Path(name).name and name not in (".", "..") and "\\" not in name


def read_sharded(index_path: Path, budget: Budget) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Every tensor of a sharded checkpoint, and facts about it (shard count).

    Raises:
        CheckpointError: a shard is missing, a shard's header is forged, or a shard lacks a
            tensor the index places in it.
        BudgetError: the shards together exceed the memory budget.
    """
    headers = _checked_headers(index_path, shard_map(index_path), budget)
    tensors: dict[str, torch.Tensor] = {}
    for header in headers:
        tensors.update(read_tensors(header))
    return tensors, {"shards": len(headers)}


def _checked_headers(index_path: Path, shards: dict[str, list[str]], budget: Budget) -> list[SafetensorsHeader]:
    headers, total, seen = [], 0, set()
    for shard, names in shards.items():
        check_regular_file(index_path.parent / shard)
        header = read_header(index_path.parent / shard, budget)
        lacking = sorted(set(names) - header.names)
        if lacking:
            raise CheckpointError(f"{index_path}: places {lacking[0][:100]!r} in {shard}, which does not hold it")
        repeated = seen & header.names
        if repeated:
            raise CheckpointError(f"{index_path}: tensor {sorted(repeated)[0][:100]!r} is in more than one shard")
        seen |= header.names
        total += sum(entry.end - entry.begin for entry in header.entries)
        budget.check_bytes(total, f"{index_path}: the shards' tensors")
        headers.append(header)
    return headers


def index_naming(shard_path: Path) -> Path | None:
    """The index in a shard's folder that names it, if there is one (so any shard loads the whole)."""
    for candidate in sorted(shard_path.parent.glob(f"*{INDEX_SUFFIX}")):
        try:
            if shard_path.name in shard_map(candidate):
                return candidate
        except CheckpointError:
            continue
    return None
