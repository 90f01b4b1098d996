"""``introspect info``: a plain description of a loaded checkpoint."""

from __future__ import annotations

from typing import Any

from introspect.manifest import plain, subject_header
from introspect.subject import Subject

#: Layers listed by the text form; the JSON form lists all of them.
MAX_LISTED_LAYERS = 200
MAX_NAME_WIDTH = 100


def describe_checkpoint(subject: Subject) -> dict[str, Any]:
    """Format, architecture, parameter counts, layers with shapes, task, metrics and probe size."""
    header = subject_header(subject)
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
        "history_epochs": len((subject.history or {}).get("epoch", [])),
        "available": [flag.name.lower() for flag in type(subject.available()) if flag and flag in subject.available()],
        "warnings": list(subject.metadata.get("warnings") or []),
    }


def format_description(description: dict[str, Any]) -> str:
    """The description as aligned text lines."""
    parameters = description["parameters"]
    task = description["task"]
    lines = [
        f"file          {description['path']}",
        f"sha256        {description['sha256']}",
        f"format        {description['format']}",
        f"architecture  {description['architecture']}",
        f"model         {description['model']}",
        f"parameters    {parameters['total']:,} ({parameters['trainable']:,} trainable, {parameters['frozen']:,} frozen)",
        f"task          {task['kind']}" + (f" on {task['dataset']}" if task.get("dataset") else ""),
        f"input shape   {task['input_shape']}",
        f"probe         {description['probe']}",
        f"history       {description['history_epochs']} epochs",
        f"can run       {', '.join(description['available'])}",
    ]
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
