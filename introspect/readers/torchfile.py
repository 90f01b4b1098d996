"""``torch.save`` files read safely: sizes checked first, then ``torch.load(weights_only=True)``.

``weights_only`` keeps the file from naming code, but it trusts the sizes the file declares.
Here the pickle is first read into inert stubs (:mod:`introspect.readers.pickle_scan`) so that
every storage and tensor view is checked against the real bytes and the budget; only then are
the tensors built: from the stub tree when it holds nothing else, by torch otherwise.
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from introspect._lazy import lazy_import
from introspect.budget import Budget, BudgetError
from introspect.errors import CheckpointError
from introspect.readers.archive import TORCH_LEGACY, TORCH_ZIP, Archive, open_archive
from introspect.readers.pickle_scan import PickleScan, StubUnpickler, collect, scan_pickle
from introspect.readers.rebuild import UNSUPPORTED, rebuild_payload
from introspect.readers.tensors import check_views, storage_dtype

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")

#: The small pickles that precede the main one in torch's legacy format.
_LEGACY_PREAMBLE = 3


def read_torch_file(path: Path, kind: str, budget: Budget) -> Any:
    """Load a ``torch-zip`` or ``torch-legacy`` file after its sizes passed the budget.

    A zip whose pickle holds only tensors and plain containers is built from its checked stub
    tree (:mod:`introspect.readers.rebuild`); any other goes through ``torch.load``.
    """
    if kind == TORCH_ZIP:
        payload = rebuild_payload(*check_zip_pickle(path, budget))
        return load_weights_only(path, path) if payload is UNSUPPORTED else payload
    if kind == TORCH_LEGACY:
        check_legacy_pickle(path, budget)
        return load_weights_only(path, path)
    raise CheckpointError(f"{path}: is a {kind} archive, not a file torch.save writes")


def read_torch_bytes(data: bytes, budget: Budget, what: str) -> Any:
    """The same for a ``torch.save`` zip nested in another archive (an export's sample inputs)."""
    payload = rebuild_payload(*check_zip_pickle(Path(what), budget, source=data))
    return load_weights_only(io.BytesIO(data), Path(what)) if payload is UNSUPPORTED else payload


def check_zip_pickle(path: Path, budget: Budget, source: bytes | None = None) -> tuple[Archive, PickleScan]:
    """Every tensor view of a torch zip fits its stored bytes, and all of it fits the budget.

    Returns:
        the archive and its scanned pickle, for building the tensors from.
    """
    archive = open_archive(path, budget, source)
    if archive.kind != TORCH_ZIP:
        raise CheckpointError(f"{path}: is a {archive.kind} archive, not a file torch.save writes")
    scan = scan_pickle(archive.read("data.pkl"), budget, what=str(path))
    sizes = {key: archive.sizes.get(f"data/{key}") for key in scan.storages}
    missing = [key for key, size in sizes.items() if size is None]
    if missing:
        raise CheckpointError(f"{path}: refers to storage {missing[0]!r}, which the archive does not hold")
    check_views(scan.tensors, sizes, budget, str(path))  # type: ignore[arg-type]
    return archive, scan


def check_legacy_pickle(path: Path, budget: Budget) -> None:
    """The legacy format declares each storage's size before its bytes: check them all first."""
    with open(path, "rb") as handle:
        for _ in range(_LEGACY_PREAMBLE):
            _load_stub(handle, path)
        main = StubUnpickler(handle)
        try:
            root = main.load()
        except CheckpointError:
            raise
        except Exception as error:
            raise CheckpointError(f"{path}: is truncated or corrupted ({type(error).__name__})") from None
        remaining = path.stat().st_size - handle.tell()
    scan = collect(root, main, budget, str(path))
    declared = {key: ref.numel * storage_dtype(ref, str(path)).itemsize for key, ref in scan.storages.items()}
    if sum(declared.values()) > remaining:
        raise CheckpointError(f"{path}: declares more storage bytes than the file holds (truncated or crafted)")
    check_views(scan.tensors, declared, budget, str(path))


def _load_stub(handle: IO[bytes], path: Path) -> Any:
    try:
        return StubUnpickler(handle).load()
    except Exception as error:
        raise CheckpointError(f"{path}: is truncated or corrupted ({type(error).__name__})") from None


def load_weights_only(source: Path | IO[bytes], path: Path) -> Any:
    """``torch.load(weights_only=True)`` with every failure turned into one clear sentence."""
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except (MemoryError, RecursionError) as error:
        raise BudgetError(f"{path}: builds more than can be read safely ({type(error).__name__})") from None
    except Exception as error:  # torch raises many types for broken files
        raise explain_load_failure(path, error) from None


def explain_load_failure(path: Path, error: BaseException) -> CheckpointError:
    """One sentence for why ``torch.load`` refused or failed on ``path``."""
    message = str(error)
    unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", message) or re.search(r"GLOBAL ([\w.]+)", message)
    if unsafe or "Weights only load failed" in message:
        name = unsafe.group(1) if unsafe else "a Python object"
        return CheckpointError(
            f"{path}: contains pickled Python objects ({name}); unpickling them could run code, so "
            "it was not loaded. If you trust where the file came from, pass --trust-code."
        )
    if isinstance(error, pickle.UnpicklingError) or any(
        word in message for word in ("central directory", "truncated", "EOF", "unexpected end", "Ran out of input")
    ):
        return CheckpointError(
            f"{path}: is truncated or corrupted ({message.splitlines()[0] if message else type(error).__name__})"
        )
    first_line = message.splitlines()[0][:200] if message else ""
    return CheckpointError(f"{path}: cannot be read as a checkpoint ({type(error).__name__}: {first_line})")
