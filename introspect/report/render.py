"""HTML from a manifest alone: one renderer that picks the template by the manifest's kind.

Jinja2 with autoescaping, so every text that came from a checkpoint (layer names, class names,
titles) reaches the page as text, never as markup. The templates extend ``base.html.j2``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from introspect.report.layout import INDEX_NAME, MANIFEST_NAME
from introspect.report.manifest import manifest_kind

#: ``introspect/templates``, where pyproject.toml ships them as package data.
TEMPLATE_DIR = Path(__file__).parent.parent / "templates"
#: The template of each kind of page.
TEMPLATES = {"checkpoint": "page.html.j2", "collection": "index.html.j2", "comparison": "compare.html.j2"}


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


def render(manifest: Mapping[str, Any]) -> str:
    """The page a manifest describes, whatever its kind (checkpoint, collection or comparison)."""
    kind = manifest_kind(manifest)
    extra = {"layers": page_layers(manifest)} if kind == "checkpoint" else {}
    return render_template(TEMPLATES[kind], manifest, **extra)


def page_layers(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Layers that figures belong to, in first-seen order, with the anchors of their figures."""
    layers: dict[str, list[str]] = {}
    for analyzer in manifest["analyzers"]:
        for index, figure in enumerate(analyzer["figures"], start=1):
            if figure.get("layer"):
                layers.setdefault(figure["layer"], []).append(figure_anchor(analyzer["name"], index))
    return [{"name": name, "anchors": anchors} for name, anchors in layers.items()]


def rerender(gallery_dir: str | os.PathLike[str]) -> Path:
    """Render ``index.html`` again from the folder's ``manifest.json`` (a collection's pages too)."""
    folder = Path(gallery_dir)
    manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    if manifest_kind(manifest) == "collection":
        for page in manifest["pages"]:
            rerender(folder / page["slug"])
    (folder / INDEX_NAME).write_text(render(manifest), encoding="utf-8")
    return folder / INDEX_NAME
