"""A checked ``torch.save`` zip built from its stub tree, without unpickling it a second time.

Once :mod:`introspect.readers.pickle_scan` has read the pickle into stubs and every view passed
:func:`~introspect.readers.tensors.check_views`, the stub tree already says everything
``torch.load(weights_only=True)`` would build: each storage's key, type and size, and each
tensor's offset, size and stride. When the tree holds nothing but plain values, dicts, lists,
tuples, ``OrderedDict`` and ``_rebuild_tensor_v2`` of CPU storages, :func:`rebuild_payload`
builds the same objects the way torch's ``_rebuild_tensor_v2`` does (one storage per key, shared
by its tensors, each tensor ``set_`` onto it), from the bytes of the zip's records. Anything else
(another global, a v3 rebuild, a big-endian file, a compressed or odd record) returns
:data:`UNSUPPORTED`, and the caller runs ``torch.load`` instead.
"""

from __future__ import annotations

import collections
import mmap
import struct
import sys
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from introspect._lazy import lazy_import
from introspect.readers.archive import Archive
from introspect.readers.pickle_scan import PickleScan, StorageRef, Stub
from introspect.readers.tensors import storage_dtype

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")

#: Returned when the file holds something only ``torch.load`` should build.
UNSUPPORTED: Any = object()
_REBUILD_V2 = "torch._utils._rebuild_tensor_v2"
_ORDERED_DICT = "collections.OrderedDict"
#: Containers nested deeper than this go to ``torch.load`` (state dicts nest a few levels).
_MAX_DEPTH = 64
_PLAIN_TYPES = frozenset({str, int, float, bool, bytes, type(None)})
_LOCAL_HEADER = struct.Struct("<4s22xHH")
_LOCAL_SIGNATURE = b"PK\x03\x04"


class _Unsupported(Exception):
    """The stub tree holds something this module does not build."""


def rebuild_payload(archive: Archive, scan: PickleScan) -> Any:
    """What ``torch.load(weights_only=True)`` returns for ``archive``, or :data:`UNSUPPORTED`.

    Call only after ``scan`` passed the checks against ``archive`` and the budget.
    """
    if not _is_supported_file(archive, scan):
        return UNSUPPORTED
    try:
        with _record_bytes(archive) as record:
            builder = _Builder(archive, scan, record)
            return builder.build(scan.root, 0)
    except (_Unsupported, RuntimeError, ValueError, TypeError, OverflowError, OSError, struct.error, KeyError):
        return UNSUPPORTED  # torch.load decides, and explains any failure in its own words


def _is_supported_file(archive: Archive, scan: PickleScan) -> bool:
    """Little-endian records, and a pickle naming only globals this module builds exactly as torch does."""
    if sys.byteorder != "little" or archive.sizes.get("byteorder") != len(b"little"):
        return False
    if archive.read("byteorder") != b"little":
        return False
    storage_types = {ref.dtype_name for ref in scan.storages.values()}
    return scan.globals_named <= {_REBUILD_V2, _ORDERED_DICT, *storage_types}


@contextmanager
def _record_bytes(archive: Archive) -> Iterator[memoryview]:
    """The whole archive as read-only bytes, without copying a file (it is mapped)."""
    if isinstance(archive.source, bytes):
        yield memoryview(archive.source)
        return
    with open(Path(archive.source), "rb") as handle:
        if handle.seek(0, 2) == 0:
            raise _Unsupported("an empty file")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                yield view
            finally:
                view.release()  # the map cannot close while a view of it is alive


class _Builder:
    """Builds the objects of one stub tree; each object once, so shared ones stay shared."""

    def __init__(self, archive: Archive, scan: PickleScan, record: memoryview) -> None:
        self.archive = archive
        self.record = record
        self.views = {id(stub): view for stub, view in zip(scan.tensor_stubs, scan.tensors)}
        self.first_refs = scan.storages
        self.built: dict[int, Any] = {}
        self.storages: dict[str, tuple[torch.UntypedStorage, torch.dtype]] = {}
        self.in_progress: set[int] = set()
        # Looked up once: each look-up through the lazy torch module costs a Python call.
        self.empty, self.untyped_storage, self.uint8 = torch.empty, torch.UntypedStorage, torch.uint8

    def build(self, value: Any, depth: int) -> Any:
        """The object ``value`` stands for."""
        if type(value) in _PLAIN_TYPES:
            return value
        if id(value) in self.built:
            return self.built[id(value)]
        if depth > _MAX_DEPTH or id(value) in self.in_progress:  # a cycle: leave it to torch
            raise _Unsupported("too deep or cyclic")
        self.in_progress.add(id(value))
        result = self._build_container(value, depth + 1)
        self.in_progress.discard(id(value))
        self.built[id(value)] = result
        return result

    def _build_container(self, value: Any, depth: int) -> Any:
        kind = type(value)
        if kind is dict:
            return {self.build(key, depth): self.build(item, depth) for key, item in value.items()}
        if kind is list:
            return [self.build(item, depth) for item in value]
        if kind is tuple:
            return tuple(self.build(item, depth) for item in value)
        if isinstance(value, Stub) and value.qualname == _ORDERED_DICT:
            return self._ordered_dict(value, depth)
        if isinstance(value, Stub) and value.qualname == _REBUILD_V2 and id(value) in self.views:
            return self._tensor(value, depth)
        raise _Unsupported(f"a {kind.__name__}")

    def _ordered_dict(self, stub: Stub, depth: int) -> collections.OrderedDict[Any, Any]:
        """``OrderedDict()`` filled by SETITEM(S), its BUILD state (``_metadata``) set as attributes."""
        if stub.args or stub.appended or not (stub.state is None or type(stub.state) is dict):
            raise _Unsupported("an OrderedDict built in an unusual way")
        result: collections.OrderedDict[Any, Any] = collections.OrderedDict()
        for key, item in stub.items:
            result[self.build(key, depth)] = self.build(item, depth)
        if stub.state:
            result.__dict__.update(self.build(stub.state, depth))
        return result

    def _tensor(self, stub: Stub, depth: int) -> torch.Tensor:
        """``_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks)``, as torch runs it."""
        view = self.views[id(stub)]
        args = stub.args
        if stub.state is not None or stub.items or len(args) != 6 or type(args[4]) is not bool:
            raise _Unsupported("a tensor rebuilt with metadata or state")
        if not all(type(number) is int for number in (args[1], *args[2], *args[3])):
            raise _Unsupported("a size or stride that is not plain integers")
        storage, dtype = self._storage(view.storage)
        tensor = self.empty((0,), dtype=dtype).set_(storage, view.offset, view.size, view.stride)
        if args[4]:
            tensor.requires_grad = True
        tensor._backward_hooks = self.build(args[5], depth)  # torch.load sets them too (an empty OrderedDict)
        return tensor

    def _storage(self, ref: StorageRef) -> tuple[torch.UntypedStorage, torch.dtype]:
        """The storage of key ``ref.key``: one per key, as ``torch.load`` shares it (empty ones it does not)."""
        first = self.first_refs.get(ref.key)
        if not (first is ref or first == ref) or ref.location != "cpu":
            raise _Unsupported("a storage declared twice differently, or not on the CPU")
        if ref.key in self.storages:
            return self.storages[ref.key]
        dtype = storage_dtype(ref, "")
        data = self._record(f"data/{ref.key}")
        if not data.nbytes:
            return self.untyped_storage(0), dtype
        found = self.untyped_storage.from_buffer(data, dtype=self.uint8), dtype  # a copy: the map closes after
        self.storages[ref.key] = found
        return found

    def _record(self, name: str) -> memoryview:
        """The bytes of a stored (uncompressed) zip record, read where its local header says, CRC checked."""
        info = self.archive.zip.getinfo(self.archive.root + name)
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:  # compressed or encrypted
            raise _Unsupported("a compressed record")
        header = info.header_offset
        signature, name_length, extra_length = _LOCAL_HEADER.unpack_from(self.record, header)
        start = header + _LOCAL_HEADER.size + name_length + extra_length
        local_name = self.record[header + _LOCAL_HEADER.size : header + _LOCAL_HEADER.size + name_length]
        if signature != _LOCAL_SIGNATURE or local_name != info.orig_filename.encode():
            raise _Unsupported("a record whose local header disagrees with the directory")
        data = self.record[start : start + info.file_size]
        if data.nbytes != info.file_size or zlib.crc32(data) != info.CRC:
            raise _Unsupported("a truncated or corrupted record")
        return data
