"""Results shown inline in Jupyter: one self-contained HTML fragment, with nothing written to disk.

:func:`notebook_html` renders what :meth:`AnalysisReport._repr_html_ <introspect.api.AnalysisReport>`
and :func:`introspect.show` display: the header the gallery shows, each analyzer's status, and
every artifact's figure embedded as a ``data:`` URI (PNG for figures, GIF for animations), its
caption, its table, and a token view (``"tokens"`` kind) as shaded HTML text. Figures are drawn
from the matplotlib objects in memory into bytes (``Figure.savefig(BytesIO, ...)``), never into files.

A notebook keeps every output in the ``.ipynb`` file, so the fragment is kept small: PNGs are drawn
at a capped resolution, long animations show their first frame, tables are cut, and past
:data:`MAX_FIGURES` figures or :data:`MAX_EMBEDDED_BYTES` bytes the rest are left out, with a
line saying how many. The gallery (``out_dir``) always has all of them.

Text is escaped by Jinja2's autoescaping (``notebook.html.j2``), as on the gallery's pages:
layer and class names come from the checkpoint and may be hostile.
"""

from __future__ import annotations

import base64
import dataclasses
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from introspect.artifacts import AnalyzerResult, Artifact
from introspect.describe import plain
from introspect.report.manifest import checkpoint_manifest
from introspect.report.render import render_template

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from introspect.spec import AnalyzerSpec
    from introspect.subject import Subject

TEMPLATE = "notebook.html.j2"
#: Figures and animations embedded in one fragment; the rest are counted, not shown.
MAX_FIGURES = 40
#: Bytes of embedded images (before base64) in one fragment.
MAX_EMBEDDED_BYTES = 12 * 2**20
#: Resolution of the embedded PNGs: at most this DPI, and at most this many pixels on the longer side.
MAX_DPI = 100
MAX_SIDE_PIXELS = 1600
#: An animation with more pixels than this over all its frames shows its first frame only.
MAX_ANIMATION_PIXELS = 40_000_000
#: An encoded GIF larger than this shows its first frame instead.
MAX_ANIMATION_BYTES = 4 * 2**20
#: Rows of a table shown; the rest are counted.
MAX_TABLE_ROWS = 50
#: Characters of a failed analyzer's error shown (its first line only).
MAX_REASON_CHARS = 400


@dataclasses.dataclass
class _Allowance:
    """What is left of the fragment's figure and byte allowance, and how much was left out."""

    figures: int
    bytes: int
    left_out: int = 0

    def admits(self, size: int) -> bool:
        """Take ``size`` bytes for one more figure if both allowances have room; count it as left out if not."""
        if self.figures < 1 or size > self.bytes:
            self.left_out += 1
            return False
        self.figures -= 1
        self.bytes -= size
        return True


def notebook_html(
    subject: Subject,
    specs: Sequence[AnalyzerSpec],
    results: Sequence[AnalyzerResult],
    *,
    gallery_path: str | Path | None = None,
    plugin_problems: Sequence[str] = (),
    max_figures: int = MAX_FIGURES,
) -> str:
    """The HTML fragment that shows ``results`` inline: header, statuses, figures, captions and tables.

    Args:
        subject: what was analyzed (the header: architecture, task, parameters, probe).
        specs: the analyzers that ran, for their one-line summaries.
        results: their results, with their artifacts.
        gallery_path: the gallery's ``index.html`` when one was written, to link to.
        plugin_problems: plugins that were left out, one sentence each.
        max_figures: figures and animations embedded at most; the rest are counted.
    """
    allowance = _Allowance(figures=max(0, max_figures), bytes=MAX_EMBEDDED_BYTES)
    embedded = {}
    for result in results:
        entries = [_embedded(artifact, allowance) for artifact in result.artifacts]
        embedded[result.name] = [entry for entry in entries if entry is not None]
    # The gallery's own manifest builder gives the same header and analyzer entries as its pages.
    manifest = checkpoint_manifest(subject, specs, results, embedded)
    for entry in manifest["analyzers"]:
        entry["reason"] = _one_line(entry["reason"]) if entry["status"] == "failed" else entry["reason"]
    return render_template(
        TEMPLATE,
        manifest,
        left_out=allowance.left_out,
        max_figures=max_figures,
        max_bytes=MAX_EMBEDDED_BYTES,
        gallery_path=None if gallery_path is None else str(gallery_path),
        plugin_problems=list(plugin_problems),
    )


def _embedded(artifact: Artifact, allowance: _Allowance) -> dict[str, Any] | None:
    """The template's entry for one artifact, or ``None`` when it does not fit the allowance."""
    entry: dict[str, Any] = {
        "name": artifact.name,
        "kind": artifact.kind,
        "caption": artifact.caption,
        "layer": artifact.layer,
        "src": None,
        "note": "",
        "table": None,
        "more_rows": 0,
        "tokens": None,
    }
    if artifact.interactive is not None and artifact.interactive.get("kind") == "tokens":
        entry["tokens"] = plain(dict(artifact.interactive))  # drawn as HTML, so it costs no image allowance
    if artifact.kind == "table":
        rows = plain(list(artifact.table or []))
        entry["table"], entry["more_rows"] = rows[:MAX_TABLE_ROWS], max(0, len(rows) - MAX_TABLE_ROWS)
        return entry
    if allowance.figures < 1:  # counted without drawing: drawing costs time for nothing shown
        allowance.left_out += 1
        return None
    if artifact.figure is not None:
        image, kind = figure_png(artifact.figure), "png"
    else:
        image, kind, entry["note"] = animation_image(list(artifact.frames or []), artifact.fps)
    if not allowance.admits(len(image)):
        return None
    entry["src"] = data_uri(image, kind)
    return entry


def figure_png(figure: Figure, *, max_dpi: float = MAX_DPI, max_side_pixels: int = MAX_SIDE_PIXELS) -> bytes:
    """``figure`` as PNG bytes, drawn in memory at a DPI that keeps its longer side within ``max_side_pixels``."""
    width, height = figure.get_size_inches()
    dpi = min(float(figure.dpi), max_dpi, max_side_pixels / max(width, height, 1e-6))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=max(dpi, 10.0))
    return buffer.getvalue()


def animation_image(frames: Sequence[Any], fps: float) -> tuple[bytes, str, str]:
    """An animation as GIF bytes, or its first frame as PNG when the GIF would be too large.

    Returns:
        the image, its kind (``"gif"`` or ``"png"``) and a note for the caption (empty for a GIF).
    """
    import numpy as np

    from introspect.report.files import write_gif

    first = np.asarray(frames[0], dtype=np.uint8)
    first_only = f"The first of {len(frames)} frames; the gallery (out_dir=...) has the animation."
    if len(frames) * first.shape[0] * first.shape[1] > MAX_ANIMATION_PIXELS:
        return _png_of_frame(first), "png", first_only
    # write_gif saves through PIL, which picks the format from a file's name: an in-memory file
    # with a .gif name is written to like a file on disk, and nothing touches the disk.
    buffer = io.BytesIO()
    buffer.name = "animation.gif"
    write_gif(frames, buffer, fps=fps)  # type: ignore[arg-type]
    if len(buffer.getvalue()) > MAX_ANIMATION_BYTES:
        return _png_of_frame(first), "png", first_only
    return buffer.getvalue(), "gif", ""


def _png_of_frame(frame: Any) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(image: bytes, kind: str) -> str:
    """``data:image/KIND;base64,...``: an image carried inside the HTML itself."""
    return f"data:image/{kind};base64,{base64.b64encode(image).decode('ascii')}"


def _one_line(reason: str) -> str:
    """The first line of an error, cut to :data:`MAX_REASON_CHARS`: the full traceback stays on the result."""
    line = next((line.strip() for line in reason.splitlines() if line.strip()), "")
    return line if len(line) <= MAX_REASON_CHARS else line[: MAX_REASON_CHARS - 1] + "\u2026"
