"""Plain facts about a loaded checkpoint: for ``introspect info`` and for the top of every page.

Everything here returns JSON-ready values (see :func:`plain`), so the same facts go into
``introspect info --json``, a gallery's ``manifest.json`` and the comparison table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from introspect.subject import Subject

#: Layers listed by the text form; the JSON form lists all of them.
MAX_LISTED_LAYERS = 200
MAX_NAME_WIDTH = 100


def plain(value: Any) -> Any:
    """``value`` made JSON-ready: tensors and arrays to lists, NaN/Inf to strings, keys to str."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if hasattr(value, "tolist"):
        return plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def parameter_counts(subject: Subject) -> tuple[int, int]:
    """(trainable, frozen) parameter counts; without a model every weight counts as trainable."""
    if subject.model is None:
        return sum(int(t.numel()) for t in subject.weights.values()), 0
    trainable = sum(int(p.numel()) for p in subject.model.parameters() if p.requires_grad)
    frozen = sum(int(p.numel()) for p in subject.model.parameters() if not p.requires_grad)
    return trainable, frozen


def architecture_name(subject: Subject, *, unknown: str = "unknown (weights only)") -> str:
    """The architecture the checkpoint names, else the model's class name, else ``unknown``."""
    if subject.metadata.get("architecture"):
        return subject.metadata["architecture"]
    return type(subject.model).__name__ if subject.model is not None else unknown


def subject_header(subject: Subject) -> dict[str, Any]:
    """What was analyzed, for the top of the page: architecture, sizes, task, metrics."""
    trainable, frozen = parameter_counts(subject)
    task = subject.task
    return {
        "architecture": architecture_name(subject),
        "format": subject.metadata.get("format", "in-memory model"),
        "parameters": {"trainable": trainable, "frozen": frozen, "total": trainable + frozen},
        "task": task.kind,
        "dataset": task.dataset,
        "input_shape": list(task.input_shape) if task.input_shape else None,
        "class_names": list(task.class_names),
        "metrics": plain(subject.metadata.get("metrics") or {}),
        "probe": probe_description(subject),
        "model_note": subject.model_note,
        "warnings": list(subject.metadata.get("warnings") or []),
        "created": subject.metadata.get("created"),
        "details": format_details(subject),
    }


def format_details(subject: Subject) -> dict[str, Any]:
    """What the format's own header says (model type, epoch, step, label count, preprocessing...), JSON-ready."""
    details = dict(subject.metadata.get("details") or {})
    if subject.metadata.get("format") == "lightning" and subject.metadata.get("hyperparameters"):
        details["hyper_parameters"] = subject.metadata["hyperparameters"]
    return plain(details)


def probe_description(subject: Subject) -> str:
    """How many probe inputs there are and where they came from, in a few words."""
    if subject.probe_inputs is None:
        return "none"
    size = int(subject.probe_inputs.shape[0])
    if subject.probe_is_synthetic and not subject.probe_inputs.is_floating_point():
        return f"{size} random sequences of token ids (no probe or tokenizer was stored or given)"
    if subject.probe_is_synthetic:
        return f"{size} random inputs (no probe was stored or given)"
    note = subject.metadata.get("probe_note")  # e.g. "probe cut from 5000 to 256 inputs (--max-probe)"
    inputs = "1 input" if size == 1 else f"{size} inputs"
    return f"{inputs} ({note})" if note else inputs


def describe_checkpoint(subject: Subject) -> dict[str, Any]:
    """Format, architecture, parameter counts, layers with shapes, task, metrics and probe size."""
    header = subject_header(subject)
    available = subject.available()
    return {
        "path": subject.metadata.get("path"),
        "sha256": subject.metadata.get("sha256"),
        "format": header["format"],
        "architecture": header["architecture"],
        "model": subject.model_note or "rebuilt",
        "parameters": header["parameters"],
        "layers": [{"name": name, "shape": list(tensor.shape)} for name, tensor in subject.weights.items()],
        "task": plain(subject.task.to_dict()),
        "metrics": header["metrics"],
        "probe_size": int(subject.probe_inputs.shape[0]) if subject.probe_inputs is not None else 0,
        "probe": header["probe"],
        "history_epochs": _epochs_recorded(subject.history),
        "details": format_details(subject),
        "available": [flag.name.lower() for flag in type(available) if flag and flag in available],
        "warnings": list(subject.metadata.get("warnings") or []),
    }


def format_description(description: dict[str, Any]) -> str:
    """The description as aligned text lines."""
    parameters = description["parameters"]
    task = description["task"]
    counts = f"{parameters['total']:,} ({parameters['trainable']:,} trainable, {parameters['frozen']:,} frozen)"
    lines = [
        f"file          {description['path']}",
        f"sha256        {description['sha256']}",
        f"format        {description['format']}",
        f"architecture  {description['architecture']}",
        f"model         {description['model']}",
        f"parameters    {counts}",
        f"task          {task['kind']}" + (f" on {task['dataset']}" if task.get("dataset") else ""),
        f"input shape   {task['input_shape']}",
        f"probe         {description['probe']}",
        f"history       {description['history_epochs']} epochs",
        f"can run       {', '.join(description['available'])}",
    ]
    lines += [f"{key:<13} {value}" for key, value in description.get("details", {}).items()]
    lines += [f"metric        {key} = {value}" for key, value in description["metrics"].items()]
    lines += [f"warning       {warning}" for warning in description.get("warnings", [])]
    lines.append("layers:")
    return "\n".join(lines + _layer_lines(description["layers"]))


def _layer_lines(layers: list[dict[str, Any]]) -> list[str]:
    """One aligned line per layer, names shortened, at most :data:`MAX_LISTED_LAYERS` of them."""
    names = [_shortened(layer["name"]) for layer in layers[:MAX_LISTED_LAYERS]]
    width = max((len(name) for name in names), default=0)
    lines = [f"  {name:<{width}}  {tuple(layer['shape'])}" for name, layer in zip(names, layers)]
    if len(layers) > MAX_LISTED_LAYERS:
        lines.append(f"  ... and {len(layers) - MAX_LISTED_LAYERS:,} more (introspect info --json lists them all)")
    return lines


def _shortened(name: str) -> str:
    return name if len(name) <= MAX_NAME_WIDTH else name[: MAX_NAME_WIDTH - 1] + "…"


def _epochs_recorded(history: dict | None) -> int:
    """How many epochs the history lists (0 when ``epoch`` is missing or a single value, which validation allows)."""
    epochs = (history or {}).get("epoch")
    return len(epochs) if isinstance(epochs, (list, tuple)) else 0
