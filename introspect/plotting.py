"""Figure helpers shared by analyzers: pyplot-free figures, montages, colour scales and bounded text.

Names that reach a figure (layer names, class names, module class names) come from the file, so
they can be any length: a 1 MB layer name made ``savefig`` take a minute. :func:`short_label`
cuts a name at the place it enters a figure, and :func:`limit_figure_text` is the backstop the
runner applies to every figure an analyzer returns (and :func:`figure_to_array` before drawing).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.text import Text

MAX_PANELS = 64
#: Characters of a name (layer, class) drawn in a figure; longer ones end in an ellipsis.
MAX_LABEL_CHARS = 60
#: Characters of a name kept in the manifest and on the page.
MAX_NAME_CHARS = 1000
#: Backstop for any text in a figure: characters per line and lines per text object. Wide
#: enough for the analyzers' own titles; names are cut much shorter by :func:`short_label`.
MAX_TEXT_LINE_CHARS = 240
MAX_TEXT_LINES = 8
ELLIPSIS = "\u2026"


def short_label(text: object, limit: int = MAX_LABEL_CHARS) -> str:
    """``text`` on one line and at most ``limit`` characters, ending in an ellipsis when cut."""
    value = str(text)
    # A name with line breaks would stack lines over the neighbouring panels: one line only.
    flat = " ".join(value.split()) if any(char in value for char in "\n\r\t\v\f") else value
    return flat if len(flat) <= limit else flat[: max(0, limit - 1)] + ELLIPSIS


def bounded_text(text: object, limit: int = MAX_NAME_CHARS) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis: for names in the manifest and page."""
    value = str(text)
    return value if len(value) <= limit else value[: max(0, limit - 1)] + ELLIPSIS


def _bounded_lines(text: str) -> str:
    lines = text.split("\n")
    if len(lines) <= MAX_TEXT_LINES and all(len(line) <= MAX_TEXT_LINE_CHARS for line in lines):
        return text
    kept = [short_label(line, MAX_TEXT_LINE_CHARS) for line in lines[:MAX_TEXT_LINES]]
    if len(lines) > MAX_TEXT_LINES:
        kept[-1] = short_label(kept[-1] + ELLIPSIS, MAX_TEXT_LINE_CHARS)
    return "\n".join(kept)


def limit_figure_text(figure: Figure) -> Figure:
    """Cut every text of ``figure`` (titles, labels, legends, annotations, tick labels) to bounded size.

    Tick labels given as strings live in the axis formatters until the figure is drawn, so
    those are cut there: fixed labels in place, others through a wrapping formatter. Texts are
    walked explicitly: ``findobj`` would create every tick of every axis, which costs seconds.
    """
    for text in _texts(figure):
        value = text.get_text()
        bounded = _bounded_lines(value)
        if bounded is not value:
            text.set_text(bounded)
    for axes in _all_axes(figure):
        for axis in (axes.xaxis, axes.yaxis):
            _bound_formatter(axis, major=True)
            _bound_formatter(axis, major=False)
    return figure


def _figures(figure: object) -> list[object]:
    """The figure and its subfigures, at any depth."""
    return [figure, *(nested for sub in getattr(figure, "subfigs", []) for nested in _figures(sub))]


def _all_axes(figure: object) -> list[Axes]:
    """The axes of a figure and its subfigures, and their inset axes, each once."""
    pending = [axes for level in _figures(figure) for axes in getattr(level, "axes", [])]
    found: dict[int, Axes] = {}
    while pending:
        axes = pending.pop()
        if id(axes) not in found:
            found[id(axes)] = axes
            pending.extend(getattr(axes, "child_axes", []))
    return list(found.values())


def _texts(figure: object) -> Iterator[Text]:
    """Every text artist of a figure except tick labels (which come from the formatters)."""
    for level in _figures(figure):
        yield from getattr(level, "texts", [])
        for legend in getattr(level, "legends", []):
            yield from (*legend.texts, legend.get_title())
    for axes in _all_axes(figure):
        yield from (axes.title, axes._left_title, axes._right_title, axes.xaxis.label, axes.yaxis.label, *axes.texts)
        legend = axes.get_legend()
        if legend is not None:
            yield from (*legend.texts, legend.get_title())
        for table in axes.tables:
            yield from (cell.get_text() for cell in table.get_celld().values())


def _bound_formatter(axis: object, *, major: bool) -> None:
    """Bound the labels an axis formatter will draw; numeric formatters are left alone (and default).

    String labels sit in a FixedFormatter, in a FuncFormatter (``set_xticks(ticks, labels)`` on
    fixed ticks) or in a StrCategoryFormatter (bars drawn against names); the last two are wrapped.
    """
    from matplotlib.category import StrCategoryFormatter
    from matplotlib.ticker import FixedFormatter, FuncFormatter

    formatter = axis.get_major_formatter() if major else axis.get_minor_formatter()
    if isinstance(formatter, FixedFormatter):
        formatter.seq = [_bounded_lines(str(label)) for label in formatter.seq]
    elif isinstance(formatter, (FuncFormatter, StrCategoryFormatter)) and not getattr(formatter, "bounded", False):
        bounded = FuncFormatter(lambda value, position=None: _bounded_lines(str(formatter(value, position))))
        bounded.bounded = True
        axis.set_major_formatter(bounded) if major else axis.set_minor_formatter(bounded)


def new_figure(
    width: float = 6.4, height: float = 4.0, dpi: int = 100, *, layout: str | None = "constrained"
) -> Figure:
    """A figure with an Agg canvas, made without pyplot so nothing keeps it alive.

    ``layout=None`` is for figures whose axes are placed by hand (:func:`axes_at`): the
    constrained layout measures every text of every axes before each draw, which costs more
    than drawing a figure of a few images.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi, layout=layout)
    FigureCanvasAgg(figure)
    return figure


def axes_at(figure: Figure, left: float, bottom: float, width: float, height: float) -> Axes:
    """New axes at a place given in inches from the figure's lower-left corner."""
    figure_width, figure_height = figure.get_size_inches()
    return figure.add_axes((left / figure_width, bottom / figure_height, width / figure_width, height / figure_height))


def symmetric_colour_bar(axes: Axes, cmap: object, limit: float, num_ticks: int = 5) -> None:
    """Draw a vertical colour bar for the scale ``[-limit, limit]`` in ``axes``, ticks on the right.

    One gradient image and fixed ticks (the ends and evenly spaced values between them), in
    place of matplotlib's ``Colorbar``, whose set-up and layout cost more than the figure of
    kernels beside it. The ends are the limit itself, so the scale's reach is read off directly.
    """
    gradient = np.linspace(-limit, limit, 256)[:, None]
    extent = (0.0, 1.0, -limit, limit)
    axes.imshow(gradient, cmap=cmap, vmin=-limit, vmax=limit, origin="lower", extent=extent, aspect="auto")
    axes.set_xticks([])
    ticks = np.linspace(-limit, limit, num_ticks)
    # matplotlib's own tick labels use the minus sign, not a hyphen
    axes.set_yticks(ticks, [f"{tick:.3g}".replace("-", "\u2212") for tick in ticks])
    axes.yaxis.tick_right()
    axes.tick_params(labelsize=7, length=2, pad=1)


#: Room around a panel grid's cells, in inches: for a title line of 8 to 9 points above each
#: panel (``title_line`` more per extra line), tick labels of 7 points and an x label of 7 points
#: below, and y tick labels up to "10^-3" wide.
PANEL_MARGINS = {"left": 0.55, "right": 0.15, "top": 0.3, "bottom": 0.5, "across": 0.55, "down": 0.75}
TITLE_LINE = 0.17
#: Intervals per axis on a small panel (matplotlib's default is up to 9): each tick is two line
#: artists and a text, a third of the time of drawing a page of twelve histograms.
SMALL_PANEL_TICKS = 4


def panel_grid(figure: Figure, num_panels: int, max_columns: int = 4, *, title_lines: int = 1) -> list[Axes]:
    """``num_panels`` axes in a near-square grid, at fixed margins; unused cells are not created.

    The margins are fixed (:data:`PANEL_MARGINS`) and the figure's layout engine is turned off:
    constrained layout measured every tick label of every panel twice per draw, most of the time
    of writing a 12-panel histogram page. Panels keep their texts small, so fixed room fits them.
    """
    columns = min(max_columns, max(1, num_panels))
    rows = math.ceil(num_panels / columns)
    extra = (title_lines - 1) * TITLE_LINE
    grid = fixed_gridspec(figure, rows, columns, top=PANEL_MARGINS["top"] + extra, down=PANEL_MARGINS["down"] + extra)
    panels = [figure.add_subplot(grid[divmod(index, columns)]) for index in range(num_panels)]
    for axes in panels:
        axes.locator_params(nbins=SMALL_PANEL_TICKS)
    return panels


def fixed_gridspec(
    figure: Figure,
    rows: int,
    columns: int = 1,
    *,
    height_ratios: Sequence[float] | None = None,
    width_ratios: Sequence[float] | None = None,
    **margins: float,
) -> object:
    """A ``rows`` x ``columns`` gridspec with room around and between its cells given in inches.

    ``margins`` override :data:`PANEL_MARGINS` (left, right, top, bottom, across, down), and the
    figure's layout engine is turned off: a figure whose texts are known in advance needs no
    engine measuring them before every draw (about 45% of drawing a page of stem plots).
    """
    room = {**PANEL_MARGINS, **margins}
    figure.set_layout_engine("none")
    width, height = figure.get_size_inches()
    cell_width = (width - room["left"] - room["right"] - (columns - 1) * room["across"]) / columns
    cell_height = (height - room["top"] - room["bottom"] - (rows - 1) * room["down"]) / rows
    return figure.add_gridspec(
        rows,
        columns,
        left=room["left"] / width,
        right=1 - room["right"] / width,
        bottom=room["bottom"] / height,
        top=1 - room["top"] / height,
        wspace=room["across"] / max(cell_width, 0.1),
        hspace=room["down"] / max(cell_height, 0.1),
        height_ratios=height_ratios,
        width_ratios=width_ratios,
    )


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
    """Render ``figure`` to an (H, W, 3) uint8 array (its text bounded first, see :func:`limit_figure_text`)."""
    limit_figure_text(figure)
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
