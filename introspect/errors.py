"""Exceptions that carry one clear sentence for the user."""


class IntrospectError(Exception):
    """Base class: the message is shown to the user as it is, without a traceback."""


class CheckpointError(IntrospectError):
    """A checkpoint cannot be read, or cannot be read safely."""


class PluginError(IntrospectError):
    """An analyzer or architecture plugin is broken or conflicts with another."""


class GalleryError(IntrospectError):
    """The gallery cannot be written where it was asked to go."""


class SkipAnalyzer(Exception):
    """Raised by an analyzer that finds, once running, that it does not apply.

    The message says why (for example "the model has no convolution layers"), and the analyzer
    is recorded as skipped, not failed.
    """
