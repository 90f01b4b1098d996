"""Occlusion: how much the target score drops when a patch of the image is blanked out.

Perturbation, not gradients: the model is only run forward, on copies of the probe images with
one window set to zero. Window and stride follow the image size and the work cap.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from introspect._lazy import lazy_import
from introspect.analyzers._attribution import (
    INTERNAL_BATCH_SIZE,
    ProbeSelection,
    affordable_passes,
    choose_probe,
    estimate_macs,
    in_eval_mode,
    occlusion_window,
    row_cap,
)
from introspect.analyzers._attribution_maps import channel_maps, strip_figure, tiles_for
from introspect.analyzers._shared import display_images
from introspect.artifacts import Artifact
from introspect.needs import Needs
from introspect.spec import analyzer

#: After ``input_saliency`` and ``grad_cam``: the same place as ``attribution`` in the gallery.
POSITION = 9

if TYPE_CHECKING:
    import numpy as np
    import torch

    from introspect.subject import Subject
else:
    torch = lazy_import("torch")


@analyzer(needs=Needs.FORWARD | Needs.IMAGE_INPUT)
@in_eval_mode
def occlusion(
    subject: Subject,
    /,
    *,
    max_per_class: int = 2,
    max_images: int = 8,
    window: int | None = None,
    stride: int | None = None,
) -> list[Artifact]:
    """Occlusion: how much the target score drops when a patch of the image is blanked out.

    A square window (all channels) slides over the image and is set to zero in the model's
    input space (the dataset mean when inputs are normalized, black otherwise); each pixel gets
    the mean drop score(image) - score(occluded) over the windows covering it (Zeiler & Fergus
    2014). Red: hiding the region lowers the target score (evidence for it); blue: raises it.
    Window and stride follow the image size: stride ceil(side / 12), window about twice the
    stride, widened so the windows reach the far edge.
    """
    channels, height, width = subject.task.image_shape
    macs = estimate_macs(subject.model, subject.probe_inputs[:1].to(subject.device))
    (window_h, window_w), (stride_h, stride_w) = _occlusion_geometry(subject, macs, window, stride)
    # captum clips a last window at the far edge when the strides do not land on it exactly.
    positions = (math.ceil((height - window_h) / stride_h) + 1) * (math.ceil((width - window_w) / stride_w) + 1)
    probe = choose_probe(subject, max_per_class, max_images, forward_passes=positions + 1, macs=macs)
    result = _occlude(subject.model, probe, (channels, height, width), (window_h, window_w), (stride_h, stride_w))
    maps = channel_maps(result, (channels, height, width), reduce="mean")
    figure = strip_figure(
        tiles_for(display_images(subject, probe.inputs), maps, signed=True),
        probe.titles,
        f"Occlusion: {window_h}x{window_w} window, stride {stride_h}x{stride_w}, {positions} positions",
    )
    caption = (
        f"Occlusion with a {window_h}x{window_w} window moved in steps of {stride_h}x{stride_w} ({positions} "
        "positions per image) "
        f"for {len(probe.indices)} probe images{probe.note}; each map is scaled to its own largest drop."
    )
    data, summary = _occlusion_numbers(result, maps, probe, (window_h, window_w), (stride_h, stride_w), positions)
    return [Artifact(name="occlusion", caption=caption, figure=figure, data=data, summary=summary)]


def _occlusion_numbers(
    result: torch.Tensor,
    maps: np.ndarray,
    probe: ProbeSelection,
    window: tuple[int, int],
    stride: tuple[int, int],
    positions: int,
) -> tuple[dict, dict]:
    """The artifact's data (attributions, maps, which images) and summary (geometry, largest drops)."""
    data = {
        "attributions": result.cpu().double().numpy(),
        "maps": maps,
        "indices": probe.indices,
        "targets": probe.target_array(),
    }
    summary = {
        "window": list(window),
        "stride": list(stride),
        "positions": positions,
        "num_images": len(probe.indices),
        "max_drop": float(maps.max()),
        "min_drop": float(maps.min()),
    }
    return data, summary


def _occlusion_geometry(
    subject: Subject, macs: float, window: int | None, stride: int | None
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(window_h, window_w), (stride_h, stride_w): from the image size and the work cap, unless set by hand."""
    height, width = subject.task.image_shape[1:]
    # Big models get fewer, larger windows: at least 2 and at most 11 positions per side.
    per_side = int(min(11, max(2, math.isqrt(max(0, int(affordable_passes(subject, macs)) - 1)))))
    (window_h, stride_h), (window_w, stride_w) = occlusion_window(height, per_side), occlusion_window(width, per_side)
    if window is not None:
        window_h, window_w = min(window, height), min(window, width)
    if stride is not None:
        stride_h = stride_w = max(1, stride)
    return (window_h, window_w), (stride_h, stride_w)


def _occlude(
    model: torch.nn.Module,
    probe: ProbeSelection,
    image_shape: tuple[int, int, int],
    window: tuple[int, int],
    stride: tuple[int, int],
) -> torch.Tensor:
    """captum Occlusion over the probe images at once, in image shape; zero baseline."""
    from captum.attr import Occlusion

    channels = image_shape[0]
    images = probe.inputs.detach().reshape(len(probe.indices), *image_shape)
    input_shape = tuple(probe.inputs.shape[1:])

    def on_images(batch: torch.Tensor) -> torch.Tensor:
        # A dense network takes flat vectors: windows slide over the image, the model sees its own shape.
        return model(batch.reshape(batch.shape[0], *input_shape))

    with torch.no_grad():
        result = Occlusion(on_images).attribute(
            images,
            sliding_window_shapes=(channels, *window),
            strides=(channels, *stride),
            baselines=0.0,
            target=probe.targets,
            perturbations_per_eval=max(1, row_cap(images, INTERNAL_BATCH_SIZE) // len(images)),
        )
    return result.detach().cpu()
