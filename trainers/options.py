"""Run options that are neither a network's config nor the loop's TrainConfig.

Augmentation and the choice of dataset change how a network is trained, not what it is, so they
live in small frozen dataclasses of their own: a network's record names its default options, and
``--set`` keys that name their fields go to them (:func:`trainers.settings.take_options`) rather
than to the network's config. They are recorded in the checkpoint's ``extras["options"]``.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class AugmentOptions:
    """Whether to augment training batches.

    Attributes:
        augment: apply the network's augmentation (flip and rotation, or flip and crop).
        rotation: largest rotation angle in degrees, where the augmentation rotates.
    """

    augment: bool = False
    rotation: float = 15.0


@dataclasses.dataclass(frozen=True)
class DatasetOptions:
    """Which 28x28 grayscale dataset to train on.

    Attributes:
        dataset: ``fashion`` (FashionMNIST) or ``mnist``.
    """

    dataset: str = "fashion"

    def __post_init__(self) -> None:
        if self.dataset not in ("fashion", "mnist"):
            raise ValueError(f"dataset must be fashion or mnist, not {self.dataset!r}")


def as_plain(options: Any) -> dict[str, Any]:
    """The options as a plain dict, for a checkpoint's extras."""
    return dataclasses.asdict(options)
