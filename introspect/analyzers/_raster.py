"""Painting animation frames with numpy on a background drawn once by matplotlib.

Drawing one matplotlib figure per frame costs tens of milliseconds a frame; here the axes,
labels and static curves are drawn once, their pixel boxes and data transforms are read off
the rendered figure, and each frame paints only what moves (markers, curves, colour-mapped
cells, images) into a copy of that background.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from introspect.plotting import figure_to_array

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

RED = (214, 39, 40)
GREY = (110, 110, 110)
BLUE = (31, 119, 180)


@dataclasses.dataclass(frozen=True)
class PixelBox:
    """The inside of an axes in array coordinates: rows ``top:bottom``, columns ``left:right``."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def height(self) -> int:
        """Rows inside the box."""
        return self.bottom - self.top

    @property
    def width(self) -> int:
        """Columns inside the box."""
        return self.right - self.left


@dataclasses.dataclass(frozen=True)
class Backdrop:
    """A rendered figure and what is needed to paint into its axes afterwards."""

    image: np.ndarray
    boxes: dict[str, PixelBox]
    transforms: dict[str, np.ndarray]

    def to_pixels(self, key: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Data coordinates of axes ``key`` → (rows, columns) as floats in the frame array."""
        scale_x, offset_x, scale_y, offset_y = self.transforms[key]
        columns = np.asarray(x, dtype=np.float64) * scale_x + offset_x
        rows = np.asarray(y, dtype=np.float64) * scale_y + offset_y
        return rows, columns


def render_backdrop(figure: Figure, axes: dict[str, Axes]) -> Backdrop:
    """Render ``figure`` once and record each named axes' pixel box and linear data transform.

    Only linear axes are supported: the transform is taken from two points and extrapolated.
    """
    image = figure_to_array(figure)
    height = image.shape[0]
    boxes, transforms = {}, {}
    for key, item in axes.items():
        extent = item.get_window_extent()
        # Display coordinates start at the bottom left; array rows start at the top.
        boxes[key] = PixelBox(
            top=int(np.ceil(height - extent.y1)),
            bottom=int(np.floor(height - extent.y0)),
            left=int(np.ceil(extent.x0)),
            right=int(np.floor(extent.x1)),
        )
        (x0, x1), (y0, y1) = item.get_xlim(), item.get_ylim()
        (c0, r0), (c1, r1) = item.transData.transform([(x0, y0), (x1, y1)])
        scale_x = (c1 - c0) / (x1 - x0) if x1 != x0 else 0.0
        scale_y = -(r1 - r0) / (y1 - y0) if y1 != y0 else 0.0
        transforms[key] = np.array([scale_x, c0 - scale_x * x0, scale_y, height - r0 - scale_y * y0])
    figure.clear()
    return Backdrop(image=image, boxes=boxes, transforms=transforms)


def colour_table(name: str) -> np.ndarray:
    """A (256, 3) uint8 lookup table for the matplotlib colour map ``name``."""
    from matplotlib import colormaps

    return (colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)


def apply_colours(values: np.ndarray, low: float, high: float, table: np.ndarray) -> np.ndarray:
    """Map ``values`` linearly from [low, high] onto ``table``; NaN becomes white."""
    values = np.asarray(values, dtype=np.float64)
    span = high - low if high > low else 1.0
    scaled = np.nan_to_num((values - low) / span, nan=0.0)
    indices = np.clip(np.round(scaled * 255), 0, 255).astype(np.intp)
    rgb = table[indices]
    rgb[np.isnan(values)] = 255
    return rgb


def resize_nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` (H, W, ...) scaled to (height, width) by nearest-neighbour sampling."""
    rows = np.minimum((np.arange(height) + 0.5) * image.shape[0] / height, image.shape[0] - 1).astype(np.intp)
    columns = np.minimum((np.arange(width) + 0.5) * image.shape[1] / width, image.shape[1] - 1).astype(np.intp)
    return image[rows[:, None], columns[None, :]]


def paint_image(frame: np.ndarray, box: PixelBox, rgb: np.ndarray) -> None:
    """Fill ``box`` of ``frame`` with the (h, w, 3) uint8 ``rgb`` stretched to fit."""
    frame[box.top : box.bottom, box.left : box.right] = resize_nearest(rgb, box.height, box.width)


def paint_disk(
    frame: np.ndarray,
    row: float,
    column: float,
    radius: float,
    colour: tuple[int, int, int],
    box: PixelBox | None = None,
) -> None:
    """A filled disk centred at (``row``, ``column``), clipped to ``box`` (or the frame)."""
    box = box or PixelBox(0, frame.shape[0], 0, frame.shape[1])
    top, bottom = max(box.top, int(np.floor(row - radius))), min(box.bottom, int(np.ceil(row + radius)) + 1)
    left, right = max(box.left, int(np.floor(column - radius))), min(box.right, int(np.ceil(column + radius)) + 1)
    if top >= bottom or left >= right:
        return
    rows, columns = np.ogrid[top:bottom, left:right]
    inside = (rows - row) ** 2 + (columns - column) ** 2 <= radius**2
    frame[top:bottom, left:right][inside] = colour


def paint_polyline(
    frame: np.ndarray,
    rows: np.ndarray,
    columns: np.ndarray,
    colour: tuple[int, int, int],
    box: PixelBox,
    width: int = 2,
) -> None:
    """Connect consecutive (row, column) points with a line ``width`` pixels thick, inside ``box``."""
    rows, columns = np.asarray(rows, dtype=np.float64), np.asarray(columns, dtype=np.float64)
    finite = np.isfinite(rows) & np.isfinite(columns)
    rows, columns = rows[finite], columns[finite]
    if rows.size == 0:
        return
    # Sample each segment about once per pixel of its length, so the line has no gaps.
    lengths = np.hypot(np.diff(rows), np.diff(columns))
    distance = np.concatenate([[0.0], np.cumsum(lengths)])
    samples = np.linspace(0.0, distance[-1], max(2, int(distance[-1] * 1.5) + 1))
    dense_rows, dense_columns = np.interp(samples, distance, rows), np.interp(samples, distance, columns)
    offsets = np.arange(width) - (width - 1) / 2
    # floor(v + 0.5) rather than round: round-half-to-even would merge the two rows of a 2-pixel line.
    all_rows = np.floor(dense_rows[:, None, None] + offsets[None, :, None] + 0.5).astype(np.intp)
    all_columns = np.floor(dense_columns[:, None, None] + offsets[None, None, :] + 0.5).astype(np.intp)
    all_rows, all_columns = np.broadcast_arrays(all_rows, all_columns)
    keep = (all_rows >= box.top) & (all_rows < box.bottom) & (all_columns >= box.left) & (all_columns < box.right)
    frame[all_rows[keep], all_columns[keep]] = colour


def paint_vertical_line(frame: np.ndarray, column: float, box: PixelBox, colour: tuple[int, int, int] = GREY) -> None:
    """A one-pixel vertical line across ``box`` at ``column`` (nothing when outside)."""
    index = int(round(column))
    if box.left <= index < box.right:
        frame[box.top : box.bottom, index] = colour


def paint_bars(
    frame: np.ndarray,
    backdrop: Backdrop,
    key: str,
    heights: np.ndarray,
    colour: tuple[int, int, int] = BLUE,
    half_width: float = 0.35,
) -> None:
    """Vertical bars from 0 to ``heights`` at x = 0, 1, 2, ... in axes ``key``."""
    box = backdrop.boxes[key]
    positions = np.arange(len(heights), dtype=np.float64)
    base_rows, left_columns = backdrop.to_pixels(key, positions - half_width, np.zeros_like(positions))
    top_rows, right_columns = backdrop.to_pixels(key, positions + half_width, heights)
    for base, top, left, right in zip(base_rows, top_rows, left_columns, right_columns):
        low, high = sorted((base, top))
        row_slice = slice(max(box.top, int(round(low))), min(box.bottom, int(round(high)) + 1))
        column_slice = slice(max(box.left, int(round(left))), min(box.right, int(round(right)) + 1))
        frame[row_slice, column_slice] = colour
