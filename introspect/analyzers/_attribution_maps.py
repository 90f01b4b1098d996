"""Attribution maps as pictures: reduced over channels, coloured, laid over the inputs, and checked for flat maps.

Shared by every attribution analyzer, so the same map looks the same in each of them.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import
from introspect.capture import leaf_layers
from introspect.colours import DIVERGING
from introspect.plotting import fixed_gridspec, montage, new_figure, short_label

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure
    from torch import nn
else:
    torch = lazy_import("torch")


def channel_maps(
    values: torch.Tensor | np.ndarray, image_shape: tuple[int, int, int], reduce: str = "sum"
) -> np.ndarray:
    """Attributions (N, ...) reshaped to images and reduced over channels: (N, H, W) float64."""
    array = np.asarray(values.cpu().double().numpy() if hasattr(values, "cpu") else values, dtype=np.float64)
    images = array.reshape(len(array), *image_shape)
    return images.mean(axis=1) if reduce == "mean" else images.sum(axis=1)


def colourize(maps: np.ndarray, signed: bool) -> np.ndarray:
    """(N, H, W) maps → (N, H, W, 3) colours, each map scaled to its own largest magnitude."""
    from matplotlib import colormaps

    limits = np.maximum(np.abs(maps).max(axis=(1, 2), keepdims=True), 1e-12)
    if signed:
        return colormaps[DIVERGING](0.5 + 0.5 * maps / limits)[..., :3]
    return colormaps["inferno"](np.clip(maps / limits, 0.0, 1.0))[..., :3]


def overlay(images: np.ndarray, maps: np.ndarray, signed: bool) -> np.ndarray:
    """Maps laid over dimmed grey versions of the images, opaque where the magnitude is large."""
    grey = images.mean(axis=3, keepdims=True) * 0.7 + 0.15
    strength = np.abs(maps) / np.maximum(np.abs(maps).max(axis=(1, 2), keepdims=True), 1e-12)
    alpha = (np.sqrt(strength) * 0.85)[..., None]
    colours = colourize(maps, signed) if signed else _heat(strength)
    return grey * (1.0 - alpha) + colours * alpha


def _heat(strength: np.ndarray) -> np.ndarray:
    from matplotlib import colormaps

    return colormaps["jet"](np.clip(strength, 0.0, 1.0))[..., :3]


def tiles_for(images: np.ndarray, maps: np.ndarray, signed: bool) -> list[tuple[str, np.ndarray]]:
    """The three rows of an attribution strip: input, map, overlay."""
    return [("input", images), ("attribution", colourize(maps, signed)), ("overlay", overlay(images, maps, signed))]


def strip_figure(rows: list[tuple[str, np.ndarray]], titles: list[str], heading: str) -> Figure:
    """Rows of (N, H, W, 3) tiles as one image in one axes (fast to draw), titled per column and row."""
    count, height, width = rows[0][1].shape[:3]
    figure_width = max(4.0, 1.25 * count + 0.8)
    figure = new_figure(figure_width, 1.25 * len(rows) * max(0.6, height / width) + 0.9)
    heading_lines = textwrap.wrap(heading, width=int(figure_width * 14))
    # Fixed room: row names on the left, column titles and the heading above; no layout engine to run.
    room = {"left": 0.85, "right": 0.1, "bottom": 0.1, "top": 0.32 + 0.15 * len(heading_lines)}
    axes = figure.add_subplot(fixed_gridspec(figure, 1, **room)[0])
    tiles = np.concatenate([tiles for _, tiles in rows])
    axes.imshow(np.clip(montage(tiles, columns=count, padding=2, fill=1.0), 0.0, 1.0), interpolation="nearest")
    axes.set_xticks([(width + 2) * column + (width - 1) / 2 for column in range(count)], titles, fontsize=7)
    axes.set_yticks(
        [(height + 2) * row + (height - 1) / 2 for row in range(len(rows))], [label for label, _ in rows], fontsize=8
    )
    axes.xaxis.tick_top()
    axes.tick_params(length=0)
    for side in axes.spines.values():
        side.set_visible(False)
    figure.suptitle("\n".join(heading_lines), fontsize=8, y=1 - 0.04 / figure.get_size_inches()[1], va="top")
    return figure


def flat_map_counts(maps: np.ndarray) -> tuple[int, int]:
    """How many of the maps (N, ...) are zero everywhere, and how many hold one other value everywhere."""
    flat = np.asarray(maps, dtype=np.float64).reshape(len(maps), -1)
    if flat.size == 0:
        return 0, 0
    zero = ~np.any(flat != 0, axis=1)
    constant = ~zero & (np.ptp(flat, axis=1) <= 1e-9 * np.abs(flat).max(axis=1))
    return int(zero.sum()), int(constant.sum())


def flat_map_note(maps: np.ndarray, model: nn.Module | None = None) -> str:
    """A caption sentence saying which maps are all zero or constant, so show nothing; "" when none is.

    Args:
        maps: the attribution maps, (N, ...).
        model: when given and some map is all zero, its layers whose weights are all zero are
            named as the reason (a zero-initialized head, as torchvision's ViT has before training).
    """
    num_zero, num_constant = flat_map_counts(maps)
    total = len(maps)

    def count(number: int) -> str:
        if number == total:
            return f"all {total} maps are" if total > 1 else "the map is"
        return f"{number} of {total} maps {'is' if number == 1 else 'are'}"

    parts = [f"{count(num_zero)} zero everywhere"] if num_zero else []
    parts += [f"{count(num_constant)} constant (one value everywhere)"] if num_constant else []
    if not parts:
        return ""
    reason = zero_weight_reason(model) if num_zero and model is not None else ""
    return f" Warning: {' and '.join(parts)}, so they show nothing about where the evidence lies{reason}."


def zero_weight_reason(model: nn.Module) -> str:
    """Why gradients vanish when a layer's weights are all zero, as a clause; "" when none is.

    A layer with all-zero weights passes no gradient back, so every gradient-based map is zero:
    the sign of an untrained model whose head was zero-initialized (torchvision's ViT does this).
    """
    weighted = [
        (name, module.weight)
        for name, module in leaf_layers(model)
        if isinstance(getattr(module, "weight", None), torch.Tensor) and module.weight.dim() >= 2
    ]
    zero = [name for name, weight in weighted if weight.numel() and not bool(weight.detach().any())]
    if not zero:
        return ""
    if zero == [weighted[-1][0]]:
        return (
            f": every weight of {short_label(zero[0])}, the final layer, is zero (a zero-initialized final layer, "
            "as torchvision's ViT has before training: the model is untrained), so no gradient reaches the input"
        )
    shown = ", ".join(short_label(name) for name in zero[:3]) + (f" and {len(zero) - 3} more" if len(zero) > 3 else "")
    return (
        f": every weight of {shown} is zero (zero-initialized: the model is untrained), so no gradient reaches "
        "the input"
    )
