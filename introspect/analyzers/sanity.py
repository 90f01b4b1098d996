"""Moved to :mod:`introspect.analyzers.attribution_sanity`; this old import path works until the next release."""

import warnings

from introspect.analyzers.attribution_sanity import *  # noqa: F403

warnings.warn(
    "introspect.analyzers.sanity moved to introspect.analyzers.attribution_sanity; it goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
