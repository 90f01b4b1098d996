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
from typing import Any

from introspect.artifacts import AnalyzerResult, Artifact, slugify
from introspect.errors import GalleryError
from introspect.manifest import build_manifest, plain
from introspect.spec import AnalyzerSpec
from introspect.subject import Subject

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
        figure_files = {result.name: write_artifacts(result, staging) for result in results}
        manifest = build_manifest(subject, specs, results, figure_files)
        write_manifest_and_page(manifest, staging)
    return target / INDEX_NAME


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
    import imageio.v3 as iio

    name = f"{stem}.gif"
    duration_ms = 1000.0 / max(artifact.fps, 1e-3)
    iio.imwrite(folder / name, list(artifact.frames or []), extension=".gif", duration=duration_ms, loop=0)
    return name
