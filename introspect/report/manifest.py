"""Manifests: one envelope for every kind of page, and a builder for each kind.

A manifest is the single source a page is rendered from, so that ``index.html`` can always be
rendered again from ``manifest.json`` alone. Every manifest starts with the same envelope
(:func:`envelope`): the generator marker that ``--force`` looks for, the schema and library
versions, and its ``kind``, which the renderer dispatches on.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any

from introspect import __version__
from introspect.artifacts import AnalyzerResult, Artifact
from introspect.describe import subject_header
from introspect.report.layout import GENERATOR, INDEX_NAME
from introspect.spec import AnalyzerSpec
from introspect.subject import Subject

if TYPE_CHECKING:
    from introspect.compare import Comparison

SCHEMA_VERSION = 1
LIBRARIES = ("torch", "torchvision", "captum", "matplotlib", "numpy", "imageio", "jinja2")
#: The kinds of page, each with its builder below and its template in :mod:`introspect.report.render`.
KINDS = ("checkpoint", "collection", "comparison")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries whose behaviour shapes the figures."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def envelope(kind: str) -> dict[str, Any]:
    """The fields every manifest starts with: who wrote it, when, with what, and its ``kind``.

    Raises:
        ValueError: ``kind`` is not one of :data:`KINDS`.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind of page {kind!r}; expected one of {', '.join(KINDS)}")
    return {
        "generator": GENERATOR,  # how --force tells an earlier gallery from a user's own folder
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "introspect_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "libraries": library_versions(),
    }


def manifest_kind(manifest: Mapping[str, Any]) -> str:
    """The kind of page a manifest describes; manifests older than the ``kind`` field by their fields."""
    kind = manifest.get("kind")
    if kind in KINDS:
        return str(kind)
    return "collection" if "pages" in manifest else "checkpoint"


def checkpoint_manifest(
    subject: Subject,
    specs: Sequence[AnalyzerSpec],
    results: Sequence[AnalyzerResult],
    figure_files: Mapping[str, list[dict[str, Any]]],
    *,
    parent_index: str | None = None,
) -> dict[str, Any]:
    """The manifest of one checkpoint's page; ``figure_files`` maps analyzer → its written figures.

    ``results`` need no artifacts (their figures are described by ``figure_files``), so a writer
    may pass results whose figures it has already written and let go of.
    """
    by_name = {spec.name: spec for spec in specs}
    manifest = envelope("checkpoint")
    manifest["checkpoint"] = {
        "path": subject.metadata.get("path"),
        "sha256": subject.metadata.get("sha256"),
        "format": subject.metadata.get("format", "in-memory model"),
    }
    manifest["header"] = subject_header(subject)
    manifest["analyzers"] = [_analyzer_entry(result, by_name.get(result.name), figure_files) for result in results]
    if parent_index:
        manifest["parent_index"] = parent_index
    return manifest


def _analyzer_entry(
    result: AnalyzerResult, spec: AnalyzerSpec | None, figure_files: Mapping[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    return {
        "name": result.name,
        "summary": spec.summary if spec is not None else "",
        "description": spec.description if spec is not None else "",
        "package": spec.package if spec is not None else "",
        "status": result.status,
        "reason": result.reason,
        "seconds": round(result.seconds, 4),
        "memory": dict(result.memory),
        "options": {key: list(value) if isinstance(value, tuple) else value for key, value in result.options.items()},
        "figures": figure_files.get(result.name, []),
    }


def collection_entry(title: str, slug: str, page_manifest: Mapping[str, Any]) -> dict[str, Any]:
    """One line of a collection index: where the page is and its headline facts."""
    statuses = [analyzer["status"] for analyzer in page_manifest["analyzers"]]
    return {
        "title": title,
        "slug": slug,
        "page": f"{slug}/{INDEX_NAME}",
        "checkpoint": page_manifest["checkpoint"],
        "header": page_manifest["header"],
        "counts": {status: statuses.count(status) for status in ("ok", "skipped", "failed")},
    }


def collection_manifest(
    entries: Sequence[Mapping[str, Any]], links: Sequence[Mapping[str, str]] = ()
) -> dict[str, Any]:
    """The index of a gallery with several checkpoints, and its links to other pages (comparisons).

    Args:
        entries: one :func:`collection_entry` per page, in order.
        links: each a dict with ``title``, ``href`` (relative to the index) and optionally
            ``description``, listed under "Comparisons".
    """
    manifest = envelope("collection")
    manifest["pages"] = [dict(entry) for entry in entries]
    manifest["links"] = [dict(link) for link in links]
    return manifest


def comparison_manifest(
    comparison: Comparison, figures: Sequence[Artifact], figure_files: Sequence[str | None], **page: Any
) -> dict[str, Any]:
    """The comparison page's manifest; ``page`` may set ``title``, ``description``, ``parent_index``, ``links``.

    Args:
        comparison: the numbers (see :func:`introspect.compare.compare_subjects`).
        figures: the figures drawn from it, in order; ``figure_files`` holds where each was written.
        **page: ``links`` maps a checkpoint's title to the URL of its own page.
    """
    links = page.get("links") or {}
    manifest = envelope("comparison")
    manifest.update(
        title=page.get("title") or f"Comparison of {len(comparison.titles)} checkpoints",
        description=page.get("description") or "",
        parent_index=page.get("parent_index"),
        checkpoints=[
            {"title": title, "link": links.get(title), **source}
            for title, source in zip(comparison.titles, comparison.sources)
        ],
        table=[dict(row) for row in comparison.rows],
        shared_layers=[dataclasses.asdict(layer) for layer in comparison.shared],
        unshared_layers=list(comparison.unshared),
        figures=[_figure_entry(artifact, file) for artifact, file in zip(figures, figure_files)],
    )
    return manifest


def _figure_entry(artifact: Artifact, file: str | None) -> dict[str, Any]:
    return {
        "name": artifact.name,
        "caption": artifact.caption,
        "layer": artifact.layer,
        "file": file,
        "summary": artifact.summary,
    }
