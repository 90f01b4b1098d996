"""Probe inputs: the user's, the file's, or a seeded random batch, always within the budget."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from introspect import validate
from introspect._lazy import lazy_import
from introspect.budget import MAX_SYNTHETIC_INPUT_ELEMENTS, Budget, BudgetError
from introspect.checkpoint import read_safely, sniff_format
from introspect.errors import CheckpointError
from introspect.parts import LoadOptions, Parts

if TYPE_CHECKING:
    import torch
    from torch import nn
else:
    torch = lazy_import("torch")

SYNTHETIC_PROBE_SIZE = 16
#: Tokens per sequence of a random text probe when nothing declares a length.
SEQUENCE_LENGTH = 16


def attach_probe(parts: Parts, options: LoadOptions, path: Path) -> None:
    budget = options.budget
    if options.probe is not None:
        parts.probe_inputs, parts.probe_labels = read_probe(options.probe, budget)
        parts.extra["probe_is_synthetic"] = False
    if parts.probe_inputs is not None:
        _cut_probe(parts, budget)
    input_shape, field = _input_shape(parts, options, path)
    if input_shape is not None:
        # An input of three dimensions is shown as itself, even where the task declared another size
        # (--input-shape 3,32,32 for a network whose pretrained_cfg says 224).
        image_shape = input_shape if len(input_shape) == 3 else parts.task.image_shape
        parts.task = dataclasses.replace(parts.task, input_shape=input_shape, image_shape=image_shape)
    if parts.probe_inputs is None and parts.model is not None and input_shape is not None:
        vocabulary = token_vocabulary(parts.model)
        if vocabulary is None:
            parts.probe_inputs = synthetic_probe(input_shape, field, budget, options.seed)
        else:
            parts.probe_inputs = token_probe(input_shape, vocabulary, budget, options.seed)
        parts.extra["probe_is_synthetic"] = True
    if options.probe is not None and parts.model is not None:
        _check_probe_fits(parts.model, parts.probe_inputs, options.probe)


def _cut_probe(parts: Parts, budget: Budget) -> None:
    """Keep the first ``budget.max_probe`` probe inputs, and say so in the metadata."""
    count = int(parts.probe_inputs.shape[0])
    if count <= budget.max_probe:
        return
    # Copies, so that the full batch is freed rather than kept alive by a view of it.
    parts.probe_inputs = parts.probe_inputs[: budget.max_probe].clone()
    if parts.probe_labels is not None:
        parts.probe_labels = parts.probe_labels[: budget.max_probe].clone()
    parts.metadata["probe_note"] = f"probe cut from {count} to {budget.max_probe} inputs (--max-probe)"


def _input_shape(parts: Parts, options: LoadOptions, path: Path) -> tuple[tuple[int, ...] | None, str]:
    """The shape of one input and where it came from (for messages): probe, option, task or a guess."""
    if parts.probe_inputs is not None:
        return tuple(parts.probe_inputs.shape[1:]), "the probe"
    if options.input_shape:
        return validate.shape_or_none(options.input_shape, "--input-shape"), "--input-shape"
    if parts.task.input_shape:
        return parts.task.input_shape, f"{path}: task.input_shape"
    if parts.model is not None and token_vocabulary(parts.model) is not None:
        return (SEQUENCE_LENGTH,), f"{path}: the sequence length of a random text probe"
    return guess_input_shape(parts.state_dict), f"{path}: the input shape guessed from the first weight"


def synthetic_probe(input_shape: Sequence[int], field: str, budget: Budget, seed: int = 0) -> torch.Tensor:
    """A seeded random probe of ``min(SYNTHETIC_PROBE_SIZE, budget.max_probe)`` inputs of ``input_shape``.

    Raises:
        BudgetError: one input would have more than ``MAX_SYNTHETIC_INPUT_ELEMENTS`` elements, or
            the probe would not fit the memory budget; ``field`` names where the shape came from.
    """
    elements = math.prod(input_shape)
    if elements > MAX_SYNTHETIC_INPUT_ELEMENTS:
        raise BudgetError(
            f"{field} {list(input_shape)} has {elements:,} elements per input, more than the "
            f"{MAX_SYNTHETIC_INPUT_ELEMENTS:,} a random probe may have (pass --probe FILE with real inputs)"
        )
    size = min(SYNTHETIC_PROBE_SIZE, budget.max_probe)
    budget.check_bytes(size * elements * 4, f"a random probe of {size} inputs of shape {list(input_shape)}")
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((size, *input_shape), generator=generator)


def token_vocabulary(model: nn.Module) -> int | None:
    """The vocabulary size when the model's first layer is an ``nn.Embedding`` (it takes token ids)."""
    first = next((module for module in model.modules() if not any(module.children())), None)
    return int(first.num_embeddings) if isinstance(first, torch.nn.Embedding) else None


def token_probe(input_shape: Sequence[int], vocabulary: int, budget: Budget, seed: int = 0) -> torch.Tensor:
    """Seeded random token ids in ``[0, vocabulary)``, ``min(SYNTHETIC_PROBE_SIZE, max_probe)`` sequences."""
    size = min(SYNTHETIC_PROBE_SIZE, budget.max_probe)
    elements = math.prod(input_shape)
    if elements > MAX_SYNTHETIC_INPUT_ELEMENTS:
        raise BudgetError(f"a random text probe of shape {list(input_shape)} is longer than a probe may be")
    budget.check_bytes(size * elements * 8, f"a random text probe of {size} sequences of shape {list(input_shape)}")
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocabulary, (size, *input_shape), generator=generator)


def read_probe(probe: Any, budget: Budget | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Probe inputs (and labels, if given) from a tensor or a file saved with ``torch.save``.

    A file is read by the same safe loader as checkpoints, its sizes checked against ``budget``.
    """
    if isinstance(probe, torch.Tensor):
        payload: Any = probe
    else:
        probe_path = Path(probe)
        payload = read_safely(probe_path, budget, sniff_format(probe_path))
    labels = None
    if isinstance(payload, Mapping):
        inputs, labels = payload.get("inputs"), payload.get("labels")
    else:
        inputs = payload
    return validate.probe_tensors(inputs, labels, str(probe))


def _check_probe_fits(model: nn.Module, inputs: torch.Tensor, source: Any) -> None:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(inputs[:1].to(next(iter(model.parameters()), inputs).device))
    except Exception as error:
        raise CheckpointError(
            f"{source}: probe inputs of shape {tuple(inputs.shape)} do not fit the model ({type(error).__name__}: "
            f"{str(error).splitlines()[0]})"
        ) from error
    finally:
        model.train(was_training)


def guess_input_shape(state_dict: Mapping[str, torch.Tensor]) -> tuple[int, ...] | None:
    """The input shape implied by the first weight: (in,) for dense, (C, 32|28, same) for conv."""
    for name, tensor in state_dict.items():
        if not name.endswith("weight") or not isinstance(tensor, torch.Tensor):
            continue
        if tensor.numel() == 0:
            return None  # an empty weight implies no usable input shape
        if tensor.dim() == 2:
            return (int(tensor.shape[1]),)
        if tensor.dim() == 4:
            channels = int(tensor.shape[1])
            side = 28 if channels == 1 else 32
            return (channels, side, side)
        return None
    return None
