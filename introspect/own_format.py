"""introspect's own checkpoint format: every field it can set is checked where it enters."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from introspect import validate
from introspect.architectures import (
    UnregisteredArchitecture,
    build_from_reference,
    build_registered,
)
from introspect.budget import Budget, BudgetError
from introspect.checkpoint import FORMAT_KEY, FORMAT_VERSION, load_state_into
from introspect.errors import CheckpointError
from introspect.parts import LoadOptions, Parts
from introspect.subject import Task

if TYPE_CHECKING:
    import torch

#: Snapshots and layers a checkpoint's ``drift`` may hold (introspect's trainers write at most 20 snapshots).
MAX_DRIFT_SNAPSHOTS = 200
MAX_DRIFT_LAYERS = 2_000
#: Linear CKA lies in [0, 1]; float32 storage may round a little past either end.
CKA_SLACK = 1e-5


def introspect_parts(payload: Mapping[str, Any], path: Path, options: LoadOptions) -> Parts:
    version = payload.get(FORMAT_KEY)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: was written in introspect format {version!r}, newer than this version reads "
            f"(up to {FORMAT_VERSION}); upgrade introspect to read it"
        )
    if not isinstance(payload.get("state_dict"), Mapping):
        raise CheckpointError(f"{path}: an introspect checkpoint without a state_dict")
    budget = options.budget
    try:
        # Every field is checked where it enters, cheap ones first: the model is built last.
        state_dict = validate.tensor_dict(payload["state_dict"], "state_dict")
        parts = Parts(state_dict=state_dict, task=Task.from_dict(payload.get("task")))
        architecture = validate.mapping_or_empty(payload.get("architecture"), "architecture")
        parts.probe_inputs, parts.probe_labels = _stored_probe(payload.get("probe"), path)
        parts.extra = _introspect_extra(payload, parts.warnings, path, budget)
        parts.metadata = _introspect_metadata(payload, architecture, parts.warnings, path, budget)
        parts.metadata["format"] = f"introspect-v{version}"
        _introspect_model(parts, architecture, path, options, budget)
    except (validate.FieldError, BudgetError) as error:
        raise type(error)(f"{path}: {error}") from error
    return parts


def _introspect_model(
    parts: Parts, architecture: Mapping[str, Any], path: Path, options: LoadOptions, budget: Budget
) -> None:
    """Rebuild the model (``--arch``, else the registered architecture) and load the weights into it."""
    if options.arch:
        parts.model = build_from_reference(options.arch, options.arch_kwargs)
        parts.model_note = f"built by --arch {options.arch}"
    else:
        key = architecture.get("key")
        if key is not None and not isinstance(key, str):
            raise validate.FieldError(f"architecture.key must be a string, not {validate.shown(key)}")
        try:
            config = architecture.get("config")
            parts.model = build_registered(str(key), config, budget, state_dict=parts.state_dict, source=str(path))
            parts.model_note = f"rebuilt from the registered architecture {key!r}"
        except UnregisteredArchitecture as error:
            parts.model_note = f"{error}; only weights can be analyzed"
            parts.warnings.append(f"{path}: {error}; only the weights were analyzed")
    if parts.model is not None:
        load_state_into(parts.model, parts.state_dict, str(path))


def _stored_probe(value: Any, path: Path) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    probe = validate.mapping_or_empty(value, "probe")
    if probe.get("inputs") is None:
        return None, None
    return validate.probe_tensors(probe["inputs"], probe.get("labels"), f"{path}: the stored probe")


def _introspect_extra(payload: Mapping[str, Any], warnings_: list[str], path: Path, budget: Budget) -> dict[str, Any]:
    """History (refused when malformed: analyzers rely on it); snapshots, drift and initial weights (left out)."""
    snapshots = _optional(lambda value: _snapshots(value, budget), payload.get("snapshots"), warnings_, path)
    initial = _optional_tensors(payload, "initial_weights", warnings_, path)
    return {
        "history": validate.history_of(payload.get("history")) or None,
        "snapshots": snapshots or None,
        "drift": _optional(drift_of, payload.get("drift"), warnings_, path),
        "initial_weights": initial,
    }


def _introspect_metadata(
    payload: Mapping[str, Any], architecture: Mapping[str, Any], warnings_: list[str], path: Path, budget: Budget
) -> dict[str, Any]:
    """Config, hyperparameters and metrics (refused when malformed); the rest is left out with a warning."""
    nesting = budget.max_nesting
    best = _optional_tensors(payload, "best_state_dict", warnings_, path)
    return {
        "architecture": architecture.get("key"),
        "config": validate.checked_plain_mapping(architecture.get("config"), "architecture.config", nesting),
        "hyperparameters": validate.checked_plain_mapping(payload.get("hyperparameters"), "hyperparameters", nesting),
        "metrics": validate.checked_plain_mapping(payload.get("metrics"), "metrics", nesting),
        "created": _optional(_created, payload.get("created"), warnings_, path),
        "extras": _extras(payload.get("extras"), warnings_, path, nesting),
        "best_state_dict": best or None,
    }


def _optional(check: Callable[[Any], Any], value: Any, warnings_: list[str], path: Path) -> Any:
    """``check(value)``, or ``None`` with a warning when an optional field is malformed."""
    try:
        return check(value)
    except validate.FieldError as error:
        warnings_.append(f"{path}: {error}; it was left out")
        return None


def _optional_tensors(
    payload: Mapping[str, Any], field: str, warnings_: list[str], path: Path
) -> dict[str, torch.Tensor]:
    """The named tensors of an optional field, or ``{}`` with a warning when it is malformed."""
    check = functools.partial(validate.tensor_dict, field=field)
    return _optional(check, payload.get(field), warnings_, path) or {}


def _snapshots(value: Any, budget: Budget) -> dict[str, Any]:
    snapshots = validate.mapping_or_empty(value, "snapshots")
    validate.check_plain(snapshots, "snapshots", max_nesting=budget.max_nesting, count_tensor_elements=False)
    return snapshots


def drift_of(value: Any) -> dict[str, Any] | None:
    """Each layer's drift over training (see ``trainers.drift``): epochs, layers, two (epochs x layers) matrices.

    Sizes are checked before anything is converted, so the file cannot decide how much is spent.

    Raises:
        FieldError: a missing or wrong-typed entry, too many epochs or layers, shapes that do not
            agree, or numbers that are not finite (or CKA outside [0, 1]).
    """
    if value is None:
        return None
    drift = validate.mapping_or_empty(value, "drift")
    epochs = _drift_epochs(drift.get("epochs"))
    layers = _drift_layers(drift.get("layers"))
    shape = (len(epochs), len(layers))
    cka = _drift_matrix(drift.get("cka_to_final"), "drift.cka_to_final", shape)
    if (cka < -CKA_SLACK).any() or (cka > 1 + CKA_SLACK).any():
        raise validate.FieldError("drift.cka_to_final must lie between 0 and 1")
    change = _drift_matrix(drift.get("relative_change"), "drift.relative_change", shape)
    if (change < 0).any():
        raise validate.FieldError("drift.relative_change must not be negative")
    return {"epochs": epochs, "layers": layers, "cka_to_final": cka.clip(0.0, 1.0), "relative_change": change}


def _drift_epochs(value: Any) -> tuple[int, ...]:
    """At least two epochs, increasing, non-negative whole numbers."""
    if not isinstance(value, (list, tuple)) or not 2 <= len(value) <= MAX_DRIFT_SNAPSHOTS:
        raise validate.FieldError(
            f"drift.epochs must be a list of 2 to {MAX_DRIFT_SNAPSHOTS} epochs, not {validate.shown(value)}"
        )
    if not all(isinstance(epoch, int) and validate.is_number(epoch) and epoch >= 0 for epoch in value):
        raise validate.FieldError("drift.epochs must hold non-negative whole numbers")
    if any(later <= earlier for earlier, later in zip(value, value[1:])):
        raise validate.FieldError("drift.epochs must increase")
    return tuple(int(epoch) for epoch in value)


def _drift_layers(value: Any) -> tuple[str, ...]:
    """At least one layer name, each a string of bounded length, none repeated."""
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_DRIFT_LAYERS:
        raise validate.FieldError(
            f"drift.layers must be a list of 1 to {MAX_DRIFT_LAYERS} names, not {validate.shown(value)}"
        )
    if not all(isinstance(name, str) and len(name) <= validate.MAX_NAME_LENGTH for name in value):
        raise validate.FieldError(f"drift.layers must hold names of at most {validate.MAX_NAME_LENGTH} characters")
    if len(set(value)) != len(value):
        raise validate.FieldError("drift.layers must not repeat a name")
    return tuple(value)


def _drift_matrix(value: Any, field: str, shape: tuple[int, int]) -> np.ndarray:
    """A floating tensor of ``shape`` (checked before it is read) with finite values, as float64."""
    import torch

    if not isinstance(value, torch.Tensor) or value.layout != torch.strided or not value.is_floating_point():
        raise validate.FieldError(f"{field} must be a floating-point tensor, not {validate.shown(value)}")
    if tuple(value.shape) != shape:
        raise validate.FieldError(f"{field} must have shape {shape} (epochs x layers), not {tuple(value.shape)}")
    matrix = value.detach().cpu().double().numpy()
    if not np.isfinite(matrix).all():
        raise validate.FieldError(f"{field} holds NaN or infinite values")
    return matrix


def _created(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > 100):
        raise validate.FieldError(f"created must be a date string, not {validate.shown(value)}")
    return value


def _extras(value: Any, warnings_: list[str], path: Path, nesting: int) -> dict[str, Any]:
    """The trainer's extras, each entry checked on its own: a malformed one is left out with a warning."""
    extras = _optional(lambda v: validate.mapping_or_empty(v, "extras"), value, warnings_, path) or {}
    kept = {}
    for key, item in extras.items():
        try:
            validate.check_plain(item, f"extras[{key!r}]", max_nesting=nesting, count_tensor_elements=False)
        except validate.FieldError as error:
            warnings_.append(f"{path}: {error}; it was left out")
            continue
        kept[key] = item
    return kept
