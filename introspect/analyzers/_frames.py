"""The frames of the sweep and training animations, painted with numpy over a background drawn once.

Helpers of :func:`introspect.analyzers.animations.activation_gifs`: the figure layout (a curve
above, one strip per layer below), the strips' units, and the painters that copy the background
once per frame and draw the moving parts into it (see ``_raster``).
"""

from __future__ import annotations

import numpy as np

from introspect.analyzers import _raster as raster
from introspect.plotting import new_figure, short_label

DPI = 80
WIDTH_INCHES = 6.0  # 480 pixels at DPI


def frame_axes(num_strips: int, top_ratio: float = 4.0) -> tuple:
    """A figure with a tall top axes and ``num_strips`` short ones below it, and those axes."""
    height = 1.6 + 0.45 * num_strips
    figure = new_figure(WIDTH_INCHES, height, dpi=DPI)
    ratios = [top_ratio] + [1.0] * num_strips
    axes = figure.subplots(1 + num_strips, 1, height_ratios=ratios, squeeze=False)[:, 0]
    return figure, axes


def strip_axes(axes: object, name: str, units: np.ndarray, low: float, high: float) -> None:
    """One layer's strip: no y ticks, unit ticks only when every unit is drawn, the layer and range as label."""
    axes.set_xlim(-0.5, len(units) - 0.5)
    axes.set_ylim(0, 1)
    axes.set_yticks([])
    if not np.array_equal(units, np.arange(len(units))):
        axes.set_xticks([])  # a subset of units: positions are not unit indices
    axes.tick_params(labelsize=6, length=2)
    label = f"{short_label(name, 30)}\n[{low:.2g}, {high:.2g}]"
    axes.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=6)


def strip_values(
    values: dict[str, np.ndarray], names: list[str], max_units: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per layer, the units drawn (at most ``max_units``, those varying most) and their values."""
    chosen = {}
    for name in names:
        flat = values[name].reshape(len(values[name]), -1)
        units = np.sort(np.argsort(-flat.std(axis=0), kind="stable")[:max_units])
        chosen[name] = (units, flat[:, units])
    return chosen


def sweep_backdrop(
    curve_x: np.ndarray, curve: np.ndarray, units: dict[str, np.ndarray], limits: dict
) -> raster.Backdrop:
    """The output curve over the domain and one empty strip per layer, rendered once."""
    figure, axes = frame_axes(len(units))
    axes[0].plot(curve_x, curve, color="black", linewidth=1.2)
    axes[0].set_xlim(curve_x[0], curve_x[-1])
    axes[0].set_xlabel("x", fontsize=7)
    axes[0].set_ylabel("output", fontsize=7)
    axes[0].tick_params(labelsize=6)
    for item, (name, shown) in zip(axes[1:], units.items()):
        strip_axes(item, name, shown, *limits[name])
    return raster.render_backdrop(figure, {"curve": axes[0], **dict(zip(units, axes[1:]))})


def paint_sweep_frames(
    backdrop: raster.Backdrop, frame_x: np.ndarray, outputs: np.ndarray, colours: dict[str, np.ndarray]
) -> list[np.ndarray]:
    """One frame per x: a grey line and red markers at (x, output) in axes ``curve``, strips painted.

    Args:
        backdrop: the background, with axes ``curve`` and one axes per key of ``colours``.
        frame_x: x of each frame.
        outputs: (frames, outputs) network outputs, one marker each.
        colours: per strip axes, (frames, 1, units, 3) uint8 cell colours.
    """
    frames = []
    box = backdrop.boxes["curve"]
    for index, x in enumerate(frame_x):
        frame = backdrop.image.copy()
        rows, columns = backdrop.to_pixels("curve", np.full(outputs.shape[1], x), outputs[index])
        raster.paint_vertical_line(frame, columns[0], box)
        for row, column in zip(rows, columns):
            raster.paint_disk(frame, row, column, 4, raster.RED, box)
        for name, cells in colours.items():
            raster.paint_image(frame, backdrop.boxes[name], cells[index])
        frames.append(frame)
    return frames


def snapshot_backdrop(
    epochs: np.ndarray, x: np.ndarray, curves: np.ndarray, probe: tuple[np.ndarray, np.ndarray] | None
) -> raster.Backdrop:
    """The last curve dashed, the probe data in grey behind (when given as (inputs, targets)), an epoch timeline."""
    figure, axes = frame_axes(1, top_ratio=6.0)
    curve_axes, timeline = axes
    low, high = np.nanmin(curves), np.nanmax(curves)
    if probe is not None:
        inputs, labels = probe
        curve_axes.scatter(inputs, labels, s=6, color="0.75", label="probe data")
        low, high = min(low, labels.min()), max(high, labels.max())
    curve_axes.plot(x, curves[-1], linestyle="--", color="0.4", linewidth=1, label=f"epoch {epochs[-1]:g}")
    margin = 0.05 * (high - low if high > low else 1.0)
    curve_axes.set_ylim(low - margin, high + margin)
    curve_axes.set_xlim(x.min(), x.max() if x.max() > x.min() else x.min() + 1)
    curve_axes.legend(fontsize=6, loc="best")
    curve_axes.tick_params(labelsize=6)
    first, last = epochs[0], epochs[-1] if epochs[-1] > epochs[0] else epochs[0] + 1
    timeline.set_xlim(first - 0.02 * (last - first), last + 0.02 * (last - first))
    timeline.set_ylim(0, 1)
    timeline.set_yticks([])
    if len(epochs) <= 20:
        timeline.set_xticks(epochs, [f"{epoch:g}" for epoch in epochs])
    timeline.set_xlabel("epoch", fontsize=7)
    timeline.tick_params(labelsize=6)
    return raster.render_backdrop(figure, {"curve": curve_axes, "timeline": timeline})


def paint_snapshot_frames(
    backdrop: raster.Backdrop, epochs: np.ndarray, x: np.ndarray, curves: np.ndarray
) -> list[np.ndarray]:
    """One frame per epoch: its curve in blue in axes ``curve``, a red marker at the epoch on ``timeline``."""
    frames = []
    for epoch, curve in zip(epochs, curves):
        frame = backdrop.image.copy()
        rows, columns = backdrop.to_pixels("curve", x, curve)
        raster.paint_polyline(frame, rows, columns, raster.BLUE, backdrop.boxes["curve"])
        row, column = backdrop.to_pixels("timeline", np.array([epoch]), np.array([0.5]))
        raster.paint_disk(frame, row[0], column[0], 4, raster.RED, backdrop.boxes["timeline"])
        frames.append(frame)
    return frames
