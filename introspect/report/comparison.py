"""Drawing a comparison: overlaid training curves and the shared layers side by side.

:mod:`introspect.compare` computes the numbers from the checkpoints; this module turns them into
figures (:func:`comparison_figures`), each with the caption and summary its page shows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from introspect.analyzers.weight_images import (
    MAX_INPUT_CHANNELS,
    MAX_KERNELS,
    MAX_TILES,
    display_mode,
    displayed_values,
    kernel_image,
)
from introspect.artifacts import Artifact
from introspect.colours import diverging_colormap
from introspect.plotting import new_figure, symmetric_limit

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from introspect.compare import Comparison, LayerValues, SharedLayer
    from introspect.compare_cka import CrossCKA

MAX_TITLE = 26
CURVES_CAPTION = (
    "Training curves of every checkpoint on shared axes: one colour per checkpoint, the training split dashed and the"
    " validation split solid. A validation curve that rises while its training curve keeps falling is overfitting;"
    " curves of frozen and trained variants that end together mean the frozen layer cost nothing."
)
PANEL_INCHES = 2.0


def comparison_figures(comparison: Comparison) -> list[Artifact]:
    """The training curves (when any checkpoint has a history), then one figure per drawn shared layer."""
    curves = curves_figure(comparison.titles, comparison.histories)
    figures = [curves] if curves is not None else []
    shared = {layer.name: layer for layer in comparison.shared}
    for values in comparison.layers:
        artifact = shared_layer_figure(shared[values.name], values, comparison.titles)
        if artifact is not None:
            figures.append(artifact)
    notes = " ".join(f"{note}." for note in comparison.representation_notes)
    figures += [
        representation_figure(pair, index, notes) for index, pair in enumerate(comparison.representations, start=1)
    ]
    return figures


def representation_figure(pair: CrossCKA, index: int = 1, notes: str = "") -> Artifact:
    """Linear CKA between every layer of one checkpoint (rows) and of another (columns), as a heatmap."""
    rows, columns = pair.layers
    figure = new_figure(min(12.0, 3.0 + 0.5 * len(columns)), min(10.0, 2.6 + 0.45 * len(rows)))
    axes = figure.add_subplot()
    image = axes.imshow(pair.cka, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
    axes.set_xticks(range(len(columns)), [plain_text(name, 24) for name in columns], rotation=90, fontsize=7)
    axes.set_yticks(range(len(rows)), [plain_text(name, 24) for name in rows], fontsize=7)
    axes.set_xlabel(plain_text(pair.titles[1]), fontsize=8)
    axes.set_ylabel(plain_text(pair.titles[0]), fontsize=8)
    for (row, column), value in np.ndenumerate(pair.cka):
        if len(rows) * len(columns) <= 100 and np.isfinite(value):
            colour = "white" if value < 0.6 else "black"
            axes.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=6, color=colour)
    figure.colorbar(image, ax=axes, shrink=0.8, label="linear CKA")
    caption = (
        f"Linear CKA (Kornblith et al. 2019) between the layers of {pair.titles[0]} (rows) and {pair.titles[1]} "
        f"(columns) on the same {pair.num_inputs} probe inputs of {pair.titles[0]}"
        + (f" ({pair.note} for {pair.titles[1]})" if pair.note else "")
        + ": 1 is the same representation up to a rotation and a scale, 0 unrelated."
    )
    summary = {"titles": list(pair.titles), "layers": [list(rows), list(columns)], "num_inputs": pair.num_inputs}
    return Artifact(
        name=f"representations-{index}",
        caption=caption + (f" {notes}" if notes else ""),
        figure=figure,
        data={"cka": pair.cka},
        summary=summary,
    )


def shared_layer_figure(layer: SharedLayer, values: LayerValues, titles: Sequence[str]) -> Artifact | None:
    """One shared layer of every checkpoint, with its caption and its drift in the summary."""
    labels = [drift_label(drift, relative) for drift, relative in zip(layer.drift, layer.relative_drift)]
    artifact = layer_figure(layer.name, layer.shape, titles, values.finals, values.initials, labels)
    if artifact is None:
        return None
    what = "kernels" if len(layer.shape) in (3, 4) else "weight matrix (rows: output units, columns: inputs)"
    caption = (
        f"The {what} of {layer.name} in every checkpoint, in the order of the table."
        " Initial and final values of all checkpoints share one colour scale with zero at its centre, so a tile that"
        " looks stronger is stronger; the change final - initial has a shared scale of its own."
    )
    if len(layer.shape) in (3, 4) and layer.shape[0] > MAX_KERNELS:
        caption += f" The first {MAX_KERNELS} of {layer.shape[0]} kernels are shown, the same ones in every column."
    summary = {"drift": list(layer.drift), "relative_drift": list(layer.relative_drift), **artifact.summary}
    return dataclasses.replace(artifact, caption=caption, summary=summary)


def drift_label(drift: float | None, relative: float | None) -> str:
    """``||Δ|| = 0.123 (4.5%)``, ``||Δ|| = 0 (unchanged)`` or ``no initial weights``."""
    if drift is None:
        return "no initial weights"
    if drift == 0.0:
        return "||Δ|| = 0 (unchanged)"
    return f"||Δ|| = {drift:.3g}" + (f" ({100 * relative:.1f}%)" if relative is not None else "")


def plain_text(text: str, limit: int = MAX_TITLE) -> str:
    """``text`` shortened for a panel title, with ``$`` escaped so matplotlib never reads mathtext."""
    short = text if len(text) <= limit else text[: limit - 1] + "…"
    return short.replace("$", r"\$")


def curves_figure(titles: Sequence[str], histories: Sequence[Mapping[str, Sequence[Any]]]) -> Artifact | None:
    """Loss (and accuracy, when recorded) per epoch: one colour per checkpoint, train dashed, val solid."""
    recorded = {key for history in histories for key in history if _series(history, key)}
    metrics = [metric for metric in ("loss", "accuracy") if {f"train_{metric}", f"val_{metric}"} & recorded]
    if not metrics:
        return None
    figure = new_figure(5.2 * len(metrics) + 1.6, 3.8)
    axes_list = figure.subplots(1, len(metrics), squeeze=False)[0]
    colours = _colours(len(titles))
    plotted: dict[str, dict[str, list[float]]] = {}
    for axes, metric in zip(axes_list, metrics):
        for title, history, colour in zip(titles, histories, colours):
            for split, style in (("train", "--"), ("val", "-")):
                values = _series(history, f"{split}_{metric}")
                if values:
                    epochs = _epochs(history, len(values))
                    axes.plot(epochs, values, style, color=colour, marker="o", markersize=3)
                    plotted.setdefault(title, {})[f"{split}_{metric}"] = values
        _integer_epochs(axes)
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.set_title(f"{metric}: train dashed, validation solid", fontsize=10)
        axes.grid(alpha=0.3)
    figure.legend(*_legend(titles, colours), loc="outside right center", fontsize=8)
    summary = {"metrics": metrics}
    data = {"curves": plotted}
    return Artifact(name="training_curves", caption=CURVES_CAPTION, figure=figure, data=data, summary=summary)


def _legend(titles: Sequence[str], colours: Sequence[Any]) -> tuple[list[Any], list[str]]:
    """One entry per checkpoint (its colour) and two for the line styles, not one per line."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colour, marker="o", markersize=3) for colour in colours]
    handles += [Line2D([], [], color="black", linestyle="--"), Line2D([], [], color="black", linestyle="-")]
    return handles, [plain_text(title) for title in titles] + ["train", "validation"]


def _integer_epochs(axes: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    low, high = axes.get_xlim()
    if high - low < 2:  # a single epoch: centre its points instead of a 0.96..1.04 axis
        middle = (low + high) / 2
        axes.set_xlim(middle - 1, middle + 1)


def _series(history: Mapping[str, Sequence[Any]], key: str) -> list[float]:
    values = history.get(key) or []
    return [float(value) for value in values] if isinstance(values, (list, tuple)) else []


def _epochs(history: Mapping[str, Sequence[Any]], count: int) -> list[float]:
    epochs = history.get("epoch")
    if isinstance(epochs, (list, tuple)) and len(epochs) == count:
        return [float(epoch) for epoch in epochs]
    return [float(index) for index in range(1, count + 1)]


def _colours(count: int) -> list[Any]:
    from matplotlib import colormaps

    palette = colormaps["tab10" if count <= 10 else "tab20"]
    return [palette(index % palette.N) for index in range(count)]


def layer_figure(
    name: str,
    shape: Sequence[int],
    titles: Sequence[str],
    finals: Sequence[np.ndarray],
    initials: Sequence[np.ndarray | None],
    drift_labels: Sequence[str],
) -> Artifact | None:
    """One shared layer of every checkpoint side by side: initial, final and change rows.

    Initial and final values of all checkpoints share one zero-centred colour scale, so that a
    kernel that looks stronger is stronger; the change ``final - initial`` has its own shared
    scale. Conv weights (``shape`` of 3 or 4 sizes) are drawn as kernel montages, dense weights
    as matrices; other tensors (biases) get no figure. Which layers are drawn, and how many of
    their kernels, :func:`introspect.compare.compare_subjects` decides.
    """
    if len(shape) in (3, 4):
        images, mode = _kernel_images(finals, initials)
    elif len(shape) == 2:
        images, mode = _matrix_images(finals, initials), "matrix"
    else:
        return None
    figure = _draw_grid(images, titles, drift_labels, rgb=mode == "rgb", matrix=mode == "matrix")
    figure.suptitle(f"{plain_text(name, 60)}: {' x '.join(str(size) for size in shape)}", fontsize=10)
    data = {"limit": images["limit"], "change_limit": images.get("change_limit"), "mode": mode}
    summary = {"mode": mode, "limit": images["limit"]}
    return Artifact(name=name, caption="", layer=name, figure=figure, data=data, summary=summary)


def _kernel_images(finals: Sequence[np.ndarray], initials: Sequence[np.ndarray | None]) -> tuple[dict[str, Any], str]:
    """Montages per checkpoint; the same first kernels of each, so that tiles line up across columns."""
    as_kernels = [array[:, None] if array.ndim == 3 else array for array in finals]
    starts = [None if start is None else (start[:, None] if start.ndim == 3 else start) for start in initials]
    shown = min(MAX_KERNELS, as_kernels[0].shape[0])
    mode = display_mode(as_kernels[0].shape[1], True, shown, "auto", MAX_INPUT_CHANNELS, MAX_TILES)
    values = [displayed_values(kernels[:shown], mode, MAX_INPUT_CHANNELS) for kernels in as_kernels]
    start_values = [None if s is None else displayed_values(s[:shown], mode, MAX_INPUT_CHANNELS) for s in starts]
    return _rows(values, start_values, lambda array, limit: kernel_image(array, mode, limit)), mode


def _matrix_images(finals: Sequence[np.ndarray], initials: Sequence[np.ndarray | None]) -> dict[str, Any]:
    return _rows(list(finals), list(initials), lambda array, limit: array)


def _rows(values: list[np.ndarray], starts: list[np.ndarray | None], draw: Any) -> dict[str, Any]:
    """Images of the final, initial and change rows with their shared colour limits."""
    known = [*values, *[start for start in starts if start is not None]]
    limit = symmetric_limit(np.concatenate([array.ravel() for array in known]))
    rows: dict[str, Any] = {"limit": limit, "final": [draw(array, limit) for array in values]}
    if any(start is not None for start in starts):
        changes = [None if start is None else array - start for array, start in zip(values, starts)]
        change_limit = symmetric_limit(np.concatenate([change.ravel() for change in changes if change is not None]))
        # a frozen layer's change is exactly zero everywhere: keep its scale readable, not 1e-12 wide
        change_limit = change_limit if change_limit > 1e-12 else 1.0
        rows["initial"] = [None if start is None else draw(start, limit) for start in starts]
        rows["change"] = [None if change is None else draw(change, change_limit) for change in changes]
        rows["change_limit"] = change_limit
    return rows


def _draw_grid(
    images: dict[str, Any], titles: Sequence[str], drift_labels: Sequence[str], *, rgb: bool, matrix: bool
) -> Figure:
    """A row per kind of image (initial, final, change), a column per checkpoint, and the colour bars."""
    row_names = [row for row in ("initial", "final", "change") if row in images]
    panel_width, panel_height = _panel_inches(images["final"][0], matrix)
    figure = new_figure(len(titles) * panel_width + 1.6, len(row_names) * (panel_height + 0.45) + 0.6)
    grid = figure.subplots(len(row_names), len(titles), squeeze=False)
    cmap = diverging_colormap()
    shown_in: dict[str, Any] = {}
    for row_index, row in enumerate(row_names):
        limit = images["change_limit"] if row == "change" else images["limit"]
        for column, image in enumerate(images[row]):
            axes = grid[row_index][column]
            _clear_ticks(axes)
            if row_index == 0:
                axes.set_title(plain_text(titles[column]), fontsize=9)
            if row == "change":
                axes.set_xlabel(drift_labels[column], fontsize=8)
            drawn = _draw_cell(axes, image, cmap, limit, rgb=rgb, aspect="auto" if matrix else "equal")
            if drawn is not None:
                shown_in[row] = drawn
        grid[row_index][0].set_ylabel({"change": "final - initial"}.get(row, row), fontsize=9)
    _colour_bars(figure, grid, row_names, shown_in)
    return figure


def _panel_inches(first: np.ndarray, matrix: bool) -> tuple[float, float]:
    if matrix:
        return PANEL_INCHES, PANEL_INCHES * 0.75
    height, width = first.shape[:2]
    scale = min(PANEL_INCHES / width, PANEL_INCHES / height, 0.3)
    return max(width * scale, 1.5), max(height * scale, 1.2)


def _draw_cell(axes: Axes, image: np.ndarray | None, cmap: Any, limit: float, *, rgb: bool, aspect: str) -> Any:
    """Draw one image; returns what a colour bar can be made from (``None`` for RGB or no image)."""
    if image is None:
        axes.text(0.5, 0.5, "no initial\nweights", ha="center", va="center", fontsize=8, transform=axes.transAxes)
        return None
    if rgb:
        axes.imshow(image, interpolation="nearest", aspect=aspect)
        return None
    return axes.imshow(image, cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest", aspect=aspect)


def _colour_bars(figure: Figure, grid: Any, row_names: list[str], shown_in: dict[str, Any]) -> None:
    # initial and final share one scale, so one colour bar spans both rows; the change has its own
    for group in (("initial", "final"), ("change",)):
        rows = [row for row in group if row in shown_in]
        if rows:
            axes_group = [axes for row in rows for axes in grid[row_names.index(row)]]
            bar = figure.colorbar(shown_in[rows[-1]], ax=axes_group, shrink=0.85, pad=0.01)
            bar.ax.tick_params(labelsize=7)


def _clear_ticks(axes: Axes) -> None:
    axes.set_xticks([])
    axes.set_yticks([])
