"""What analyzers return: figures, animations and tables, with the numbers behind them."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

_SLUG_UNSAFE = re.compile(r"[^a-z0-9_-]+")


def slugify(text: str, max_length: int = 60) -> str:
    """A file-name-safe version of ``text``: lower-case ASCII letters, digits, ``_`` and ``-``.

    Names inside a checkpoint (layer names, class names) become parts of file names; this keeps
    every such name inside the gallery folder whatever it contains (``../``, ``/``, HTML).
    """
    slug = _SLUG_UNSAFE.sub("-", text.lower()).strip("-")
    return slug[:max_length] or "item"


@dataclasses.dataclass(frozen=True)
class Artifact:
    """One output of an analyzer.

    Exactly one of ``figure`` (a matplotlib Figure built without pyplot), ``frames`` (RGB uint8
    arrays of one shape, written as an animated GIF) or ``table`` (rows of plain values) is set.

    Attributes:
        name: short identifier, unique within the analyzer, used in the file name.
        caption: one or two sentences for the gallery, saying what is shown.
        layer: the layer the artifact belongs to, when it belongs to one.
        figure: a matplotlib figure.
        frames: animation frames, each an (H, W, 3) uint8 array.
        fps: frames per second for animations.
        table: a list of rows (dicts with the same keys) for tabular output.
        data: the numbers behind the output, for API users and tests (arrays allowed).
        summary: JSON-ready scalars or short lists copied into the manifest.
    """

    name: str
    caption: str
    layer: str | None = None
    figure: Figure | None = None
    frames: Sequence[np.ndarray] | None = None
    fps: float = 12.0
    table: Sequence[Mapping[str, Any]] | None = None
    data: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    summary: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        outputs = [self.figure is not None, self.frames is not None, self.table is not None]
        if sum(outputs) != 1:
            raise ValueError(
                f"artifact {self.name!r} must carry exactly one of figure, frames or table"
            )

    @property
    def kind(self) -> str:
        """``"figure"``, ``"animation"`` or ``"table"``."""
        if self.figure is not None:
            return "figure"
        if self.frames is not None:
            return "animation"
        return "table"


@dataclasses.dataclass(frozen=True)
class AnalyzerResult:
    """The outcome of running one analyzer on one subject."""

    name: str
    status: str  # "ok" | "skipped" | "failed"
    reason: str = ""
    seconds: float = 0.0
    artifacts: tuple[Artifact, ...] = ()
    summary: str = ""
    traceback: str = ""

    @property
    def ok(self) -> bool:
        """Whether the analyzer ran and produced its artifacts."""
        return self.status == "ok"
