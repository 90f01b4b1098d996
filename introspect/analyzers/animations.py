"""Animated GIFs of activations: x sweeping the domain, one image morphing into another, training.

Frames are arrays painted with numpy over a background drawn once with matplotlib (see
``_raster``), so 120 frames cost about as much as one figure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import
from introspect.analyzers import _raster as raster
from introspect.analyzers._shared import (
    activation_layers,
    curve_layers,
    display_images,
    evenly_spaced,
    interesting_layers,
    scalar_domain,
    strongest_channels,
)
from introspect.artifacts import Artifact
from introspect.capture import evaluation_mode, recording
from introspect.errors import SkipAnalyzer
from introspect.needs import Needs
from introspect.plotting import grid_shape, montage, new_figure, short_label, symmetric_limit
from introspect.spec import analyzer

#: Where this module's analyzers come in the gallery (see ``introspect.analyzers``).
POSITION = 8

if TYPE_CHECKING:
    import torch

    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

MAX_FRAMES = 120
DPI = 80
WIDTH_INCHES = 6.0  # 480 pixels at DPI
MAX_OUTPUTS = 4
MAX_BARS = 10
CHUNK = 16
MIN_MAP_SIZE = 6


@analyzer(needs=Needs.FORWARD)
def activation_gifs(
    subject: Subject,
    /,
    *,
    num_frames: int = 120,
    num_morph_frames: int = 60,
    max_layers: int = 8,
    max_units: int = 64,
    max_channels: int = 16,
    layer: str | None = None,
) -> list[Artifact]:
    """Animations of activations: x sweeping the domain, one input morphing into another, training.

    Scalar input: one colour strip per layer shows every unit's activation as x moves along
    the domain, with the network's output curve and a red marker at the current x. Image
    input: the input blends linearly from one probe image into another (of another class when
    labels exist) and back, with a layer's feature maps (or dense units) and the outputs. With
    snapshots: the output curve at each recorded epoch, the epoch marked on a timeline below.
    Frame counts are capped at 120.
    """
    num_frames = max(2, min(num_frames, MAX_FRAMES))
    artifacts = []
    if subject.task.is_scalar:
        artifacts.append(sweep_animation(subject, num_frames, max_layers, max_units))
    elif subject.task.is_image:
        num_morph_frames = max(2, min(num_morph_frames, MAX_FRAMES))
        artifacts.append(morph_animation(subject, num_morph_frames, max_layers, max_units, max_channels, layer))
    if subject.snapshots:
        artifacts.append(snapshot_animation(subject, num_frames))
    if not artifacts:
        raise SkipAnalyzer("the input is neither a single number nor an image, and there are no snapshots")
    return artifacts


def forward_recording(
    subject: Subject, inputs: torch.Tensor, layers: list[str]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``layers``' outputs and the model's output for ``inputs``, in chunks, as float64 arrays."""
    recorded: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    results = []
    model = subject.model
    with evaluation_mode(model), recording(model, layers) as outputs, torch.no_grad():
        for start in range(0, len(inputs), CHUNK):
            outputs.clear()
            result = model(inputs[start : start + CHUNK].to(subject.device))
            if not isinstance(result, torch.Tensor):
                raise SkipAnalyzer(f"the model returns {type(result).__name__}, not a tensor")
            results.append(result.detach().double().cpu().reshape(len(result), -1).numpy())
            for name in layers:
                if name in outputs:
                    recorded[name].append(outputs[name].double().numpy())
    return {name: np.concatenate(parts) for name, parts in recorded.items() if parts}, np.concatenate(results)


def _frame_axes(num_strips: int, top_ratio: float = 4.0) -> tuple:
    height = 1.6 + 0.45 * num_strips
    figure = new_figure(WIDTH_INCHES, height, dpi=DPI)
    ratios = [top_ratio] + [1.0] * num_strips
    axes = figure.subplots(1 + num_strips, 1, height_ratios=ratios, squeeze=False)[:, 0]
    return figure, axes


def _strip_axes(axes: object, name: str, units: np.ndarray, low: float, high: float) -> None:
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


def sweep_animation(subject: Subject, num_frames: int, max_layers: int, max_units: int) -> Artifact:
    """x sweeps the domain: the output curve with a moving marker, one strip per hidden layer."""
    low, high = scalar_domain(subject)
    curve_x, frame_x = np.linspace(low, high, 400), np.linspace(low, high, num_frames)
    hidden = evenly_spaced(curve_layers(subject.model)[:-1], max_layers)
    grid = torch.as_tensor(np.concatenate([curve_x, frame_x]), dtype=subject.probe_inputs.dtype).reshape(-1, 1)
    layer_values, outputs = forward_recording(subject, grid, hidden)
    curve, frame_outputs = outputs[:400, :MAX_OUTPUTS], outputs[400:, :MAX_OUTPUTS]
    strips = strip_values({name: value[400:] for name, value in layer_values.items()}, list(layer_values), max_units)
    limits = {name: (float(values.min()), float(values.max())) for name, (_, values) in strips.items()}
    backdrop = _sweep_backdrop(curve_x, curve, {name: units for name, (units, _) in strips.items()}, limits)
    table = raster.colour_table("viridis")
    colours = {
        name: raster.apply_colours(values, *limits[name], table)[:, None] for name, (_, values) in strips.items()
    }
    frames = paint_sweep_frames(backdrop, frame_x, frame_outputs, colours)
    totals = {name: layer_values[name].reshape(len(grid), -1).shape[1] for name in strips}
    left_out = [
        f"{len(units)} of {totals[name]} units of {name}"
        for name, (units, _) in strips.items()
        if len(units) < totals[name]
    ]
    caption = (
        f"x sweeps [{low:g}, {high:g}] in {num_frames} frames; each strip is one layer's units (colour: "
        "activation, range in brackets), the red marker is the output at x."
    )
    if left_out:
        caption += " Shown: the units that vary most, " + "; ".join(left_out) + "."
    data = {
        "x": frame_x,
        "output": frame_outputs,
        "layers": {name: values for name, (_, values) in strips.items()},
        "units": {name: units for name, (units, _) in strips.items()},
    }
    return Artifact(
        name="sweep",
        caption=caption,
        frames=frames,
        fps=12,
        data=data,
        summary={"num_frames": len(frames), "layers": list(strips), "domain": [low, high]},
    )


def _sweep_backdrop(
    curve_x: np.ndarray, curve: np.ndarray, units: dict[str, np.ndarray], limits: dict
) -> raster.Backdrop:
    figure, axes = _frame_axes(len(units))
    axes[0].plot(curve_x, curve, color="black", linewidth=1.2)
    axes[0].set_xlim(curve_x[0], curve_x[-1])
    axes[0].set_xlabel("x", fontsize=7)
    axes[0].set_ylabel("output", fontsize=7)
    axes[0].tick_params(labelsize=6)
    for item, (name, shown) in zip(axes[1:], units.items()):
        _strip_axes(item, name, shown, *limits[name])
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


def morph_pair(subject: Subject) -> tuple[int, int | None]:
    """The first probe index and a second one, of another class when labels exist (None: blank)."""
    labels = subject.probe_labels
    count = len(subject.probe_inputs)
    if labels is not None and labels.dim() == 1 and not labels.is_floating_point():
        others = (labels != labels[0]).nonzero().reshape(-1)
        if len(others):
            return 0, int(others[0])
    return 0, (1 if count > 1 else None)


def ping_pong(num_frames: int) -> np.ndarray:
    """Blend weights going 0 → 1 → back, ``num_frames`` in all, so the GIF loops smoothly."""
    half = num_frames // 2 + 1
    forward = np.linspace(0.0, 1.0, half)
    weights = np.concatenate([forward, forward[-2:0:-1]])
    return weights[:num_frames] if len(weights) >= num_frames else np.linspace(0.0, 1.0, num_frames)


def choose_map_layer(subject: Subject, layer: str | None) -> tuple[str | None, list[str]]:
    """The layer whose feature maps are shown (deepest with maps >= 6x6), or the dense strip layers."""
    layers = interesting_layers(subject.model)
    if layer is not None:
        if layer not in layers:
            raise SkipAnalyzer(f"there is no layer named {layer!r} to animate")
        return layer, []
    shapes, _ = forward_recording(subject, subject.probe_inputs[:1], layers)
    maps = [name for name in layers if name in shapes and shapes[name].ndim == 4]
    if not maps:
        dense = [name for name in curve_layers(subject.model)[:-1] if name in shapes]
        return None, dense
    large = [name for name in maps if min(shapes[name].shape[2:]) >= MIN_MAP_SIZE]
    if not large:
        return maps[0], []
    # An activation layer's output is what the next block sees; prefer it over a conv or norm output.
    activated = [name for name in large if name in activation_layers(subject.model)]
    return (activated or large)[-1], []


def morph_inputs(
    subject: Subject, num_frames: int
) -> tuple[torch.Tensor, np.ndarray, np.ndarray, tuple[int, int | None]]:
    """Blended model inputs, the blended display images and the blend weights."""
    first, second = morph_pair(subject)
    start = subject.probe_inputs[first].detach().cpu()
    end = subject.probe_inputs[second].detach().cpu() if second is not None else torch.zeros_like(start)
    weights = ping_pong(num_frames)
    blend = torch.as_tensor(weights, dtype=start.dtype).reshape(-1, *[1] * start.dim())
    inputs = (1 - blend) * start + blend * end
    # Blend the displayed end images, so a per-image rescale cannot make the frames flicker.
    shown = display_images(subject, torch.stack([start, end]))
    images = (1 - weights[:, None, None, None]) * shown[0] + weights[:, None, None, None] * shown[1]
    return inputs, (images * 255).round().astype(np.uint8), weights, (first, second)


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


def _morph_layout(image_shape: tuple, panels: dict, bars: tuple, class_names: tuple) -> tuple:
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
        _strip_axes(axes[name], name, units, *limits)
    return figure, axes


def _bar_axes(axes: object, bars: tuple, class_names: tuple) -> None:
    _, shown, limits, label = bars
    axes.set_xlim(-0.5, len(shown) - 0.5)
    axes.set_ylim(*limits)
    names = [short_label(class_names[index], 20) if index < len(class_names) else str(index) for index in shown]
    axes.set_xticks(range(len(shown)), names, rotation=45, ha="right", fontsize=6)
    axes.set_ylabel(label, fontsize=7)
    axes.tick_params(axis="y", labelsize=6)


def morph_animation(
    subject: Subject, num_frames: int, max_layers: int, max_units: int, max_channels: int, layer: str | None
) -> Artifact:
    """The input blends from one probe image into another and back; a layer and the outputs follow."""
    inputs, images, weights, pair = morph_inputs(subject, num_frames)
    map_layer, dense = choose_map_layer(subject, layer)
    names = [map_layer] if map_layer is not None else evenly_spaced(dense, max_layers)
    values, outputs = forward_recording(subject, inputs, names)
    bars = output_bars(subject, outputs)
    panels, data, what = _morph_panels(values, map_layer, max_channels, max_units)
    figure, axes = _morph_layout(images.shape[1:], panels, bars, subject.task.class_names)
    frames = paint_morph_frames(
        raster.render_backdrop(figure, axes),
        images,
        bars[0],
        weights,
        {name: panel[0] for name, panel in panels.items()},
    )
    end = f"probe image {pair[1]}" if pair[1] is not None else "a blank image"
    caption = (
        f"Probe image {pair[0]} blends into {end} and back ({len(frames)} frames): {what}, and the outputs as bars."
    )
    data.update(weights=weights, bars=bars[0], bar_indices=bars[1], pair=[pair[0], -1 if pair[1] is None else pair[1]])
    return Artifact(
        name="morph",
        caption=caption,
        layer=map_layer,
        frames=frames,
        data=data,
        summary={"num_frames": len(frames), "layer": map_layer, "pair": data["pair"]},
    )


def _morph_panels(
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


def snapshot_animation(subject: Subject, num_frames: int) -> Artifact:
    """The output curve at each recorded epoch, the final curve dashed and the data in grey behind."""
    snapshots = subject.snapshots
    epochs = np.asarray(snapshots["epochs"], dtype=np.float64)
    x = np.asarray(snapshots["inputs"], dtype=np.float64).reshape(-1)
    curves = np.asarray(snapshots["outputs"], dtype=np.float64).reshape(len(epochs), len(x))
    order = np.argsort(x, kind="stable")
    x, curves = x[order], curves[:, order]
    kept = np.unique(np.linspace(0, len(epochs) - 1, min(num_frames, len(epochs))).round().astype(int))
    epochs, curves = epochs[kept], curves[kept]
    figure, axes = _frame_axes(1, top_ratio=6.0)
    curve_axes, timeline = axes
    low, high = np.nanmin(curves), np.nanmax(curves)
    if subject.task.is_scalar and subject.probe_labels is not None and subject.probe_labels.is_floating_point():
        labels = subject.probe_labels.detach().double().cpu().reshape(len(subject.probe_labels), -1)[:, 0].numpy()
        curve_axes.scatter(
            subject.probe_inputs.detach().double().cpu().reshape(-1)[: len(labels)].numpy(),
            labels,
            s=6,
            color="0.75",
            label="probe data",
        )
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
    backdrop = raster.render_backdrop(figure, {"curve": curve_axes, "timeline": timeline})
    frames = []
    for epoch, curve in zip(epochs, curves):
        frame = backdrop.image.copy()
        rows, columns = backdrop.to_pixels("curve", x, curve)
        raster.paint_polyline(frame, rows, columns, raster.BLUE, backdrop.boxes["curve"])
        row, column = backdrop.to_pixels("timeline", np.array([epoch]), np.array([0.5]))
        raster.paint_disk(frame, row[0], column[0], 4, raster.RED, backdrop.boxes["timeline"])
        frames.append(frame)
    more = (
        f" ({len(epochs)} of {len(snapshots['epochs'])} snapshots, evenly spaced)"
        if len(epochs) < len(snapshots["epochs"])
        else ""
    )
    caption = (
        f"The network's output curve at each recorded epoch{more}, from epoch {epochs[0]:g} to "
        f"{epochs[-1]:g}; dashed: the last one."
    )
    data = {"epochs": epochs, "x": x, "outputs": curves}
    return Artifact(
        name="training",
        caption=caption,
        frames=frames,
        fps=4,
        data=data,
        summary={"num_frames": len(frames), "epochs": [float(epochs[0]), float(epochs[-1])]},
    )
