"""Writing a gallery folder: figures, ``manifest.json`` and ``index.html``, atomically.

Everything is written into a hidden temporary folder beside the target and renamed into place at
the end, so an interrupted run leaves either the previous gallery or none, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from introspect.artifacts import AnalyzerResult, Artifact, slugify
from introspect.errors import GalleryError
from introspect.manifest import build_collection_manifest, build_manifest, collection_entry, plain
from introspect.spec import AnalyzerSpec
from introspect.subject import Subject

if TYPE_CHECKING:
    from introspect.api import AnalysisReport

FIGURE_DIR = "figures"
MANIFEST_NAME = "manifest.json"
INDEX_NAME = "index.html"


def check_output_dir(out_dir: str | os.PathLike[str], *, force: bool) -> Path:
    """Fail early, before any work, when ``out_dir`` exists and may not be replaced."""
    target = Path(out_dir)
    if target.exists() and not force:
        raise GalleryError(f"{target}: already exists; pass --force to replace it")
    if target.exists() and not target.is_dir():
        raise GalleryError(f"{target}: exists and is not a folder")
    return target


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
    with staging_folder(target) as staging:
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
    with staging_folder(target) as staging:
        entries = []
        for slug, (title, report) in zip(unique_slugs([title for title, _ in pages]), pages):
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


def unique_slugs(titles: Sequence[str]) -> list[str]:
    """A distinct folder name per title: ``a``, ``a-2``, ``a-3`` for repeats."""
    seen: dict[str, int] = {}
    slugs = []
    for title in titles:
        slug = slugify(title)
        seen[slug] = seen.get(slug, 0) + 1
        slugs.append(slug if seen[slug] == 1 else f"{slug}-{seen[slug]}")
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


@contextlib.contextmanager
def staging_folder(target: Path) -> Iterator[Path]:
    """A temporary folder beside ``target`` that replaces it only if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield staging
        replace_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_folder(source: Path, target: Path) -> None:
    """Move ``source`` to ``target``; an existing ``target`` is moved aside first, then deleted."""
    retired = None
    if target.exists():
        retired = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, retired)
    try:
        os.replace(source, target)
    except BaseException:
        if retired is not None:
            os.replace(retired, target)
        raise
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


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
