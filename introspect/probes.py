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
    settle_task_kind(parts, options.task_kind)


def settle_task_kind(parts: Parts, chosen: str | None) -> None:
    """Set the task's kind from ``--task``, else, when the file did not say, from the probe's labels.

    Integer labels make a classification with classes 0 to the largest label (as the Python API
    infers for a module), floating-point labels a regression. ``--task classification`` without
    labels takes its classes from the width of the model's output on one probe input.
    """
    if chosen not in (None, "classification", "regression"):
        raise CheckpointError(f"--task must be classification or regression, not {str(chosen)[:40]!r}")
    task, labels = parts.task, parts.probe_labels
    kind = chosen or task.kind
    if kind == "unknown" and labels is not None and labels.numel():
        kind = "regression" if labels.is_floating_point() else "classification"
    if kind == task.kind or kind == "unknown":
        return
    names = task.class_names
    if kind == "classification" and not names:
        count = int(labels.max()) + 1 if labels is not None and labels.numel() and not labels.is_floating_point() else 0
        count = max(count, _output_width(parts))
        names = tuple(str(index) for index in range(count))
    parts.task = dataclasses.replace(task, kind=kind, class_names=names if kind == "classification" else ())


def _output_width(parts: Parts) -> int:
    """Scores per input of the model on its first probe input (0 when there is no model or probe)."""
    if parts.model is None or parts.probe_inputs is None or not len(parts.probe_inputs):
        return 0
    from introspect.model_output import logits_of

    model, was_training = parts.model, parts.model.training
    model.eval()
    try:
        with torch.no_grad():
            outputs = logits_of(
                model(parts.probe_inputs[:1].to(next(iter(model.parameters()), parts.probe_inputs).device))
            )
    except Exception:  # a probe that does not fit is reported by the analyzers that run it
        return 0
    finally:
        model.train(was_training)
    return int(outputs.reshape(1, -1).shape[1]) if isinstance(outputs, torch.Tensor) else 0


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
    """The shape of one input and where it came from (for messages): probe, option, task, model or a guess.

    A guessed shape is also recorded as ``parts.metadata["input_shape_guess"]``, one sentence that
    failure messages repeat, since a wrong guess is the likeliest cause of an analyzer failing.
    """
    if parts.probe_inputs is not None:
        return tuple(parts.probe_inputs.shape[1:]), "the probe"
    if options.input_shape:
        return validate.shape_or_none(options.input_shape, "--input-shape"), "--input-shape"
    if parts.task.input_shape:
        return parts.task.input_shape, f"{path}: task.input_shape"
    declared = declared_input_shape(parts.model) if parts.model is not None else None
    if declared is not None:
        return declared[0], f"{path}: {declared[1]}"
    if parts.model is not None and token_vocabulary(parts.model) is not None:
        return (SEQUENCE_LENGTH,), f"{path}: the sequence length of a random text probe"
    guess = input_shape_guess(parts.state_dict, parts.model)
    if guess is None:
        return None, f"{path}: no weight to guess the input shape from"
    parts.metadata["input_shape_guess"] = guess.sentence
    return guess.shape, f"{path}: the input shape guessed from {guess.weight}"


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


def declared_input_shape(model: nn.Module) -> tuple[tuple[int, ...], str] | None:
    """The input shape a built model declares, and where it says so; ``None`` when it declares none.

    timm models carry ``pretrained_cfg["input_size"]``; torchvision's VisionTransformer keeps its
    ``image_size`` (it refuses any other); a transformers vision model has ``config.image_size``.
    """
    pretrained = getattr(model, "pretrained_cfg", None)
    if isinstance(pretrained, Mapping) and _is_sizes(pretrained.get("input_size"), 3):
        return tuple(int(size) for size in pretrained["input_size"]), "the model's pretrained_cfg['input_size']"
    for owner, where in ((model, "the model's image_size"), (getattr(model, "config", None), "config.image_size")):
        side = getattr(owner, "image_size", None)
        height_width = (side, side) if _is_sizes(side, None) else tuple(side) if _is_sizes(side, 2) else None
        if height_width is not None:
            channels = getattr(owner, "num_channels", None)
            channels = channels if _is_sizes(channels, None) else _first_conv_channels(model)
            return (int(channels), *(int(size) for size in height_width)), where
    return None


def _is_sizes(value: object, length: int | None) -> bool:
    """Whether ``value`` is a positive int (``length`` None) or a sequence of ``length`` positive ints."""
    if length is None:
        return isinstance(value, int) and not isinstance(value, bool) and value > 0
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == length
        and all(_is_sizes(item, None) for item in value)
    )


def _first_conv_channels(model: nn.Module) -> int:
    """The input channels of the model's first 2-D convolution (an image model's patch embedding); else 3."""
    first = next((module for module in model.modules() if isinstance(module, torch.nn.Conv2d)), None)
    return int(first.in_channels) if first is not None else 3


#: Positions of a random Conv1d probe when nothing declares a length (at least a few kernel widths).
SIGNAL_LENGTH = 64
#: Which weight names the input when several could: a network's input layer is an embedding (token
#: ids), a convolution or a recurrent layer far more often than a dense layer, which is mostly a head.
_KIND_PRIORITY = ("embedding", "conv2d", "conv1d", "recurrent", "dense")


@dataclasses.dataclass(frozen=True)
class ShapeGuess:
    """An input shape read off one weight, and why.

    Attributes:
        shape: one input's shape, without the batch.
        weight: the name of the weight it came from (``lstm.weight_ih_l0``).
        reason: what the weight says and what was assumed, as a phrase.
    """

    shape: tuple[int, ...]
    weight: str
    reason: str

    @property
    def sentence(self) -> str:
        """The guess as a sentence for captions and failure messages."""
        return f"the input shape {list(self.shape)} was guessed from {self.weight} ({self.reason})"


def guess_input_shape(state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None) -> tuple[int, ...] | None:
    """The input shape implied by the weights (see :func:`input_shape_guess`), or ``None``."""
    guess = input_shape_guess(state_dict, model)
    return guess.shape if guess is not None else None


def input_shape_guess(state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None) -> ShapeGuess | None:
    """The input shape the input layer's weight implies, whatever order the weights come in.

    Each weight is classed (by its module's type when ``model`` is given, else by its name and
    rank) as an embedding, a 2-D or 1-D convolution, a recurrent layer's ``weight_ih_l0`` or a
    dense weight; the first of the most input-like kind decides (see ``_KIND_PRIORITY``), so a
    classifier whose head is defined before its LSTM is still guessed from the LSTM. Shapes:
    dense (in,); Conv2d (C, 28, 28) for one channel, else (C, 32, 32); Conv1d (C, 64 or more);
    recurrent (16, input_size), batch first; embedding (16,) token ids.
    """
    candidates = _candidates(_weight_kinds(model)) if model is not None else []
    if not candidates:  # no module the guesser knows (custom parameters): names and ranks are all there is
        candidates = _candidates(_named_kinds(state_dict))
    if not candidates:
        return None
    name, kind, tensor = min(candidates, key=lambda item: _KIND_PRIORITY.index(item[1]))
    if tensor.numel() == 0:
        return None  # an empty weight implies no usable input shape
    return _guess_from(name, kind, tensor)


def _candidates(kinds: dict[str, tuple[str, torch.Tensor]]) -> list[tuple[str, str, torch.Tensor]]:
    return [(name, kind, tensor) for name, (kind, tensor) in kinds.items() if kind in _KIND_PRIORITY]


def _guess_from(name: str, kind: str, tensor: torch.Tensor) -> ShapeGuess:
    size = int(tensor.shape[1]) if tensor.dim() > 1 else 0
    if kind == "embedding":
        reason = f"an embedding of {int(tensor.shape[0]):,} tokens; sequences of {SEQUENCE_LENGTH} token ids assumed"
        return ShapeGuess((SEQUENCE_LENGTH,), name, reason)
    if kind == "recurrent":
        reason = f"a recurrent layer's input size {size}; {SEQUENCE_LENGTH} time steps, batch first, assumed"
        return ShapeGuess((SEQUENCE_LENGTH, size), name, reason)
    if kind == "conv1d":
        length = max(SIGNAL_LENGTH, 4 * int(tensor.shape[2]))
        return ShapeGuess((size, length), name, f"a Conv1d's {size} input channels; a length of {length} assumed")
    if kind == "conv2d":
        side = 28 if size == 1 else 32
        return ShapeGuess((size, side, side), name, f"a Conv2d's {size} input channels; {side}x{side} images assumed")
    return ShapeGuess((size,), name, f"a dense layer's {size} inputs")


def _weight_kinds(model: nn.Module) -> dict[str, tuple[str, torch.Tensor]]:
    """Each parameter of ``model`` by name, classed by the module that holds it, in definition order."""
    kinds: dict[str, tuple[str, torch.Tensor]] = {}
    for module_name, module in model.named_modules():
        for name, parameter in module.named_parameters(recurse=False):
            kind = "other"
            if isinstance(module, torch.nn.Embedding) and name == "weight":
                kind = "embedding"
            elif isinstance(module, torch.nn.RNNBase) and name == "weight_ih_l0":
                kind = "recurrent"
            elif isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d)) and name == "weight":
                kind = f"conv{parameter.dim() - 2}d"
            elif isinstance(module, torch.nn.Linear) and name == "weight":
                kind = "dense"
            kinds[f"{module_name}.{name}" if module_name else name] = (kind, parameter.detach())
    return kinds


def _named_kinds(state_dict: Mapping[str, torch.Tensor]) -> dict[str, tuple[str, torch.Tensor]]:
    """Each weight of a state_dict classed by its name and rank, when no module says what it is."""
    kinds: dict[str, tuple[str, torch.Tensor]] = {}
    for name, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            continue
        kind = "other"
        if name.endswith("weight_ih_l0") and tensor.dim() == 2:
            kind = "recurrent"
        elif name.endswith("weight") and tensor.dim() == 2:
            kind = "embedding" if "embed" in name.rpartition(".")[0].lower() else "dense"
        elif name.endswith("weight") and tensor.dim() in (3, 4):
            kind = f"conv{tensor.dim() - 2}d"
        kinds[name] = (kind, tensor)
    return kinds
