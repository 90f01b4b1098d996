"""Readers for each kind of file, turning it into :class:`~introspect.parts.Parts`.

``torch.save`` files go through the safe torch reader (or full unpickling with ``trust_code``);
TorchScript and ``torch.export`` archives through introspect's own readers unless the user
trusts the file's code.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from introspect._lazy import lazy_import
from introspect.budget import BudgetError
from introspect.checkpoint import (
    FORMAT_KEY,
    read_safely,
    read_trusting,
    unwrap_state_dict,
)
from introspect.errors import CheckpointError
from introspect.hub import hub_parts
from introspect.lightning import lightning_details
from introspect.own_format import introspect_parts
from introspect.parts import LoadOptions, Parts
from introspect.readers.archive import MODEL_FOLDER, SAFETENSORS, SAFETENSORS_INDEX
from introspect.readers.exported import read_exported
from introspect.readers.tensors import check_loaded_tensor
from introspect.readers.torchscript import read_scripted_weights
from introspect.subject import Task

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")


def read_parts(path: Path, kind: str, options: LoadOptions) -> Parts:
    if kind in (SAFETENSORS, SAFETENSORS_INDEX, MODEL_FOLDER):
        parts = hub_parts(path, kind, options)
    elif kind == "torchscript":
        parts = _scripted_parts(path, options)
    elif kind == "export":
        parts = _exported_parts(path, options)
    else:
        parts = _pickled_parts(path, kind, options)
    parts.state_dict = {name: check_loaded_tensor(name, tensor, str(path)) for name, tensor in parts.state_dict.items()}
    return parts


def _pickled_parts(path: Path, kind: str, options: LoadOptions) -> Parts:
    try:
        payload = read_safely(path, options.budget, kind)
    except BudgetError:
        raise
    except CheckpointError:
        if not options.trusted:
            raise
        payload = read_trusting(path)
    if isinstance(payload, Mapping) and FORMAT_KEY in payload:
        return introspect_parts(payload, path, options)
    if isinstance(payload, torch.nn.Module):
        return Parts(
            state_dict=payload.state_dict(),
            model=payload,
            model_note="a pickled module, loaded with --trust-code",
            metadata={"format": "pickled-module"},
        )
    if isinstance(payload, Mapping):
        found = unwrap_state_dict(payload)
        if found is not None:
            state_dict, extras = found
            note = (
                "the file holds only weights, so no forward pass can run (pass --arch MODULE:CALLABLE to rebuild "
                "the model from your code)"
            )
            lightning = lightning_details(payload)
            if lightning is not None:
                return Parts(state_dict=state_dict, model_note=note, metadata={"format": "lightning", **lightning})
            return Parts(state_dict=state_dict, model_note=note, metadata={"format": "state_dict", "wrapper": extras})
    raise CheckpointError(f"{path}: holds a {type(payload).__name__}, which is neither a model nor a state_dict")


def _scripted_parts(path: Path, options: LoadOptions) -> Parts:
    if not options.trusted:
        note = (
            "a TorchScript archive: running it would run code from the file, so only its weights were read (pass "
            "--trust-code to run it)"
        )
        return Parts(
            state_dict=read_scripted_weights(path, options.budget), model_note=note, metadata={"format": "torchscript"}
        )
    try:
        with warnings.catch_warnings():  # TorchScript's deprecation notice is not the user's problem
            warnings.simplefilter("ignore", FutureWarning)
            model = torch.jit.load(str(path), map_location="cpu")
    except Exception as error:
        raise CheckpointError(
            f"{path}: is a TorchScript archive that cannot be loaded ({type(error).__name__})"
        ) from error
    return Parts(
        state_dict=dict(model.state_dict()),
        model=model,
        model_note="a TorchScript archive, run with --trust-code",
        metadata={"format": "torchscript"},
    )


def _exported_parts(path: Path, options: LoadOptions) -> Parts:
    if options.trusted:
        try:
            program = torch.export.load(str(path))
        except Exception as error:
            raise CheckpointError(
                f"{path}: is a torch.export archive that cannot be loaded ({type(error).__name__}: {error})"
            ) from error
        example = program.example_inputs
        parts = Parts(
            state_dict=dict(program.state_dict), model_note="a torch.export program, loaded with --trust-code"
        )
    else:
        read = read_exported(path, options.budget)
        program, example = read.program, read.example_inputs
        parts = Parts(state_dict=read.state_dict, model_note="a torch.export program of pure tensor ops")
        if read.refused:
            reasons = "; ".join(read.refused)
            parts.model_note = (
                f"a torch.export program that was not run because {reasons} (pass --trust-code to run it)"
            )
            parts.warnings.append(
                f"{path}: {reasons}; only the weights that are stored as plain tensors were read (pass --trust-code "
                "to load all of it)"
            )
    parts.metadata = {"format": "torch.export"}
    parts.model = program.module() if program is not None else None
    if example and example[0] and isinstance(example[0][0], torch.Tensor):
        # The program's own example batch is the one input it is guaranteed to accept: exported
        # graphs may be specialized to its batch size.
        parts.probe_inputs = example[0][0].detach().clone()
        parts.task = Task(input_shape=tuple(example[0][0].shape[1:]))
    return parts
