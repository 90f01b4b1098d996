"""timm networks by name: ``--arch timm:resnet18``, or ``--arch timm`` / a timm folder's ``config.json``.

A name reaches only timm's own registry of architectures (``timm.is_model``), the way a
registered key reaches an introspect architecture: timm's ``hf-hub:`` and ``local-dir:``
prefixes, which would download or read other files, are refused, and the model is always
created with ``pretrained=False``. Arguments that a folder's config.json passes on are checked
the same way, and the network is first built on the ``meta`` device so that its size is checked
against the budget before any memory is allocated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from introspect._lazy import lazy_import
from introspect.budget import Budget
from introspect.errors import CheckpointError
from introspect.subject import Task
from introspect.validate import MAX_CONFIG_ITEMS, ConfigError, check_plain

if TYPE_CHECKING:
    import torch
    from torch import nn
else:
    torch = lazy_import("torch")

INSTALL_HINT = "pip install 'introspect[timm]'"
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,200}")
#: Arguments of ``timm.create_model`` that load weights or read other files: never taken.
_REFUSED_WORDS = ("pretrained", "checkpoint", "cache", "path", "file", "url", "hub")
_OVERLAY = "pretrained_cfg_overlay"


def is_timm_config(config: Mapping[str, Any] | None) -> bool:
    """Whether a folder's config.json is one timm writes (an ``architecture``, no ``model_type``)."""
    return bool(config) and isinstance(config.get("architecture"), str) and "model_type" not in config


def import_timm() -> Any:
    try:
        import timm
    except ImportError:
        raise CheckpointError(f"building a timm network needs the timm package ({INSTALL_HINT})") from None
    return timm


def build_timm(
    name: str | None, kwargs: Mapping[str, Any], config: Mapping[str, Any] | None, budget: Budget
) -> tuple[nn.Module, Task]:
    """The timm network ``name`` (else the config's ``architecture``) with fresh weights, and its task.

    Args:
        name: a timm architecture name, or ``None`` to take it from ``config``.
        kwargs: the user's ``--arch-kwarg`` values, passed to ``timm.create_model``.
        config: a timm folder's config.json, or ``None``.
        budget: the memory the network may take.

    Raises:
        CheckpointError: timm is missing, the name is not one of timm's architectures, or an
            argument would load weights or read a file.
    """
    timm = import_timm()
    name = name or (config or {}).get("architecture")
    if not isinstance(name, str) or not name:
        raise CheckpointError("--arch timm needs a name (--arch timm:resnet18) or a config.json with 'architecture'")
    if not _NAME.fullmatch(name) or not timm.is_model(name):
        raise CheckpointError(f"{name[:100]!r} is not an architecture timm knows (see timm.list_models())")
    arguments = {**_config_arguments(config), **_checked(dict(kwargs), "--arch-kwarg", allow_overlay=True)}
    from introspect.meta_build import on_meta_device  # imports torch

    with on_meta_device():
        skeleton = _create(timm, name, arguments)
    nbytes = sum(int(t.numel()) * t.element_size() for t in [*skeleton.parameters(), *skeleton.buffers()])
    budget.check_bytes(nbytes, f"building timm's {name}")
    model = _create(timm, name, arguments)
    return model, timm_task(model, config)


def _create(timm: Any, name: str, arguments: dict[str, Any]) -> nn.Module:
    try:
        return timm.create_model(name, pretrained=False, **arguments)
    except Exception as error:  # any failure means the arguments do not fit the architecture
        raise ConfigError(f"timm's {name} cannot be built ({type(error).__name__}: {error})") from error


def _config_arguments(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """``num_classes`` and ``model_args`` from a timm folder's config.json, checked."""
    if not config:
        return {}
    check_plain(config, "config.json", max_items=MAX_CONFIG_ITEMS)
    arguments = config.get("model_args") or {}
    if not isinstance(arguments, dict):
        raise ConfigError(f"config.json: model_args must be an object, not {type(arguments).__name__}")
    arguments = _checked(dict(arguments), "config.json: model_args", allow_overlay=False)
    if isinstance(config.get("num_classes"), int):
        arguments.setdefault("num_classes", config["num_classes"])
    return arguments


def _checked(arguments: dict[str, Any], where: str, *, allow_overlay: bool) -> dict[str, Any]:
    for key in arguments:
        if allow_overlay and key == _OVERLAY:
            continue
        if not key.isidentifier() or any(word in key.lower() for word in _REFUSED_WORDS):
            raise ConfigError(f"{where}: {key[:60]!r} is not taken (it would load weights or read other files)")
    overlay = arguments.get(_OVERLAY)
    if overlay is not None and (not isinstance(overlay, dict) or {"file", "url", "hf_hub_id"} & set(overlay)):
        raise ConfigError(f"{where}: {_OVERLAY} may set input_size, mean, std and the like, never a file or url")
    return arguments


def timm_task(model: nn.Module, config: Mapping[str, Any] | None) -> Task:
    """Input shape, normalization and class names from timm's ``pretrained_cfg`` and the folder's config."""
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    if config and isinstance(config.get("pretrained_cfg"), dict):
        cfg.update({k: v for k, v in config["pretrained_cfg"].items() if k in ("input_size", "mean", "std")})
    input_size = _input_size(model, cfg)
    mean, std = cfg.get("mean"), cfg.get("std")
    normalization = {"mean": list(mean), "std": list(std)} if mean and std and len(mean) == len(std) else None
    num_classes = int(getattr(model, "num_classes", 0) or 0)
    names = (config or {}).get("label_names")
    class_names = tuple(str(n) for n in names) if isinstance(names, list) and len(names) == num_classes else ()
    return Task(
        kind="classification" if num_classes > 1 else "unknown",
        input_shape=input_size,
        image_shape=input_size if input_size and len(input_size) == 3 else None,
        class_names=class_names or tuple(str(index) for index in range(num_classes)),
        normalization=normalization,
    )


def _input_size(model: nn.Module, cfg: Mapping[str, Any]) -> tuple[int, ...] | None:
    try:  # what the built network takes: a ViT built with img_size=32 still says 224 in its cfg
        from timm.models._input import get_model_input_config

        size = get_model_input_config(model)["input_size"]
    except Exception:  # an older timm without it
        size = cfg.get("input_size")
    return tuple(int(extent) for extent in size) if size else None
