"""Checkpoints as the Hugging Face Hub holds them: safetensors files, sharded or not, and model folders.

A path may name a safetensors file, any shard of a sharded checkpoint (the index beside it then
names the rest), the ``*.safetensors.index.json`` itself, or a folder that ``save_pretrained`` or
timm wrote. A ``config.json`` beside the weights rebuilds the model: with transformers' own classes
when it names a ``model_type``, with timm when it names an ``architecture``. ``--arch`` always wins.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from introspect import hf_models, timm_models
from introspect.architectures import build_arch
from introspect.checkpoint import load_state_into, read_safely, unwrap_state_dict
from introspect.errors import CheckpointError
from introspect.parts import LoadOptions, Parts
from introspect.readers.archive import MODEL_FOLDER, SAFETENSORS, SAFETENSORS_INDEX, sniff_kind
from introspect.readers.safetensors_file import read_safetensors
from introspect.readers.sharded import INDEX_SUFFIX, index_naming, read_json_file, read_sharded

CONFIG_NAME = "config.json"
PREPROCESSOR_NAME = "preprocessor_config.json"
MAX_CONFIG_BYTES = 16 << 20
#: What a model folder's weights are called, in the order they are looked for.
WEIGHT_NAMES = ("model.safetensors", f"model{INDEX_SUFFIX}", "pytorch_model.bin")
WEIGHTS_ONLY_NOTE = (
    "the file holds only weights, so no forward pass can run (pass --arch MODULE:CALLABLE or --arch timm:NAME, "
    "or put the model's config.json beside it)"
)


@dataclasses.dataclass(frozen=True)
class Located:
    """The weights a path names, and the configs found beside them."""

    weights: Path
    kind: str
    folder: Path
    config: dict[str, Any] | None
    preprocessor: dict[str, Any] | None


def locate(path: Path, kind: str) -> Located:
    """The weights file, its kind and the configs beside it for a file, a shard, an index or a folder."""
    folder = path if kind == MODEL_FOLDER else path.parent
    weights, weights_kind = path, kind
    if kind == MODEL_FOLDER:
        weights = _folder_weights(path)
        weights_kind = sniff_kind(weights)
    elif kind == SAFETENSORS:
        index = index_naming(path)
        if index is not None:
            weights, weights_kind = index, SAFETENSORS_INDEX
    return Located(
        weights=weights,
        kind=weights_kind,
        folder=folder,
        config=_optional_json(folder / CONFIG_NAME, "config.json"),
        preprocessor=_optional_json(folder / PREPROCESSOR_NAME, "preprocessor config"),
    )


def _folder_weights(folder: Path) -> Path:
    for name in WEIGHT_NAMES:
        if (folder / name).is_file():
            return folder / name
    indexes = sorted(folder.glob(f"*{INDEX_SUFFIX}"))
    singles = sorted(folder.glob("*.safetensors"))
    if len(indexes) == 1:
        return indexes[0]
    if len(singles) == 1:
        return singles[0]
    if (folder / "pytorch_model.bin.index.json").is_file():
        raise CheckpointError(f"{folder}: holds sharded pytorch_model.bin files, which introspect does not read yet")
    raise CheckpointError(f"{folder}: holds no weights introspect can pick ({', '.join(WEIGHT_NAMES)})")


def _optional_json(path: Path, what: str) -> dict[str, Any] | None:
    return read_json_file(path, MAX_CONFIG_BYTES, what) if path.is_file() else None


def hub_parts(path: Path, kind: str, options: LoadOptions) -> Parts:
    """A safetensors file, a sharded checkpoint or a model folder as :class:`Parts`, the model rebuilt if it can be."""
    located = locate(path, kind)
    if located.config and hf_models.is_hf_config(located.config):
        hf_models.check_hf_config(located.config, str(path))  # remote code is refused before any weight is read
    state_dict, details = _read_weights(located, options)
    if located.weights != path:  # a folder or one shard was given: say which file was read
        details["weights"] = located.weights.name
    parts = Parts(state_dict=state_dict, model_note=WEIGHTS_ONLY_NOTE)
    parts.metadata = {"format": _format_name(kind, located), "details": details}
    if options.arch:
        rebuild_with_arch(parts, options, str(path), located.config)
    elif located.config and hf_models.is_hf_config(located.config):
        _rebuild_hf(parts, located, options, str(path))
    elif timm_models.is_timm_config(located.config):
        rebuild_with_arch(parts, options, str(path), located.config, reference="timm")
    return parts


def _read_weights(located: Located, options: LoadOptions) -> tuple[dict[str, Any], dict[str, Any]]:
    if located.kind == SAFETENSORS:
        tensors, metadata = read_safetensors(located.weights, options.budget)
        details: dict[str, Any] = {"file_metadata": metadata} if metadata else {}
    elif located.kind == SAFETENSORS_INDEX:
        tensors, details = read_sharded(located.weights, options.budget)
    else:
        payload = read_safely(located.weights, options.budget, located.kind)
        found = unwrap_state_dict(payload) if isinstance(payload, dict) else None
        if found is None:
            raise CheckpointError(f"{located.weights}: holds a {type(payload).__name__}, not a state_dict")
        tensors, details = found[0], {}
    details["tensors"] = len(tensors)
    return tensors, details


def _format_name(kind: str, located: Located) -> str:
    if located.config and hf_models.is_hf_config(located.config):
        return "hugging-face-folder"
    if timm_models.is_timm_config(located.config):
        return "timm-folder"
    return (
        "safetensors-sharded" if located.kind == SAFETENSORS_INDEX else located.kind if kind == MODEL_FOLDER else kind
    )


def _rebuild_hf(parts: Parts, located: Located, options: LoadOptions, source: str) -> None:
    config = located.config or {}
    parts.model = hf_models.build_hf_model(config, parts.state_dict, options.budget, source)
    parts.task = hf_models.hf_task(parts.model, config, located.preprocessor)
    parts.model_note = f"rebuilt as transformers' {type(parts.model).__name__} from config.json"
    parts.metadata.update(hf_models.hf_tokenizer_metadata(located.folder))
    parts.metadata["details"].update(
        {k: v for k, v in hf_models.hf_details(config, parts.model).items() if v is not None}
    )
    if parts.task.normalization:
        parts.metadata["details"]["preprocessing"] = dict(parts.task.normalization)


def rebuild_with_arch(
    parts: Parts, options: LoadOptions, source: str, config: dict[str, Any] | None = None, reference: str | None = None
) -> None:
    """Build ``reference`` or ``options.arch`` (``MODULE:CALLABLE``, ``timm:NAME`` or ``timm``), load the
    weights, and take the network's task (input size, normalization) when the file gave none."""
    model, task = build_arch(reference or str(options.arch), options.arch_kwargs, options.budget, config)
    load_state_into(model, parts.state_dict, source)
    parts.model = model
    parts.model_note = f"built by --arch {options.arch}" if options.arch else f"built by timm from {CONFIG_NAME}"
    if task is not None and parts.task.input_shape is None:
        parts.task = task
        if task.normalization:
            parts.metadata.setdefault("details", {})["preprocessing"] = dict(task.normalization)
