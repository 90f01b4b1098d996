"""Rebuilding networks: registered architecture keys, or a factory the user names explicitly."""

from __future__ import annotations

import ast
import importlib
import itertools
import warnings
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any

from introspect._lazy import lazy_import
from introspect.budget import Budget
from introspect.checkpoint import load_state_into
from introspect.errors import CheckpointError, PluginError
from introspect.subject import Task
from introspect.validate import MAX_CONFIG_ITEMS, ConfigError, check_plain, shown
from introspect.validate_config import check_config_fields, config_class_of

if TYPE_CHECKING:
    import torch
    from torch import nn
else:
    torch = lazy_import("torch")

ARCHITECTURE_GROUP = "introspect.architectures"


def registered_architectures() -> dict[str, metadata.EntryPoint]:
    """Architecture keys advertised under ``introspect.architectures``, by key."""
    return {entry_point.name: entry_point for entry_point in metadata.entry_points(group=ARCHITECTURE_GROUP)}


class UnregisteredArchitecture(CheckpointError):
    """No installed package registers the architecture a checkpoint names (only its weights can be used)."""


def build_registered(
    key: str,
    config: Mapping[str, Any],
    budget: Budget | None = None,
    *,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    source: str = "",
) -> nn.Module:
    """Build the network registered under ``key`` from its stored config.

    Only factories that an installed package advertises can be reached: a checkpoint names a
    key, never a module to import. The config is checked against the factory's config dataclass
    when one can be found, then the network is built on the ``meta`` device (no memory), its size
    checked against ``budget`` and its shapes against ``state_dict``; only then is it built for real.

    Args:
        key: the registered architecture key.
        config: the stored config, plain values.
        budget: the memory the rebuilt network may take (default: :class:`Budget`'s default).
        state_dict: the weights that will be loaded into it, checked for fitting before building.
        source: the file the weights come from, for messages.

    Raises:
        UnregisteredArchitecture: no installed package registers ``key``.
        ConfigError: the config does not fit the factory (the message names the field).
        BudgetError: the network would take more memory than ``budget`` allows.
        CheckpointError: ``state_dict`` does not fit the network, or the factory built no module.
    """
    factory = _registered_factory(key)
    budget = budget or Budget()
    values = _checked_config(key, config, factory, budget)
    skeleton = _call_factory(key, factory, values, meta=True)
    _check_skeleton(key, skeleton, budget, state_dict, source)
    return _call_factory(key, factory, values)


def _registered_factory(key: str) -> Callable[[dict[str, Any]], Any]:
    entry_point = registered_architectures().get(key)
    if entry_point is None:
        known = ", ".join(sorted(registered_architectures())) or "none"
        raise UnregisteredArchitecture(
            f"architecture {key!r} is not registered by any installed package (registered: {known})"
        )
    try:
        return entry_point.load()
    except Exception as error:
        raise PluginError(f"architecture {key!r} failed to load: {type(error).__name__}: {error}") from error


def _checked_config(key: str, config: Any, factory: Any, budget: Budget) -> dict[str, Any]:
    where = f"architecture {key!r}: config"
    if config is None:
        config = {}
    if not isinstance(config, Mapping) or not all(isinstance(name, str) for name in config):
        raise ConfigError(f"{where} must be a dict of field values, not {shown(config)}")
    check_plain(config, f"{where}", max_nesting=budget.max_nesting, max_items=MAX_CONFIG_ITEMS)
    config_class = config_class_of(factory)
    if config_class is not None:
        check_config_fields(config_class, config, where)
    return dict(config)


def _call_factory(
    key: str, factory: Callable[[dict[str, Any]], Any], values: dict[str, Any], *, meta: bool = False
) -> nn.Module:
    try:
        if not meta:
            model = factory(dict(values))
        else:
            from introspect.meta_build import on_meta_device  # imports torch, which --help does not need

            with on_meta_device():
                model = factory(dict(values))
    except Exception as error:  # any failure of the factory means the config does not fit it
        raise ConfigError(f"architecture {key!r} cannot be built from its config: {_reason(error)}") from error
    if not isinstance(model, torch.nn.Module):
        raise CheckpointError(f"architecture {key!r} built a {type(model).__name__}, not a torch.nn.Module")
    return model


def _check_skeleton(
    key: str, skeleton: nn.Module, budget: Budget, state_dict: Mapping[str, Any] | None, source: str
) -> None:
    """The meta-device network fits the budget and the weights that will be loaded into it."""
    tensors = {id(tensor): tensor for tensor in itertools.chain(skeleton.parameters(), skeleton.buffers())}
    nbytes = sum(int(tensor.numel()) * tensor.element_size() for tensor in tensors.values())
    budget.check_bytes(nbytes, f"rebuilding architecture {key!r} from its config")
    if state_dict is not None:
        with warnings.catch_warnings():  # copying into meta tensors is a no-op, and torch says so per tensor
            warnings.simplefilter("ignore")
            load_state_into(skeleton, dict(state_dict), source or f"architecture {key!r}")


def _reason(error: BaseException) -> str:
    message = str(error).splitlines()[0] if str(error) else ""
    if isinstance(error, ValueError) and message:
        return message  # configs' own validation says what is wrong in words
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


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


def build_arch(
    reference: str, kwargs: Mapping[str, Any] | None, budget: Budget, config: Mapping[str, Any] | None = None
) -> tuple[nn.Module, Task | None]:
    """The model ``--arch`` names, and the task it declares (timm's input size and normalization).

    ``timm:NAME`` and ``timm`` (the name from ``config``, a timm folder's config.json) build one of
    timm's registered architectures without weights; anything else is ``MODULE:CALLABLE``.
    """
    module_name, _, name = reference.partition(":")
    if module_name == "timm":
        from introspect.timm_models import build_timm

        return build_timm(name or None, dict(kwargs or {}), config, budget)
    return build_from_reference(reference, kwargs), None


def build_from_reference(reference: str, kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    """Call the factory named by ``MODULE:CALLABLE`` (the user's explicit choice of code to run)."""
    module_name, separator, attribute = reference.partition(":")
    if not separator or not module_name or not attribute:
        raise CheckpointError(
            f"--arch {reference!r} should look like MODULE:CALLABLE, e.g. torchvision.models:resnet18"
        )
    try:
        factory: Callable[..., Any] = importlib.import_module(module_name)
        for part in attribute.split("."):
            factory = getattr(factory, part)
    except (ImportError, AttributeError) as error:
        raise CheckpointError(f"--arch {reference!r} cannot be imported: {error}") from error
    try:
        model = factory(**dict(kwargs or {}))
    except Exception as error:
        raise CheckpointError(
            f"--arch {reference!r} failed to build the model: {type(error).__name__}: {error}"
        ) from error
    if not isinstance(model, torch.nn.Module):
        raise CheckpointError(f"--arch {reference!r} returned a {type(model).__name__}, not a torch.nn.Module")
    return model
