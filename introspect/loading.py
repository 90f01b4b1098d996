"""``load_checkpoint``: any checkpoint file in, a :class:`~introspect.subject.Subject` out.

The pieces: :mod:`introspect.formats` reads each kind of file, :mod:`introspect.own_format`
checks introspect's own format, :mod:`introspect.probes` attaches probe inputs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from introspect._lazy import lazy_import
from introspect.checkpoint import file_sha256, sniff_format
from introspect.errors import IntrospectError
from introspect.formats import read_parts
from introspect.hub import rebuild_with_arch
from introspect.model_output import returning_logits
from introspect.parts import LoadOptions, Parts
from introspect.probes import (
    SYNTHETIC_PROBE_SIZE,
    attach_probe,
    guess_input_shape,
    read_probe,
    synthetic_probe,
)
from introspect.readers.exported import accept_any_batch_size
from introspect.subject import Subject, parameters_of, weights_from_state_dict

if TYPE_CHECKING:
    import torch
    from torch import nn
else:
    torch = lazy_import("torch")

__all__ = [
    "SYNTHETIC_PROBE_SIZE",
    "LoadOptions",
    "Parts",
    "guess_input_shape",
    "load_checkpoint",
    "non_finite_warnings",
    "read_probe",
    "resolve_device",
    "synthetic_probe",
]


def _finish_model(parts: Parts, options: LoadOptions, kind: str, path: Path) -> None:
    """Build the model with ``--arch`` when the file holds only weights, and make any model analyzable."""
    if parts.metadata.get("format") == "torch.export" and parts.model is not None:
        accept_any_batch_size(parts.model)  # before the probe check, which runs one input
    if options.arch and (kind in ("torch-zip", "torch-legacy")) and parts.model is None:
        rebuild_with_arch(parts, options, str(path))
    if parts.model is not None:
        returning_logits(parts.model)  # tuples, dicts and ModelOutputs reach the analyzers as their logits


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
    parts = read_parts(path, kind, options)
    _finish_model(parts, options, kind, path)
    attach_probe(parts, options, path)
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
        "sha256": _content_sha256(path),
        "file_size": _size_on_disk(path),
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


#: Elements of small float tensors checked for NaN and Inf in one concatenated pass (tensor by tensor is slow).
_FINITE_CHUNK_ELEMENTS = 1 << 20


def non_finite_warnings(path: Path, weights: Mapping[str, torch.Tensor]) -> list[str]:
    """One sentence naming the weight tensors that hold NaN or Inf, if any do."""
    broken = _non_finite_names(weights)
    if not broken:
        return []
    shown = ", ".join(broken[:3]) + (f" and {len(broken) - 3} more" if len(broken) > 3 else "")
    return [
        f"{path}: {len(broken)} weight tensor(s) hold NaN or Inf values ({shown}); analyzers that can still run did"
    ]


def _non_finite_names(weights: Mapping[str, torch.Tensor]) -> list[str]:
    """The names of the weights holding NaN or Inf, in order; small ones are checked many at a time."""
    names = [name for name, tensor in weights.items() if tensor.is_floating_point() or tensor.is_complex()]
    broken: set[str] = set()
    chunk: list[str] = []
    elements = 0
    for name in [*names, None]:  # None flushes the last chunk
        size = weights[name].numel() if name is not None else 0
        # A chunk is concatenated, so its tensors must share a device.
        if chunk and (
            name is None or elements + size > _FINITE_CHUNK_ELEMENTS or weights[name].device != weights[chunk[0]].device
        ):
            broken.update(_broken_in(chunk, weights))
            chunk, elements = [], 0
        if name is not None:
            chunk.append(name)
            elements += size
    return [name for name in names if name in broken]


def _broken_in(chunk: list[str], weights: Mapping[str, torch.Tensor]) -> list[str]:
    """Of ``chunk``, those holding NaN or Inf: one check over all, tensor by tensor only if it fails.

    Concatenating promotes to the widest dtype, which keeps every NaN and Inf as they are.
    """
    if len(chunk) > 1:
        flat = torch.cat([weights[name].reshape(-1) for name in chunk])
        if bool(torch.isfinite(flat).all()):
            return []
    return [name for name in chunk if not bool(torch.isfinite(weights[name]).all())]


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when a GPU is present, else ``cpu``; ``cuda`` without one is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise IntrospectError("--device cuda was asked for, but no CUDA device is available")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise IntrospectError(f"unknown device {device!r}: use auto, cpu or cuda")
    return device


def _content_sha256(path: Path) -> str:
    """The file's sha256; for a model folder, one over the names and hashes of the files in it."""
    if not path.is_dir():
        return file_sha256(path)
    digest = hashlib.sha256()
    for item in sorted(item for item in path.iterdir() if item.is_file()):
        digest.update(f"{item.name}\0{file_sha256(item)}\n".encode())
    return digest.hexdigest()


def _size_on_disk(path: Path) -> int:
    """Bytes of a file, or of the files directly inside a model folder."""
    if path.is_dir():
        return sum(item.stat().st_size for item in path.iterdir() if item.is_file())
    return path.stat().st_size


def _evaluation_mode(model: nn.Module) -> None:
    try:
        model.eval()
    except NotImplementedError:  # torch.export's modules refuse eval(); they are built for inference
        pass
