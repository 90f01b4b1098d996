"""Rebuilding networks: registered architecture keys, or a factory the user names explicitly."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any

from introspect.errors import CheckpointError, PluginError

if TYPE_CHECKING:
    from torch import nn

ARCHITECTURE_GROUP = "introspect.architectures"


def registered_architectures() -> dict[str, metadata.EntryPoint]:
    """Architecture keys advertised under ``introspect.architectures``, by key."""
    return {entry_point.name: entry_point for entry_point in metadata.entry_points(group=ARCHITECTURE_GROUP)}


def build_registered(key: str, config: Mapping[str, Any]) -> nn.Module:
    """Build the network registered under ``key`` from its stored config.

    Only factories that an installed package advertises can be reached: a checkpoint names a
    key, never a module to import.
    """
    entry_point = registered_architectures().get(key)
    if entry_point is None:
        known = ", ".join(sorted(registered_architectures())) or "none"
        raise CheckpointError(
            f"architecture {key!r} is not registered by any installed package (registered: {known})"
        )
    try:
        factory = entry_point.load()
    except Exception as error:
        raise PluginError(f"architecture {key!r} failed to load: {type(error).__name__}: {error}") from error
    return factory(dict(config))


def parse_factory_kwargs(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``["num_classes=10", "name='x'"]`` → ``{"num_classes": 10, "name": "x"}``; values are literals."""
    kwargs: dict[str, Any] = {}
    for pair in pairs:
        key, separator, text = pair.partition("=")
        if not separator or not key.isidentifier():
            raise CheckpointError(f"--arch-kwarg {pair!r} should look like NAME=VALUE")
        try:
            kwargs[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            kwargs[key] = text  # a bare word is taken as a string
    return kwargs


def build_from_reference(reference: str, kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    """Call the factory named by ``MODULE:CALLABLE`` (the user's explicit choice of code to run)."""
    module_name, separator, attribute = reference.partition(":")
    if not separator or not module_name or not attribute:
        raise CheckpointError(f"--arch {reference!r} should look like MODULE:CALLABLE, e.g. torchvision.models:resnet18")
    try:
        factory: Callable[..., Any] = importlib.import_module(module_name)
        for part in attribute.split("."):
            factory = getattr(factory, part)
    except (ImportError, AttributeError) as error:
        raise CheckpointError(f"--arch {reference!r} cannot be imported: {error}") from error
    try:
        return factory(**dict(kwargs or {}))
    except Exception as error:
        raise CheckpointError(f"--arch {reference!r} failed to build the model: {type(error).__name__}: {error}") from error
