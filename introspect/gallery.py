"""Writing a gallery folder: figures, ``manifest.json`` and ``index.html``, atomically.

Everything is written into a hidden temporary folder beside the target and renamed into place at
the end, so an interrupted run leaves either the previous gallery or none, never half of one;
:mod:`introspect.outdir` decides which folders may be replaced and keeps runs apart.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from introspect._gallery_layout import FIGURE_DIR, INDEX_NAME, MANIFEST_NAME
from introspect.artifacts import AnalyzerResult, Artifact, slugify
from introspect.manifest import build_collection_manifest, build_manifest, collection_entry, plain
# replace_folder and staging_folder are imported from here by compare.py and gallery/build.py
from introspect.outdir import check_output_dir, replace_folder, staging_folder  # noqa: F401
from introspect.spec import AnalyzerSpec
from introspect.subject import Subject

if TYPE_CHECKING:
    from introspect.api import AnalysisReport


def write_gallery(
    subject: Subject,
    specs: Sequence[AnalyzerSpec],
    results: Sequence[AnalyzerResult],
    out_dir: str | os.PathLike[str],
    *,
    force: bool = False,
) -> Path:
    """Write one checkpoint's gallery to ``out_dir`` and return the path of its ``index.html``."""
    target = check_output_dir(out_dir, force=force)
    with staging_folder(target, force=force) as staging:
        write_page(subject, specs, results, staging)
    return target / INDEX_NAME


def write_collection(
    pages: Sequence[tuple[str, AnalysisReport]],
    out_dir: str | os.PathLike[str],
    *,
    force: bool = False,
    extra_links: Sequence[dict[str, str]] = (),
) -> Path:
    """Write several checkpoints' pages, each in its own folder, under an index that lists them.

    Args:
        pages: (title, report) pairs; each title becomes a folder name after slugifying.
        out_dir: the gallery folder.
        force: replace ``out_dir`` if it exists.
        extra_links: more pages for the index to list under "Comparisons", each a dict with
            ``title``, ``href`` (relative to the index) and optionally ``description``.
    """
    target = check_output_dir(out_dir, force=force)
    with staging_folder(target, force=force) as staging:
        entries = []
        slugs = unique_slugs([title for title, _ in pages], reserved=(INDEX_NAME, MANIFEST_NAME))
        for slug, (title, report) in zip(slugs, pages):
            (staging / slug).mkdir()
            manifest = write_page(report.subject, report.specs, report.results, staging / slug, parent_index=f"../{INDEX_NAME}")
            entries.append(collection_entry(title, slug, manifest))
        manifest = build_collection_manifest(entries)
        manifest["links"] = [dict(link) for link in extra_links]
        write_collection_index(manifest, staging)
    return target / INDEX_NAME


def write_page(
    subject: Subject, specs: Sequence[AnalyzerSpec], results: Sequence[AnalyzerResult], folder: Path, *, parent_index: str | None = None
) -> dict[str, Any]:
    """Figures, manifest and page of one checkpoint into ``folder``; returns the manifest."""
    figure_files = {result.name: write_artifacts(result, folder) for result in results}
    manifest = build_manifest(subject, specs, results, figure_files)
    if parent_index:
        manifest["parent_index"] = parent_index
    write_manifest_and_page(manifest, folder)
    return manifest


def unique_slugs(titles: Sequence[str], *, reserved: Collection[str] = ()) -> list[str]:
    """A distinct folder name per title: ``a``, ``a-2``, ``a-3`` for repeats.

    A number is added until the name is free, so an explicit ``a-2`` among the titles, or one of
    the ``reserved`` names, is never given twice.
    """
    taken = set(reserved)
    slugs = []
    for title in titles:
        base = slug = slugify(title)
        number = 1
        while slug in taken:
            number += 1
            slug = f"{base}-{number}"
        taken.add(slug)
        slugs.append(slug)
    return slugs


def write_collection_index(manifest: dict[str, Any], folder: Path) -> None:
    """The collection's ``manifest.json``, then its ``index.html`` rendered from it."""
    from introspect.html import render_index

    (folder / MANIFEST_NAME).write_text(json.dumps(plain(manifest), indent=2), encoding="utf-8")
    (folder / INDEX_NAME).write_text(render_index(manifest), encoding="utf-8")


def write_manifest_and_page(manifest: dict[str, Any], folder: Path) -> None:
    """``manifest.json`` first, then ``index.html`` rendered from it alone."""
    from introspect.html import render_page

    (folder / MANIFEST_NAME).write_text(json.dumps(plain(manifest), indent=2), encoding="utf-8")
    (folder / INDEX_NAME).write_text(render_page(manifest), encoding="utf-8")


def rerender(gallery_dir: str | os.PathLike[str]) -> Path:
    """Render ``index.html`` again from the gallery's ``manifest.json``."""
    from introspect.html import render_page

    folder = Path(gallery_dir)
    manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    if manifest.get("kind") == "comparison":
        from introspect.compare import rerender_comparison

        return rerender_comparison(folder)
    if "pages" in manifest:
        from introspect.html import render_index

        for page in manifest["pages"]:
            rerender(folder / page["slug"])
        (folder / INDEX_NAME).write_text(render_index(manifest), encoding="utf-8")
    else:
        (folder / INDEX_NAME).write_text(render_page(manifest), encoding="utf-8")
    return folder / INDEX_NAME


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
        entries.append(entry)
    return entries


def write_artifact_file(artifact: Artifact, folder: Path, stem: str) -> str:
    """Write a figure as PNG or frames as GIF; returns the file name (inside ``folder``)."""
    if artifact.figure is not None:
        name = f"{stem}.png"
        artifact.figure.savefig(folder / name, dpi=artifact.figure.dpi)
        return name
    name = f"{stem}.gif"
    write_gif(list(artifact.frames or []), folder / name, fps=artifact.fps)
    return name


MAX_PALETTE_PIXELS = 1_000_000


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
    sample = Image.fromarray(stack[:, ::stride, ::stride].reshape(-1, stack[:, ::stride, ::stride].shape[2], 3))
    palette = sample.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    images = [Image.fromarray(frame).quantize(palette=palette, dither=Image.Dither.NONE) for frame in stack]
    duration_ms = max(20, round(1000.0 / max(fps, 1e-3)))
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0, optimize=False)
