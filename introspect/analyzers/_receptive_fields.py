"""The linear receptive fields of dense units: the weight chain to the pixels, and its drawing as labelled tiles.

Helpers of :func:`introspect.analyzers.weight_images.linear_receptive_fields`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import
from introspect.analyzers._shared import layer_modules
from introspect.capture import leaf_layers
from introspect.colours import diverging_colormap
from introspect.errors import SkipAnalyzer
from introspect.plotting import montage, new_figure, short_label

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure

    from introspect.subject import Subject
else:
    torch = lazy_import("torch")


def dense_layers(subject: Subject) -> list[tuple[str, np.ndarray]]:
    """Dense weight matrices in order; :class:`SkipAnalyzer` when a conv layer sees the pixels first."""
    model = layer_modules(subject)
    if model is not None:
        found = []
        for name, module in leaf_layers(model):
            if isinstance(module, torch.nn.modules.conv._ConvNd) and not found:
                raise SkipAnalyzer(
                    "a convolution layer comes before the first dense layer, so dense weights do not map to pixels"
                )
            if isinstance(module, torch.nn.Linear):
                found.append((name, subject.weights.get(f"{name}.weight", module.weight)))
    else:
        matrices = {key: tensor for key, tensor in subject.weights.items() if key.endswith("weight")}
        if any(tensor.dim() >= 3 for tensor in matrices.values()):
            raise SkipAnalyzer("the weights include convolution kernels, so dense weights do not map to pixels")
        found = [(key.rpartition(".")[0] or key, tensor) for key, tensor in matrices.items() if tensor.dim() == 2]
    if not found:
        raise SkipAnalyzer("the model has no dense (linear) layers")
    return [(name, tensor.detach().cpu().double().numpy()) for name, tensor in found]


def receptive_products(
    layers: list[tuple[str, np.ndarray]], num_inputs: int
) -> tuple[list[tuple[str, np.ndarray]], str]:
    """``[(name, W_k ... W_1)]`` along the chain of dense layers whose shapes connect.

    Returns the products and a note naming where the chain stopped, if it did.
    """
    first_name, first = layers[0]
    if first.shape[1] != num_inputs:
        raise SkipAnalyzer(
            f"the first dense layer {first_name} takes {first.shape[1]} inputs, not the {num_inputs} input pixels"
        )
    products = [(first_name, first)]
    for name, weight in layers[1:]:
        if weight.shape[1] != products[-1][1].shape[0]:
            before = products[-1][1].shape[0]
            return (
                products,
                f" The chain stops before {name}: its {weight.shape[1]} inputs do not match the {before} outputs "
                "before it.",
            )
        products.append((name, weight @ products[-1][1]))
    return products, ""


def field_image(fields: np.ndarray, limit: float, pad: int) -> tuple[np.ndarray, bool]:
    """Montage of ``(N, C, H, W)`` fields with ``pad`` pixels between tiles and above the first row (for labels)."""
    if fields.shape[1] == 3:
        tiles, fill, rgb = np.clip(0.5 + 0.5 * fields.transpose(0, 2, 3, 1) / limit, 0.0, 1.0), 1.0, True
    else:
        tiles, fill, rgb = fields.mean(axis=1), np.nan, False
    image = montage(tiles, padding=pad, fill=fill)
    top = np.full((pad, *image.shape[1:]), fill)
    return np.concatenate([top, image]), rgb


def field_figure(name: str, fields: np.ndarray, labels: list[str], limit: float) -> Figure:
    """The fields as one montage, each tile labelled above, on one zero-centred scale (or in colour for RGB)."""
    height, width = fields.shape[2:]
    pad = max(2, height // 3)
    image, rgb = field_image(fields, limit, pad)
    columns = (image.shape[1] + pad) // (width + pad)
    figure = new_figure(*_field_inches(image))
    axes = figure.add_subplot()
    shown = (
        axes.imshow(image, interpolation="nearest")
        if rgb
        else axes.imshow(image, cmap=diverging_colormap(), vmin=-limit, vmax=limit, interpolation="nearest")
    )
    for index, label in enumerate(labels):
        row, column = divmod(index, columns)
        axes.text(
            column * (width + pad) + width / 2,
            pad + row * (height + pad) - 0.6,
            label,
            ha="center",
            va="bottom",
            fontsize=7,
            clip_on=True,
        )
    axes.set_xticks([])
    axes.set_yticks([])
    if not rgb:
        figure.colorbar(shown, ax=axes, shrink=0.8, pad=0.02).ax.tick_params(labelsize=7)
    axes.set_title(f"{short_label(name)}: linear receptive fields", fontsize=10)
    return figure


def _field_inches(image: np.ndarray) -> tuple[float, float]:
    height, width = image.shape[:2]
    scale = min(7.0 / width, 7.0 / height, 0.3)
    return max(width * scale, 2.5) + 1.0, max(height * scale, 2.0) + 0.5
