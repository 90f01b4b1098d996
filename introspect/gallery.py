"""Old import path of the gallery writers, kept for one release: use :mod:`introspect.report`.

Nothing is defined here; every name is the one in :mod:`introspect.report`.
"""

from __future__ import annotations

from introspect.errors import GalleryError
from introspect.report.files import (
    MAX_PALETTE_PIXELS,
    unique_slugs,
    write_artifact_file,
    write_artifacts,
    write_gif,
    write_manifest_and_page,
)
from introspect.report.files import write_manifest_and_page as write_collection_index
from introspect.report.layout import FIGURE_DIR, INDEX_NAME, MANIFEST_NAME
from introspect.report.outdir import check_output_dir, replace_folder, staging_folder
from introspect.report.render import rerender
from introspect.report.writer import GalleryWriter, write_collection, write_gallery

__all__ = [
    "FIGURE_DIR",
    "INDEX_NAME",
    "MANIFEST_NAME",
    "MAX_PALETTE_PIXELS",
    "GalleryError",
    "GalleryWriter",
    "check_output_dir",
    "replace_folder",
    "rerender",
    "staging_folder",
    "unique_slugs",
    "write_artifact_file",
    "write_artifacts",
    "write_collection",
    "write_collection_index",
    "write_gallery",
    "write_gif",
    "write_manifest_and_page",
]
