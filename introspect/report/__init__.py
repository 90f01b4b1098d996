"""Everything that turns results into files: manifests, figures, HTML pages and the output folder.

* :mod:`~introspect.report.writer`: :class:`GalleryWriter` (a collection, streamed page by page),
  :func:`write_gallery` (one checkpoint), :func:`write_comparison` and :func:`write_collection`.
* :mod:`~introspect.report.manifest`: one envelope for every manifest and a builder per kind of
  page (checkpoint, collection, comparison).
* :mod:`~introspect.report.render`: one renderer, dispatching on the manifest's kind, over
  templates that extend ``base.html.j2``.
* :mod:`~introspect.report.files`: figures, animations, and "manifest first, then the page".
* :mod:`~introspect.report.comparison`: the figures of a comparison computed by :mod:`introspect.compare`.
* :mod:`~introspect.report.outdir` and :mod:`~introspect.report.layout`: which folders may be
  replaced, the lock, the staging folder and the stop signals.

Nothing here imports :mod:`introspect.api`; the API calls into this package, not the other way.
"""

from introspect.errors import GalleryError
from introspect.report.comparison import comparison_figures
from introspect.report.outdir import check_output_dir, claim_output_dir
from introspect.report.render import render, rerender
from introspect.report.writer import GalleryWriter, write_collection, write_comparison, write_gallery

__all__ = [
    "GalleryError",
    "GalleryWriter",
    "check_output_dir",
    "claim_output_dir",
    "comparison_figures",
    "render",
    "rerender",
    "write_collection",
    "write_comparison",
    "write_gallery",
]
