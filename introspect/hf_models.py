"""Hugging Face model folders: the model rebuilt with transformers' own classes from config.json.

Offline and never with remote code: a config that names code to fetch (``auto_map``) or a model
type the installed transformers does not know is refused in one line. The class is one that
transformers itself maps the config's ``model_type`` to (``architectures`` picks among them), the
network is first built on the ``meta`` device so that its size is checked against the budget,
and introspect loads the weights it read itself: transformers never opens the folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from introspect._lazy import lazy_import
from introspect.budget import Budget
from introspect.errors import CheckpointError
from introspect.subject import Task
from introspect.text import tokenizer_file
from introspect.validate import MAX_CONFIG_ITEMS, ConfigError, check_plain

if TYPE_CHECKING:
    import torch
    from torch import nn
else:
    torch = lazy_import("torch")

INSTALL_HINT = "pip install 'introspect[hf]'"
#: Layer counts above this are a forged config, not a model anyone trained.
MAX_LAYERS = 1024


def is_hf_config(config: Mapping[str, Any] | None) -> bool:
    """Whether a folder's config.json is one transformers writes (it has a ``model_type``)."""
    return bool(config) and "model_type" in config


def check_hf_config(config: Mapping[str, Any], source: str) -> None:
    """Refuse what would run or fetch code, before transformers is imported.

    Raises:
        CheckpointError: the config asks for remote code (``auto_map``) or holds forged sizes.
    """
    if "auto_map" in config:
        named = config["auto_map"]
        shown = ", ".join(f"{k}={v}" for k, v in named.items())[:200] if isinstance(named, dict) else str(named)[:200]
        raise CheckpointError(
            f"{source}: config.json asks for the model's own code (auto_map: {shown}); introspect never runs code "
            "from a model folder (trust_remote_code), so it was not loaded"
        )
    check_plain(config, f"{source}: config.json", max_items=MAX_CONFIG_ITEMS)
    for key, value in config.items():
        if key.endswith("layers") and isinstance(value, int) and value > MAX_LAYERS:
            raise ConfigError(f"{source}: config.json sets {key} = {value:,}, more than the {MAX_LAYERS} allowed")


def import_transformers() -> Any:
    """transformers, imported offline (nothing it does here may reach the network)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import transformers
    except ImportError:
        raise CheckpointError(f"rebuilding a Hugging Face model needs transformers ({INSTALL_HINT})") from None
    transformers.logging.set_verbosity_error()  # its load reports and progress bars are not the user's output
    transformers.logging.disable_progress_bar()
    return transformers


def build_hf_model(
    config: Mapping[str, Any], state_dict: dict[str, torch.Tensor], budget: Budget, source: str
) -> nn.Module:
    """The model config.json describes, holding the weights introspect read from the folder.

    transformers gets the tensors, never the path: ``from_pretrained(None, state_dict=...)``
    renames checkpoint keys the way the installed version expects without opening any file.

    Raises:
        CheckpointError: remote code, an unknown model type or architecture, transformers
            missing, or weights that do not fit the model.
        BudgetError: the model would take more memory than the budget.
    """
    check_hf_config(config, source)
    transformers = import_transformers()
    model_class = _model_class(transformers, config, source)
    hf_config = _hf_config(transformers, config, source)
    from introspect.meta_build import on_meta_device  # imports torch

    with on_meta_device():
        skeleton = _built(model_class, hf_config, source)
    nbytes = sum(int(t.numel()) * t.element_size() for t in [*skeleton.parameters(), *skeleton.buffers()])
    budget.check_bytes(nbytes, f"{source}: rebuilding {model_class.__name__}")
    try:
        model, info = model_class.from_pretrained(
            None, config=hf_config, state_dict=state_dict, output_loading_info=True, local_files_only=True
        )
    except Exception as error:  # transformers raises RuntimeError for shapes that do not fit, and others
        raise CheckpointError(
            f"{source}: the weights do not fit the model config.json describes ({type(error).__name__})"
        ) from None
    problems = [f"{what} {_few(sorted(info.get(key) or ()))}" for key, what in _LOAD_PROBLEMS if info.get(key)]
    if problems:
        raise CheckpointError(
            f"{source}: the weights do not fit the model config.json describes: {'; '.join(problems)}"
        )
    return model


_LOAD_PROBLEMS = (("missing_keys", "missing"), ("unexpected_keys", "unexpected"), ("mismatched_keys", "mismatched"))


def _few(names: list[Any]) -> str:
    shown = ", ".join(str(name) for name in names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _hf_config(transformers: Any, config: Mapping[str, Any], source: str) -> Any:
    values = {key: value for key, value in config.items() if key != "model_type"}
    try:
        return transformers.AutoConfig.for_model(config["model_type"], **values)
    except Exception as error:
        raise ConfigError(f"{source}: config.json does not fit {config['model_type']!r}: {error}") from error


def _model_class(transformers: Any, config: Mapping[str, Any], source: str) -> type:
    """The transformers class the config's ``architectures`` names among those mapped to its model type."""
    from transformers.models.auto import configuration_auto, modeling_auto

    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in configuration_auto.CONFIG_MAPPING_NAMES:
        raise CheckpointError(
            f"{source}: config.json names model type {str(model_type)[:80]!r}, which the installed transformers "
            f"({transformers.__version__}) does not know; introspect does not fetch code for it"
        )
    known = _classes_for(modeling_auto, model_type)
    architectures = config.get("architectures") or []
    wanted = architectures[0] if isinstance(architectures, list) and architectures else None
    if wanted is None:
        wanted = modeling_auto.MODEL_MAPPING_NAMES.get(model_type)
    if not isinstance(wanted, str) or wanted not in known:
        raise CheckpointError(
            f"{source}: config.json names architecture {str(wanted)[:80]!r}, which transformers does not map to "
            f"model type {model_type!r} (known: {', '.join(sorted(known))[:300]})"
        )
    model_class = getattr(transformers, wanted, None)
    if not isinstance(model_class, type) or not issubclass(model_class, transformers.PreTrainedModel):
        raise CheckpointError(f"{source}: {wanted} is not a model class of the installed transformers")
    return model_class


def _classes_for(modeling_auto: Any, model_type: str) -> set[str]:
    """Every model class name transformers' auto mappings give for ``model_type``."""
    names: set[str] = set()
    for attribute in dir(modeling_auto):
        mapping = getattr(modeling_auto, attribute)
        if attribute.endswith("_MAPPING_NAMES") and isinstance(mapping, dict):
            value = mapping.get(model_type)
            names.update(value if isinstance(value, (list, tuple)) else [value] if isinstance(value, str) else [])
    return {name for name in names if not name.endswith("Config")}


def _built(model_class: type, hf_config: Any, source: str) -> nn.Module:
    try:
        return model_class(hf_config)
    except Exception as error:  # a config that passed parsing may still not build
        raise ConfigError(f"{source}: {model_class.__name__} cannot be built from config.json: {error}") from error


def hf_tokenizer_metadata(folder: Path) -> dict[str, Any]:
    """``{"tokenizer_file": path}`` when the folder holds a tokenizer introspect can read as data, else ``{}``.

    Only the path is kept: the tokenizer is loaded when texts or tokens need it (:mod:`introspect.text`),
    so a subject stays plain to pickle, and a folder's bad tokenizer fails only what uses it.
    """
    found = tokenizer_file(folder)
    return {"tokenizer_file": str(found)} if found is not None else {}


def hf_details(config: Mapping[str, Any], model: nn.Module) -> dict[str, Any]:
    """What ``introspect info`` shows of a config: its model type and how many labels the model has."""
    labels = getattr(getattr(model, "config", None), "id2label", None)
    return {"model_type": config.get("model_type"), "labels": len(labels) if labels else None}


#: Tokens per random text probe; short keeps attention cheap, long enough for every analyzer.
SEQUENCE_LENGTH = 16
_CLASSIFIERS = ("ForImageClassification", "ForSequenceClassification")


def hf_task(model: nn.Module, config: Mapping[str, Any], preprocessor: Mapping[str, Any] | None) -> Task:
    """Task from config.json (labels, image size or vocabulary) and preprocessor_config.json (size, mean, std)."""
    # The built config's labels: save_pretrained leaves out id2label when it is the default LABEL_0, LABEL_1...
    labels = getattr(getattr(model, "config", None), "id2label", None) or {}
    ordered = sorted(labels.items(), key=lambda item: int(item[0]) if str(item[0]).isdigit() else 0)
    classifies = type(model).__name__.endswith(_CLASSIFIERS)
    image_shape = _image_shape(config, preprocessor or {})
    if image_shape is None and isinstance(config.get("vocab_size"), int):
        positions = config.get("max_position_embeddings")
        input_shape: tuple[int, ...] | None = (min(SEQUENCE_LENGTH, positions or SEQUENCE_LENGTH),)
    else:
        input_shape = image_shape
    return Task(
        kind="classification" if classifies and ordered else "unknown",
        input_shape=input_shape,
        image_shape=image_shape,
        class_names=tuple(str(name) for _, name in ordered) if classifies else (),
        normalization=_normalization(preprocessor or {}),
    )


def _image_shape(config: Mapping[str, Any], preprocessor: Mapping[str, Any]) -> tuple[int, int, int] | None:
    """(C, H, W): the size the model is built for, else the one its preprocessor resizes to."""
    channels = config.get("num_channels", 3)
    side = config.get("image_size")
    size = preprocessor.get("size")
    if isinstance(side, int):
        height = width = side
    elif isinstance(side, list) and len(side) == 2:
        height, width = side
    elif isinstance(size, int):
        height = width = size
    elif isinstance(size, dict) and "height" in size and "width" in size:
        height, width = size["height"], size["width"]
    else:
        return None
    if not all(isinstance(v, int) and 0 < v <= 4096 for v in (channels, height, width)):
        return None
    return (channels, height, width)


def _normalization(preprocessor: Mapping[str, Any]) -> dict[str, list[float]] | None:
    mean, std = preprocessor.get("image_mean"), preprocessor.get("image_std")
    if isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) and mean:
        return {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}
    return None
