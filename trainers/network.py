"""The record that describes one network: what it is, what it trains on, how, and what a search varies.

Each file under ``trainers/networks/`` ends in one such record, and the entry point names it::

    [project.entry-points."introspect.architectures"]
    lenet5 = "trainers.networks.lenet5:NETWORK"

The record is the factory ``introspect`` rebuilds checkpoints with (``NETWORK(config) ->
nn.Module``, its config dataclass under ``config_class``), and everything
:func:`trainers.training.train` and :func:`trainers.search.search` need to train it. A record
holds no code of its own beyond building the model: the pipeline that uses it is shared.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from trainers.loop import AugmentFn, TrainConfig
    from trainers.search_space import Dimension
    from trainers.settings import RunSettings

#: ``load_data(settings, options) -> ImageDataset | RegressionData``; ``options`` is ``None`` for
#: a network without options. A ``RegressionData`` makes the run a regression (snapshots, MSE).
LoadDataFn = Callable[["RunSettings", Any], Any]
#: ``augment(options, data) -> AugmentFn | None``: the training-batch augmentation the options ask for.
AugmentForFn = Callable[[Any, Any], "AugmentFn | None"]
#: ``starting_weights(model, config, settings)``: loads weights into a freshly built model in place.
StartingWeightsFn = Callable[["nn.Module", Any, "RunSettings"], None]


@dataclasses.dataclass(frozen=True, eq=False)
class Variant:
    """A named way to train a network, fixing some config fields (NetA's ``hf``, ``ht``, ``dt``).

    Its CLI name is ``<network>-<variant>`` (``neta1-hf``); its checkpoints name the network's
    architecture key, so they rebuild without knowing the variant.

    Attributes:
        name: the suffix (``hf``).
        summary: one line for ``introspect train --list``.
        fixed_config: config fields the variant decides; ``--set`` cannot change them.
    """

    name: str
    summary: str
    fixed_config: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, eq=False)
class Network:
    """One trainable network, and the factory its checkpoints are rebuilt with.

    Attributes:
        name: the architecture key its checkpoints store, the entry-point name and CLI name.
        summary: one line for ``introspect train --list``.
        config_class: the frozen config dataclass; ``introspect`` checks stored configs against it.
        model: builds the module from a config instance (the class itself, usually).
        load_data: the data set a run trains on (see :data:`LoadDataFn`).
        train: the training defaults (optimizer, schedule, epochs, patience).
        space: the default search space, ``--set`` key → :class:`~trainers.search_space.Dimension`.
        quick_epochs: epochs under ``--quick``.
        quick_train_size: training images under ``--quick`` (``None``: all of them).
        flatten: feed classifiers ``[N, C*H*W]`` rather than images (dense networks).
        options: default run options (``AugmentOptions()``, ``DatasetOptions()``) that ``--set``
            may change, recorded in the checkpoint's extras; ``None`` when the network has none.
        augment: the augmentation the options ask for (see :data:`AugmentForFn`).
        fixed_config: config fields the network decides whatever the stored config says.
        variants: named ways to train it; when there are any, only they are trainable.
        extras: ``extras(config) -> dict`` added to the checkpoint's extras.
        starting_weights: loads starting weights after building (ImageNet weights); never used
            when ``introspect`` rebuilds a checkpoint, whose weights are loaded anyway.
        max_initial_elements: initial parameters larger than this are not stored (``None``: all).
    """

    name: str
    summary: str
    config_class: type
    model: Callable[[Any], nn.Module]
    load_data: LoadDataFn
    train: TrainConfig
    space: Mapping[str, Dimension]
    quick_epochs: int = 1
    quick_train_size: int | None = 1000
    flatten: bool = False
    options: Any = None
    augment: AugmentForFn | None = None
    fixed_config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    variants: tuple[Variant, ...] = ()
    extras: Callable[[Any], dict[str, Any]] | None = None
    starting_weights: StartingWeightsFn | None = None
    max_initial_elements: int | None = None

    def __post_init__(self) -> None:
        if not dataclasses.is_dataclass(self.config_class):
            raise TypeError(f"network {self.name!r}: config_class must be a dataclass, not {self.config_class!r}")
        if not self.summary or "\n" in self.summary:
            raise ValueError(f"network {self.name!r}: summary must be one line")
        if len({variant.name for variant in self.variants}) != len(self.variants):
            raise ValueError(f"network {self.name!r}: variant names repeat")

    def __call__(self, config: Mapping[str, Any]) -> nn.Module:
        """The ``introspect.architectures`` factory: the module from a checkpoint's config dict."""
        from trainers.layers import config_from_dict

        return self.model(config_from_dict(self.config_class, {**config, **self.fixed_config}))

    def default_config(self, variant: Variant | None = None) -> Any:
        """The config a run starts from: the dataclass defaults plus the fixed fields."""
        return self.config_class(**self.fixed_fields(variant))

    def fixed_fields(self, variant: Variant | None = None) -> dict[str, Any]:
        """The config fields that the network and ``variant`` decide."""
        return {**self.fixed_config, **(variant.fixed_config if variant is not None else {})}

    def recipe_name(self, variant: Variant | None = None) -> str:
        """The CLI name that trains it as ``variant``: ``lenet5``, ``neta1-hf``."""
        return self.name if variant is None else f"{self.name}-{variant.name}"

    def recipe_names(self) -> list[str]:
        """The CLI names that train it: its own, or one per variant (``neta1-hf``, ...)."""
        return [self.recipe_name(variant) for variant in self.variants] or [self.name]
