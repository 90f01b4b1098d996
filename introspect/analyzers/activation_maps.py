"""Analyzers of conv activation maps: what each convolution layer's channels show for a few probe images."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import
from introspect.analyzers._shared import (
    conv2d_layer_names,
    display_images,
    evenly_spaced,
    pick_images,
    strongest_channels,
)
from introspect.artifacts import Artifact
from introspect.capture import capture_activations, check_hookable
from introspect.errors import SkipAnalyzer
from introspect.needs import Needs
from introspect.plotting import (
    axes_at,
    fixed_gridspec,
    grid_shape,
    montage,
    new_figure,
    short_label,
    symmetric_colour_bar,
    symmetric_limit,
)
from introspect.spec import analyzer

#: Where this module's analyzers come in the gallery (see ``introspect.analyzers``).
POSITION = 7

if TYPE_CHECKING:
    import torch

    from introspect.subject import Subject
else:
    torch = lazy_import("torch")


@analyzer(needs=Needs.FORWARD | Needs.IMAGE_INPUT)
def feature_maps(
    subject: Subject, /, *, max_images: int = 3, max_channels: int = 64, max_layers: int = 8
) -> list[Artifact]:
    """What each convolution layer's output channels show for a few probe images.

    Each row is one probe image (shown on the left) and the output channels of the layer for
    it, tiled as one montage on a shared diverging colour scale: red is positive, blue negative.
    These are the conv outputs before normalization and activation.
    """
    check_hookable(subject.model)  # TorchScript and exported graphs hold conv weights but run no hooks: say that
    layers = conv2d_layer_names(subject.model)
    if not layers:
        raise SkipAnalyzer("the model has no 2-D convolution layers")
    indices = pick_images(subject.probe_labels, len(subject.probe_inputs), max_images)
    inputs = subject.probe_inputs[indices]
    shown = evenly_spaced(layers, max_layers)
    outputs = capture_activations(subject.model, inputs.to(subject.device), shown)
    images = display_images(subject, inputs)
    artifacts = [
        _feature_map_artifact(name, outputs[name], images, indices, max_channels)
        for name in shown
        if name in outputs and outputs[name].dim() == 4
    ]
    if artifacts and len(shown) < len(layers):
        note = f" {len(shown)} of {len(layers)} conv layers are shown (evenly spaced)."
        artifacts[0] = dataclasses.replace(artifacts[0], caption=artifacts[0].caption + note)
    return artifacts


def _feature_map_artifact(
    name: str, output: torch.Tensor, images: np.ndarray, indices: list[int], max_channels: int
) -> Artifact:
    channels = strongest_channels(output, max_channels)
    maps = output[:, channels].double().numpy()
    limit = symmetric_limit(maps)
    columns = grid_shape(len(channels))[1]
    tiles = [montage(maps[row], columns=columns) for row in range(len(maps))]
    aspect = tiles[0].shape[1] / tiles[0].shape[0]
    width, height = min(12.0, 2.0 + 3.2 * aspect), 3.2 * len(tiles)
    figure = new_figure(width, height)
    # Fixed room: the heading above, each input's title, and the colour scale's ticks on the right.
    room = {"left": 0.1, "right": 0.75, "top": 0.45, "bottom": 0.1, "across": 0.15, "down": 0.3}
    grid = fixed_gridspec(figure, len(tiles), 2, width_ratios=[1, max(1.0, 2 * aspect)], **room)
    for row in range(len(tiles)):
        image_axes, map_axes = figure.add_subplot(grid[row, 0]), figure.add_subplot(grid[row, 1])
        image_axes.imshow(images[row], interpolation="nearest")
        image_axes.set_title(f"probe input {indices[row]}", fontsize=8)
        map_axes.imshow(tiles[row], cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        for axes in (image_axes, map_axes):
            axes.set_xticks([])
            axes.set_yticks([])
    bar_height = 0.6 * (height - room["top"] - room["bottom"])
    bar = axes_at(figure, width - 0.6, (height - bar_height) / 2, 0.15, bar_height)
    symmetric_colour_bar(bar, "RdBu_r", limit)
    figure.suptitle(f"{short_label(name)}: output channels {tuple(output.shape[1:])}", fontsize=10)
    kept = (
        f"the {len(channels)} strongest (mean |output|) of {output.shape[1]} channels, in channel order"
        if len(channels) < output.shape[1]
        else f"all {len(channels)} channels"
    )
    caption = f"Output of layer {name} for {len(indices)} probe images: {kept}, one shared colour scale (±{limit:.3g})."
    summary = {
        "num_channels": int(output.shape[1]),
        "channels_shown": channels.tolist(),
        "images": list(indices),
        "limit": limit,
    }
    return Artifact(
        name=f"maps-{name}",
        caption=caption,
        layer=name,
        figure=figure,
        data={"maps": maps, "channels": channels},
        summary=summary,
    )
