"""``load_checkpoint``: any checkpoint file in, a :class:`~introspect.subject.Subject` out."""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from introspect._lazy import lazy_import
from introspect.architectures import build_from_reference, build_registered
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
        trust_pickle: allow unpickling arbitrary objects (runs code from the file).
        arch: ``MODULE:CALLABLE`` building the model from the user's own code.
        arch_kwargs: keyword arguments for ``arch``.
        probe: a file (tensor, or dict with ``inputs``/``labels``) or a tensor of inputs.
        input_shape: the shape of one input, for generating a random probe.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        seed: seed for generated probes and for analyzers.
    """

    trust_pickle: bool = False
    arch: str | None = None
    arch_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    probe: str | os.PathLike[str] | torch.Tensor | None = None
    input_shape: Sequence[int] | None = None
    device: str = "auto"
    seed: int = 0


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
        return _scripted_parts(path)
    if kind == "export":
        return _exported_parts(path)
    try:
        payload = read_safely(path)
    except CheckpointError:
        if not options.trust_pickle:
            raise
        payload = read_trusting(path)
    if isinstance(payload, Mapping) and FORMAT_KEY in payload:
        return _introspect_parts(payload, path, options)
    if isinstance(payload, torch.nn.Module):
        return _Parts(state_dict=payload.state_dict(), model=payload, model_note="a pickled module, loaded with --trust-pickle", metadata={"format": "pickled-module"})
    if isinstance(payload, Mapping):
        found = unwrap_state_dict(payload)
        if found is not None:
            state_dict, extras = found
            note = "the file holds only weights, so no forward pass can run (pass --arch MODULE:CALLABLE to rebuild the model from your code)"
            return _Parts(state_dict=state_dict, model_note=note, metadata={"format": "state_dict", "wrapper": extras})
    raise CheckpointError(f"{path}: holds a {type(payload).__name__}, which is neither a model nor a state_dict")


def _scripted_parts(path: Path) -> _Parts:
    try:
        with warnings.catch_warnings():  # TorchScript's deprecation notice is not the user's problem
            warnings.simplefilter("ignore", FutureWarning)
            model = torch.jit.load(str(path), map_location="cpu")
    except Exception as error:
        raise CheckpointError(f"{path}: is a TorchScript archive that cannot be loaded ({type(error).__name__})") from error
    return _Parts(state_dict=dict(model.state_dict()), model=model, model_note="a TorchScript archive", metadata={"format": "torchscript"})


def _exported_parts(path: Path) -> _Parts:
    try:
        program = torch.export.load(str(path))
    except Exception as error:
        raise CheckpointError(f"{path}: is a torch.export archive that cannot be loaded ({type(error).__name__}: {error})") from error
    model = program.module()
    parts = _Parts(state_dict=dict(program.state_dict), model=model, model_note="a torch.export program", metadata={"format": "torch.export"})
    example = program.example_inputs
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
    state_dict = payload.get("state_dict")
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"{path}: an introspect checkpoint without a state_dict")
    architecture = payload.get("architecture") or {}
    parts = _Parts(state_dict=dict(state_dict), task=Task.from_dict(payload.get("task") or {}))
    if options.arch:
        parts.model = build_from_reference(options.arch, options.arch_kwargs)
        parts.model_note = f"built by --arch {options.arch}"
    else:
        try:
            parts.model = build_registered(str(architecture.get("key")), architecture.get("config") or {})
            parts.model_note = f"rebuilt from the registered architecture {architecture.get('key')!r}"
        except CheckpointError as error:
            parts.model_note = f"{error}; only weights can be analyzed"
            parts.warnings.append(f"{path}: {error}; only the weights were analyzed")
    if parts.model is not None:
        load_state_into(parts.model, parts.state_dict, str(path))
    probe = payload.get("probe") or {}
    parts.probe_inputs, parts.probe_labels = probe.get("inputs"), probe.get("labels")
    parts.extra = {
        "history": payload.get("history") or None,
        "snapshots": payload.get("snapshots") or None,
        "initial_weights": payload.get("initial_weights") or {},
    }
    parts.metadata = {
        "format": f"introspect-v{version}",
        "architecture": architecture.get("key"),
        "config": architecture.get("config") or {},
        "hyperparameters": payload.get("hyperparameters") or {},
        "metrics": payload.get("metrics") or {},
        "created": payload.get("created"),
        "extras": payload.get("extras") or {},
        "best_state_dict": payload.get("best_state_dict"),
    }
    return parts


def _attach_probe(parts: _Parts, options: LoadOptions, path: Path) -> None:
    if options.probe is not None:
        parts.probe_inputs, parts.probe_labels = read_probe(options.probe)
        parts.extra["probe_is_synthetic"] = False
    input_shape = tuple(options.input_shape) if options.input_shape else parts.task.input_shape
    if input_shape is None and parts.probe_inputs is None:
        input_shape = guess_input_shape(parts.state_dict)
    if parts.probe_inputs is not None:
        input_shape = tuple(parts.probe_inputs.shape[1:])
    if input_shape is not None:
        image_shape = parts.task.image_shape or (input_shape if len(input_shape) == 3 else None)
        parts.task = dataclasses.replace(parts.task, input_shape=input_shape, image_shape=image_shape)
    if parts.probe_inputs is None and parts.model is not None and input_shape is not None:
        generator = torch.Generator().manual_seed(options.seed)
        parts.probe_inputs = torch.randn((SYNTHETIC_PROBE_SIZE, *input_shape), generator=generator)
        parts.extra["probe_is_synthetic"] = True
    if options.probe is not None and parts.model is not None:
        _check_probe_fits(parts.model, parts.probe_inputs, options.probe)


def read_probe(probe: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Probe inputs (and labels, if given) from a tensor or a file saved with ``torch.save``."""
    if isinstance(probe, torch.Tensor):
        payload: Any = probe
    else:
        probe_path = Path(probe)
        sniff_format(probe_path)
        payload = read_safely(probe_path)
    labels = None
    if isinstance(payload, Mapping):
        inputs, labels = payload.get("inputs"), payload.get("labels")
    else:
        inputs = payload
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 2:
        raise CheckpointError(f"{probe}: a probe must be a batch tensor of inputs (at least 2 dimensions) or a dict with 'inputs'")
    if not inputs.is_floating_point():
        raise CheckpointError(f"{probe}: probe inputs must be floating point, not {inputs.dtype}")
    if labels is not None and (not isinstance(labels, torch.Tensor) or labels.shape[0] != inputs.shape[0]):
        raise CheckpointError(f"{probe}: probe labels must be a tensor with one entry per input")
    return inputs, labels


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
