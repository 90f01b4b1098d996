"""``load_checkpoint``: any checkpoint file in, a :class:`~introspect.subject.Subject` out."""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from introspect._lazy import lazy_import
from introspect import validate
from introspect.architectures import UnregisteredArchitecture, build_from_reference, build_registered
from introspect.budget import DEFAULT_MAX_PROBE, MAX_SYNTHETIC_INPUT_ELEMENTS, Budget, BudgetError
from introspect.checkpoint import (
    FORMAT_KEY,
    FORMAT_VERSION,
    file_sha256,
    load_state_into,
    read_safely,
    read_trusting,
    sniff_format,
    unwrap_state_dict,
)
from introspect.errors import CheckpointError, IntrospectError
from introspect.readers.exported import read_exported
from introspect.readers.tensors import check_loaded_tensor
from introspect.readers.torchscript import read_scripted_weights
from introspect.subject import Subject, Task, parameters_of, weights_from_state_dict

if TYPE_CHECKING:
    import torch
    from torch import nn
else:
    torch = lazy_import("torch")

SYNTHETIC_PROBE_SIZE = 16


@dataclasses.dataclass(frozen=True)
class LoadOptions:
    """How to load: what the user allowed and supplied besides the file.

    Attributes:
        trust_code: allow what can run code from the file: unpickling arbitrary objects, running
            TorchScript, and running exported programs whose graphs use ops outside the
            allow-list of pure tensor ops.
        trust_pickle: the former name of ``trust_code``; either one unlocks the same.
        arch: ``MODULE:CALLABLE`` building the model from the user's own code.
        arch_kwargs: keyword arguments for ``arch``.
        probe: a file (tensor, or dict with ``inputs``/``labels``) or a tensor of inputs.
        input_shape: the shape of one input, for generating a random probe.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        seed: seed for generated probes and for analyzers.
        max_memory: bytes the file's tensors, model and probe may take (default: a share of
            the memory available); ``None`` takes the default.
        max_probe: probe inputs kept; a larger probe is cut to this many and the page says so.
    """

    trust_code: bool = False
    trust_pickle: bool = False
    arch: str | None = None
    arch_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    probe: str | os.PathLike[str] | torch.Tensor | None = None
    input_shape: Sequence[int] | None = None
    device: str = "auto"
    seed: int = 0
    max_memory: int | None = None
    max_probe: int = DEFAULT_MAX_PROBE

    @property
    def trusted(self) -> bool:
        """Whether the user allowed code from the file to run (``trust_code`` or ``trust_pickle``)."""
        return self.trust_code or self.trust_pickle

    @property
    def budget(self) -> Budget:
        """The limits the file must fit."""
        if self.max_probe < 1:
            raise IntrospectError(f"--max-probe must be at least 1, not {self.max_probe}")
        if self.max_memory is None:
            return Budget(max_probe=self.max_probe)
        return Budget(max_memory=self.max_memory, max_probe=self.max_probe)


@dataclasses.dataclass
class _Parts:
    """What a checkpoint yielded, before it becomes a Subject."""

    state_dict: dict[str, torch.Tensor]
    model: nn.Module | None = None
    task: Task = Task()
    probe_inputs: torch.Tensor | None = None
    probe_labels: torch.Tensor | None = None
    differentiable: bool = True
    model_note: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    warnings: list[str] = dataclasses.field(default_factory=list)


def load_checkpoint(path: str | os.PathLike[str], options: LoadOptions | None = None, **overrides: Any) -> Subject:
    """Load any checkpoint as far as it safely can be.

    Args:
        path: an introspect checkpoint, a (wrapped) state_dict, a TorchScript archive, a
            ``torch.export`` program, or with ``trust_pickle`` a pickled ``nn.Module``.
        options: a :class:`LoadOptions`; keyword arguments override its fields.

    Raises:
        CheckpointError: the file cannot be read, is unsafe without ``trust_pickle``, or its
            weights do not fit the architecture. The message is one sentence naming the file.
    """
    options = dataclasses.replace(options or LoadOptions(), **overrides)
    path = Path(path)
    kind = sniff_format(path)
    parts = _read_parts(path, kind, options)
    if options.arch and (kind in ("torch-zip", "torch-legacy")) and parts.model is None:
        parts.model = build_from_reference(options.arch, options.arch_kwargs)
        load_state_into(parts.model, parts.state_dict, str(path))
        parts.model_note = f"built by --arch {options.arch}"
    _attach_probe(parts, options, path)
    device = resolve_device(options.device)
    if parts.model is not None:
        # A model rebuilt here belongs to nobody else yet: hand it out ready for inference.
        parts.model.to(device)
        _evaluation_mode(parts.model)
    weights = parameters_of(parts.model) if parts.model is not None else weights_from_state_dict(parts.state_dict)
    metadata = {
        **parts.metadata,
        "format": kind if not parts.metadata.get("format") else parts.metadata["format"],
        "path": str(path),
        "sha256": file_sha256(path),
        "file_size": path.stat().st_size,
        "warnings": [*parts.warnings, *non_finite_warnings(path, weights)],
    }
    return Subject(
        weights=weights,
        model=parts.model,
        task=parts.task,
        probe_inputs=parts.probe_inputs,
        probe_labels=parts.probe_labels,
        probe_is_synthetic=bool(parts.extra.pop("probe_is_synthetic", False)),
        metadata=metadata,
        differentiable=parts.differentiable,
        model_note=parts.model_note,
        seed=options.seed,
        device=device,
        **parts.extra,
    )


def non_finite_warnings(path: Path, weights: Mapping[str, torch.Tensor]) -> list[str]:
    """One sentence naming the weight tensors that hold NaN or Inf, if any do."""
    broken = [name for name, tensor in weights.items() if not bool(torch.isfinite(tensor).all())]
    if not broken:
        return []
    shown = ", ".join(broken[:3]) + (f" and {len(broken) - 3} more" if len(broken) > 3 else "")
    return [f"{path}: {len(broken)} weight tensor(s) hold NaN or Inf values ({shown}); analyzers that can still run did"]


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when a GPU is present, else ``cpu``; ``cuda`` without one is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise IntrospectError("--device cuda was asked for, but no CUDA device is available")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise IntrospectError(f"unknown device {device!r}: use auto, cpu or cuda")
    return device


def _read_parts(path: Path, kind: str, options: LoadOptions) -> _Parts:
    if kind == "torchscript":
        parts = _scripted_parts(path, options)
    elif kind == "export":
        parts = _exported_parts(path, options)
    else:
        parts = _pickled_parts(path, options)
    parts.state_dict = {name: check_loaded_tensor(name, tensor, str(path)) for name, tensor in parts.state_dict.items()}
    return parts


def _pickled_parts(path: Path, options: LoadOptions) -> _Parts:
    try:
        payload = read_safely(path, options.budget)
    except BudgetError:
        raise
    except CheckpointError:
        if not options.trusted:
            raise
        payload = read_trusting(path)
    if isinstance(payload, Mapping) and FORMAT_KEY in payload:
        return _introspect_parts(payload, path, options)
    if isinstance(payload, torch.nn.Module):
        return _Parts(state_dict=payload.state_dict(), model=payload, model_note="a pickled module, loaded with --trust-code", metadata={"format": "pickled-module"})
    if isinstance(payload, Mapping):
        found = unwrap_state_dict(payload)
        if found is not None:
            state_dict, extras = found
            note = "the file holds only weights, so no forward pass can run (pass --arch MODULE:CALLABLE to rebuild the model from your code)"
            return _Parts(state_dict=state_dict, model_note=note, metadata={"format": "state_dict", "wrapper": extras})
    raise CheckpointError(f"{path}: holds a {type(payload).__name__}, which is neither a model nor a state_dict")


def _scripted_parts(path: Path, options: LoadOptions) -> _Parts:
    if not options.trusted:
        note = "a TorchScript archive: running it would run code from the file, so only its weights were read (pass --trust-code to run it)"
        return _Parts(state_dict=read_scripted_weights(path, options.budget), model_note=note, metadata={"format": "torchscript"})
    try:
        with warnings.catch_warnings():  # TorchScript's deprecation notice is not the user's problem
            warnings.simplefilter("ignore", FutureWarning)
            model = torch.jit.load(str(path), map_location="cpu")
    except Exception as error:
        raise CheckpointError(f"{path}: is a TorchScript archive that cannot be loaded ({type(error).__name__})") from error
    return _Parts(state_dict=dict(model.state_dict()), model=model, model_note="a TorchScript archive, run with --trust-code", metadata={"format": "torchscript"})


def _exported_parts(path: Path, options: LoadOptions) -> _Parts:
    if options.trusted:
        try:
            program = torch.export.load(str(path))
        except Exception as error:
            raise CheckpointError(f"{path}: is a torch.export archive that cannot be loaded ({type(error).__name__}: {error})") from error
        example = program.example_inputs
        parts = _Parts(state_dict=dict(program.state_dict), model_note="a torch.export program, loaded with --trust-code")
    else:
        read = read_exported(path, options.budget)
        program, example = read.program, read.example_inputs
        parts = _Parts(state_dict=read.state_dict, model_note="a torch.export program of pure tensor ops")
        if read.refused:
            reasons = "; ".join(read.refused)
            parts.model_note = f"a torch.export program that was not run because {reasons} (pass --trust-code to run it)"
            parts.warnings.append(f"{path}: {reasons}; only the weights that are stored as plain tensors were read (pass --trust-code to load all of it)")
    parts.metadata = {"format": "torch.export"}
    parts.model = program.module() if program is not None else None
    if example and example[0] and isinstance(example[0][0], torch.Tensor):
        # The program's own example batch is the one input it is guaranteed to accept: exported
        # graphs may be specialized to its batch size.
        parts.probe_inputs = example[0][0].detach().clone()
        parts.task = Task(input_shape=tuple(example[0][0].shape[1:]))
    return parts


def _introspect_parts(payload: Mapping[str, Any], path: Path, options: LoadOptions) -> _Parts:
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
        parts = _Parts(state_dict=state_dict, task=Task.from_dict(payload.get("task")))
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
    parts: _Parts, architecture: Mapping[str, Any], path: Path, options: LoadOptions, budget: Budget
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
    """History (refused when malformed: analyzers rely on it), snapshots and initial weights (left out)."""
    snapshots = _optional(lambda value: _snapshots(value, budget), payload.get("snapshots"), warnings_, path)
    initial = _optional_tensors(payload, "initial_weights", warnings_, path)
    return {
        "history": validate.history_of(payload.get("history")) or None,
        "snapshots": snapshots or None,
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


def _attach_probe(parts: _Parts, options: LoadOptions, path: Path) -> None:
    budget = options.budget
    if options.probe is not None:
        parts.probe_inputs, parts.probe_labels = read_probe(options.probe, budget)
        parts.extra["probe_is_synthetic"] = False
    if parts.probe_inputs is not None:
        _cut_probe(parts, budget)
    input_shape, field = _input_shape(parts, options, path)
    if input_shape is not None:
        image_shape = parts.task.image_shape or (input_shape if len(input_shape) == 3 else None)
        parts.task = dataclasses.replace(parts.task, input_shape=input_shape, image_shape=image_shape)
    if parts.probe_inputs is None and parts.model is not None and input_shape is not None:
        parts.probe_inputs = synthetic_probe(input_shape, field, budget, options.seed)
        parts.extra["probe_is_synthetic"] = True
    if options.probe is not None and parts.model is not None:
        _check_probe_fits(parts.model, parts.probe_inputs, options.probe)


def _cut_probe(parts: _Parts, budget: Budget) -> None:
    """Keep the first ``budget.max_probe`` probe inputs, and say so in the metadata."""
    count = int(parts.probe_inputs.shape[0])
    if count <= budget.max_probe:
        return
    # Copies, so that the full batch is freed rather than kept alive by a view of it.
    parts.probe_inputs = parts.probe_inputs[: budget.max_probe].clone()
    if parts.probe_labels is not None:
        parts.probe_labels = parts.probe_labels[: budget.max_probe].clone()
    parts.metadata["probe_note"] = f"probe cut from {count} to {budget.max_probe} inputs (--max-probe)"


def _input_shape(parts: _Parts, options: LoadOptions, path: Path) -> tuple[tuple[int, ...] | None, str]:
    """The shape of one input and where it came from (for messages): probe, option, task or a guess."""
    if parts.probe_inputs is not None:
        return tuple(parts.probe_inputs.shape[1:]), "the probe"
    if options.input_shape:
        return validate.shape_or_none(options.input_shape, "--input-shape"), "--input-shape"
    if parts.task.input_shape:
        return parts.task.input_shape, f"{path}: task.input_shape"
    return guess_input_shape(parts.state_dict), f"{path}: the input shape guessed from the first weight"


def synthetic_probe(input_shape: Sequence[int], field: str, budget: Budget, seed: int = 0) -> torch.Tensor:
    """A seeded random probe of ``min(SYNTHETIC_PROBE_SIZE, budget.max_probe)`` inputs of ``input_shape``.

    Raises:
        BudgetError: one input would have more than ``MAX_SYNTHETIC_INPUT_ELEMENTS`` elements, or
            the probe would not fit the memory budget; ``field`` names where the shape came from.
    """
    elements = math.prod(input_shape)
    if elements > MAX_SYNTHETIC_INPUT_ELEMENTS:
        raise BudgetError(
            f"{field} {list(input_shape)} has {elements:,} elements per input, more than the "
            f"{MAX_SYNTHETIC_INPUT_ELEMENTS:,} a random probe may have (pass --probe FILE with real inputs)"
        )
    size = min(SYNTHETIC_PROBE_SIZE, budget.max_probe)
    budget.check_bytes(size * elements * 4, f"a random probe of {size} inputs of shape {list(input_shape)}")
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((size, *input_shape), generator=generator)


def read_probe(probe: Any, budget: Budget | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Probe inputs (and labels, if given) from a tensor or a file saved with ``torch.save``.

    A file is read by the same safe loader as checkpoints, its sizes checked against ``budget``.
    """
    if isinstance(probe, torch.Tensor):
        payload: Any = probe
    else:
        probe_path = Path(probe)
        sniff_format(probe_path)
        payload = read_safely(probe_path, budget)
    labels = None
    if isinstance(payload, Mapping):
        inputs, labels = payload.get("inputs"), payload.get("labels")
    else:
        inputs = payload
    return validate.probe_tensors(inputs, labels, str(probe))


def _check_probe_fits(model: nn.Module, inputs: torch.Tensor, source: Any) -> None:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(inputs[:1].to(next(iter(model.parameters()), inputs).device))
    except Exception as error:
        raise CheckpointError(f"{source}: probe inputs of shape {tuple(inputs.shape)} do not fit the model ({type(error).__name__}: {str(error).splitlines()[0]})") from error
    finally:
        model.train(was_training)


def guess_input_shape(state_dict: Mapping[str, torch.Tensor]) -> tuple[int, ...] | None:
    """The input shape implied by the first weight: (in,) for dense, (C, 32|28, same) for conv."""
    for name, tensor in state_dict.items():
        if not name.endswith("weight") or not isinstance(tensor, torch.Tensor):
            continue
        if tensor.numel() == 0:
            return None  # an empty weight implies no usable input shape
        if tensor.dim() == 2:
            return (int(tensor.shape[1]),)
        if tensor.dim() == 4:
            channels = int(tensor.shape[1])
            side = 28 if channels == 1 else 32
            return (channels, side, side)
        return None
    return None


def _evaluation_mode(model: nn.Module) -> None:
    try:
        model.eval()
    except NotImplementedError:  # torch.export's modules refuse eval(); they are built for inference
        pass
