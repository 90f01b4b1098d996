"""The files of a page: figures as PNG, animations as GIF, then ``manifest.json`` and ``index.html``.

:func:`write_manifest_and_page` is the one place a manifest is written and its page rendered:
the manifest first, then the HTML from the JSON-ready manifest alone, so that rendering again
from ``manifest.json`` gives the same page.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from introspect.artifacts import AnalyzerResult, Artifact, slugify
from introspect.describe import plain
from introspect.report.interactive import write_interactive
from introspect.report.layout import FIGURE_DIR, INDEX_NAME, MANIFEST_NAME
from introspect.report.render import render

#: Pixels sampled to fit an animation's palette (see :func:`write_gif`).
MAX_PALETTE_PIXELS = 1_000_000
#: zlib level of the figures' PNGs. On LeNet-5's gallery (29 figures) level 1 encoded in 0.33 s
#: against 0.47 s at Pillow's default 6, for files 18% larger in all (1.21 MB against 1.02 MB).
PNG_COMPRESS_LEVEL = 1


def write_manifest_and_page(manifest: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """``manifest.json`` first, then ``index.html`` rendered from it alone; returns the written manifest."""
    written = plain(manifest)
    (folder / MANIFEST_NAME).write_text(json.dumps(written, indent=2), encoding="utf-8")
    (folder / INDEX_NAME).write_text(render(written), encoding="utf-8")
    return written


def unique_slugs(titles: Sequence[str], *, reserved: Collection[str] = ()) -> list[str]:
    """A distinct folder name per title: ``a``, ``a-2``, ``a-3`` for repeats.

    A number is added until the name is free, so an explicit ``a-2`` among the titles, or one of
    the ``reserved`` names, is never given twice.
    """
    taken = set(reserved)
    return [next_slug(title, taken) for title in titles]


def next_slug(title: str, taken: set[str]) -> str:
    """The first of ``slug``, ``slug-2``, ``slug-3``, ... not in ``taken``; it is added to ``taken``."""
    base = slug = slugify(title)
    number = 1
    while slug in taken:
        number += 1
        slug = f"{base}-{number}"
    taken.add(slug)
    return slug


def write_artifacts(result: AnalyzerResult, folder: Path) -> list[dict[str, Any]]:
    """Write every artifact of ``result`` under ``folder/figures`` and describe each for the manifest."""
    entries = []
    (folder / FIGURE_DIR).mkdir(exist_ok=True)
    for index, artifact in enumerate(result.artifacts, start=1):
        stem = f"{slugify(result.name)}-{index:02d}-{slugify(artifact.name)}"
        entry: dict[str, Any] = {
            "name": artifact.name,
            "kind": artifact.kind,
            "caption": artifact.caption,
            "layer": artifact.layer,
            "summary": plain(artifact.summary),
        }
        if artifact.kind == "table":
            entry["file"] = None
            entry["table"] = plain(list(artifact.table or []))
        else:
            entry["file"] = f"{FIGURE_DIR}/{write_artifact_file(artifact, folder / FIGURE_DIR, stem)}"
        if artifact.interactive is not None:
            entry["interactive"] = write_interactive(artifact.interactive, folder / FIGURE_DIR, stem)
        entries.append(entry)
    return entries


def write_artifact_file(artifact: Artifact, folder: Path, stem: str) -> str:
    """Write a figure as PNG or frames as GIF; returns the file name (inside ``folder``)."""
    if artifact.figure is not None:
        name = f"{stem}.png"
        write_png(artifact.figure, folder / name)
        return name
    name = f"{stem}.gif"
    write_gif(list(artifact.frames or []), folder / name, fps=artifact.fps)
    return name


def write_png(figure: Any, path: Path) -> None:
    """Draw ``figure`` once at its own DPI and write its pixels as PNG (RGB when it is opaque).

    ``savefig`` draws a figure with a layout engine twice (once to lay it out, once to render)
    and encodes at Pillow's default level; one canvas draw lays out and renders in one pass, with
    the same pixels. Figures on another canvas than Agg go through ``savefig``.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    if type(figure.canvas) is not FigureCanvasAgg:
        figure.savefig(path, dpi=figure.dpi)
        return
    figure.canvas.draw()
    rgba = np.asarray(figure.canvas.buffer_rgba())
    pixels = rgba[..., :3] if bool((rgba[..., 3] == 255).all()) else rgba
    dpi = round(float(figure.dpi))
    Image.fromarray(pixels).save(path, format="png", compress_level=PNG_COMPRESS_LEVEL, dpi=(dpi, dpi))


def release_figures(artifacts: Sequence[Artifact]) -> None:
    """Clear written figures, so their artists and images are freed now rather than at the next full GC."""
    for artifact in artifacts:
        if artifact.figure is not None:
            artifact.figure.clear()


def write_gif(frames: Sequence[Any], path: Path, *, fps: float) -> None:
    """Write RGB uint8 frames as a looping GIF with one palette shared by every frame.

    A palette per frame (what a plain ``imageio.imwrite`` does) costs most of the time of an
    animation and makes colours flicker between frames; one palette from a few sampled frames
    is both faster and steadier. Frames are mapped without dithering, so flat areas stay flat.
    """
    import numpy as np
    from PIL import Image

    if not frames:
        raise ValueError("an animation needs at least one frame")
    # The palette is fitted to a strided sample of every frame's pixels: colours that appear in
    # only a few frames still get entries, and the sample stays near MAX_PALETTE_PIXELS.
    stack = np.stack([np.asarray(frame, dtype=np.uint8) for frame in frames])
    stride = max(1, int(np.sqrt(stack[..., 0].size / MAX_PALETTE_PIXELS)))
    sampled = stack[:, ::stride, ::stride]
    sample = Image.fromarray(sampled.reshape(-1, sampled.shape[2], 3))
    palette = sample.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    images = [Image.fromarray(frame).quantize(palette=palette, dither=Image.Dither.NONE) for frame in stack]
    duration_ms = max(20, round(1000.0 / max(fps, 1e-3)))
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0, optimize=False)
