"""Colour maps shared by every figure that draws signed values (kernels, weights, their changes).

It sits beside :mod:`introspect.plotting` rather than in an analyzer, so that the analyzers and
the report draw signed values with the same map and neither imports the other's private names.
"""

from __future__ import annotations

from typing import Any

#: The diverging map for signed values: blue below zero, white at zero, red above.
DIVERGING = "RdBu_r"
#: Colour of NaN pixels, which :func:`~introspect.plotting.montage` puts between tiles.
PADDING_GREY = (0.72, 0.72, 0.72)


def diverging_colormap() -> Any:
    """The diverging colour map with grey for NaN, so near-zero (white) tiles stay visible as tiles.

    Returns:
        A matplotlib ``Colormap``; draw with ``vmin=-limit, vmax=limit`` to centre it on zero.
    """
    from matplotlib import colormaps

    return colormaps[DIVERGING].with_extremes(bad=PADDING_GREY)
