"""Moved to :mod:`introspect.analyzers.weight_images`; this old import path works until the next release."""

import warnings

from introspect.analyzers.weight_images import *  # noqa: F403

warnings.warn(
    "introspect.analyzers.kernels moved to introspect.analyzers.weight_images; it goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
