"""What an analyzer needs from a checkpoint, readable without importing torch."""

from __future__ import annotations

import enum


class Needs(enum.Flag):
    """Capabilities an analyzer requires; a :class:`~introspect.subject.Subject` offers some."""

    NONE = 0
    WEIGHTS = enum.auto()
    """Named parameter tensors (every checkpoint has these)."""
    FORWARD = enum.auto()
    """A model that can be called, and probe inputs to call it on."""
    LABELS = enum.auto()
    """Target labels (or regression targets) for the probe inputs."""
    GRADIENTS = enum.auto()
    """A differentiable forward pass (not a frozen TorchScript/exported graph without autograd)."""
    IMAGE_INPUT = enum.auto()
    """Inputs shaped (channels, height, width)."""
    SCALAR_INPUT = enum.auto()
    """Inputs with one feature: a 1-D function of x."""
    CLASSIFICATION = enum.auto()
    """The model's outputs are class scores."""
    HISTORY = enum.auto()
    """Per-epoch training history."""
    SNAPSHOTS = enum.auto()
    """Model outputs or weights recorded at several epochs during training."""
    DATASET = enum.auto()
    """A dataset streamed through the model beside the probe (``--data``)."""
    DRIFT = enum.auto()
    """Each layer's CKA to the final model and weight change at several epochs (introspect's trainers record it)."""


def describe_needs(needs: Needs) -> list[str]:
    """The lower-case names of the flags set in ``needs``, in declaration order."""
    return [flag.name.lower() for flag in Needs if flag and flag in needs and flag.name]
