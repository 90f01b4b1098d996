"""What analyzers return: figures, animations and tables, with the numbers behind them, and what they used."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from introspect.plotting import limit_figure_text

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

    from introspect.spec import AnalyzerSpec

_SLUG_UNSAFE = re.compile(r"[^a-z0-9_-]+")

#: Figures and animations one analyzer may return; the runner drops any beyond (plugins too).
MAX_FIGURES_PER_ANALYZER = 48
#: Rows of one table; longer ones end in a row saying how many more there were.
MAX_TABLE_ROWS = 1000
#: Characters of an artifact's name and layer, and of its caption, kept for the manifest and page.
MAX_NAME_CHARS = 1000
MAX_CAPTION_CHARS = 4000


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
        interactive: a view the page draws in the browser beside the figure, from numbers kept in
            the manifest (see :mod:`introspect.report.interactive`); the figure stays for print.
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
    interactive: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        outputs = [self.figure is not None, self.frames is not None, self.table is not None]
        if sum(outputs) != 1:
            raise ValueError(
                f"artifact {_cut(str(self.name), 200)!r} must carry exactly one of figure, frames or table"
            )
        # Names come from the file and can be any length: keep the manifest and page bounded.
        object.__setattr__(self, "name", _cut(str(self.name), MAX_NAME_CHARS))
        object.__setattr__(self, "caption", _cut(str(self.caption), MAX_CAPTION_CHARS))
        if self.layer is not None:
            object.__setattr__(self, "layer", _cut(str(self.layer), MAX_NAME_CHARS))

    @property
    def kind(self) -> str:
        """``"figure"``, ``"animation"`` or ``"table"``."""
        if self.figure is not None:
            return "figure"
        if self.frames is not None:
            return "animation"
        return "table"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def capped_rows(rows: Sequence[Mapping[str, Any]], first_column: str, limit: int = MAX_TABLE_ROWS) -> list[dict]:
    """At most ``limit`` of ``rows``, then one row saying ``and N more`` in ``first_column`` when cut."""
    kept = [dict(row) for row in rows[:limit]]
    if len(rows) > limit:
        kept.append({key: (f"and {len(rows) - limit:,} more" if key == first_column else None) for key in kept[0]})
    return kept


@dataclasses.dataclass(frozen=True)
class AnalyzerResult:
    """The outcome of running one analyzer on one subject.

    Attributes:
        warnings: Python warnings (numpy, torch, matplotlib) raised while the analyzer ran,
            one line each, recorded here instead of printed.
        options: the options it was given (``--option``), recorded in the manifest.
        memory: what the analyzer's process used, in MB (10^6 bytes), recorded in the manifest
            beside ``seconds`` (see :func:`~introspect.memory.measured_memory`): ``rss_before_mb``,
            ``rss_after_mb`` (after the runner's release), ``peak_growth_mb`` (the peak RSS during
            the analyzer above ``rss_before_mb``), ``peak_method``; ``cuda_peak_mb`` and
            ``python_peak_mb`` where measured. Empty for an analyzer that did not run.
    """

    name: str
    status: str  # "ok" | "skipped" | "failed"
    reason: str = ""
    seconds: float = 0.0
    artifacts: tuple[Artifact, ...] = ()
    summary: str = ""
    traceback: str = ""
    warnings: tuple[str, ...] = ()
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    memory: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the analyzer ran and produced its artifacts."""
        return self.status == "ok"


def _check_artifacts(spec: AnalyzerSpec, artifacts: Any) -> None:
    if not isinstance(artifacts, (list, tuple)) or not all(isinstance(item, Artifact) for item in artifacts):
        raise TypeError(f"analyzer {spec.name!r} must return a list of Artifact, not {type(artifacts).__name__}")


def bounded_artifacts(spec: AnalyzerSpec, artifacts: Any) -> tuple[list[Artifact], str]:
    """The artifacts checked and bounded, whoever wrote the analyzer, and a note on what was dropped.

    At most :data:`~introspect.artifacts.MAX_FIGURES_PER_ANALYZER` figures and animations are
    kept (tables always), tables are cut to :data:`~introspect.artifacts.MAX_TABLE_ROWS` rows,
    and the text of each figure is bounded (:func:`~introspect.plotting.limit_figure_text`).
    """
    _check_artifacts(spec, artifacts)
    kept, figures, dropped = [], 0, 0
    for artifact in artifacts:
        if artifact.table is None:
            figures += 1
            if figures > MAX_FIGURES_PER_ANALYZER:
                dropped += 1
                continue
        if artifact.figure is not None:
            limit_figure_text(artifact.figure)
        if artifact.table is not None and len(artifact.table) > MAX_TABLE_ROWS + 1:  # + its "and N more" row
            first = next(iter(artifact.table[0]), "row")
            artifact = dataclasses.replace(artifact, table=capped_rows(list(artifact.table), first))
        kept.append(artifact)
    if not dropped:
        return kept, ""
    note = f"{dropped} more figures were left out (at most {MAX_FIGURES_PER_ANALYZER} per analyzer)"
    last = max(index for index, artifact in enumerate(kept) if artifact.table is None)
    kept[last] = dataclasses.replace(kept[last], caption=f"{kept[last].caption} {note}.")
    return kept, note
