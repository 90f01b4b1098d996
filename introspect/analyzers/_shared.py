"""Helpers shared by several analyzer modules: how a probe image is shown, which layers to draw."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import

if TYPE_CHECKING:
    import torch

    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

#: Undoing a normalization in float rounds a little past [0, 1]; only a larger overshoot is a real one.
OVERSHOOT_TOLERANCE = 0.02


def display_images(subject: Subject, inputs: torch.Tensor) -> np.ndarray:
    """The one way every analyzer shows probe images, so two figures of a probe look the same.

    Args:
        subject: gives the image shape and the normalization to undo.
        inputs: the model's inputs, any shape with ``N * C * H * W`` values.

    Returns:
        (N, H, W, 3) floats in [0, 1]: the normalization undone, an image stretched to [0, 1] only
        when the batch overshoots by more than rounding, grey images repeated over three channels.
    """
    channels, height, width = subject.task.image_shape
    images = inputs.detach().cpu().double().reshape(len(inputs), channels, height, width)
    normalization = subject.task.normalization
    if normalization:
        mean = torch.as_tensor(list(normalization["mean"]), dtype=torch.float64).reshape(1, -1, 1, 1)
        std = torch.as_tensor(list(normalization["std"]), dtype=torch.float64).reshape(1, -1, 1, 1)
        images = images * std + mean
    array = images.numpy()
    if array.min() < -OVERSHOOT_TOLERANCE or array.max() > 1 + OVERSHOOT_TOLERANCE:
        low = array.min(axis=(1, 2, 3), keepdims=True)
        span = np.maximum(array.max(axis=(1, 2, 3), keepdims=True) - low, 1e-12)
        array = (array - low) / span
    array = np.clip(array, 0.0, 1.0)
    if channels != 3:
        array = np.repeat(array.mean(axis=1, keepdims=True), 3, axis=1)
    return array.transpose(0, 2, 3, 1)
