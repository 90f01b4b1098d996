"""The gallery manifest: the single source the HTML is rendered from."""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

from introspect import __version__
from introspect._gallery_layout import GENERATOR
from introspect.artifacts import AnalyzerResult
from introspect.spec import AnalyzerSpec
from introspect.subject import Subject

SCHEMA_VERSION = 1
LIBRARIES = ("torch", "torchvision", "captum", "matplotlib", "numpy", "imageio", "jinja2")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries whose behaviour shapes the figures."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def subject_header(subject: Subject) -> dict[str, Any]:
    """What was analyzed, for the top of the page: architecture, sizes, task, metrics."""
    trainable, frozen = parameter_counts(subject)
    task = subject.task
    return {
        "architecture": subject.metadata.get("architecture") or (type(subject.model).__name__ if subject.model is not None else "unknown (weights only)"),
        "format": subject.metadata.get("format", "in-memory model"),
        "parameters": {"trainable": trainable, "frozen": frozen, "total": trainable + frozen},
        "task": task.kind,
        "dataset": task.dataset,
        "input_shape": list(task.input_shape) if task.input_shape else None,
        "class_names": list(task.class_names),
        "metrics": plain(subject.metadata.get("metrics") or {}),
        "probe": _probe_description(subject),
        "model_note": subject.model_note,
        "warnings": list(subject.metadata.get("warnings") or []),
        "created": subject.metadata.get("created"),
    }


def parameter_counts(subject: Subject) -> tuple[int, int]:
    """(trainable, frozen) parameter counts; without a model every weight counts as trainable."""
    if subject.model is None:
        return sum(int(t.numel()) for t in subject.weights.values()), 0
    trainable = sum(int(p.numel()) for p in subject.model.parameters() if p.requires_grad)
    frozen = sum(int(p.numel()) for p in subject.model.parameters() if not p.requires_grad)
    return trainable, frozen


def _probe_description(subject: Subject) -> str:
    if subject.probe_inputs is None:
        return "none"
    size = int(subject.probe_inputs.shape[0])
    if subject.probe_is_synthetic:
        return f"{size} random inputs (no probe was stored or given)"
    note = subject.metadata.get("probe_note")  # e.g. "probe cut from 5000 to 256 inputs (--max-probe)"
    return f"{size} inputs ({note})" if note else f"{size} inputs"


def build_manifest(
    subject: Subject,
    specs: Sequence[AnalyzerSpec],
    results: Sequence[AnalyzerResult],
    figure_files: Mapping[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """The manifest of one checkpoint's gallery; ``figure_files`` maps analyzer → written figures."""
    by_name = {spec.name: spec for spec in specs}
    return {
        "generator": GENERATOR,  # how --force tells an earlier gallery from a user's own folder
        "schema_version": SCHEMA_VERSION,
        "introspect_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "libraries": library_versions(),
        "checkpoint": {
            "path": subject.metadata.get("path"),
            "sha256": subject.metadata.get("sha256"),
            "format": subject.metadata.get("format", "in-memory model"),
        },
        "header": subject_header(subject),
        "analyzers": [
            {
                "name": result.name,
                "summary": by_name[result.name].summary if result.name in by_name else "",
                "description": by_name[result.name].description if result.name in by_name else "",
                "package": by_name[result.name].package if result.name in by_name else "",
                "status": result.status,
                "reason": result.reason,
                "seconds": round(result.seconds, 4),
                "figures": figure_files.get(result.name, []),
            }
            for result in results
        ],
    }


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


def collection_entry(title: str, slug: str, page_manifest: dict[str, Any]) -> dict[str, Any]:
    """One line of a collection index: where the page is and its headline facts."""
    statuses = [analyzer["status"] for analyzer in page_manifest["analyzers"]]
    return {
        "title": title,
        "slug": slug,
        "page": f"{slug}/index.html",
        "checkpoint": page_manifest["checkpoint"],
        "header": page_manifest["header"],
        "counts": {status: statuses.count(status) for status in ("ok", "skipped", "failed")},
    }


def build_collection_manifest(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The top-level manifest of a gallery with several checkpoints."""
    return {
        "generator": GENERATOR,
        "schema_version": SCHEMA_VERSION,
        "introspect_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "libraries": library_versions(),
        "pages": list(entries),
    }
