"""What a run is asked for, and how ``--set key=value`` reaches the config dataclasses.

:class:`RunSettings` carries the command line to :func:`trainers.training.train` and
:func:`trainers.search.search`. ``--set`` pairs are parsed from text once, by :func:`parse_sets`
(every command uses it, so a missing ``=`` is one clear error everywhere), then onto a network's
frozen config dataclasses by :func:`apply_overrides`, by each field's type. Nothing here imports
torch: the CLI parses its options before any network is loaded.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from introspect.errors import IntrospectError

if TYPE_CHECKING:
    from trainers.loop import TrainConfig

ConfigT = TypeVar("ConfigT")
OptionsT = TypeVar("OptionsT")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class RecipeError(IntrospectError, ValueError):
    """An unknown network name or a bad ``--set`` override; the message lists what is valid."""


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """What the user asked for on the command line, handed to every training run.

    Attributes:
        epochs: epochs to train; ``None`` takes the network's default (or its quick default).
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


def parse_sets(pairs: Iterable[str]) -> dict[str, str]:
    """``["lr=0.01", "hidden = 64,32"]`` as ``{"lr": "0.01", "hidden": "64,32"}`` (keys and values stripped).

    Raises:
        RecipeError: a pair without ``=`` or without a key, named in the message.
    """
    overrides = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key.strip():
            raise RecipeError(f"--set {pair!r} should look like KEY=VALUE")
        overrides[key.strip()] = value.strip()
    return overrides


# --- settings -> configs ------------------------------------------------------------------------


def configs_for(
    settings: RunSettings, model_config: ConfigT, train_config: TrainConfig, *, quick_epochs: int = 1
) -> tuple[ConfigT, TrainConfig]:
    """The network's config and the TrainConfig after ``--epochs``, ``--quick``, ``--seed``,
    ``--device`` and ``--set`` overrides (in that order, so ``--set`` wins).

    ``model_config`` gets the run's seed when it has a ``seed`` field.
    """
    epochs = settings.epochs or (quick_epochs if settings.quick else train_config.epochs)
    train_config = dataclasses.replace(train_config, epochs=epochs, seed=settings.seed, device=settings.device)
    if any(field.name == "seed" for field in dataclasses.fields(model_config)):  # type: ignore[arg-type]
        model_config = dataclasses.replace(model_config, seed=settings.seed)  # type: ignore[type-var]
    model_config, train_config = apply_overrides(settings.overrides, model=model_config, train=train_config)
    return model_config, train_config


def take_options(settings: RunSettings, options: OptionsT) -> tuple[OptionsT, RunSettings]:
    """Parse the ``--set`` keys that name fields of ``options``; return the rest as new settings.

    A key may also be written ``options.<field>``. Options (augmentation, the dataset) change how
    a network is trained, not what it is, so they stay out of its config.
    """
    names = {field.name for field in dataclasses.fields(options)}  # type: ignore[arg-type]
    mine: dict[str, str] = {}
    rest: dict[str, str] = {}
    for key, value in settings.overrides.items():
        bare = key.removeprefix("options.")
        (mine if bare in names else rest)[bare if bare in names else key] = value
    (parsed,) = apply_overrides(mine, options=options)
    return parsed, dataclasses.replace(settings, overrides=rest)


def configs_with_options(
    settings: RunSettings, options: OptionsT, model_config: ConfigT, train_config: TrainConfig, *, quick_epochs: int = 1
) -> tuple[OptionsT, ConfigT, TrainConfig]:
    """:func:`take_options`, then :func:`configs_for` on the rest; an unknown key lists all three kinds."""
    parsed, rest = take_options(settings, options)
    try:
        model_config, train_config = configs_for(rest, model_config, train_config, quick_epochs=quick_epochs)
    except RecipeError as error:
        names = ", ".join(field.name for field in dataclasses.fields(options))  # type: ignore[arg-type]
        raise RecipeError(f"{error}; recipe options: {names}") from None
    return parsed, model_config, train_config


# --- --set key=value onto dataclasses -----------------------------------------------------------


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
        raise RecipeError(
            f"--set {key}: ambiguous, say {' or '.join(f'{c}.{field}' for c in candidates)}; valid keys: {listing}"
        )
    raise RecipeError(f"--set {key}: unknown key; valid keys: {listing}")


def _has_field(config: Any, name: str) -> bool:
    return any(field.name == name for field in dataclasses.fields(config))


def parse_value(text: str, hint: Any) -> Any:
    """``text`` as a value of the type ``hint`` (int, float, bool, str, tuple[...], X | None, Literal)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if text.strip().lower() in ("none", "null", "") and type(None) in args:
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
    if hint in (int, float):
        try:
            return hint(text)
        except ValueError:
            raise ValueError(f"expected {'an integer' if hint is int else 'a number'}, not {text!r}") from None
    return text
