"""Checks on a registered architecture's config: its fields against the factory's dataclass.

Split from :mod:`introspect.validate` (which re-exports these names): the value checks there
are about plain data, these about matching a dict to a dataclass's field types.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from introspect.validate import MAX_NAME_LENGTH, ConfigError, is_number, shown

_PLURALS = {int: "integers", float: "numbers", str: "strings", bool: "true/false values"}
_SINGULARS = {int: "an integer", float: "a finite number", str: "a string", bool: "true or false"}


def config_class_of(factory: Any) -> type | None:
    """The config dataclass a factory builds from: its ``config_class``, or found through type hints.

    A factory ``build(config: dict) -> LeNet5`` whose ``LeNet5.__init__(self, config: LeNet5Config)``
    gives ``LeNet5Config``; ``None`` when no dataclass can be found (then only the factory checks).
    """
    declared = getattr(factory, "config_class", None)
    if isinstance(declared, type) and dataclasses.is_dataclass(declared):
        return declared
    try:
        built = typing.get_type_hints(factory).get("return")
        hint = typing.get_type_hints(built.__init__).get("config") if isinstance(built, type) else None
    except Exception:  # hints that cannot be resolved: nothing to check against, the factory decides
        return None
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def check_config_fields(config_class: type, values: Mapping[str, Any], where: str) -> None:
    """Refuse unknown fields and values whose type does not fit the dataclass's field types.

    Lists are accepted for tuple fields and integers for float fields, as JSON-like configs store
    them. Field types other than int, float, str, bool, tuples, lists, ``X | None`` and ``Literal``
    are left to the config's own validation.

    Raises:
        ConfigError: naming ``where`` (e.g. ``architecture 'lenet5': config``) and the field.
    """
    fields = [field.name for field in dataclasses.fields(config_class) if field.init]
    unknown = sorted(str(key) for key in values if key not in fields)
    if unknown:
        names = ", ".join(map(repr, unknown[:5]))
        raise ConfigError(f"{where} has unknown field(s) {names}; {config_class.__name__} has {', '.join(fields)}")
    try:
        hints = typing.get_type_hints(config_class)
    except Exception:  # unresolvable annotations: the config's own __post_init__ decides
        return
    for name, value in values.items():
        expected = type_mismatch(value, hints.get(name, Any))
        if expected is not None:
            raise ConfigError(f"{where} field {name!r} must be {expected}, not {shown(value)}")


def type_mismatch(value: Any, hint: Any) -> str | None:
    """What ``value`` should be to fit ``hint`` (e.g. ``"a list of 2 integers"``), or ``None`` when it fits."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        wanted = [type_mismatch(value, arg) for arg in args]
        return None if None in wanted else " or ".join(wanted)  # type: ignore[arg-type]
    if origin is typing.Literal:
        return None if value in args else "one of " + ", ".join(map(repr, args))
    if hint is type(None):
        return None if value is None else "None"
    if hint in _SINGULARS:
        return None if _fits_scalar(value, hint) else _SINGULARS[hint]
    if origin in (tuple, list, Sequence) or hint in (tuple, list):
        return _sequence_mismatch(value, origin or hint, args)
    if origin in (dict, Mapping) or hint is dict:
        return None if isinstance(value, Mapping) else "a dict"
    return None  # a type this check does not know: the config's own validation decides


def _fits_scalar(value: Any, hint: type) -> bool:
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and is_number(value)
    if hint is float:
        return is_number(value) and math.isfinite(value)
    return isinstance(value, str) and len(value) <= MAX_NAME_LENGTH


def _sequence_mismatch(value: Any, origin: Any, args: tuple[Any, ...]) -> str | None:
    fixed = origin is tuple and bool(args) and args[-1] is not Ellipsis
    item_hint = args[0] if args else Any
    plural = _PLURALS.get(item_hint, "values") if not fixed or len(set(args)) == 1 else "values"
    wanted = f"a list of {len(args)} {plural}" if fixed else f"a list of {plural}"
    if not isinstance(value, (list, tuple)) or (fixed and len(value) != len(args)):
        return wanted
    hints = args if fixed else (item_hint,) * len(value)
    return wanted if any(type_mismatch(item, item_hint) is not None for item, item_hint in zip(value, hints)) else None
