"""Resumable dataset passes: the reducers' states written to disk as the pass goes, read back by ``--resume``.

A long pass (a whole split through a large model) should not start again from zero after Ctrl-C
or a killed process. While the local executor streams the data, it writes a record every
:data:`RECORD_INTERVAL_S` seconds: how many inputs were reduced, and every reducer's state. The
record is the pass's own numbers, not a pickle: a JSON tree with the arrays beside it in an
``.npz`` read with ``allow_pickle=False``, rebuilt only into the reducer classes this run made
itself, so a record file can no more run code than a checkpoint can. A record is used only by a run
of the same model, data, limit, batch size, analyzers and options (its fingerprint); anything else
starts afresh and says why. The record is removed once the pass completes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from introspect.dataset import reducers as reducer_classes

if TYPE_CHECKING:
    from torch import nn

#: Seconds between two records of a pass; a record costs one write of the reducers' bounded state.
RECORD_INTERVAL_S = 10.0
RECORD_NAME = "dataset-pass.json"
ARRAYS_NAME = "dataset-pass.npz"
#: A record's JSON tree is the reducers' bounded state; anything larger was not written by introspect.
MAX_RECORD_BYTES = 64 * 2**20


class RecordError(ValueError):
    """A record that cannot be used (another run's, damaged, or holding an unknown class)."""


@dataclasses.dataclass(frozen=True)
class Resumed:
    """Reducers rebuilt from a record, and how many inputs (the first ones, in index order) they hold."""

    reducers: dict[str, Any]
    seen: int


def default_record_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Where the pass of a run writing ``out_dir`` keeps its record: a hidden folder beside the gallery."""
    target = Path(out_dir)
    return target.parent / f".{target.name}.introspect-resume"


def fingerprint(model: nn.Module, parts: Iterable[Any]) -> str:
    """A hash of the model's weights and the run's description: a record is used only by an identical run."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(json.dumps([str(part) for part in parts]).encode())
    return digest.hexdigest()


def write_record(folder: Path, key: str, seen: int, reducers: Mapping[str, Any]) -> None:
    """Write the reducers' states after ``seen`` inputs; the JSON goes last, naming the arrays it belongs to."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    tree = {name: _tree(reducer, arrays) for name, reducer in reducers.items()}
    arrays_path = folder / ARRAYS_NAME
    partial = arrays_path.with_suffix(".partial.npz")
    np.savez(partial, **arrays)
    os.replace(partial, arrays_path)
    record = {"fingerprint": key, "seen": seen, "arrays_sha256": _sha256(arrays_path), "reducers": tree}
    partial_json = folder / (RECORD_NAME + ".partial")
    partial_json.write_text(json.dumps(record), encoding="utf-8")
    os.replace(partial_json, folder / RECORD_NAME)


def read_record(folder: Path, key: str, fresh: Mapping[str, Any]) -> Resumed:
    """The reducers of the record in ``folder``, rebuilt into the classes of ``fresh`` (this run's own reducers).

    Raises:
        RecordError: no usable record (missing, another run's, damaged, or an unexpected class).
    """
    path = folder / RECORD_NAME
    if not path.is_file():
        raise RecordError("there is no record of an earlier pass")
    if path.stat().st_size > MAX_RECORD_BYTES:
        raise RecordError("the record is larger than any introspect writes")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RecordError(f"the record cannot be read ({error})") from None
    if not isinstance(record, dict) or record.get("fingerprint") != key:
        raise RecordError("the record is of another run (a different model, data, limit, batch size or analyzers)")
    arrays_path = folder / ARRAYS_NAME
    if not arrays_path.is_file() or _sha256(arrays_path) != record.get("arrays_sha256"):
        raise RecordError("the record's arrays are missing or do not match it")
    allowed = _allowed_classes(fresh)
    with np.load(arrays_path, allow_pickle=False) as arrays:
        try:
            rebuilt = {name: _rebuilt(record["reducers"][name], arrays, allowed) for name in fresh}
        except (KeyError, TypeError, ValueError) as error:
            raise RecordError(f"the record does not fit this run's reducers ({error})") from None
    seen = record.get("seen")
    if not isinstance(seen, int) or seen < 0:
        raise RecordError("the record does not say how many inputs it holds")
    return Resumed(rebuilt, seen)


def remove_record(folder: Path) -> None:
    """Remove a finished pass's record (and its folder once empty)."""
    for name in (RECORD_NAME, ARRAYS_NAME):
        (folder / name).unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass  # not empty: something else lives there, and stays


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tree(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """``value`` as JSON, its arrays moved to ``arrays`` (referred to by key) and its objects by class name."""
    if isinstance(value, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = value
        return {"$array": key}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return {"$list" if isinstance(value, list) else "$tuple": [_tree(item, arrays) for item in value]}
    if isinstance(value, dict):
        return {"$dict": [[_tree(key, arrays), _tree(item, arrays)] for key, item in value.items()]}
    state = value.__getstate__() if hasattr(value, "__getstate__") else vars(value)
    if not isinstance(state, dict):
        raise TypeError(f"{type(value).__name__} keeps a state introspect cannot record")
    return {"$object": _class_name(type(value)), "state": _tree(state, arrays)}


def _rebuilt(tree: Any, arrays: Any, allowed: Mapping[str, type]) -> Any:
    if not isinstance(tree, dict):
        if isinstance(tree, list):
            raise ValueError("a bare list in the record")
        return tree
    if "$array" in tree:
        return arrays[tree["$array"]]
    if "$list" in tree:
        return [_rebuilt(item, arrays, allowed) for item in tree["$list"]]
    if "$tuple" in tree:
        return tuple(_rebuilt(item, arrays, allowed) for item in tree["$tuple"])
    if "$dict" in tree:
        return {_rebuilt(key, arrays, allowed): _rebuilt(item, arrays, allowed) for key, item in tree["$dict"]}
    if "$object" in tree:
        if tree["$object"] not in allowed:
            raise ValueError(f"class {str(tree['$object'])[:100]!r} is not one of this run's reducers")
        cls = allowed[tree["$object"]]
        instance = cls.__new__(cls)
        instance.__dict__.update(_rebuilt(tree["state"], arrays, allowed))
        return instance
    raise ValueError("an unknown entry in the record")


def _allowed_classes(fresh: Mapping[str, Any]) -> dict[str, type]:
    """The classes a record may rebuild: this run's reducers' own classes, and the parts in
    :mod:`introspect.dataset.reducers` they are made of."""
    module = reducer_classes.__name__
    classes = {
        value for value in vars(reducer_classes).values() if isinstance(value, type) and value.__module__ == module
    }
    classes |= {type(reducer) for reducer in fresh.values()}
    return {_class_name(cls): cls for cls in classes}


def _class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
