"""Animated GIFs of activations: x sweeping the domain, one image morphing into another, training.

Frames are arrays painted with numpy over a background drawn once with matplotlib (see
``_raster``), so 120 frames cost about as much as one figure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import
from introspect.analyzers import _raster as raster
from introspect.analyzers._frames import (
    DPI,  # noqa: F401 - re-exported, with the other moved names: they were defined here before
    WIDTH_INCHES,  # noqa: F401
    paint_snapshot_frames,
    paint_sweep_frames,
    snapshot_backdrop,
    strip_values,
    sweep_backdrop,
)
from introspect.analyzers._morph_frames import (
    MAX_BARS,  # noqa: F401
    morph_layout,
    morph_panels,
    output_bars,
    paint_morph_frames,
)
from introspect.analyzers._shared import (
    activation_layers,
    curve_layers,
    display_images,
    evenly_spaced,
    interesting_layers,
    scalar_domain,
)
from introspect.artifacts import Artifact
from introspect.capture import batch_first, each_output, evaluation_mode, first_tensor, recording
from introspect.errors import SkipAnalyzer
from introspect.needs import Needs
from introspect.spec import analyzer

#: Where this module's analyzers come in the gallery (see ``introspect.analyzers``).
POSITION = 8

if TYPE_CHECKING:
    import torch

    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

MAX_FRAMES = 120
MAX_OUTPUTS = 4
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
    backdrop = sweep_backdrop(curve_x, curve, {name: units for name, (units, _) in strips.items()}, limits)
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
    shapes = output_shapes(subject, subject.probe_inputs[:1], layers)
    maps = [name for name in layers if name in shapes and len(shapes[name]) == 4]
    if not maps:
        dense = [name for name in curve_layers(subject.model)[:-1] if name in shapes]
        return None, dense
    large = [name for name in maps if min(shapes[name][2:]) >= MIN_MAP_SIZE]
    if not large:
        return maps[0], []
    # An activation layer's output is what the next block sees; prefer it over a conv or norm output.
    activated = [name for name in large if name in activation_layers(subject.model)]
    return (activated or large)[-1], []


def output_shapes(subject: Subject, inputs: torch.Tensor, layers: list[str]) -> dict[str, tuple[int, ...]]:
    """The shape of each of ``layers``' outputs (batch first) for ``inputs``, without keeping any output.

    Keeping every layer's output to read its shape took 0.2 GB for one ResNet50 input at 224x224.
    """
    shapes: dict[str, tuple[int, ...]] = {}

    def shape_of(name: str, module: torch.nn.Module, output: object) -> None:
        tensor = first_tensor(output)
        if tensor is not None:
            shapes[name] = tuple(batch_first(module, tensor).shape)

    with evaluation_mode(subject.model), each_output(subject.model, layers, shape_of), torch.no_grad():
        subject.model(inputs.to(subject.device))
    return shapes


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


def morph_animation(
    subject: Subject, num_frames: int, max_layers: int, max_units: int, max_channels: int, layer: str | None
) -> Artifact:
    """The input blends from one probe image into another and back; a layer and the outputs follow."""
    inputs, images, weights, pair = morph_inputs(subject, num_frames)
    map_layer, dense = choose_map_layer(subject, layer)
    names = [map_layer] if map_layer is not None else evenly_spaced(dense, max_layers)
    values, outputs = forward_recording(subject, inputs, names)
    bars = output_bars(subject, outputs)
    panels, data, what = morph_panels(values, map_layer, max_channels, max_units)
    figure, axes = morph_layout(images.shape[1:], panels, bars, subject.task.class_names)
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


def snapshot_animation(subject: Subject, num_frames: int) -> Artifact:
    """The output curve at each recorded epoch, the final curve dashed and the data in grey behind."""
    snapshots = subject.snapshots
    epochs, x, curves = _kept_snapshots(snapshots, num_frames)
    frames = paint_snapshot_frames(snapshot_backdrop(epochs, x, curves, _probe_points(subject)), epochs, x, curves)
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


def _kept_snapshots(snapshots: dict, num_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epochs, x in increasing order, and the curves at x, of at most ``num_frames`` evenly spaced snapshots."""
    epochs = np.asarray(snapshots["epochs"], dtype=np.float64)
    x = np.asarray(snapshots["inputs"], dtype=np.float64).reshape(-1)
    curves = np.asarray(snapshots["outputs"], dtype=np.float64).reshape(len(epochs), len(x))
    order = np.argsort(x, kind="stable")
    x, curves = x[order], curves[:, order]
    kept = np.unique(np.linspace(0, len(epochs) - 1, min(num_frames, len(epochs))).round().astype(int))
    return epochs[kept], x, curves[kept]


def _probe_points(subject: Subject) -> tuple[np.ndarray, np.ndarray] | None:
    """The probe's (inputs, targets) to draw behind the curves: scalar inputs with real-valued labels only."""
    if not (subject.task.is_scalar and subject.probe_labels is not None and subject.probe_labels.is_floating_point()):
        return None
    labels = subject.probe_labels.detach().double().cpu().reshape(len(subject.probe_labels), -1)[:, 0].numpy()
    return subject.probe_inputs.detach().double().cpu().reshape(-1)[: len(labels)].numpy(), labels
