"""What an introspect gallery folder holds, so ``--force`` can tell one from a user's own folder.

Every manifest introspect writes (page, collection, comparison) carries ``"generator": "introspect"``;
older ones are recognised by the fields every introspect manifest has had. The manifest also says
which files and folders the writers put beside it, and anything else is foreign.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

GENERATOR = "introspect"
FIGURE_DIR = "figures"
MANIFEST_NAME = "manifest.json"
INDEX_NAME = "index.html"
MAX_MANIFEST_BYTES = 64 * 2**20


def foreign_entry(folder: Path) -> str | None:
    """Why ``folder`` is not a replaceable gallery, naming its first foreign entry; ``None`` if it is one.

    An empty folder holds nothing to lose and is replaceable. Otherwise ``manifest.json`` must say
    introspect wrote it, and every entry must be one the manifest accounts for: ``manifest.json``,
    ``index.html``, ``figures/`` with the figure files the manifest lists, and (in a collection)
    its pages' folders and the linked comparison folders, each a gallery by the same rule.
    """
    return _foreign_in_gallery(folder, "")


def _sorted_entries(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as entries:
        return sorted(entries, key=lambda entry: entry.name)


def _foreign_in_gallery(folder: Path, where: str) -> str | None:
    entries = _sorted_entries(folder)
    if not entries:
        return None
    layout = _layout(_read_manifest(folder / MANIFEST_NAME))
    if layout is None and not any(entry.name == MANIFEST_NAME for entry in entries):
        return f"{where or 'it'} has no {MANIFEST_NAME} and holds {where}{entries[0].name}"
    if layout is None:
        return f"{where}{MANIFEST_NAME} was not written by introspect"
    figures, galleries = layout
    for entry in entries:
        if entry.name in (MANIFEST_NAME, INDEX_NAME) and entry.is_file(follow_symlinks=False):
            continue
        if entry.name == FIGURE_DIR and figures is not None and entry.is_dir(follow_symlinks=False):
            found = _foreign_figure(Path(entry.path), figures, f"{where}{FIGURE_DIR}/")
        else:
            found = _foreign_below(entry, galleries, where)
        if found is not None:
            return found
    return None


def _foreign_figure(folder: Path, figures: set[str], where: str) -> str | None:
    """``figures/`` holds only plain files its manifest lists."""
    for entry in _sorted_entries(folder):
        if entry.name not in figures or not entry.is_file(follow_symlinks=False):
            return f"it holds {where}{entry.name}, which introspect does not write"
    return None


def _foreign_below(entry: os.DirEntry[str], galleries: set[str], where: str) -> str | None:
    """An entry beside the manifest, or in a folder on the way to linked galleries, must lead to galleries."""
    name = entry.name
    inner = {gallery[len(name) + 1 :] for gallery in galleries if gallery.startswith(name + "/")}
    if not entry.is_dir(follow_symlinks=False) or (name not in galleries and not inner):
        return f"it holds {where}{name}, which introspect does not write"
    if name in galleries:
        return _foreign_in_gallery(Path(entry.path), f"{where}{name}/")
    found = (_foreign_below(child, inner, f"{where}{name}/") for child in _sorted_entries(Path(entry.path)))
    return next((reason for reason in found if reason is not None), None)


def _read_manifest(path: Path) -> Any:
    """The parsed manifest, or ``None`` when it is missing, not a plain file, too large or not JSON."""
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_MANIFEST_BYTES:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _layout(manifest: Any) -> tuple[set[str] | None, set[str]] | None:
    """(figure file names, sub-gallery folders) a manifest accounts for; ``None`` if it is not ours.

    Manifests carry ``"generator": "introspect"``; older ones are recognised by the fields every
    introspect manifest has had (``schema_version``, ``introspect_version``, ``libraries``).
    """
    if not isinstance(manifest, dict) or not _written_by_introspect(manifest):
        return None
    if manifest.get("kind") == "comparison":
        return _figure_names(manifest.get("figures")), set()
    if isinstance(manifest.get("pages"), list):
        slugs = [page.get("slug") for page in manifest["pages"] if isinstance(page, dict)]
        slugs = [slug for slug in slugs if isinstance(slug, str) and _relative_folder(slug, single=True)]
        links = [_linked_folder(link.get("href")) for link in _list(manifest.get("links")) if isinstance(link, dict)]
        return None, set(slugs) | {link for link in links if link is not None and _relative_folder(link)}
    if isinstance(manifest.get("analyzers"), list):
        analyzers = [entry for entry in manifest["analyzers"] if isinstance(entry, dict)]
        return _figure_names([figure for entry in analyzers for figure in _list(entry.get("figures"))]), set()
    return None


def _written_by_introspect(manifest: dict[str, Any]) -> bool:
    if manifest.get("generator") == GENERATOR:
        return True
    legacy = (("schema_version", int), ("introspect_version", str), ("libraries", dict))
    return all(isinstance(manifest.get(key), kind) for key, kind in legacy)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _figure_names(figures: Any) -> set[str]:
    """Names inside ``figures/`` of the files a manifest lists (``figures/NAME``)."""
    prefix = FIGURE_DIR + "/"
    entries = [figure for figure in _list(figures) if isinstance(figure, dict)]
    files = [entry.get("file") for entry in entries]
    names = [file[len(prefix) :] for file in files if isinstance(file, str) and file.startswith(prefix)]
    names += [name for entry in entries for name in sprite_files(entry)]
    return {name for name in names if _relative_folder(name, single=True)}


def sprite_files(figure: dict[str, Any]) -> list[str]:
    """Names inside ``figures/`` of the sprite sheet a figure entry's interactive view uses (none or one)."""
    interactive = figure.get("interactive")
    sprites = interactive.get("sprites") if isinstance(interactive, dict) else None
    name = sprites.get("file") if isinstance(sprites, dict) else None
    return [name] if isinstance(name, str) else []


def _linked_folder(href: Any) -> str | None:
    """``comparisons/ab`` for a link ``comparisons/ab/index.html`` inside the collection, else ``None``."""
    suffix = "/" + INDEX_NAME
    if isinstance(href, str) and href.endswith(suffix) and ":" not in href:
        return href[: -len(suffix)]
    return None


def _relative_folder(name: str, *, single: bool = False) -> bool:
    """Whether ``name`` is a plain relative path inside the folder (one component when ``single``)."""
    parts = name.split("/")
    if single and len(parts) != 1:
        return False
    return all(part not in ("", ".", "..") and "\\" not in part and "\0" not in part for part in parts)
