"""Helpers of the dataset analyzers: inputs fetched back by index, thumbnail strips, layer choice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import
from introspect.analyzers._shared import activation_layers, display_images, interesting_layers, requested_layers
from introspect.capture import leaf_layers
from introspect.dataset.preprocess import Preprocessing
from introspect.dataset.sources import Batch
from introspect.errors import SkipAnalyzer
from introspect.plotting import new_figure

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure

    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

#: Pixels between thumbnails in a strip.
GAP = 2


def fetch_inputs(subject: Subject, indices: Sequence[int]) -> torch.Tensor | None:
    """The dataset's inputs at ``indices``, preprocessed as in the pass; ``None`` when the data cannot be indexed."""
    source = subject.data.source
    if not source.is_map_style or not len(indices):
        return None
    inputs = torch.stack([torch.as_tensor(source.dataset[int(index)][0]) for index in indices])
    batch = Batch(inputs=inputs, labels=None, indices=torch.as_tensor(list(indices)))
    return Preprocessing(subject.task, source)(batch).inputs


def thumbnails(subject: Subject, indices: Sequence[int]) -> np.ndarray | None:
    """(N, H, W, 3) images in [0, 1] of the dataset's inputs at ``indices``, shown as the probe is shown."""
    if subject.task.image_shape is None:
        return None
    inputs = fetch_inputs(subject, indices)
    return None if inputs is None else display_images(subject, inputs)


def small_thumbnails(subject: Subject, indices: Sequence[int], chunk: int = 256) -> np.ndarray | None:
    """Thumbnails of the inputs at ``indices``, no side over the sprite sheet's limit, read a chunk at a
    time so that thousands of large images never sit in memory at full size."""
    from introspect.report.interactive import shrunk

    if subject.task.image_shape is None or not subject.data.source.is_map_style:
        return None
    parts = [thumbnails(subject, indices[start : start + chunk]) for start in range(0, len(indices), chunk)]
    return np.concatenate([shrunk(part) for part in parts]) if parts and parts[0] is not None else None


def strip_rows_figure(rows: Sequence[tuple[str, np.ndarray, Sequence[str]]], title: str) -> Figure:
    """One row per entry: a label on the left, then its thumbnails side by side with a caption under each.

    Each row is one image (the thumbnails pasted into one array), so the figure stays light
    however many thumbnails it shows.
    """
    columns = max(len(images) for _, images, _ in rows)
    figure = new_figure(1.6 + 0.9 * columns, 0.45 + 1.05 * len(rows))
    figure.suptitle(title, fontsize=10)
    for position, (label, images, captions) in enumerate(rows):
        axes = figure.add_subplot(len(rows), 1, position + 1)
        height, width = images.shape[1:3]
        canvas = np.ones((height, columns * (width + GAP), 3))
        for column, image in enumerate(images):
            start = column * (width + GAP)
            canvas[:, start : start + width] = image
        axes.imshow(canvas, interpolation="nearest", extent=(0, columns, 1, 0))
        axes.set_xticks([column + 0.5 for column in range(len(captions))], list(captions), fontsize=6)
        axes.tick_params(length=0, pad=1)
        axes.set_yticks([])
        axes.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
        for side in axes.spines.values():
            side.set_visible(False)
    figure.subplots_adjust(left=1.4 / (1.6 + 0.9 * columns), right=0.99, top=0.9, bottom=0.05, hspace=0.6)
    return figure


def unit_layers(subject: Subject, requested: str | None, limit: int) -> list[str]:
    """The layers whose units a dataset analyzer follows: ``requested`` (comma-separated names), else
    the activation layers (every interesting layer when there are none), at most ``limit`` of them."""
    if requested:
        return requested_layers(subject.model, requested)
    names = list(activation_layers(subject.model)) or interesting_layers(subject.model)
    if not names:
        raise SkipAnalyzer("the model has no layers to follow over the dataset")
    return names[-limit:] if len(names) > limit else names


def penultimate_layer(subject: Subject, requested: str | None = None) -> str:
    """The layer before the output layer (the representation the classes are read from), or ``requested``."""
    if requested:
        if requested not in dict(subject.model.named_modules()):
            raise SkipAnalyzer(f"no layer named {requested!r} (introspect info lists the layers)")
        return requested
    layers = interesting_layers(subject.model) or [name for name, _ in leaf_layers(subject.model)]
    if len(layers) < 2:
        raise SkipAnalyzer("the model has a single layer, so there is no representation before the output")
    return layers[-2]


def class_names(subject: Subject, count: int) -> list[str]:
    """Names for ``count`` classes: the checkpoint's, else the dataset's, else the class numbers."""
    names = list(subject.task.class_names) or list(subject.data.source.class_names)
    return [names[index] if index < len(names) else str(index) for index in range(count)]
