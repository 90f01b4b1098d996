"""Recipe options that are neither the network's config nor the loop's TrainConfig.

Augmentation and the choice of dataset change how a network is trained, not what it is, so
they live in a small frozen dataclass of their own. :func:`take_options` parses the ``--set``
keys that belong to it and hands the rest on, so ``configs_for`` still sees only its own keys::

    options, config, train_config = configs_with_options(settings, AugmentOptions(), FashionCNNConfig(), TRAIN)
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from trainers.catalog import RecipeError, RunSettings, apply_overrides
from trainers.loop import TrainConfig
from trainers.runs import configs_for

OptionsT = TypeVar("OptionsT")
ConfigT = TypeVar("ConfigT")


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


def take_options(settings: RunSettings, options: OptionsT) -> tuple[OptionsT, RunSettings]:
    """Parse the ``--set`` keys that name fields of ``options``; return the rest as new settings.

    A key may also be written ``options.<field>``.
    """
    names = {field.name for field in dataclasses.fields(options)}  # type: ignore[arg-type]
    mine: dict[str, str] = {}
    rest: dict[str, str] = {}
    for key, value in settings.overrides.items():
        bare = key.removeprefix("options.")
        (mine if bare in names else rest)[bare if bare in names else key] = value
    (parsed,) = apply_overrides(mine, options=options)
    return parsed, dataclasses.replace(settings, overrides=rest)


def as_plain(options: Any) -> dict[str, Any]:
    """The options as a plain dict, for a checkpoint's extras."""
    return dataclasses.asdict(options)


def configs_with_options(
    settings: RunSettings, options: OptionsT, model_config: ConfigT, train_config: TrainConfig, *, quick_epochs: int = 1
) -> tuple[OptionsT, ConfigT, TrainConfig]:
    """:func:`take_options`, then ``configs_for`` on the rest; an unknown key lists all three kinds."""
    parsed, rest = take_options(settings, options)
    try:
        model_config, train_config = configs_for(rest, model_config, train_config, quick_epochs=quick_epochs)
    except RecipeError as error:
        names = ", ".join(field.name for field in dataclasses.fields(options))  # type: ignore[arg-type]
        raise RecipeError(f"{error}; recipe options: {names}") from None
    return parsed, model_config, train_config
