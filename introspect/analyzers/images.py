"""Moved to :mod:`introspect.analyzers.activation_maps`; this old import path works until the next release."""

import warnings

from introspect.analyzers._shared import conv2d_layer_names as conv_layers  # noqa: F401
from introspect.analyzers._shared import (  # noqa: F401
    pick_images,
    strongest_channels,
)
from introspect.analyzers.activation_maps import *  # noqa: F403

warnings.warn(
    "introspect.analyzers.images moved to introspect.analyzers.activation_maps; it goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
