"""Moved to :mod:`introspect.analyzers.attribution`; this old import path works until the next release."""

import warnings

from introspect.analyzers.attribution import *  # noqa: F403
from introspect.analyzers.attribution_cam import grad_cam  # noqa: F401
from introspect.analyzers.attribution_occlusion import occlusion  # noqa: F401

warnings.warn(
    "introspect.analyzers.gradients moved to introspect.analyzers.attribution; it goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
