"""Writing galleries: one checkpoint's page, one comparison, or a collection streamed page by page.

Whatever is written goes into a hidden staging folder beside the target and is renamed into
place at the end (:func:`~introspect.report.outdir.staging_folder`), so an interrupted run
leaves either the previous gallery or none, never half of one.

:class:`GalleryWriter` writes a collection one page at a time: each page's figures are written
as its results arrive and are let go of before the next page, so memory does not grow with the
number of pages::

    with GalleryWriter("site", force=True) as writer:
        for title, subject in subjects:
            writer.add_page(title, subject, specs, (run_one(subject, spec) for spec in specs))
        writer.add_comparison(compare_subjects(pairs), title="A against B")
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from introspect.artifacts import AnalyzerResult, slugify
from introspect.report import files
from introspect.report.comparison import comparison_figures
from introspect.report.layout import FIGURE_DIR, INDEX_NAME, MANIFEST_NAME
from introspect.report.manifest import checkpoint_manifest, collection_entry, collection_manifest, comparison_manifest
from introspect.report.outdir import check_output_dir, staging_folder

if TYPE_CHECKING:
    from introspect.compare import Comparison
    from introspect.spec import AnalyzerSpec
    from introspect.subject import Subject

#: The folder of a collection that holds its comparison pages.
COMPARISON_DIR = "comparisons"
#: Names a page's folder never gets, since the collection itself uses them.
RESERVED_NAMES = (INDEX_NAME, MANIFEST_NAME, COMPARISON_DIR)


class AnalyzedPage(Protocol):
    """What a collection page is made from: an :class:`~introspect.api.AnalysisReport` fits."""

    @property
    def subject(self) -> Subject: ...  # noqa: D102

    @property
    def specs(self) -> Sequence[AnalyzerSpec]: ...  # noqa: D102

    @property
    def results(self) -> Sequence[AnalyzerResult]: ...  # noqa: D102


def write_checkpoint_page(
    folder: Path,
    subject: Subject,
    specs: Sequence[AnalyzerSpec],
    results: Iterable[AnalyzerResult],
    *,
    parent_index: str | None = None,
    release: bool = False,
) -> dict[str, Any]:
    """Figures, manifest and page of one checkpoint into ``folder``; returns the written manifest.

    Args:
        results: may be an iterator (for example over :func:`~introspect.runner.run_one`), so
            that each analyzer's figures are written as soon as it finishes; only the results'
            names, statuses and reasons are kept.
        release: clear each figure once written (see :func:`~introspect.report.files.release_figures`);
            for results nobody else holds.
    """
    figure_files: dict[str, list[dict[str, Any]]] = {}
    outcomes = []
    for result in results:
        figure_files[result.name] = files.write_artifacts(result, folder)
        if release:
            files.release_figures(result.artifacts)
        outcomes.append(dataclasses.replace(result, artifacts=()))
        del result  # the next analyzer runs without this one's figures in memory
    manifest = checkpoint_manifest(subject, specs, outcomes, figure_files, parent_index=parent_index)
    return files.write_manifest_and_page(manifest, folder)


def write_comparison_page(folder: Path, comparison: Comparison, **page: Any) -> dict[str, Any]:
    """Draw ``comparison``, then write its figures, ``manifest.json`` and ``index.html`` into ``folder``.

    ``page`` is passed to :func:`~introspect.report.manifest.comparison_manifest` (``title``,
    ``description``, ``parent_index``, ``links``: checkpoint title → URL of its own page).
    """
    figures = comparison_figures(comparison)
    try:
        (folder / FIGURE_DIR).mkdir(parents=True, exist_ok=True)
        stems = files.unique_slugs([f"compare-{n:02d}-{slugify(figure.name)}" for n, figure in enumerate(figures, 1)])
        names = [files.write_artifact_file(figure, folder / FIGURE_DIR, stem) for figure, stem in zip(figures, stems)]
    finally:
        files.release_figures(figures)
    manifest = comparison_manifest(comparison, figures, [f"{FIGURE_DIR}/{name}" for name in names], **page)
    return files.write_manifest_and_page(manifest, folder)


def write_gallery(
    subject: Subject,
    specs: Sequence[AnalyzerSpec],
    results: Sequence[AnalyzerResult],
    out_dir: str | os.PathLike[str],
    *,
    force: bool = False,
) -> Path:
    """Write one checkpoint's gallery to ``out_dir`` and return the path of its ``index.html``.

    Raises:
        GalleryError: ``out_dir`` may not be written (see :func:`~introspect.report.outdir.check_output_dir`).
    """
    target = check_output_dir(out_dir, force=force)
    with staging_folder(target, force=force) as staging:
        write_checkpoint_page(staging, subject, specs, results)
    return target / INDEX_NAME


def write_comparison(
    comparison: Comparison, out_dir: str | os.PathLike[str], *, force: bool = False, **page: Any
) -> Path:
    """Write the comparison page into ``out_dir`` atomically; returns its ``index.html``.

    ``page`` is passed to :func:`~introspect.report.manifest.comparison_manifest` (``title``,
    ``description``, ``parent_index``, ``links``: checkpoint title → URL of its own gallery page).
    """
    target = check_output_dir(out_dir, force=force)
    with staging_folder(target, force=force) as staging:
        write_comparison_page(staging, comparison, **page)
    return target / INDEX_NAME


def write_collection(
    pages: Sequence[tuple[str, AnalyzedPage]],
    out_dir: str | os.PathLike[str],
    *,
    force: bool = False,
    extra_links: Sequence[Mapping[str, str]] = (),
) -> Path:
    """Write several checkpoints' pages, each in its own folder, under an index that lists them.

    Every report is held by the caller here; :class:`GalleryWriter` writes pages as they come.

    Args:
        pages: (title, report) pairs; each title becomes a folder name after slugifying.
        out_dir: the gallery folder.
        force: replace ``out_dir`` if it exists.
        extra_links: more pages for the index to list under "Comparisons", each a dict with
            ``title``, ``href`` (relative to the index) and optionally ``description``.
    """
    with GalleryWriter(out_dir, force=force) as writer:
        for title, report in pages:
            writer.add_page(title, report.subject, report.specs, report.results, keep_figures=True)
        for link in extra_links:
            writer.add_link(link)
    return writer.index_path


class GalleryWriter:
    """A collection written one page at a time: pages, comparison pages, then the index listing them.

    Use it in a ``with`` block. The output folder is checked when the writer is made and locked
    for the block; the index is written and the folder renamed into place when the block ends
    without an error, and nothing is left behind when it ends with one.

    Attributes:
        target: the gallery folder.
        index_path: its ``index.html`` (there once the block has ended).
    """

    def __init__(self, out_dir: str | os.PathLike[str], *, force: bool = False) -> None:
        """Check ``out_dir`` before any work; see :func:`~introspect.report.outdir.check_output_dir`."""
        self.target = check_output_dir(out_dir, force=force)
        self.index_path = self.target / INDEX_NAME
        self._force = force
        self._entries: list[dict[str, Any]] = []
        self._links: list[dict[str, str]] = []
        self._page_slugs: dict[str, str] = {}
        self._taken = set(RESERVED_NAMES)
        self._comparison_slugs: set[str] = set()
        self._context: contextlib.AbstractContextManager[Path] | None = None
        self._staging: Path | None = None

    def __enter__(self) -> GalleryWriter:
        self._context = self._staged()
        self._staging = self._context.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> bool | None:
        context, self._context, self._staging = self._context, None, None
        return context.__exit__(*exc_info) if context is not None else None

    @contextlib.contextmanager
    def _staged(self) -> Iterator[Path]:
        with staging_folder(self.target, force=self._force) as staging:
            yield staging
            files.write_manifest_and_page(collection_manifest(self._entries, self._links), staging)

    @property
    def pages(self) -> list[dict[str, Any]]:
        """The index's entries of the pages added so far (title, slug, header, counts)."""
        return list(self._entries)

    def _folder(self, *parts: str) -> Path:
        if self._staging is None:
            raise RuntimeError("a GalleryWriter writes only inside its with block")
        folder = self._staging.joinpath(*parts)
        folder.mkdir(parents=True)
        return folder

    def add_page(
        self,
        title: str,
        subject: Subject,
        specs: Sequence[AnalyzerSpec],
        results: Iterable[AnalyzerResult],
        *,
        keep_figures: bool = False,
    ) -> dict[str, Any]:
        """Write one checkpoint's page into its own folder; returns its entry in the index.

        Args:
            title: the page's title; its folder is the title slugified, numbered when taken.
            results: a sequence or an iterator; each result's figures are written as it arrives.
            keep_figures: leave the figures as they are; by default each is cleared once written,
                so that its memory is freed at once.
        """
        slug = files.next_slug(title, self._taken)
        folder = self._folder(slug)
        parent = f"../{INDEX_NAME}"
        manifest = write_checkpoint_page(folder, subject, specs, results, parent_index=parent, release=not keep_figures)
        entry = collection_entry(title, slug, manifest)
        self._entries.append(entry)
        self._page_slugs.setdefault(title, slug)
        return entry

    def add_written_page(
        self, title: str, page_files: Mapping[str, bytes], manifest: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Add a page written elsewhere (by a Ray task): its files by relative path, and its manifest.

        The page must have been written with ``parent_index="../index.html"``. Paths are checked
        to stay inside the page's folder.
        """
        slug = files.next_slug(title, self._taken)
        folder = self._folder(slug)
        for relative, content in page_files.items():
            parts = Path(relative).parts
            if not parts or Path(relative).is_absolute() or any(part in ("", ".", "..") for part in parts):
                raise ValueError(f"a page file must lie inside its folder, not at {relative!r}")
            path = folder.joinpath(*parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        entry = collection_entry(title, slug, manifest)
        self._entries.append(entry)
        self._page_slugs.setdefault(title, slug)
        return entry

    def add_comparison(
        self, comparison: Comparison, *, title: str | None = None, description: str = "", slug: str | None = None
    ) -> dict[str, str]:
        """Draw and write a comparison page under ``comparisons/``; returns the index's link to it.

        Its checkpoints link to the pages added under the same titles.
        """
        title = title or f"Comparison of {len(comparison.titles)} checkpoints"
        slug = files.next_slug(slug or title, self._comparison_slugs)
        folder = self._folder(COMPARISON_DIR, slug)
        pages = self._page_slugs
        links = {name: f"../../{pages[name]}/{INDEX_NAME}" for name in comparison.titles if name in pages}
        write_comparison_page(
            folder, comparison, title=title, description=description, parent_index=f"../../{INDEX_NAME}", links=links
        )
        link = {"title": title, "href": f"{COMPARISON_DIR}/{slug}/{INDEX_NAME}", "description": description}
        self._links.append(link)
        return link

    def add_link(self, link: Mapping[str, str]) -> None:
        """List another page under "Comparisons": ``title``, ``href`` and optionally ``description``."""
        self._links.append(dict(link))
