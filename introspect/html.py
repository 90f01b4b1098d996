"""HTML rendering of a gallery manifest (Jinja2, autoescaped: checkpoint strings are never markup)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

TEMPLATE_DIR = Path(__file__).parent / "templates"


def figure_anchor(analyzer_name: str, index: int) -> str:
    """The id of a figure element: stable and free of checkpoint-derived text."""
    return f"{analyzer_name}-{index}"


@lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.globals["figure_anchor"] = figure_anchor
    return environment


def render_template(template: str, manifest: Any, **extra: Any) -> str:
    """Render one of the package's templates with the manifest as ``m`` (autoescaped)."""
    return _environment().get_template(template).render(m=manifest, **extra)


def render_page(manifest: dict[str, Any]) -> str:
    """One checkpoint's page from its manifest."""
    return render_template("page.html.j2", manifest, layers=_layers(manifest))


def _layers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Layers that figures belong to, in first-seen order, with the anchors of their figures."""
    layers: dict[str, list[str]] = {}
    for analyzer in manifest["analyzers"]:
        for index, figure in enumerate(analyzer["figures"], start=1):
            if figure.get("layer"):
                layers.setdefault(figure["layer"], []).append(figure_anchor(analyzer["name"], index))
    return [{"name": name, "anchors": anchors} for name, anchors in layers.items()]


def render_index(manifest: dict[str, Any]) -> str:
    """The index of a gallery with several checkpoints."""
    return render_template("index.html.j2", manifest)
