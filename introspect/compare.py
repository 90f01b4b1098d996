"""Comparing checkpoints side by side: one table of numbers, overlaid curves, shared layers.

Any set of two or more checkpoints can be compared, so the three comparisons of the
frozen-kernel experiment are three calls: the schemes of one architecture
(``neta1-hf neta1-ht neta1-dt``), one scheme across architectures (``neta1-hf neta2-hf``) and
every NetA1 scheme against NetA2-HF. Layers are matched by parameter name *and* shape: NetA1's
and NetA2's ``conv1.weight`` (4 x 1 x 5 x 5) are drawn side by side, their ``linear1.weight``
(10 x 576 against 10 x 300) are not.

The page is written like a gallery: into a staging folder renamed into place, ``manifest.json``
(every number) first, then ``index.html`` rendered from the manifest alone.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from introspect import __version__
from introspect._compare_figures import curves_figure, layer_figure
from introspect.artifacts import Artifact, slugify
from introspect._gallery_layout import GENERATOR
from introspect.gallery import FIGURE_DIR, INDEX_NAME, MANIFEST_NAME, check_output_dir, staging_folder, unique_slugs, write_artifact_file
from introspect.manifest import SCHEMA_VERSION, library_versions, parameter_counts, plain

if TYPE_CHECKING:
    from introspect.subject import Subject

MIN_CHECKPOINTS = 2
MAX_LAYER_FIGURES = 12
TEST_METRIC_KEYS = ("test_accuracy", "test_mse", "test_loss")
TEMPLATE = "compare.html.j2"


@dataclasses.dataclass(frozen=True)
class SharedLayer:
    """A parameter every compared checkpoint has, with the same name and shape.

    Attributes:
        name: the parameter's name (``conv1.weight``).
        shape: its shape, equal in every checkpoint.
        drift: ``||final - initial||`` (Frobenius norm) per checkpoint; ``None`` where the
            checkpoint holds no initial value for it.
        relative_drift: ``drift / ||initial||`` per checkpoint; ``None`` without an initial value
            or when it is all zeros.
    """

    name: str
    shape: tuple[int, ...]
    drift: tuple[float | None, ...]
    relative_drift: tuple[float | None, ...]


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Everything a comparison page shows, as numbers and figures.

    Attributes:
        titles: one distinct title per checkpoint, in the order given.
        rows: the table, one dict per checkpoint (see :func:`summary_row`).
        shared: parameters all checkpoints share by name and shape, in the first one's order.
        unshared: the other parameter names, each with its shape per checkpoint (``None``: absent).
        figures: the training curves (when any history exists) and one figure per drawable shared layer.
        sources: each checkpoint's path, sha256, architecture, task and dataset.
    """

    titles: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    shared: tuple[SharedLayer, ...]
    unshared: tuple[dict[str, Any], ...]
    figures: tuple[Artifact, ...]
    sources: tuple[dict[str, Any], ...]


def compare_subjects(entries: Sequence[tuple[str, Subject]], *, max_layer_figures: int = MAX_LAYER_FIGURES) -> Comparison:
    """Compare checkpoints given as ``(title, subject)`` pairs; titles are made distinct.

    Raises:
        ValueError: fewer than two checkpoints.
    """
    if len(entries) < MIN_CHECKPOINTS:
        raise ValueError(f"a comparison needs at least {MIN_CHECKPOINTS} checkpoints, got {len(entries)}")
    titles = tuple(distinct_titles([title for title, _ in entries]))
    subjects = [subject for _, subject in entries]
    shared_names, unshared = shared_parameters(subjects)
    shared = tuple(shared_layer(name, subjects) for name in shared_names)
    figures = [figure for figure in [curves_figure(titles, [subject.history or {} for subject in subjects])] if figure is not None]
    layer_figures: list[Artifact] = []
    for layer in shared:
        artifact = _shared_layer_artifact(layer, titles, subjects) if len(layer_figures) < max_layer_figures else None
        if artifact is not None:
            layer_figures.append(artifact)
    return Comparison(
        titles=titles,
        rows=tuple(summary_row(title, subject) for title, subject in zip(titles, subjects)),
        shared=shared,
        unshared=tuple(unshared),
        figures=(*figures, *layer_figures),
        sources=tuple(_source(subject) for subject in subjects),
    )


def distinct_titles(titles: Sequence[str]) -> list[str]:
    """``titles`` with repeats numbered: ``a``, ``a (2)``, ``a (3)``."""
    seen: dict[str, int] = {}
    distinct = []
    for title in titles:
        seen[title] = seen.get(title, 0) + 1
        distinct.append(title if seen[title] == 1 else f"{title} ({seen[title]})")
    return distinct


def summary_row(title: str, subject: Subject) -> dict[str, Any]:
    """One table row: best validation accuracy and its epoch, final losses, test metric, speed, sizes."""
    history = subject.history or {}
    val_accuracy = _finite(history.get("val_accuracy"))
    epochs = _finite(history.get("epoch"))
    best_index = int(np.argmax(val_accuracy)) if val_accuracy else None
    test_name, test_value = headline_test_metric(subject.metadata.get("metrics") or {})
    trainable, frozen = parameter_counts(subject)
    seconds = _finite(history.get("seconds_per_batch"))
    return {
        "title": title,
        "architecture": subject.metadata.get("architecture") or (type(subject.model).__name__ if subject.model is not None else "unknown"),
        "epochs": len(_finite(history.get("train_loss"))),
        "best_val_accuracy": val_accuracy[best_index] if best_index is not None else None,
        "best_val_epoch": (int(epochs[best_index]) if len(epochs) == len(val_accuracy) else best_index + 1) if best_index is not None else None,
        "final_train_loss": _last(history.get("train_loss")),
        "final_val_loss": _last(history.get("val_loss")),
        "test_metric": test_name,
        "test_value": test_value,
        "seconds_per_batch": float(np.mean(seconds)) if seconds else None,
        "trainable": trainable,
        "frozen": frozen,
    }


def headline_test_metric(metrics: Mapping[str, Any]) -> tuple[str | None, float | None]:
    """The headline test number: accuracy, else MSE, else loss, else the first ``test_*`` metric."""
    candidates = [key for key in TEST_METRIC_KEYS if key in metrics] + sorted(key for key in metrics if str(key).startswith("test_"))
    for key in candidates:
        value = metrics[key]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return str(key), float(value)
    return None, None


def _finite(values: Any) -> list[float]:
    if not isinstance(values, (list, tuple)):
        return []
    numbers = [float(value) for value in values if isinstance(value, (int, float)) and not isinstance(value, bool)]
    return [value for value in numbers if math.isfinite(value)]


def _last(values: Any) -> float | None:
    numbers = _finite(values)
    return numbers[-1] if numbers else None


def shared_parameters(subjects: Sequence[Subject]) -> tuple[list[str], list[dict[str, Any]]]:
    """Names every subject has with one shape (in the first subject's order), and the rest with their shapes."""
    first = subjects[0].weights
    shared = [
        name for name, tensor in first.items()
        if all(name in subject.weights and tuple(subject.weights[name].shape) == tuple(tensor.shape) for subject in subjects[1:])
    ]
    names = list(dict.fromkeys(name for subject in subjects for name in subject.weights))
    unshared = [
        {"name": name, "shapes": [list(subject.weights[name].shape) if name in subject.weights else None for subject in subjects]}
        for name in names if name not in shared
    ]
    return shared, unshared


def shared_layer(name: str, subjects: Sequence[Subject]) -> SharedLayer:
    """``name``'s drift from its initial value in each subject (``None`` where none is stored)."""
    drifts, relatives = [], []
    for subject in subjects:
        final, initial = _final_and_initial(subject, name)
        if initial is None:
            drifts.append(None)
            relatives.append(None)
            continue
        drift = float(np.linalg.norm((final - initial).ravel()))
        drifts.append(drift)
        start = float(np.linalg.norm(initial.ravel()))
        # relative to a zero start (a bias initialized to 0) is meaningless, not a huge number
        relatives.append(drift / start if start > 0 else None)
    return SharedLayer(name, tuple(int(size) for size in subjects[0].weights[name].shape), tuple(drifts), tuple(relatives))


def _final_and_initial(subject: Subject, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    final = subject.weights[name].detach().cpu().double().numpy()
    initial = subject.initial_weights.get(name)
    if initial is None or tuple(initial.shape) != final.shape:
        return final, None
    return final, initial.detach().cpu().double().numpy()


def drift_label(drift: float | None, relative: float | None) -> str:
    """``||Δ|| = 0.123 (4.5%)``, ``||Δ|| = 0 (unchanged)`` or ``no initial weights``."""
    if drift is None:
        return "no initial weights"
    if drift == 0.0:
        return "||Δ|| = 0 (unchanged)"
    return f"||Δ|| = {drift:.3g}" + (f" ({100 * relative:.1f}%)" if relative is not None else "")


def _shared_layer_artifact(layer: SharedLayer, titles: Sequence[str], subjects: Sequence[Subject]) -> Artifact | None:
    pairs = [_final_and_initial(subject, layer.name) for subject in subjects]
    labels = [drift_label(drift, relative) for drift, relative in zip(layer.drift, layer.relative_drift)]
    artifact = layer_figure(layer.name, titles, [final for final, _ in pairs], [initial for _, initial in pairs], labels)
    if artifact is None:
        return None
    what = "kernels" if len(layer.shape) in (3, 4) else "weight matrix (rows: output units, columns: inputs)"
    caption = (
        f"The {what} of {layer.name} in every checkpoint, in the order of the table."
        " Initial and final values of all checkpoints share one colour scale with zero at its centre, so a tile that"
        " looks stronger is stronger; the change final - initial has a shared scale of its own."
    )
    if len(layer.shape) in (3, 4) and layer.shape[0] > 64:
        caption += f" The first 64 of {layer.shape[0]} kernels are shown, the same ones in every column."
    summary = {"drift": list(layer.drift), "relative_drift": list(layer.relative_drift), **artifact.summary}
    return dataclasses.replace(artifact, caption=caption, summary=summary)


def _source(subject: Subject) -> dict[str, Any]:
    return {
        "path": subject.metadata.get("path"),
        "sha256": subject.metadata.get("sha256"),
        "architecture": subject.metadata.get("architecture"),
        "task": subject.task.kind,
        "dataset": subject.task.dataset,
    }


# --- writing ------------------------------------------------------------------------------------


def build_comparison_manifest(comparison: Comparison, figure_files: Sequence[str | None], **page: Any) -> dict[str, Any]:
    """The comparison page's manifest; ``page`` may set ``title``, ``description``, ``parent_index``, ``links``."""
    links = page.get("links") or {}
    return {
        "generator": GENERATOR,
        "schema_version": SCHEMA_VERSION,
        "kind": "comparison",
        "introspect_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "libraries": library_versions(),
        "title": page.get("title") or f"Comparison of {len(comparison.titles)} checkpoints",
        "description": page.get("description") or "",
        "parent_index": page.get("parent_index"),
        "checkpoints": [
            {"title": title, "link": links.get(title), **source} for title, source in zip(comparison.titles, comparison.sources)
        ],
        "table": [dict(row) for row in comparison.rows],
        "shared_layers": [dataclasses.asdict(layer) for layer in comparison.shared],
        "unshared_layers": list(comparison.unshared),
        "figures": [
            {"name": artifact.name, "caption": artifact.caption, "layer": artifact.layer, "file": file, "summary": artifact.summary}
            for artifact, file in zip(comparison.figures, figure_files)
        ],
    }


def write_comparison(comparison: Comparison, out_dir: str | os.PathLike[str], *, force: bool = False, **page: Any) -> Path:
    """Write the comparison page into ``out_dir`` atomically; returns its ``index.html``.

    ``page`` is passed to :func:`build_comparison_manifest` (``title``, ``description``,
    ``parent_index``, ``links``: checkpoint title → URL of its own gallery page).
    """
    target = check_output_dir(out_dir, force=force)
    with staging_folder(target, force=force) as staging:
        write_comparison_page(comparison, staging, **page)
    return target / INDEX_NAME


def write_comparison_page(comparison: Comparison, folder: Path, **page: Any) -> dict[str, Any]:
    """Figures, then ``manifest.json``, then ``index.html`` rendered from it, into ``folder``."""
    (folder / FIGURE_DIR).mkdir(parents=True, exist_ok=True)
    stems = unique_slugs([f"compare-{index:02d}-{slugify(artifact.name)}" for index, artifact in enumerate(comparison.figures, start=1)])
    files = [f"{FIGURE_DIR}/{write_artifact_file(artifact, folder / FIGURE_DIR, stem)}" for artifact, stem in zip(comparison.figures, stems)]
    manifest = plain(build_comparison_manifest(comparison, files, **page))
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    (folder / INDEX_NAME).write_text(render_comparison(manifest), encoding="utf-8")
    return manifest


def render_comparison(manifest: Mapping[str, Any]) -> str:
    """The comparison page's HTML from its manifest alone (autoescaped)."""
    from introspect.html import render_template

    return render_template(TEMPLATE, manifest)


def rerender_comparison(page_dir: str | os.PathLike[str]) -> Path:
    """Render ``index.html`` again from the page's ``manifest.json``."""
    folder = Path(page_dir)
    manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    (folder / INDEX_NAME).write_text(render_comparison(manifest), encoding="utf-8")
    return folder / INDEX_NAME


def load_for_comparison(paths: Sequence[str | os.PathLike[str]], **load_options: Any) -> list[tuple[str, Subject]]:
    """Load each checkpoint (titled by its file name without suffix).

    Raises:
        CheckpointError: a file cannot be read; nothing has been written.
    """
    from introspect.loading import load_checkpoint

    return [(Path(path).stem, load_checkpoint(path, **load_options)) for path in paths]


def compare_checkpoints(
    paths: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str], *, force: bool = False, title: str | None = None, **load_options: Any
) -> tuple[Comparison, Path]:
    """Load, compare and write in one call; returns the comparison and the page's ``index.html``.

    Raises:
        ValueError: fewer than two paths.
        GalleryError: ``out_dir`` may not be written (checked before any loading; see
            :func:`~introspect.outdir.check_output_dir`), or another run is writing it.
        CheckpointError: a checkpoint cannot be read.
    """
    from introspect.outdir import claim_output_dir

    if len(paths) < MIN_CHECKPOINTS:
        raise ValueError(f"a comparison needs at least {MIN_CHECKPOINTS} checkpoints, got {len(paths)}")
    with claim_output_dir(out_dir, force=force):  # held from before loading until the page is in place
        comparison = compare_subjects(load_for_comparison(paths, **load_options))
        try:
            return comparison, write_comparison(comparison, out_dir, force=force, title=title)
        finally:
            for artifact in comparison.figures:
                if artifact.figure is not None:
                    artifact.figure.clear()
