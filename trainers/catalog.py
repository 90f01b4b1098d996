"""The catalog of trainable networks: CLI name → recipe that trains it and returns a checkpoint.

A recipe lives beside its network, in the network's own module, and registers itself::

    @register("lenet5", architecture="lenet5")
    def train_lenet5(settings: RunSettings) -> dict:
        \"\"\"LeNet-5 on MNIST, with dropout and Kaiming initialization.\"\"\"
        ...
        return make_checkpoint(...)

The modules to import are found from the entry-point group ``introspect.architectures`` (every
value under ``trainers.``), so pyproject's table is the one list of networks: there is no second
name table to keep in sync. ``--set key=value`` overrides reach a recipe as
``settings.overrides`` and are parsed onto its config dataclasses by :func:`apply_overrides`.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from introspect.errors import IntrospectError

ARCHITECTURE_GROUP = "introspect.architectures"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class RecipeError(IntrospectError, ValueError):
    """An unknown network name or a bad ``--set`` override; the message lists what is valid."""


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """What the user asked for on the command line, handed to every recipe.

    Attributes:
        epochs: epochs to train; ``None`` takes the recipe's default (or its quick default).
        quick: train on a subset for a few epochs (each network within about a minute on 2 cores).
        data_dir: where datasets live; ``None`` means ``$INTROSPECT_DATA``, else a cache folder.
        device: ``cpu``, ``cuda`` or ``auto``.
        seed: seeds initialization, data splits, batch order, dropout and augmentation.
        overrides: ``--set key=value`` pairs, still as text; see :func:`apply_overrides`.
        progress: ``progress(epoch, num_epochs, metrics)`` after each epoch, for the CLI.
        log: receives one-line notes for the user (e.g. "no CIFAR-10 files: using generated data").
    """

    epochs: int | None = None
    quick: bool = False
    data_dir: str | None = None
    device: str = "cpu"
    seed: int = 0
    overrides: Mapping[str, str] = dataclasses.field(default_factory=dict)
    progress: Callable[[int, int, Mapping[str, float]], None] | None = None
    log: Callable[[str], None] | None = None

    def say(self, message: str) -> None:
        """Pass a note to ``log`` when there is one."""
        if self.log is not None:
            self.log(message)


RecipeFn = Callable[[RunSettings], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A named way to train one network.

    Attributes:
        name: the CLI name (``lenet5``, ``neta1-hf``).
        summary: one line for ``introspect train --list``.
        architecture: the ``introspect.architectures`` key its checkpoints name.
        run: ``run(settings) -> checkpoint dict`` (as built by ``make_checkpoint``).
        module: the module that registered it.
    """

    name: str
    summary: str
    architecture: str
    run: RecipeFn
    module: str


_RECIPES: dict[str, Recipe] = {}
_BROKEN: dict[str, str] = {}
_LOADED = False


def register(name: str, *, architecture: str | None = None, summary: str | None = None) -> Callable[[RecipeFn], RecipeFn]:
    """Decorator adding a recipe under ``name``; the summary defaults to the docstring's first line.

    Raises:
        RecipeError: ``name`` is already registered by another function.
    """

    def decorator(function: RecipeFn) -> RecipeFn:
        doc = (function.__doc__ or "").strip().splitlines()
        recipe = Recipe(
            name=name,
            summary=summary or (doc[0] if doc else name),
            architecture=architecture or name,
            run=function,
            module=function.__module__,
        )
        existing = _RECIPES.get(name)
        if existing is not None and (existing.module, existing.run.__qualname__) != (recipe.module, function.__qualname__):
            raise RecipeError(f"recipe {name!r} is registered twice ({existing.module} and {recipe.module})")
        _RECIPES[name] = recipe
        return function

    return decorator


def _load_recipe_modules() -> None:
    """Import every ``trainers`` module that advertises an architecture, so its recipes register."""
    global _LOADED
    if _LOADED:
        return
    modules = sorted(
        {
            entry_point.value.split(":", 1)[0]
            for entry_point in metadata.entry_points(group=ARCHITECTURE_GROUP)
            if entry_point.value.startswith("trainers.")
        }
    )
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as error:  # one broken network must not hide the others
            _BROKEN[module] = f"{type(error).__name__}: {error}"
    _LOADED = True


def broken_modules() -> dict[str, str]:
    """Network modules that failed to import while recipes were loaded, with the error."""
    _load_recipe_modules()
    return dict(_BROKEN)


def list_recipes() -> list[Recipe]:
    """Every registered recipe, sorted by name."""
    _load_recipe_modules()
    return [_RECIPES[name] for name in sorted(_RECIPES)]


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``.

    Raises:
        RecipeError: no such recipe; the message lists the known names.
    """
    _load_recipe_modules()
    if name not in _RECIPES:
        broken = f" ({len(_BROKEN)} network module(s) failed to import: {', '.join(sorted(_BROKEN))})" if _BROKEN else ""
        raise RecipeError(f"unknown network {name!r}; known: {', '.join(sorted(_RECIPES)) or 'none'}{broken}")
    return _RECIPES[name]


def train(name: str, settings: RunSettings, out_path: str | Path) -> Path:
    """Train the network ``name`` as ``settings`` say and save its checkpoint to ``out_path``."""
    from introspect.checkpoint import save_checkpoint

    checkpoint = get_recipe(name).run(settings)
    return save_checkpoint(out_path, checkpoint)


# --- --set key=value ----------------------------------------------------------------------------


def apply_overrides(overrides: Mapping[str, str], **configs: Any) -> tuple[Any, ...]:
    """Parse ``--set`` pairs onto frozen config dataclasses; returns them replaced, in order.

    ``apply_overrides({"lr": "0.01", "hidden": "64,32"}, model=cfg, train=train_cfg)`` gives
    ``(cfg with hidden=(64, 32), train_cfg with lr=0.01)``. A key names a field of one config, or
    ``section.field`` (``model.dropout``, ``train.lr``) when several configs share a field name.
    Values are parsed by the field's type: int, float, bool, str, tuples (comma-separated) and
    optional fields (``none``).

    Raises:
        RecipeError: an unknown or ambiguous key, or a value that does not parse; the message
            lists the valid keys.
    """
    changes: dict[str, dict[str, Any]] = {section: {} for section in configs}
    for key, text in overrides.items():
        section, field = _locate(key, configs)
        hint = typing.get_type_hints(type(configs[section]))[field]
        try:
            changes[section][field] = parse_value(text, hint)
        except ValueError as error:
            raise RecipeError(f"--set {key}={text}: {error}") from None
    replaced = []
    for section, config in configs.items():
        try:
            replaced.append(dataclasses.replace(config, **changes[section]))
        except ValueError as error:  # a config's own validation, e.g. an unknown optimizer
            raise RecipeError(f"--set: {error}") from None
    return tuple(replaced)


def valid_keys(**configs: Any) -> list[str]:
    """Every key ``--set`` accepts for these configs (plain where unique, else ``section.field``)."""
    counts: dict[str, int] = {}
    for config in configs.values():
        for field in dataclasses.fields(config):
            counts[field.name] = counts.get(field.name, 0) + 1
    keys = []
    for section, config in configs.items():
        for field in dataclasses.fields(config):
            keys.append(field.name if counts[field.name] == 1 else f"{section}.{field.name}")
    return keys


def _locate(key: str, configs: Mapping[str, Any]) -> tuple[str, str]:
    section, dot, field = key.rpartition(".")
    if dot:
        candidates = [section] if section in configs and _has_field(configs[section], field) else []
    else:
        candidates = [name for name, config in configs.items() if _has_field(config, key)]
        field = key
    if len(candidates) == 1:
        return candidates[0], field
    listing = ", ".join(valid_keys(**configs))
    if candidates:
        raise RecipeError(f"--set {key}: ambiguous, say {' or '.join(f'{c}.{field}' for c in candidates)}; valid keys: {listing}")
    raise RecipeError(f"--set {key}: unknown key; valid keys: {listing}")


def _has_field(config: Any, name: str) -> bool:
    return any(field.name == name for field in dataclasses.fields(config))


def parse_value(text: str, hint: Any) -> Any:
    """``text`` as a value of the type ``hint`` (int, float, bool, str, tuple[...], X | None)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if text.strip().lower() in ("none", "null", ""):
            if type(None) in args:
                return None
        inner = [arg for arg in args if arg is not type(None)]
        return parse_value(text, inner[0])
    if origin is tuple:
        item = args[0] if args else str
        parts = [part for part in text.replace(" ", "").split(",") if part]
        return tuple(parse_value(part, item) for part in parts)
    if origin is typing.Literal:
        if text not in [str(arg) for arg in args]:
            raise ValueError(f"expected one of {', '.join(map(str, args))}")
        return text
    if hint is bool:
        lowered = text.strip().lower()
        if lowered not in _TRUE + _FALSE:
            raise ValueError(f"expected true or false, not {text!r}")
        return lowered in _TRUE
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expected an integer, not {text!r}") from None
    if hint is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number, not {text!r}") from None
    return text
