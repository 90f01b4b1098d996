"""Helpers shared by several analyzer modules: how a probe image is shown, which layers and units to draw.

Anything two analyzer modules both need lives here, so analyzer modules never import each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import
from introspect.capture import leaf_layers

if TYPE_CHECKING:
    import torch
    from torch import nn

    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

#: Undoing a normalization in float rounds a little past [0, 1]; only a larger overshoot is a real one.
OVERSHOOT_TOLERANCE = 0.02


def layer_modules(subject: Subject) -> nn.Module | None:
    """The model when its layers are torch modules the weight analyzers can read; ``None`` to read the weights by name.

    A TorchScript module's layers are ``RecursiveScriptModule``s and an exported program's
    operations are graph nodes, so neither says which weight is a convolution's; their weights are
    read by name and rank, as for a bare state_dict.
    """
    model = subject.model
    if model is None or isinstance(model, (torch.jit.ScriptModule, torch.fx.GraphModule)):
        return None
    return model


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


PASS_THROUGH_LAYERS = ("Dropout", "Dropout1d", "Dropout2d", "Flatten", "Identity", "Unflatten")


def interesting_layers(model: nn.Module) -> list[str]:
    """Leaf layers whose output says something new (not dropout, flatten or identity)."""
    return [name for name, module in leaf_layers(model) if type(module).__name__ not in PASS_THROUGH_LAYERS]


def requested_layers(model: nn.Module, requested: str) -> list[str]:
    """The comma-separated layer names of an analyzer's ``layers`` option; a name the model lacks is a skip."""
    from introspect.errors import SkipAnalyzer

    modules = dict(model.named_modules())
    names = [name.strip() for name in requested.split(",") if name.strip()]
    unknown = [name for name in names if name not in modules]
    if unknown:
        raise SkipAnalyzer(f"no layer named {unknown[0]!r} (introspect info lists the layers)")
    return names


def evenly_spaced(items: list[str], limit: int) -> list[str]:
    """At most ``limit`` items, spread evenly over ``items`` and keeping the first and last."""
    if len(items) <= limit:
        return items
    indices = np.linspace(0, len(items) - 1, limit).round().astype(int)
    return [items[index] for index in dict.fromkeys(indices)]


RELU_LIKE = frozenset(
    {"ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Hardswish"}
)
BOUNDED = {"Sigmoid": (0.0, 1.0), "Tanh": (-1.0, 1.0), "Hardsigmoid": (0.0, 1.0), "Softsign": (-1.0, 1.0)}


def activation_kind(module: nn.Module) -> tuple[str, tuple[float, float] | None]:
    """Whether ``module`` is a ReLU-like, a bounded (saturating) activation or something else."""
    name = type(module).__name__
    if name in RELU_LIKE:
        return "relu", None
    if name == "Hardtanh":
        return "bounded", (float(module.min_val), float(module.max_val))
    if name in BOUNDED:
        return "bounded", BOUNDED[name]
    return "other", None


def activation_layers(model: nn.Module) -> dict[str, tuple[str, tuple[float, float] | None]]:
    """Leaf layers that are activation functions, with their kind and bounds."""
    kinds = {name: activation_kind(module) for name, module in leaf_layers(model)}
    return {name: kind for name, kind in kinds.items() if kind[0] != "other"}


def scalar_domain(subject: Subject) -> tuple[float, float]:
    """The task's x range, else the probe inputs' range (widened when they are all equal)."""
    if subject.task.domain is not None:
        low, high = subject.task.domain
    else:
        values = subject.probe_inputs.detach().double().reshape(-1)
        low, high = float(values.min()), float(values.max())
    return (low - 1.0, high + 1.0) if high <= low else (float(low), float(high))


def curve_layers(model: nn.Module) -> list[str]:
    """Activation layers plus the output layer; every interesting layer when there are none."""
    layers = interesting_layers(model)
    chosen = [name for name in layers if name in activation_layers(model)]
    if not chosen:
        return layers
    return chosen + [layers[-1]] if layers[-1] not in chosen else chosen


def pick_images(labels: torch.Tensor | None, count: int, limit: int) -> list[int]:
    """Up to ``limit`` probe indices, one per class first when labels are known, then in order."""
    chosen: list[int] = []
    if labels is not None and labels.dim() == 1 and not labels.is_floating_point():
        first_of_class = {}
        for index, label in enumerate(labels.tolist()):
            first_of_class.setdefault(label, index)
        chosen = list(first_of_class.values())[:limit]
    chosen += [index for index in range(count) if index not in chosen]
    return sorted(chosen[:limit])


def conv2d_layer_names(model: nn.Module) -> list[str]:
    """Names of the 2-D convolution layers, in definition order."""
    return [name for name, module in leaf_layers(model) if isinstance(module, torch.nn.Conv2d)]


def strongest_channels(maps: torch.Tensor, limit: int) -> np.ndarray:
    """Indices (ascending) of the ``limit`` channels with the largest mean |output|."""
    strength = maps.abs().double().mean(dim=(0, 2, 3))
    count = min(limit, len(strength))
    return np.sort(torch.topk(strength, count).indices.numpy())
