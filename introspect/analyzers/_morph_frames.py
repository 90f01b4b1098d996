"""The frames of the morph animation: the blended image, output bars, a blend marker and a layer's panels.

Helpers of :func:`introspect.analyzers.animations.activation_gifs`; frames are painted with numpy
over a background drawn once (see ``_raster``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import
from introspect.analyzers import _raster as raster
from introspect.analyzers._frames import DPI, WIDTH_INCHES, strip_axes, strip_values
from introspect.analyzers._shared import strongest_channels
from introspect.plotting import grid_shape, montage, new_figure, short_label, symmetric_limit

if TYPE_CHECKING:
    import torch

    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

MAX_BARS = 10


def output_bars(subject: Subject, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[float, float], str]:
    """Values drawn as bars per frame (class probabilities when classifying), their indices and range."""
    if subject.task.kind == "classification" and outputs.shape[1] > 1:
        shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        values, limits, label = shifted / shifted.sum(axis=1, keepdims=True), (0.0, 1.0), "probability"
    else:
        values, label = outputs, "output"
        limits = (min(0.0, float(values.min())), max(0.0, float(values.max())))
        limits = limits if limits[1] > limits[0] else (limits[0] - 1.0, limits[1] + 1.0)
    shown = np.sort(np.argsort(-values.max(axis=0), kind="stable")[:MAX_BARS])
    return values[:, shown], shown, limits, label


def morph_layout(image_shape: tuple, panels: dict, bars: tuple, class_names: tuple) -> tuple:
    """The figure and its axes: image and bars on top, the feature-map panel or strips, the blend timeline last."""
    main = panels["main"][0].shape[1:3] if "main" in panels else None
    strips = {name: panel for name, panel in panels.items() if name != "main"}
    figure = new_figure(WIDTH_INCHES, 3.0 + (2.6 if main is not None else 0.45 * len(strips)), dpi=DPI)
    ratios = [3.0] + ([4.0] if main is not None else [0.6] * len(strips)) + [0.35]
    grid = figure.add_gridspec(len(ratios), 2, height_ratios=ratios)
    axes = {
        "image": figure.add_subplot(grid[0, 0]),
        "bars": figure.add_subplot(grid[0, 1]),
        "blend": figure.add_subplot(grid[-1, :]),
    }
    # Placeholder images give the axes the aspect of what is painted into them later.
    axes["image"].imshow(np.ones(image_shape), aspect="equal")
    axes["image"].set_axis_off()
    _bar_axes(axes["bars"], bars, class_names)
    axes["blend"].set_xlim(-0.03, 1.03)
    axes["blend"].set_ylim(0, 1)
    axes["blend"].set_yticks([])
    axes["blend"].set_xticks([0, 1], ["image A", "image B"], fontsize=6)
    if main is not None:
        axes["main"] = figure.add_subplot(grid[1, :])
        axes["main"].imshow(np.ones((*main, 3)), aspect="equal")
        axes["main"].set_axis_off()
    for row, (name, (_, limits, units)) in enumerate(strips.items(), start=1):
        axes[name] = figure.add_subplot(grid[row, :])
        strip_axes(axes[name], name, units, *limits)
    return figure, axes


def _bar_axes(axes: object, bars: tuple, class_names: tuple) -> None:
    _, shown, limits, label = bars
    axes.set_xlim(-0.5, len(shown) - 0.5)
    axes.set_ylim(*limits)
    names = [short_label(class_names[index], 20) if index < len(class_names) else str(index) for index in shown]
    axes.set_xticks(range(len(shown)), names, rotation=45, ha="right", fontsize=6)
    axes.set_ylabel(label, fontsize=7)
    axes.tick_params(axis="y", labelsize=6)


def morph_panels(
    values: dict[str, np.ndarray], map_layer: str | None, max_channels: int, max_units: int
) -> tuple[dict, dict, str]:
    """Per panel axes: (frames, h, w, 3) colours, and for strips their range and units; the data and a description."""
    maps = values.get(map_layer) if map_layer is not None else None
    if maps is not None and maps.ndim == 4:
        channels = strongest_channels(torch.from_numpy(maps), max_channels)
        columns = grid_shape(len(channels))[1]
        tiles = np.stack([montage(maps[index, channels], columns=columns) for index in range(len(maps))])
        what = (
            f"the {len(channels)} strongest of {maps.shape[1]} channels"
            if len(channels) < maps.shape[1]
            else f"all {maps.shape[1]} channels"
        )
        return (
            {"main": (_map_colours(tiles), None, None)},
            {"maps": maps[:, channels], "channels": channels},
            f"{what} of layer {map_layer}",
        )
    strips = strip_values(values, list(values), max_units)
    table = raster.colour_table("viridis")
    panels = {}
    for name, (units, strip) in strips.items():
        limits = (float(strip.min()), float(strip.max()))
        panels[name] = (raster.apply_colours(strip, *limits, table)[:, None], limits, units)
    data = {
        "layers": {name: strip for name, (_, strip) in strips.items()},
        "units": {name: units for name, (units, _) in strips.items()},
    }
    return panels, data, "the units of layers " + ", ".join(strips)


def paint_morph_frames(
    backdrop: raster.Backdrop, images: np.ndarray, bars: np.ndarray, weights: np.ndarray, panels: dict[str, np.ndarray]
) -> list[np.ndarray]:
    """One frame per blend weight: the image, the output bars, the blend marker and the panels.

    Args:
        backdrop: the background, with axes ``image``, ``bars``, ``blend`` and one per panel.
        images: (frames, H, W, 3) uint8 input images.
        bars: (frames, bars) bar heights.
        weights: blend weight of each frame, marked on axes ``blend``.
        panels: per axes, (frames, h, w, 3) uint8 colours stretched over the axes.
    """
    frames = []
    for index, weight in enumerate(weights):
        frame = backdrop.image.copy()
        raster.paint_image(frame, backdrop.boxes["image"], images[index])
        raster.paint_bars(frame, backdrop, "bars", bars[index])
        row, column = backdrop.to_pixels("blend", np.array([weight]), np.array([0.5]))
        raster.paint_disk(frame, row[0], column[0], 4, raster.RED, backdrop.boxes["blend"])
        for name, colours in panels.items():
            raster.paint_image(frame, backdrop.boxes[name], colours[index])
        frames.append(frame)
    return frames


def _map_colours(tiles: np.ndarray) -> np.ndarray:
    """Colour-mapped montages: viridis from 0 for non-negative maps, else a symmetric diverging map."""
    finite = tiles[np.isfinite(tiles)]
    if finite.size and finite.min() >= 0:
        return raster.apply_colours(tiles, 0.0, max(float(finite.max()), 1e-12), raster.colour_table("viridis"))
    limit = symmetric_limit(tiles)
    return raster.apply_colours(tiles, -limit, limit, raster.colour_table("RdBu_r"))
