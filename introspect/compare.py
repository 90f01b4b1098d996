"""Comparing checkpoints side by side: one table of numbers, the histories, the shared layers.

Any set of two or more checkpoints can be compared, so the three comparisons of the
frozen-kernel experiment are three calls: the schemes of one architecture
(``neta1-hf neta1-ht neta1-dt``), one scheme across architectures (``neta1-hf neta2-hf``) and
every NetA1 scheme against NetA2-HF. Layers are matched by parameter name *and* shape: NetA1's
and NetA2's ``conv1.weight`` (4 x 1 x 5 x 5) are drawn side by side, their ``linear1.weight``
(10 x 576 against 10 x 300) are not.

This module computes numbers only; :mod:`introspect.report` draws them and writes the page
(:func:`introspect.report.write_comparison`, or ``GalleryWriter.add_comparison``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from introspect.analyzers.weight_images import MAX_KERNELS
from introspect.compare_cka import CrossCKA, cross_cka
from introspect.describe import architecture_name, parameter_counts
from introspect.history import best_epoch, best_index

# Old import paths of what moved to the report package, kept for one release.
from introspect.report.comparison import drift_label  # noqa: F401
from introspect.report.render import render as render_comparison  # noqa: F401
from introspect.report.render import rerender as rerender_comparison  # noqa: F401
from introspect.report.writer import write_comparison

if TYPE_CHECKING:
    from introspect.artifacts import Artifact
    from introspect.subject import Subject

MIN_CHECKPOINTS = 2
MAX_LAYER_FIGURES = 12
#: Dense weight matrices with more elements than this get numbers but no figure.
MAX_MATRIX_ELEMENTS = 250_000
TEST_METRIC_KEYS = ("test_accuracy", "test_mse", "test_loss")


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
class LayerValues:
    """The values of a shared layer that its figure shows, per checkpoint (float64).

    Attributes:
        name: the parameter's name, as in :class:`SharedLayer`.
        finals: the trained values; of a conv layer only its first ``MAX_KERNELS`` kernels,
            the same ones in every checkpoint, since only those are drawn.
        initials: the initial values cut the same way; ``None`` where none is stored.
    """

    name: str
    finals: tuple[np.ndarray, ...]
    initials: tuple[np.ndarray | None, ...]


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Everything a comparison page shows, as numbers.

    Attributes:
        titles: one distinct title per checkpoint, in the order given.
        rows: the table, one dict per checkpoint (see :func:`summary_row`).
        shared: parameters all checkpoints share by name and shape, in the first one's order.
        unshared: the other parameter names, each with its shape per checkpoint (``None``: absent).
        sources: each checkpoint's path, sha256, architecture, task and dataset.
        histories: each checkpoint's training history (empty where it has none).
        layers: the shared layers to draw (conv kernels, dense matrices that are not too
            large), at most ``max_layer_figures`` of them.
        representations: linear CKA between the layers of the first checkpoint and of each other
            one, on the first one's probe (:mod:`introspect.compare_cka`).
        representation_notes: why a checkpoint is missing from ``representations``.
    """

    titles: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    shared: tuple[SharedLayer, ...]
    unshared: tuple[dict[str, Any], ...]
    sources: tuple[dict[str, Any], ...]
    histories: tuple[Mapping[str, Any], ...] = ()
    layers: tuple[LayerValues, ...] = ()
    representations: tuple[CrossCKA, ...] = ()
    representation_notes: tuple[str, ...] = ()

    @property
    def figures(self) -> tuple[Artifact, ...]:
        """Deprecated: the figures, drawn anew on each access; use :func:`introspect.report.comparison_figures`."""
        from introspect.report.comparison import comparison_figures

        return tuple(comparison_figures(self))


def compare_subjects(
    entries: Sequence[tuple[str, Subject]], *, max_layer_figures: int = MAX_LAYER_FIGURES
) -> Comparison:
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
    drawn = [layer.name for layer in shared if drawable(layer.shape)][:max_layer_figures]
    representations, notes = cross_cka(titles, subjects)
    return Comparison(
        titles=titles,
        rows=tuple(summary_row(title, subject) for title, subject in zip(titles, subjects)),
        shared=shared,
        unshared=tuple(unshared),
        sources=tuple(_source(subject) for subject in subjects),
        histories=tuple(subject.history or {} for subject in subjects),
        layers=tuple(layer_values(name, subjects) for name in drawn),
        representations=representations,
        representation_notes=notes,
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
    """One table row: val accuracy at the best epoch (``history.best_epoch``), final losses, test metric, speed."""
    history = subject.history or {}
    index = best_index(history)
    best_accuracy = _at(history.get("val_accuracy"), index)
    test_name, test_value = headline_test_metric(subject.metadata.get("metrics") or {})
    trainable, frozen = parameter_counts(subject)
    seconds = _finite(history.get("seconds_per_batch"))
    return {
        "title": title,
        "architecture": architecture_name(subject, unknown="unknown"),
        "epochs": len(_finite(history.get("train_loss"))),
        "best_val_accuracy": best_accuracy,
        "best_val_epoch": best_epoch(history) if index is not None else None,
        "final_train_loss": _last(history.get("train_loss")),
        "final_val_loss": _last(history.get("val_loss")),
        "test_metric": test_name,
        "test_value": test_value,
        "seconds_per_batch": float(np.mean(seconds)) if seconds else None,
        "trainable": trainable,
        "frozen": frozen,
    }


def _at(values: Any, index: int | None) -> float | None:
    """The finite number at ``index`` of a series, or ``None``."""
    if index is None or not isinstance(values, (list, tuple)) or index >= len(values):
        return None
    value = values[index]
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def headline_test_metric(metrics: Mapping[str, Any]) -> tuple[str | None, float | None]:
    """The headline test number: accuracy, else MSE, else loss, else the first ``test_*`` metric."""
    others = sorted(key for key in metrics if str(key).startswith("test_"))
    for key in [key for key in TEST_METRIC_KEYS if key in metrics] + others:
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

    def everywhere(name: str, shape: tuple[int, ...]) -> bool:
        return all(name in subject.weights and tuple(subject.weights[name].shape) == shape for subject in subjects[1:])

    shared = [name for name, tensor in subjects[0].weights.items() if everywhere(name, tuple(tensor.shape))]
    names = list(dict.fromkeys(name for subject in subjects for name in subject.weights))
    unshared = [
        {"name": name, "shapes": [list(s.weights[name].shape) if name in s.weights else None for s in subjects]}
        for name in names
        if name not in shared
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
    shape = tuple(int(size) for size in subjects[0].weights[name].shape)
    return SharedLayer(name, shape, tuple(drifts), tuple(relatives))


def drawable(shape: Sequence[int]) -> bool:
    """Whether a shared layer gets a figure: conv kernels, and dense matrices up to ``MAX_MATRIX_ELEMENTS``."""
    return len(shape) in (3, 4) or (len(shape) == 2 and math.prod(shape) <= MAX_MATRIX_ELEMENTS)


def layer_values(name: str, subjects: Sequence[Subject]) -> LayerValues:
    """The final and initial values of ``name`` that its figure draws (the first kernels of a conv layer)."""
    pairs = [_final_and_initial(subject, name) for subject in subjects]
    cut = slice(0, MAX_KERNELS) if pairs[0][0].ndim in (3, 4) else slice(None)
    # copies, so that a cut does not keep the whole float64 layer alive
    finals = tuple(final[cut].copy() for final, _ in pairs)
    return LayerValues(name, finals, tuple(None if initial is None else initial[cut].copy() for _, initial in pairs))


def _final_and_initial(subject: Subject, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    final = subject.weights[name].detach().cpu().double().numpy()
    initial = subject.initial_weights.get(name)
    if initial is None or tuple(initial.shape) != final.shape:
        return final, None
    return final, initial.detach().cpu().double().numpy()


def _source(subject: Subject) -> dict[str, Any]:
    return {
        "path": subject.metadata.get("path"),
        "sha256": subject.metadata.get("sha256"),
        "architecture": subject.metadata.get("architecture"),
        "task": subject.task.kind,
        "dataset": subject.task.dataset,
    }


def load_for_comparison(paths: Sequence[str | os.PathLike[str]], **load_options: Any) -> list[tuple[str, Subject]]:
    """Load each checkpoint (titled by its file name without suffix).

    Raises:
        CheckpointError: a file cannot be read; nothing has been written.
    """
    from introspect.loading import load_checkpoint

    return [(Path(path).stem, load_checkpoint(path, **load_options)) for path in paths]


def compare_checkpoints(
    paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    force: bool = False,
    title: str | None = None,
    **load_options: Any,
) -> tuple[Comparison, Path]:
    """Load, compare and write in one call; returns the comparison and the page's ``index.html``.

    Raises:
        ValueError: fewer than two paths.
        GalleryError: ``out_dir`` may not be written (checked before any loading; see
            :func:`~introspect.report.outdir.check_output_dir`), or another run is writing it.
        CheckpointError: a checkpoint cannot be read.
    """
    from introspect.report.outdir import claim_output_dir

    if len(paths) < MIN_CHECKPOINTS:
        raise ValueError(f"a comparison needs at least {MIN_CHECKPOINTS} checkpoints, got {len(paths)}")
    with claim_output_dir(out_dir, force=force):  # held from before loading until the page is in place
        comparison = compare_subjects(load_for_comparison(paths, **load_options))
        return comparison, write_comparison(comparison, out_dir, force=force, title=title)
