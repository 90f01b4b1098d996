"""Helpers of the attention analyzers: which layers to draw, the class token's row on the patch grid, token heatmaps."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import
from introspect.analyzers._shared import evenly_spaced
from introspect.errors import SkipAnalyzer
from introspect.plotting import new_figure

if TYPE_CHECKING:
    import torch
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from introspect.attention import TokenLayout
else:
    torch = lazy_import("torch")

#: Tokens labelled on a token axis; longer sequences are labelled every few tokens.
MAX_TOKEN_LABELS = 32
TEXT_COLOURS = "viridis"


def chosen_layers(names: list[str], indices: tuple[int, ...] | None, max_layers: int) -> list[str]:
    """The attention layers drawn: those ``indices`` name (negative from the end), else ``max_layers`` spread out.

    Raises:
        SkipAnalyzer: an index outside the model's attention layers.
    """
    if indices is None:
        return evenly_spaced(names, max(1, max_layers))
    outside = [index for index in indices if not -len(names) <= index < len(names)]
    if outside:
        raise SkipAnalyzer(
            f"attention layer {outside[0]} does not exist: the model has {len(names)} attention layers "
            f"(indices 0 to {len(names) - 1}, or -1 for the last)"
        )
    return list(dict.fromkeys(names[index] for index in indices))


def query_rows(weights: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """(..., T, T) weights → (..., rows, columns): the class token's row over the patches.

    Without a class token, the attention each patch receives, averaged over the patch queries.
    """
    patches = slice(layout.num_prefix, None)
    rows = weights[..., 0, patches] if layout.has_class_token else weights[..., patches, patches].mean(dim=-2)
    return rows.reshape(*rows.shape[:-1], *layout.grid)


def image_sized(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, rows, columns) patch maps blown up to (N, height, width), each patch a flat block."""
    tensor = torch.as_tensor(maps, dtype=torch.float64)[:, None]
    return torch.nn.functional.interpolate(tensor, size=(height, width), mode="nearest")[:, 0].numpy()


def row_entropy(rows: torch.Tensor) -> float:
    """Mean entropy (nats) of attention rows over the last axis: 0 when each looks at one token."""
    values = rows.double().clamp_min(1e-12)
    return float(-(values * values.log()).sum(dim=-1).mean())


def token_labels(inputs: torch.Tensor) -> list[list[str]] | None:
    """Each sequence's token ids as text, when the inputs are (N, T) ids; ``None`` otherwise."""
    if inputs.dim() != 2 or inputs.is_floating_point():
        return None
    return [[str(int(token)) for token in row] for row in inputs.cpu()]


def listed_layers(labels: list[str], names: tuple[str, ...]) -> str:
    """``layer 0 (blocks.0.attn), layer 11 (blocks.11.attn)``: the short labels with the module names."""
    parts = [
        label if label == name else f"{label.removeprefix('layer ')} ({name})" for label, name in zip(labels, names)
    ]
    return ", ".join(parts)


def token_heatmaps(panels: list[list[tuple[np.ndarray, str]]], labels: list[list[str]] | None, heading: str) -> Figure:
    """Rows of (T, T) heatmaps on one colour scale from 0 to the largest weight shown."""
    num_rows, num_columns = len(panels), max(len(row) for row in panels)
    figure = new_figure(max(4.0, 2.3 * num_columns + 1.0), 2.4 * num_rows + 0.6)
    highest = max(float(matrix.max()) for row in panels for matrix, _ in row) or 1.0
    axes_grid = figure.subplots(num_rows, num_columns, squeeze=False)
    drawn = None
    for row_index, row in enumerate(panels):
        for column, axes in enumerate(axes_grid[row_index]):
            if column >= len(row):
                axes.set_visible(False)
                continue
            matrix, title = row[column]
            drawn = axes.imshow(matrix, cmap=TEXT_COLOURS, vmin=0.0, vmax=highest, interpolation="nearest")
            axes.set_title(title, fontsize=7)
            tokens = labels[row_index] if labels is not None else None
            label_tokens(axes, len(matrix), tokens, left=column == 0)
    figure.colorbar(drawn, ax=axes_grid.ravel().tolist(), shrink=0.7, label="attention weight")
    figure.suptitle(heading, fontsize=8)
    return figure


def label_tokens(axes: Axes, num_tokens: int, tokens: list[str] | None, *, left: bool) -> None:
    step = max(1, -(-num_tokens // MAX_TOKEN_LABELS))
    ticks = list(range(0, num_tokens, step))
    names = [tokens[index] if tokens is not None else str(index) for index in ticks]
    axes.set_xticks(ticks, names, fontsize=5, rotation=90)
    axes.set_yticks(ticks, names if left else [], fontsize=5)
    axes.tick_params(length=0)
    axes.set_xlabel("key token", fontsize=6)
    if left:
        axes.set_ylabel("query token", fontsize=6)
