"""Saving introspect checkpoints and loading any checkpoint as far as it safely can be.

Loading never runs code from the file: ``torch.save`` files go through
``torch.load(weights_only=True)`` after their sizes are checked (:mod:`introspect.readers`);
TorchScript and ``torch.export`` archives are read by introspect's own readers. Unpickling and
running TorchScript happen only when the caller passes ``trust_code=True``.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from introspect._lazy import lazy_import
from introspect.budget import Budget
from introspect.errors import CheckpointError
from introspect.readers.archive import sniff_kind
from introspect.readers.torchfile import read_torch_file

if TYPE_CHECKING:
    import torch
    from torch import nn
else:
    torch = lazy_import("torch")

FORMAT_KEY = "introspect_format"
FORMAT_VERSION = 1
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "weights")
STRIPPED_PREFIXES = ("module.", "_orig_mod.")


def save_checkpoint(path: str | os.PathLike[str], checkpoint: Mapping[str, Any]) -> Path:
    """Write ``checkpoint`` (a dict built by :func:`make_checkpoint`) atomically to ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(descriptor)
    try:
        torch.save(dict(checkpoint), temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def make_checkpoint(
    model: nn.Module,
    *,
    architecture: str,
    config: Mapping[str, Any],
    task: Mapping[str, Any],
    probe_inputs: torch.Tensor | None = None,
    probe_labels: torch.Tensor | None = None,
    history: Mapping[str, Any] | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    snapshots: Mapping[str, Any] | None = None,
    initial_weights: Mapping[str, torch.Tensor] | None = None,
    best_state_dict: Mapping[str, torch.Tensor] | None = None,
    extras: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The introspect checkpoint dict (format 1): tensors and plain values only."""
    from introspect import __version__

    return {
        FORMAT_KEY: FORMAT_VERSION,
        "introspect_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "architecture": {"key": architecture, "config": dict(config)},
        "state_dict": _cpu_state(model.state_dict()),
        "best_state_dict": _cpu_state(best_state_dict) if best_state_dict else None,
        "task": dict(task),
        "probe": {"inputs": _cpu(probe_inputs), "labels": _cpu(probe_labels)},
        "history": dict(history or {}),
        "hyperparameters": dict(hyperparameters or {}),
        "metrics": dict(metrics or {}),
        "snapshots": dict(snapshots) if snapshots else None,
        "initial_weights": _cpu_state(initial_weights) if initial_weights else {},
        "extras": dict(extras or {}),
    }


def _cpu(tensor: torch.Tensor | None) -> torch.Tensor | None:
    return None if tensor is None else tensor.detach().cpu().clone()


def _cpu_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().cpu().clone() for name, tensor in state.items()}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sniff_format(path: Path) -> str:
    """What kind of file ``path`` is: ``torch-zip``, ``torch-legacy``, ``torchscript`` or ``export``.

    The kind comes from the content as a whole, never from the name.

    Raises:
        CheckpointError: the file is missing, not a regular file, empty or not a PyTorch file.
    """
    return sniff_kind(Path(path))


def read_safely(path: Path, budget: Budget | None = None, kind: str | None = None) -> Any:
    """A ``torch.save`` file, its sizes checked against ``budget``, then ``torch.load(weights_only=True)``.

    Raises:
        CheckpointError: the file is broken, names Python objects, or does not fit the budget;
            one sentence naming the file.
    """
    path = Path(path)
    # A caller that sniffed already passes the kind: sniffing a big zip parses its whole directory.
    return read_torch_file(path, kind or sniff_kind(path), budget or Budget())


def read_trusting(path: Path) -> Any:
    """Full unpickling: runs whatever code the file names. Only on the user's explicit say-so."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise CheckpointError(
            f"{path}: could not be unpickled even with --trust-code: {type(error).__name__}: {error}"
        ) from error


def is_tensor_dict(value: Any) -> bool:
    """Whether ``value`` is a non-empty dict whose values are all tensors (a state_dict)."""
    return isinstance(value, Mapping) and bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())


def unwrap_state_dict(payload: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """Find the state_dict in a bare or wrapped dict; returns it with the wrapper's plain extras."""
    if is_tensor_dict(payload):
        return strip_prefixes(dict(payload)), {}
    for key in WRAPPER_KEYS:
        inner = payload.get(key)
        if is_tensor_dict(inner):
            extras = {k: v for k, v in payload.items() if k != key and _is_plain(v)}
            return strip_prefixes(dict(inner)), extras
    return None


def _is_plain(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None))) or (
        isinstance(value, (list, tuple, dict)) and len(value) < 64
    )


def strip_prefixes(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile) from every key."""
    changed = True
    while changed:
        changed = False
        for prefix in STRIPPED_PREFIXES:
            if state_dict and all(key.startswith(prefix) for key in state_dict):
                state_dict = {key[len(prefix) :]: value for key, value in state_dict.items()}
                changed = True
    return state_dict


def without_common_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """Keys without a first component shared by all of them (Lightning's ``model.``), if any."""
    first_parts = {key.split(".", 1)[0] for key in state_dict}
    if len(first_parts) != 1 or not all("." in key for key in state_dict):
        return None
    return {key.split(".", 1)[1]: value for key, value in state_dict.items()}


def load_state_into(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load weights into ``model``, trying a Lightning-style prefix strip; explain mismatches."""
    expected = model.state_dict()
    candidates = [state_dict]
    stripped = without_common_prefix(state_dict)
    if stripped is not None:
        candidates.append(stripped)
    best = max(candidates, key=lambda candidate: len(candidate.keys() & expected.keys()))
    problems = mismatches(expected, best)
    if problems:
        raise CheckpointError(f"{source}: the weights do not fit the architecture: {problems}")
    model.load_state_dict(best, strict=True)


def mismatches(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> str:
    missing = sorted(expected.keys() - given.keys())
    unexpected = sorted(given.keys() - expected.keys())
    shapes = [
        f"{name} is {tuple(given[name].shape)} but the model wants {tuple(expected[name].shape)}"
        for name in expected.keys() & given.keys()
        if tuple(given[name].shape) != tuple(expected[name].shape)
    ]
    parts = []
    if missing:
        parts.append(f"missing {_few(missing)}")
    if unexpected:
        parts.append(f"unexpected {_few(unexpected)}")
    parts.extend(shapes[:3])
    return "; ".join(parts)


def _few(names: list[str]) -> str:
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")
