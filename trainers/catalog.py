"""The list of trainable networks, read from the entry-point group ``introspect.architectures``.

Every entry point whose value is a :class:`~trainers.network.Network` record is a trainable
network, so pyproject's table is the one list: nothing registers itself on import and no second
name table is kept in sync. A *recipe* is a CLI name that trains a network: the network's own
name, or ``<network>-<variant>`` for each of its variants (``neta1-hf``)::

    recipe = get_recipe("neta1-hf")        # recipe.network is NetA1's record
    train("lenet5", RunSettings(quick=True), "lenet5.pt")
"""

from __future__ import annotations

import dataclasses
from importlib import metadata
from pathlib import Path
from typing import Any

from trainers.network import Network, Variant
from trainers.settings import RecipeError, RunSettings

__all__ = ["Recipe", "RecipeError", "RunSettings", "get_network", "get_recipe", "list_recipes", "networks", "train"]

ARCHITECTURE_GROUP = "introspect.architectures"


@dataclasses.dataclass(frozen=True, eq=False)
class Recipe:
    """A CLI name that trains one network, possibly as one of its variants.

    Attributes:
        name: the CLI name (``lenet5``, ``neta1-hf``).
        summary: one line for ``introspect train --list``.
        network: the network's record.
        variant: the variant it trains, or ``None``.
    """

    name: str
    summary: str
    network: Network
    variant: Variant | None = None

    @property
    def architecture(self) -> str:
        """The architecture key its checkpoints store."""
        return self.network.name

    def run(self, settings: RunSettings) -> dict[str, Any]:
        """Train as ``settings`` say; the checkpoint dict (see :func:`trainers.training.train`)."""
        from trainers.training import train as train_network

        return train_network(self.network, settings, self.variant)


def _load_networks() -> tuple[list[Network], dict[str, str]]:
    """The records behind the entry points, by name, and the entry points that failed to load."""
    found: dict[str, Network] = {}
    broken: dict[str, str] = {}
    for entry_point in metadata.entry_points(group=ARCHITECTURE_GROUP):
        try:
            value = entry_point.load()
        except Exception as error:  # one broken network must not hide the others
            broken[entry_point.name] = f"{type(error).__name__}: {error}"
            continue
        if isinstance(value, Network):
            found[value.name] = value
    return [found[name] for name in sorted(found)], broken


def networks() -> list[Network]:
    """Every installed network record, sorted by name."""
    return _load_networks()[0]


def recipes_of(network: Network) -> list[Recipe]:
    """The recipes that train ``network``: itself, or one per variant."""
    if not network.variants:
        return [Recipe(network.name, network.summary, network)]
    return [
        Recipe(name, variant.summary, network, variant)
        for name, variant in zip(network.recipe_names(), network.variants)
    ]


def list_recipes() -> list[Recipe]:
    """Every recipe of every network, sorted by name."""
    recipes = [recipe for network in networks() for recipe in recipes_of(network)]
    return sorted(recipes, key=lambda recipe: recipe.name)


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``.

    Raises:
        RecipeError: no such recipe; the message lists the known names (and entry points that
            failed to load, whose networks may be the one asked for).
    """
    found, broken = _load_networks()
    recipes = {recipe.name: recipe for network in found for recipe in recipes_of(network)}
    if name not in recipes:
        failed = f" ({len(broken)} network(s) failed to load: {', '.join(sorted(broken))})" if broken else ""
        raise RecipeError(f"unknown network {name!r}; known: {', '.join(sorted(recipes)) or 'none'}{failed}")
    return recipes[name]


def get_network(name: str) -> Network:
    """The network record called ``name`` (a recipe name such as ``neta1-hf`` gives its network)."""
    found = {network.name: network for network in networks()}
    return found[name] if name in found else get_recipe(name).network


def train(name: str, settings: RunSettings, out_path: str | Path) -> Path:
    """Train the recipe ``name`` as ``settings`` say and save its checkpoint to ``out_path``."""
    from introspect.checkpoint import save_checkpoint

    return save_checkpoint(out_path, get_recipe(name).run(settings))
