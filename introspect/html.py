"""Old import path of the HTML renderer, kept for one release: use :mod:`introspect.report.render`."""

from __future__ import annotations

from introspect.report.render import TEMPLATE_DIR, figure_anchor, render, render_template
from introspect.report.render import render as render_index
from introspect.report.render import render as render_page

__all__ = ["TEMPLATE_DIR", "figure_anchor", "render", "render_index", "render_page", "render_template"]
