"""Old import path of the manifest builders, kept for one release: use :mod:`introspect.report.manifest`.

``build_manifest`` and ``build_collection_manifest`` are the new builders under their old names;
the facts about a checkpoint (``subject_header``, ``parameter_counts``, ``plain``) now live in
:mod:`introspect.describe`.
"""

from __future__ import annotations

from introspect.describe import parameter_counts, plain, subject_header
from introspect.report.manifest import (
    LIBRARIES,
    SCHEMA_VERSION,
    collection_entry,
    comparison_manifest,
    envelope,
    library_versions,
)
from introspect.report.manifest import checkpoint_manifest as build_manifest
from introspect.report.manifest import collection_manifest as build_collection_manifest

__all__ = [
    "LIBRARIES",
    "SCHEMA_VERSION",
    "build_collection_manifest",
    "build_manifest",
    "collection_entry",
    "comparison_manifest",
    "envelope",
    "library_versions",
    "parameter_counts",
    "plain",
    "subject_header",
]
