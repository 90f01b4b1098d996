"""Checking declared tensors against their storages, and building tensors from raw bytes.

A tensor in a file is a view: a storage (bytes), an offset, a size and a stride. A stride of 0
lets a one-element storage pose as a tensor of ten billion elements, which costs nothing until
something reads it all. Every view is checked here: it must stay inside its storage, and the
elements it poses as must fit the budget.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from introspect._lazy import lazy_import
from introspect.budget import Budget
from introspect.errors import CheckpointError
from introspect.readers.pickle_scan import StorageRef, TensorView

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")


@functools.cache
def _dtypes_by_qualname() -> dict[str, torch.dtype]:
    """Every storage type and dtype name a pickle may use, looked up once (torch's attributes are slow)."""
    import torch as loaded_torch  # the module itself: ``vars`` of the lazy stand-in would be empty

    table = {f"{module}.UntypedStorage": torch.uint8 for module in ("torch", "torch.storage")}
    for dtype, storage in torch.storage._dtype_to_storage_type_map().items():
        table[f"torch.{storage}"] = dtype
    for name, value in vars(loaded_torch).items():  # dir(torch) leaves some dtypes out
        if isinstance(value, torch.dtype):
            table[f"torch.{name}"] = value
    return table


def dtype_named(qualname: str, what: str) -> torch.dtype:
    """The dtype a pickle names: a storage type (``torch.FloatStorage``) or a dtype (``torch.float8_e4m3fn``)."""
    dtype = _dtypes_by_qualname().get(qualname)
    if dtype is None:
        raise CheckpointError(f"{what}: declares a tensor of unknown type {qualname[:80]!r}")
    return dtype


def storage_dtype(ref: StorageRef, what: str) -> torch.dtype:
    """The element type of a storage."""
    return dtype_named(ref.dtype_name, what)


def check_views(views: Iterable[TensorView], storage_bytes: Mapping[str, int], budget: Budget, what: str) -> int:
    """Check every view against the real size of its storage; returns the bytes they pose as.

    Args:
        views: the tensors a pickle declares.
        storage_bytes: the real size in bytes of each storage, by key.
        budget: the limits.
        what: names the file in messages.

    Raises:
        CheckpointError: a view reaches outside its storage, or a storage is missing or differs
            from its declared size.
        BudgetError: the storages and the views that pose as more than their storage exceed the
            memory budget.
    """
    total = sum(storage_bytes.values())
    itemsizes = {name: dtype.itemsize for name, dtype in _dtypes_by_qualname().items()}
    for view in views:
        storage = view.storage
        real = storage_bytes.get(storage.key)
        if real is None:
            raise CheckpointError(f"{what}: a tensor refers to storage {storage.key!r}, which the file does not hold")
        stored = _itemsize(itemsizes, storage.dtype_name, what) * storage.numel
        if real != stored:
            raise CheckpointError(f"{what}: storage {storage.key!r} holds {real} bytes but declares {stored}")
        itemsize = _itemsize(itemsizes, view.dtype_name, what) if view.dtype_name else stored // max(storage.numel, 1)
        if (view.last_element() + 1) * itemsize > real:
            raise CheckpointError(
                f"{what}: a tensor of size {list(view.size)[:8]} reaches outside its storage of {real} bytes"
            )
        posed = view.numel * itemsize
        if posed > real:  # overlapping strides (stride 0): reading it all costs its full size
            total += posed
    budget.check_bytes(total, what)
    return total


def _itemsize(itemsizes: Mapping[str, int], qualname: str, what: str) -> int:
    size = itemsizes.get(qualname)
    return size if size is not None else dtype_named(qualname, what).itemsize


def flat_tensor(data: bytes, dtype: torch.dtype, what: str) -> torch.Tensor:
    """A 1-D tensor over raw little-endian bytes."""
    if len(data) % dtype.itemsize:
        raise CheckpointError(f"{what}: holds {len(data)} bytes, not a whole number of {dtype} elements")
    return torch.frombuffer(bytearray(data), dtype=dtype) if data else torch.empty(0, dtype=dtype)


def strided_view(
    flat: torch.Tensor, size: tuple[int, ...], stride: tuple[int, ...], offset: int, what: str
) -> torch.Tensor:
    """``flat`` seen through (size, stride, offset), after checking the view stays inside it."""
    view = TensorView(storage=StorageRef("", "", flat.numel(), "cpu"), offset=offset, size=size, stride=stride)
    if len(size) != len(stride) or min((*size, *stride, offset), default=0) < 0 or view.last_element() >= flat.numel():
        raise CheckpointError(
            f"{what}: a tensor of size {list(size)[:8]} does not fit its {flat.numel()} stored elements"
        )
    return torch.as_strided(flat, size, stride, offset)


def check_loaded_tensor(name: str, tensor: torch.Tensor, what: str) -> torch.Tensor:
    """A weight the analyzers can read: dense, with values, of a real or integer dtype.

    float8 weights are widened to float32 (they are a storage format, not a compute one).

    Raises:
        CheckpointError: a meta, sparse, quantized or complex tensor, named.
    """
    if tensor.is_meta:
        raise CheckpointError(f"{what}: weight {name!r} is on the meta device and holds no values")
    if tensor.layout != torch.strided:
        raise CheckpointError(
            f"{what}: weight {name!r} is a {tensor.layout} tensor; only dense weights can be analyzed"
        )
    if tensor.is_quantized or tensor.is_complex():
        raise CheckpointError(f"{what}: weight {name!r} has dtype {tensor.dtype}, which introspect cannot analyze")
    if tensor.dtype.is_floating_point and tensor.dtype.itemsize == 1:
        return tensor.float()
    return tensor
