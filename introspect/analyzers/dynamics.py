"""Moved to :mod:`introspect.analyzers.activation_units`; this old import path works until the next release."""

import warnings

from introspect.analyzers._shared import (  # noqa: F401
    BOUNDED,
    RELU_LIKE,
    activation_kind,
    activation_layers,
    curve_layers,
    scalar_domain,
)
from introspect.analyzers.activation_units import *  # noqa: F403

warnings.warn(
    "introspect.analyzers.dynamics moved to introspect.analyzers.activation_units; it goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
