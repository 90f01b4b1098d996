"""Figure helpers shared by analyzers: pyplot-free figures, montages and colour scales."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_PANELS = 64


def new_figure(width: float = 6.4, height: float = 4.0, dpi: int = 100) -> Figure:
    """A figure with an Agg canvas, made without pyplot so nothing keeps it alive."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def panel_grid(figure: Figure, num_panels: int, max_columns: int = 4) -> list[Axes]:
    """``num_panels`` axes in a near-square grid; unused cells are not created."""
    columns = min(max_columns, max(1, num_panels))
    rows = math.ceil(num_panels / columns)
    return [figure.add_subplot(rows, columns, index + 1) for index in range(num_panels)]


def grid_shape(count: int, max_columns: int = 16) -> tuple[int, int]:
    """Rows and columns for ``count`` tiles, as square as possible but at most ``max_columns`` wide."""
    columns = min(max_columns, max(1, math.ceil(math.sqrt(count))))
    return math.ceil(count / columns), columns


def montage(tiles: np.ndarray, *, columns: int | None = None, padding: int = 1, fill: float = np.nan) -> np.ndarray:
    """Tile ``(N, H, W)`` or ``(N, H, W, 3)`` arrays into one image with ``padding`` between tiles.

    Padding is filled with ``fill`` (NaN by default, which colour maps draw as background), so a
    whole layer is drawn as one image instead of one subplot per kernel.
    """
    count, height, width = tiles.shape[:3]
    if columns is None:
        rows, columns = grid_shape(count)
    else:
        rows = math.ceil(count / columns)
    channels = tiles.shape[3:]
    canvas = np.full(
        (rows * (height + padding) - padding, columns * (width + padding) - padding, *channels),
        fill,
        dtype=np.float64,
    )
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = row * (height + padding), column * (width + padding)
        canvas[top : top + height, left : left + width] = tiles[index]
    return canvas


def symmetric_limit(values: np.ndarray | Sequence[float]) -> float:
    """The largest absolute finite value (at least a tiny positive number), for diverging maps."""
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    return float(max(np.abs(finite).max(), 1e-12)) if finite.size else 1.0


def figure_to_array(figure: Figure) -> np.ndarray:
    """Render ``figure`` to an (H, W, 3) uint8 array."""
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
