"""Analyzers that draw weights as pictures: conv kernels and the receptive fields of dense units."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import
from introspect.analyzers._receptive_fields import (
    dense_layers,
    field_figure,
    field_image,  # noqa: F401 - re-exported: it was defined here before
    receptive_products,
)
from introspect.analyzers._shared import evenly_spaced, layer_modules
from introspect.artifacts import Artifact
from introspect.capture import leaf_layers
from introspect.colours import DIVERGING, PADDING_GREY, diverging_colormap  # noqa: F401 - names kept for one release
from introspect.errors import SkipAnalyzer
from introspect.needs import Needs
from introspect.plotting import axes_at, montage, new_figure, short_label, symmetric_colour_bar, symmetric_limit
from introspect.spec import analyzer

#: Where this module's analyzers come in the gallery (see ``introspect.analyzers``).
POSITION = 3

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure

    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

MAX_KERNELS = 64
MAX_CONV_LAYERS = 16
MAX_INPUT_CHANNELS = 8
MAX_TILES = 256
MAX_UNITS = 64
MAX_DENSE_LAYERS = 12


@dataclasses.dataclass(frozen=True)
class ConvLayer:
    """One conv layer's kernels as a float64 ``(out, in, kh, kw)`` array.

    Conv1d kernels ``(out, in, k)`` become ``(out, 1, in, k)``: one image per output channel
    with a row per input channel, which reads better than ``in`` strips of height one.
    """

    name: str
    weight: np.ndarray
    initial: np.ndarray | None = None


def _as_kernels(tensor: torch.Tensor, transposed: bool = False) -> np.ndarray:
    array = tensor.detach().cpu().double().numpy()
    if transposed:  # ConvTranspose stores (in, out, ...): show per output channel like the others
        array = array.swapaxes(0, 1)
    return array[:, None] if array.ndim == 3 else array


def conv_layers(subject: Subject) -> list[ConvLayer]:
    """The 1-D and 2-D conv layers, in model order when there is a model, else in weight order."""
    found: list[tuple[str, torch.Tensor, bool]] = []
    model = layer_modules(subject)
    if model is not None:
        for name, module in leaf_layers(model):
            if isinstance(module, torch.nn.modules.conv._ConvNd) and module.weight.dim() in (3, 4):
                found.append((name, subject.weights.get(f"{name}.weight", module.weight), bool(module.transposed)))
    else:
        for key, tensor in subject.weights.items():
            if key.endswith("weight") and tensor.dim() in (3, 4):
                found.append((key.rpartition(".")[0] or key, tensor, False))
    layers = []
    for name, tensor, transposed in found:
        initial = subject.initial_weights.get(f"{name}.weight")
        weight = _as_kernels(tensor, transposed)
        start = (
            _as_kernels(initial, transposed)
            if initial is not None and tuple(initial.shape) == tuple(tensor.shape)
            else None
        )
        layers.append(ConvLayer(name, weight, start))
    return layers


def strongest(norms: np.ndarray, limit: int) -> np.ndarray:
    """Indices of the ``limit`` largest ``norms``, in their original order (all when they fit)."""
    if norms.size <= limit:
        return np.arange(norms.size)
    return np.sort(np.argsort(-norms, kind="stable")[:limit])


def display_mode(
    channels: int, first: bool, num_shown: int, deep_mode: str, max_input_channels: int, max_tiles: int
) -> str:
    """How a layer's kernels are drawn: ``single``, ``rgb``, ``per_channel`` or ``mean``."""
    if channels == 1:
        return "single"
    if channels == 3 and first:
        return "rgb"
    if deep_mode in ("mean", "per_channel"):
        return deep_mode
    fits = channels <= max_input_channels and channels * num_shown <= max_tiles
    return "per_channel" if fits else "mean"


def displayed_values(kernels: np.ndarray, mode: str, max_input_channels: int) -> np.ndarray:
    """The numbers a mode draws: ``(N, kh, kw)`` for single/mean, ``(N, C, kh, kw)`` otherwise."""
    if mode == "single":
        return kernels[:, 0]
    if mode == "mean":
        return kernels.mean(axis=1)
    if mode == "per_channel":
        return kernels[:, :max_input_channels]
    return kernels


def kernel_image(values: np.ndarray, mode: str, limit: float) -> np.ndarray:
    """One montage image for a layer: NaN padding for colour-mapped modes, white for RGB."""
    if mode == "rgb":
        # zero maps to mid-grey so that the colour scale is centred on zero like the diverging maps
        tiles = np.clip(0.5 + 0.5 * values.transpose(0, 2, 3, 1) / limit, 0.0, 1.0)
        return montage(tiles, fill=1.0)
    if mode == "per_channel":
        strips = np.stack([montage(kernel, columns=kernel.shape[0]) for kernel in values])
        height, width = strips.shape[1:3]
        columns = max(1, min(len(strips), round(math.sqrt(len(strips) * height / width))))
        return montage(strips, columns=columns, padding=3)
    return montage(values)


def _panel_inches(image: np.ndarray) -> tuple[float, float]:
    height, width = image.shape[:2]
    # at most 5.5 inches a side, and tiny montages (a few 3x3 kernels) not blown up to posters
    scale = min(5.5 / width, 5.5 / height, 0.3)
    return max(width * scale, 1.2), max(height * scale, 1.2)


#: Inches of the hand-placed layout of :func:`draw_panels`: the margin, the space between panels,
#: the rows of the title and of the panel labels, and a colour bar's gap, width and tick labels.
_MARGIN, _GAP, _TITLE_ROW, _LABEL_ROW = 0.1, 0.15, 0.3, 0.25
_BAR_GAP, _BAR_WIDTH, _BAR_LABELS = 0.08, 0.12, 0.5


def draw_panels(
    groups: Sequence[Sequence[tuple[str, np.ndarray]]], limits: Sequence[float], rgb: bool, title: str
) -> Figure:
    """Montage panels side by side; each group shares one zero-centred scale and one colour bar.

    The axes are placed by hand rather than by a layout engine: every panel has the same size,
    so the places are known beforehand, and the engine's measuring pass cost more than the drawing.
    """
    panels = [panel for group in groups for panel in group]
    width, height = _panel_inches(panels[0][1])
    bar = 0.0 if rgb else _BAR_GAP + _BAR_WIDTH + _BAR_LABELS
    figure_width = 2 * _MARGIN + len(panels) * (width + _GAP) - _GAP + len(groups) * bar
    figure = new_figure(figure_width, _MARGIN + height + _LABEL_ROW + _TITLE_ROW, layout=None)
    cmap = diverging_colormap()
    left, bars = _MARGIN, []
    for group, limit in zip(groups, limits):
        for label, image in group:
            axes = axes_at(figure, left, _MARGIN, width, height)
            if rgb:
                axes.imshow(image, interpolation="nearest")
            else:
                axes.imshow(image, cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
            axes.set_title(label, fontsize=9, pad=4)
            axes.set_xticks([])
            axes.set_yticks([])
            left += width + _GAP
        if not rgb:
            bars.append((left - _GAP + _BAR_GAP, limit))
            left += bar
    # the bars come after every panel in figure.axes, as they did when matplotlib added them
    for bar_left, limit in bars:
        symmetric_colour_bar(axes_at(figure, bar_left, _MARGIN + 0.1 * height, _BAR_WIDTH, 0.8 * height), cmap, limit)
    figure.suptitle(title, fontsize=10, y=1.0 - 0.08 / figure.get_figheight(), va="top")
    return figure


def _kernel_numbers(
    layer: ConvLayer, selected: np.ndarray, mode: str, values: np.ndarray, initial: np.ndarray | None, limit: float
) -> tuple[dict, dict]:
    norms = np.sqrt((layer.weight**2).reshape(len(layer.weight), -1).sum(axis=1))
    data = {"kernels": values, "channels": selected, "kernel_norms": norms, "limit": limit}
    summary = {
        "shape": list(layer.weight.shape),
        "mode": mode,
        "num_kernels": int(len(layer.weight)),
        "num_shown": int(len(selected)),
        "limit": limit,
    }
    if layer.initial is not None:
        change = layer.weight - layer.initial
        data["initial"] = initial
        data["kernel_drift"] = np.sqrt((change**2).reshape(len(change), -1).sum(axis=1))
        summary["drift_norm"] = float(np.linalg.norm(change.ravel()))
        summary["relative_drift"] = float(summary["drift_norm"] / max(np.linalg.norm(layer.initial.ravel()), 1e-12))
    return data, summary


def _kernel_artifact(layer: ConvLayer, first: bool, options: dict) -> Artifact:
    norms = np.sqrt((layer.weight**2).reshape(len(layer.weight), -1).sum(axis=1))
    selected = strongest(norms, options["max_kernels"])
    channels = layer.weight.shape[1]
    mode = display_mode(
        channels, first, len(selected), options["deep_mode"], options["max_input_channels"], options["max_tiles"]
    )
    values = displayed_values(layer.weight[selected], mode, options["max_input_channels"])
    initial = (
        None
        if layer.initial is None
        else displayed_values(layer.initial[selected], mode, options["max_input_channels"])
    )
    limit = symmetric_limit(values if initial is None else np.concatenate([values.ravel(), initial.ravel()]))
    data, summary = _kernel_numbers(layer, selected, mode, values, initial, limit)
    title = f"{short_label(layer.name)}: {' x '.join(str(size) for size in layer.weight.shape)} kernels"
    if initial is None:
        figure = draw_panels([[("final", kernel_image(values, mode, limit))]], [limit], mode == "rgb", title)
    else:
        difference = values - initial
        data["difference_limit"] = symmetric_limit(difference)
        groups = [
            [("initial", kernel_image(initial, mode, limit)), ("final", kernel_image(values, mode, limit))],
            [("final - initial", kernel_image(difference, mode, data["difference_limit"]))],
        ]
        figure = draw_panels(groups, [limit, data["difference_limit"]], mode == "rgb", title)
    caption = _kernel_caption(layer, mode, selected, options["max_input_channels"], summary)
    return Artifact(name=layer.name, caption=caption, layer=layer.name, figure=figure, data=data, summary=summary)


_MODE_TEXT = {
    "single": "one tile per kernel",
    "rgb": "one colour tile per kernel (its red, green and blue input weights; mid-grey is zero)",
    "per_channel": "one row of tiles per output kernel, a tile per input channel",
    "mean": "one tile per output kernel, averaged over its input channels",
}


def _kernel_caption(layer: ConvLayer, mode: str, selected: np.ndarray, max_input_channels: int, summary: dict) -> str:
    caption = f"Kernels of {layer.name}, {_MODE_TEXT[mode]}; one colour scale for the layer, zero at its centre."
    if len(selected) < len(layer.weight):
        caption += (
            f" Shown: the {len(selected)} strongest of {len(layer.weight)} kernels (by L2 norm), in channel order."
        )
    if mode == "per_channel" and layer.weight.shape[1] > max_input_channels:
        caption += f" Only the first {max_input_channels} of {layer.weight.shape[1]} input channels are drawn."
    if summary.get("drift_norm") == 0.0:
        caption += " The kernels are exactly as initialized: training did not change them (a frozen layer)."
    elif "drift_norm" in summary:
        caption += (
            f" Initial and final kernels share a scale; the difference has its own. Drift ||final - initial|| ="
            f" {summary['drift_norm']:.4g} ({100 * summary['relative_drift']:.1f}% of the initial norm)."
        )
    return caption


@analyzer(needs=Needs.WEIGHTS)
def kernel_grids(
    subject: Subject,
    /,
    *,
    max_kernels: int = MAX_KERNELS,
    max_layers: int = MAX_CONV_LAYERS,
    max_input_channels: int = MAX_INPUT_CHANNELS,
    max_tiles: int = MAX_TILES,
    deep_mode: str = "auto",
) -> list[Artifact]:
    """Every conv layer's kernels as one image montage per layer, initial and final side by side when known.

    Red weights are positive, blue negative, white zero, on one colour scale per layer, so
    kernels within a layer compare directly. First layers on RGB images are shown in colour
    (mid-grey is zero). Deeper layers show each input channel (small layers) or the mean over
    input channels. Smooth, oriented kernels (edges, blobs) are typical of a trained first
    layer; noise-like kernels suggest little training. When the checkpoint holds the initial
    kernels (hand-initialized or frozen experiments), the difference panel shows what training
    changed.
    """
    layers = conv_layers(subject)
    if not layers:
        raise SkipAnalyzer("the model has no 1-D or 2-D convolution layers")
    options = {
        "max_kernels": max_kernels,
        "max_input_channels": max_input_channels,
        "max_tiles": max_tiles,
        "deep_mode": deep_mode,
    }
    shown = set(evenly_spaced([layer.name for layer in layers], max_layers))
    artifacts = [
        _kernel_artifact(layer, index == 0, options) for index, layer in enumerate(layers) if layer.name in shown
    ]
    artifacts = [_with_patch_note(artifact, subject) for artifact in artifacts]
    if len(artifacts) < len(layers):
        left_out = [layer.name for layer in layers if layer.name not in shown]
        names = ", ".join(short_label(name) for name in left_out[:8]) + ("..." if len(left_out) > 8 else "")
        note = f" {len(left_out)} of {len(layers)} conv layers are not drawn (evenly spaced selection): {names}."
        artifacts[0] = dataclasses.replace(artifacts[0], caption=artifacts[0].caption + note)
    return artifacts


def _with_patch_note(artifact: Artifact, subject: Subject) -> Artifact:
    """Say so when a conv layer is a patch embedding (stride = kernel size, as in a vision transformer)."""
    model = layer_modules(subject)
    module = dict(model.named_modules()).get(artifact.layer) if model is not None else None
    size = getattr(module, "kernel_size", None)
    if not isinstance(module, torch.nn.Conv2d) or module.stride != size or max(size) == 1:
        return artifact
    note = (
        f" This layer is a patch embedding (stride = kernel size): each kernel turns one {size[0]}x{size[1]} "
        "image patch into one value of that patch's token."
    )
    return dataclasses.replace(artifact, caption=artifact.caption + note, summary={**artifact.summary, "patch": True})


def _field_artifact(
    name: str, depth: int, product: np.ndarray, labels: Sequence[str], subject: Subject, max_units: int
) -> Artifact:
    norms = np.sqrt((product**2).sum(axis=1))
    selected = strongest(norms, max_units)
    fields = product[selected].reshape(len(selected), *subject.task.image_shape)
    limit = symmetric_limit(fields)
    figure = field_figure(name, fields, [labels[index] for index in selected], limit)
    channels = subject.task.image_shape[0]
    product_text = "W_1" if depth == 1 else " ".join(f"W_{k}" for k in range(depth, 0, -1))
    caption = (
        f"Linear receptive fields of {name} (dense layer {depth}): each tile is a row of {product_text} reshaped to the"
        f" {'x'.join(str(size) for size in subject.task.image_shape)} input; "
    )
    caption += (
        "each pixel's colour mixes its red, green and blue weights (mid-grey is zero)."
        if channels == 3
        else "red pixels raise the unit's input, blue lower it."
    )
    if depth > 1:
        caption += (
            " Biases and activation functions are ignored: this is only the linear part of what the unit responds to."
        )
    if channels not in (1, 3):
        caption += f" The {channels} input channels are averaged."
    if len(selected) < len(product):
        caption += f" Shown: the {len(selected)} strongest of {len(product)} units (by L2 norm)."
    data = {"fields": fields, "units": selected, "unit_norms": norms, "limit": limit}
    summary = {"depth": depth, "num_units": int(len(product)), "num_shown": int(len(selected)), "limit": limit}
    return Artifact(name=name, caption=caption, layer=name, figure=figure, data=data, summary=summary)


@analyzer(needs=Needs.WEIGHTS | Needs.IMAGE_INPUT)
def linear_receptive_fields(
    subject: Subject, /, *, max_units: int = MAX_UNITS, max_layers: int = MAX_DENSE_LAYERS
) -> list[Artifact]:
    """What each dense unit looks for in the input image: weight rows, and their linear products for deeper layers.

    A first-layer unit's weights, reshaped to the image, show which pixels push it up (red)
    or down (blue). For deeper units the products W_k...W_1 give the same picture for the
    network's linear part only: biases and activation functions are ignored, so read them as
    a rough guide. Output neurons are labelled with their class names; a well-trained digit
    classifier shows faint digit-like strokes there.
    """
    products, note = receptive_products(dense_layers(subject), math.prod(subject.task.image_shape))
    class_names = list(subject.task.class_names)
    shown = set(evenly_spaced([name for name, _ in products], max_layers))
    artifacts = []
    for depth, (name, product) in enumerate(products, start=1):
        if name not in shown:
            continue
        is_output = depth == len(products) and not note and len(class_names) == len(product)
        numbers = [f"#{index}" for index in range(len(product))]
        labels = [short_label(name, 12) for name in class_names] if is_output else numbers
        artifacts.append(_field_artifact(name, depth, product, labels, subject, max_units))
    left_out = len(products) - len(artifacts)
    if note or left_out:
        extra = (
            f" {left_out} of {len(products)} dense layers are not drawn (evenly spaced selection)." if left_out else ""
        )
        artifacts[0] = dataclasses.replace(artifacts[0], caption=artifacts[0].caption + note + extra)
    return artifacts
