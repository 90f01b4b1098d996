"""The weights of a TorchScript archive, read without running it.

``torch.jit.load`` runs the archive's code: its ``__setstate__`` methods at load time, and its
``forward`` later. TorchScript can read and write files (``torch.from_file``), so a scripted
model is code, and runs only with ``--trust-code``. Its weights need no code: ``data.pkl``
is read into inert stubs, whose attributes name the module tree, and each tensor is built from
its storage's raw bytes after its view passed the checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from introspect._lazy import lazy_import
from introspect.budget import Budget
from introspect.errors import CheckpointError
from introspect.readers.archive import TORCHSCRIPT, Archive, open_archive
from introspect.readers.pickle_scan import TENSOR_REBUILDERS, Stub, scan_pickle, tensor_view_from
from introspect.readers.tensors import check_views, flat_tensor, storage_dtype, strided_view

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")

#: Module attributes that are bookkeeping, not weights.
_SKIPPED_ATTRIBUTES = frozenset({"training", "_is_full_backward_hook"})


def read_scripted_weights(path: Path, budget: Budget) -> dict[str, torch.Tensor]:
    """Named tensors of a TorchScript archive (``conv1.weight``...), without running any of it."""
    archive = open_archive(path, budget)
    if archive.kind != TORCHSCRIPT:
        raise CheckpointError(f"{path}: is not a TorchScript archive")
    scan = scan_pickle(archive.read("data.pkl"), budget, what=str(path))
    sizes = {key: archive.sizes.get(f"data/{key}") for key in scan.storages}
    if any(size is None for size in sizes.values()):
        raise CheckpointError(f"{path}: refers to a storage that the archive does not hold")
    check_views(scan.tensors, sizes, budget, str(path))  # type: ignore[arg-type]
    named = dict(_named_tensor_stubs(scan.root))
    flats: dict[str, torch.Tensor] = {}  # tensors sharing a storage share its bytes, as in the file
    return {name: _build(stub, archive, flats, str(path)) for name, stub in named.items()}


def _named_tensor_stubs(root: Any) -> list[tuple[str, Stub]]:
    """(dotted name, tensor stub) for every tensor attribute in the module tree, in file order."""
    found: list[tuple[str, Stub]] = []
    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [("", root)]
    while stack:
        prefix, value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, Stub) and value.qualname in TENSOR_REBUILDERS:
            found.append((prefix, value))
            continue
        stack.extend(reversed(_attributes(prefix, value)))
    return found


def _attributes(prefix: str, value: Any) -> list[tuple[str, Any]]:
    """Named children of a module stub (its state dict) or of a container inside one."""
    if isinstance(value, Stub):
        value = value.state
    if isinstance(value, dict):
        pairs = [(str(key), child) for key, child in value.items() if key not in _SKIPPED_ATTRIBUTES]
    elif isinstance(value, (list, tuple)):
        pairs = [(str(index), child) for index, child in enumerate(value)]
    else:
        return []
    return [(f"{prefix}.{key}" if prefix else key, child) for key, child in pairs]


def _build(stub: Stub, archive: Archive, flats: dict[str, torch.Tensor], what: str) -> torch.Tensor:
    view = tensor_view_from(stub, what)
    key = view.storage.key
    if key not in flats:
        flats[key] = flat_tensor(archive.read(f"data/{key}"), storage_dtype(view.storage, what), what)
    return strided_view(flats[key], view.size, view.stride, view.offset, what)
