"""Reading a pickle without running it: every global it names becomes an inert stand-in.

``torch.load(weights_only=True)`` refuses unknown globals, but it allocates each storage at the
size the file declares, and it cannot read TorchScript's pickles at all. This module unpickles
with :class:`StubUnpickler`, whose ``find_class`` never imports anything: a global is replaced by
a :class:`Stub` class that records how it was called. Walking the result tells which globals the
file names, which storages it declares and which tensor views it builds on them, so all of that
can be checked against the budget before a single tensor is allocated.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
from typing import Any

from introspect.budget import Budget, BudgetError
from introspect.errors import CheckpointError

#: Depth of nested objects a pickle may build; a module tree of a deep network stays far below.
MAX_PICKLE_DEPTH = 256
TENSOR_REBUILDERS = frozenset({"torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3"})
_REBUILD_V3 = "torch._utils._rebuild_tensor_v3"
_STORAGE_SUFFIX = "Storage"


class Stub:
    """An inert stand-in for an object the pickle names: it records its calls and its state."""

    qualname = "?"
    #: Set on the classes of tensor rebuilders: every instance is recorded there as it is made.
    created: list[Stub] | None = None
    #: Whether APPEND or APPENDS added to ``items`` (SETITEM(S) add pairs): a dict does not take them.
    appended = False

    args: tuple[Any, ...]
    # Class-level until first set: a file makes hundreds of thousands of stubs, most never filled.
    state: Any = None
    items: list[Any] | tuple[()] = ()

    # Both REDUCE (``cls(*args)``) and NEWOBJ (``cls.__new__(cls, *args)``) arrive here.
    def __new__(cls, *args: Any) -> Stub:
        instance = super().__new__(cls)
        instance.args = args
        if cls.created is not None:
            cls.created.append(instance)
        return instance

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __call__(self, *args: Any) -> Stub:  # a stub returned by a stub (``getattr(cls, name)``) may be called
        return Stub(self, *args)

    def _own_items(self) -> list[Any]:
        if type(self.items) is not list:
            self.items = []
        return self.items  # type: ignore[return-value]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._own_items().append((key, value))

    def append(self, value: Any) -> None:
        self.appended = True
        self._own_items().append(value)

    def extend(self, values: Any) -> None:
        self.appended = True
        self._own_items().extend(values)


@dataclasses.dataclass(frozen=True)
class StorageRef:
    """A storage the pickle refers to by key; its bytes live outside the pickle."""

    key: str
    dtype_name: str
    numel: int
    location: str


@dataclasses.dataclass(frozen=True)
class TensorView:
    """A tensor the pickle builds: a strided view of one storage."""

    storage: StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    dtype_name: str = ""  # set when the tensor's dtype differs from its storage's (untyped storages)

    @property
    def numel(self) -> int:
        count = 1
        for extent in self.size:
            count *= extent
        return count

    def last_element(self) -> int:
        """Index of the highest storage element the view touches (-1 for an empty view)."""
        if self.numel == 0:
            return -1
        return self.offset + sum((extent - 1) * step for extent, step in zip(self.size, self.stride))


class StubUnpickler(pickle.Unpickler):
    """Unpickles with every global replaced by a :class:`Stub` subclass and storages by refs.

    Every tensor rebuild and every storage reference is recorded as the pickle makes it, reachable
    from the result or not: ``torch.load`` runs each REDUCE and loads each storage it meets, so
    each of them must pass the checks, not only those the result holds.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.globals_named: set[str] = set()
        self.tensor_stubs: list[Stub] = []
        self.storage_refs: list[StorageRef] = []
        self._classes: dict[str, type[Stub]] = {}

    def find_class(self, module: str, name: str) -> type[Stub]:
        qualname = f"{module}.{name}"
        self.globals_named.add(qualname)
        if qualname not in self._classes:
            created = self.tensor_stubs if qualname in TENSOR_REBUILDERS else None
            self._classes[qualname] = type("Stub", (Stub,), {"qualname": qualname, "created": created})
        return self._classes[qualname]

    def persistent_load(self, pid: Any) -> Any:
        ref = storage_ref_from(pid)
        self.storage_refs.append(ref)
        return ref


def storage_ref_from(pid: Any) -> StorageRef:
    """The storage named by a persistent id ``('storage', StorageType, key, location, numel, ...)``."""
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
        raise CheckpointError(f"the pickle refers to an external object {str(pid)[:80]!r} that is not a storage")
    storage_type, key, location, numel = pid[1], pid[2], pid[3], pid[4]
    dtype_name = getattr(storage_type, "qualname", "")
    if not (isinstance(key, str) and isinstance(numel, int) and numel >= 0 and dtype_name.endswith(_STORAGE_SUFFIX)):
        raise CheckpointError(f"the pickle declares a malformed storage {str(pid)[:80]!r}")
    return StorageRef(key=key, dtype_name=dtype_name, numel=numel, location=str(location))


@dataclasses.dataclass
class PickleScan:
    """What a pickle names and builds, without any of it having run.

    Attributes:
        storages: the first reference to each storage key (``torch.load`` keeps the first too).
        tensors: every tensor view the pickle rebuilds, in the order it rebuilds them.
        tensor_stubs: the stub of each of ``tensors``, at the same index.
    """

    root: Any
    globals_named: set[str]
    storages: dict[str, StorageRef]
    tensors: list[TensorView]
    tensor_stubs: list[Stub] = dataclasses.field(default_factory=list)


def scan_pickle(data: bytes, budget: Budget, *, what: str) -> PickleScan:
    """Unpickle ``data`` into stubs and collect its storages and tensor views.

    Raises:
        CheckpointError: the pickle is malformed, too deeply nested, or declares more tensors
            than the budget allows.
    """
    unpickler = StubUnpickler(io.BytesIO(data))
    try:
        root = unpickler.load()
    except CheckpointError:
        raise
    except (MemoryError, RecursionError) as error:
        raise BudgetError(f"{what}: the pickle builds more than can be read safely ({type(error).__name__})") from None
    except Exception as error:  # a malformed pickle raises many types
        raise CheckpointError(
            f"{what}: is truncated or corrupted ({type(error).__name__}: {str(error)[:120]})"
        ) from None
    return collect(root, unpickler, budget, what)


def collect(root: Any, unpickler: StubUnpickler, budget: Budget, what: str) -> PickleScan:
    """The storages and tensor views an unpickled stub tree was built with, its nesting checked."""
    check_depth(root, what)
    if len(unpickler.tensor_stubs) > budget.max_tensors:
        raise BudgetError(f"{what}: holds more than {budget.max_tensors} tensors")
    storages: dict[str, StorageRef] = {}
    for ref in unpickler.storage_refs:
        storages.setdefault(ref.key, ref)
    tensors = [tensor_view_from(stub, what) for stub in unpickler.tensor_stubs]
    return PickleScan(
        root=root,
        globals_named=unpickler.globals_named,
        storages=storages,
        tensors=tensors,
        tensor_stubs=list(unpickler.tensor_stubs),
    )


#: Values that hold nothing: the walk does not visit them (a file holds millions of them).
_LEAF_TYPES = frozenset({str, int, float, bool, bytes, bytearray, complex, type(None), StorageRef})


def check_depth(root: Any, what: str, max_depth: int = MAX_PICKLE_DEPTH) -> None:
    """Refuse a stub tree that nests containers deeper than ``max_depth``.

    Level by level, each object at the first depth it is reached, without recursion.
    """
    seen = {id(root)}
    level = [root]
    for _ in range(max_depth + 1):
        found = [child for value in level for child in children(value) if type(child) not in _LEAF_TYPES]
        level = [child for child in found if id(child) not in seen and not seen.add(id(child))]  # type: ignore[func-returns-value]
        if not level:
            return
    raise BudgetError(f"{what}: nests objects deeper than {max_depth} levels")


def children(value: Any) -> list[Any]:
    """The objects ``value`` holds directly (containers and stubs only)."""
    if isinstance(value, dict):
        return [*value.keys(), *value.values()]
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value)
    if isinstance(value, Stub):
        return [*value.args, value.state, *value.items]
    return []


def tensor_view_from(stub: Stub, what: str) -> TensorView:
    """The view ``_rebuild_tensor_v2(storage, offset, size, stride, ...)`` would build."""
    args = stub.args[0] if len(stub.args) == 1 and isinstance(stub.args[0], tuple) else stub.args
    try:
        storage, offset, size, stride = args[0], args[1], tuple(args[2]), tuple(args[3])
    except (IndexError, TypeError):
        raise CheckpointError(f"{what}: declares a malformed tensor") from None
    numbers = (offset, *size, *stride)
    if not isinstance(storage, StorageRef) or not all(isinstance(n, int) and n >= 0 for n in numbers):
        raise CheckpointError(f"{what}: declares a tensor with a malformed storage, offset, size or stride")
    if len(size) != len(stride):
        raise CheckpointError(f"{what}: declares a tensor whose size and stride differ in length")
    dtype_name = ""
    if stub.qualname == _REBUILD_V3:
        dtype_name = getattr(args[6] if len(args) > 6 else None, "qualname", "")
        if not dtype_name:
            raise CheckpointError(f"{what}: declares a tensor without a dtype")
    return TensorView(storage=storage, offset=offset, size=size, stride=stride, dtype_name=dtype_name)
