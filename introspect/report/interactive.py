"""Interactive views: numbers an analyzer hands the page, which draws them in the browser, offline.

An :class:`~introspect.artifacts.Artifact` may carry ``interactive``, a mapping with a ``kind``.
Two kinds: ``"scatter"`` (see :func:`scatter_view`): points in one or more 2-D views, a class per
point, and optionally a thumbnail per point shown on hover; and ``"tokens"`` (see
:func:`tokens_view`): texts as their tokens, each shaded by a score, which the page writes as HTML
(escaped, no script needed). The writer keeps the numbers in the manifest and turns the thumbnails
into one sprite sheet beside the figures, so the page needs no server and no network, and rendering
again from ``manifest.json`` gives the same view.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from introspect.describe import plain

#: A thumbnail's longest side in the sprite sheet, in pixels: enough to recognise an input on hover,
#: small enough that 2,000 of them stay a light file.
MAX_THUMBNAIL_SIDE = 48
#: Decimals kept of the [0, 1] coordinates: finer than a screen pixel of the drawn view.
COORDINATE_DECIMALS = 4
#: Significant digits kept of a token's score: what its tooltip shows.
SCORE_DIGITS = 6


def scatter_view(
    views: Sequence[tuple[str, np.ndarray]],
    labels: np.ndarray,
    class_names: Sequence[str],
    colours: Sequence[str],
    *,
    indices: np.ndarray,
    thumbnails: np.ndarray | None = None,
) -> dict[str, Any]:
    """An interactive scatter: each view's points scaled into [0, 1], coloured by class.

    Args:
        views: (title, (N, 2) points) per panel; every view shows the same N points.
        labels: the class of each point, -1 where it has none.
        colours: one CSS colour per class.
        indices: each point's index in the dataset, shown on hover.
        thumbnails: (N, H, W, 3) images in [0, 1], one per point, written as a sprite sheet.
    """
    spec: dict[str, Any] = {
        "kind": "scatter",
        "views": [{"title": title, "points": _unit_square(points)} for title, points in views],
        "labels": np.asarray(labels, dtype=np.int64),
        "indices": np.asarray(indices, dtype=np.int64),
        "class_names": list(class_names),
        "colours": list(colours),
    }
    if thumbnails is not None:
        spec["thumbnails"] = thumbnails
    return spec


def tokens_view(titles: Sequence[str], tokens: Sequence[Sequence[str]], scores: Sequence[np.ndarray]) -> dict[str, Any]:
    """Texts shown token by token, each token shaded by its score (red positive, blue negative).

    Args:
        titles: one heading per text.
        tokens: each text's tokens, as text (the page escapes them).
        scores: each text's score per token; a row is shaded relative to its own largest |score|.
    """
    rows = []
    for title, row_tokens, row_scores in zip(titles, tokens, scores, strict=True):
        values = np.asarray(row_scores, dtype=np.float64)
        if len(values) != len(row_tokens):
            raise ValueError(f"{len(row_tokens)} tokens but {len(values)} scores for {title!r}")
        shown = [float(f"{value:.{SCORE_DIGITS}g}") for value in values]
        scale = float(np.abs(values).max()) if len(values) else 0.0
        rows.append(
            {"title": str(title), "tokens": [str(token) for token in row_tokens], "scores": shown, "scale": scale}
        )
    return {"kind": "tokens", "rows": rows}


def _unit_square(points: np.ndarray) -> np.ndarray:
    """Points scaled into [0, 1] on both axes alike (the aspect is kept), rounded for the manifest."""
    points = np.asarray(points, dtype=np.float64)
    low = points.min(axis=0)
    span = float((points.max(axis=0) - low).max()) or 1.0
    scaled = (points - low) / span
    scaled += (1 - scaled.max(axis=0)) / 2  # centred on the shorter axis
    return np.round(scaled, COORDINATE_DECIMALS)


def write_interactive(spec: Mapping[str, Any], folder: Path, stem: str) -> dict[str, Any]:
    """The manifest's form of ``spec``: JSON-ready, with its thumbnails written to ``folder/STEM-sprites.png``.

    The sprite's file name (inside ``folder``) is under ``"sprites"``, with the grid's columns and one
    cell's (height, width).
    """
    entry = {key: value for key, value in spec.items() if key != "thumbnails"}
    if spec.get("thumbnails") is not None:
        sheet, columns, cell = sprite_sheet(np.asarray(spec["thumbnails"]))
        name = f"{stem}-sprites.png"
        _write_png(sheet, folder / name)
        entry["sprites"] = {"file": name, "columns": columns, "cell": list(cell)}
    return plain(entry)


def sprite_sheet(images: np.ndarray, max_side: int = MAX_THUMBNAIL_SIDE) -> tuple[np.ndarray, int, tuple[int, int]]:
    """(N, H, W, 3) images in [0, 1] → one uint8 grid image, its number of columns and one cell's size.

    Images larger than ``max_side`` are shrunk (area-averaged) so that the sheet stays light.
    """
    images = shrunk(images, max_side)
    count, height, width = images.shape[:3]
    columns = max(1, math.ceil(math.sqrt(count)))
    rows = math.ceil(count / columns)
    sheet = np.ones((rows * height, columns * width, 3))
    for position, image in enumerate(images):
        row, column = divmod(position, columns)
        sheet[row * height : (row + 1) * height, column * width : (column + 1) * width] = image[..., :3]
    return np.round(np.clip(sheet, 0, 1) * 255).astype(np.uint8), columns, (height, width)


def shrunk(images: np.ndarray, max_side: int = MAX_THUMBNAIL_SIDE) -> np.ndarray:
    """(N, H, W, C) images shrunk by a whole factor (area-averaged) until no side exceeds ``max_side``."""
    count, height, width = images.shape[:3]
    factor = max(1, math.ceil(max(height, width) / max_side))
    if factor == 1:
        return images
    height, width = height // factor, width // factor
    images = images[:, : height * factor, : width * factor]
    return images.reshape(count, height, factor, width, factor, -1).mean(axis=(2, 4))


def _write_png(pixels: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(pixels, mode="RGB").save(path, optimize=False)
