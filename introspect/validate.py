"""Checks on every value a checkpoint file sets, made where the value enters.

Each check refuses bad input with one sentence naming the field (``task.image_shape``,
``history['train_loss']``, ``architecture 'lenet5': config field 'channels'``), so a hostile or
broken file ends in exit code 2 instead of a traceback deep inside an analyzer, ``json.dumps``
or a multi-gigabyte allocation. Containers are walked only to a bounded depth: a list nested
10,000 deep is refused at :data:`~introspect.budget.MAX_NESTING`, never recursed into.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from introspect._lazy import lazy_import
from introspect.budget import MAX_NESTING
from introspect.errors import CheckpointError

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")

TASK_KINDS = ("classification", "regression", "unknown")
MAX_CLASS_NAMES = 10_000
MAX_NAME_LENGTH = 200
#: Longest string any plain field (metrics, hyperparameters, extras, config) may hold.
MAX_STRING_LENGTH = 100_000
#: Leaves (numbers, strings, tensor elements) one plain field may hold: far above any real
#: history or metrics, far below what would make the page or manifest huge.
MAX_ITEMS = 1_000_000
#: Leaves an architecture config may hold: each list entry can become a layer to build.
MAX_CONFIG_ITEMS = 10_000
MAX_DIMENSIONS = 8
#: Largest size of one dimension of a shape.
MAX_SIZE = 1 << 31
MAX_INT_BITS = 64
MAX_CHANNELS = 10_000
MAX_DATASET_LENGTH = 1_000


class FieldError(CheckpointError):
    """A value the file sets is of the wrong type, size or depth; the message names the field."""


class ConfigError(FieldError, ValueError):
    """An architecture config that does not fit its dataclass (a ``ValueError`` too, as trainers expect)."""


def shown(value: Any) -> str:
    """A short description of ``value`` for a message: the value itself when small, else its type."""
    if isinstance(value, int) and not isinstance(value, bool) and not is_number(value):
        return f"an integer of {value.bit_length():,} bits"  # repr() refuses ints of over 4300 digits
    small = isinstance(value, (bool, float, str)) or is_number(value) or value is None
    if isinstance(value, (list, tuple)) and len(value) <= 8:
        small = all(isinstance(item, (bool, float, str)) or is_number(item) or item is None for item in value)
    if small:
        text = repr(list(value) if isinstance(value, tuple) else value)
        return text if len(text) <= 60 else text[:57] + "..."
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, (list, tuple, Mapping)):
        return f"a {type(value).__name__} of {len(value)} item(s)"
    return f"a {type(value).__name__}"


def mapping_or_empty(value: Any, field: str) -> dict[str, Any]:
    """``value`` as a dict with string keys; ``None`` is an empty dict.

    Raises:
        FieldError: ``value`` is something else, or has a key that is not a string.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise FieldError(f"{field} must be a dict, not {shown(value)}")
    for key in value:
        if not isinstance(key, str):
            raise FieldError(f"{field} must have string keys, not {shown(key)}")
    return dict(value)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a float or an int of at most 64 bits (a bool is not a number here)."""
    if isinstance(value, bool):
        return False
    # A pickled int can have millions of digits; float() and json.dumps fail on such numbers.
    return isinstance(value, float) or (isinstance(value, int) and value.bit_length() <= MAX_INT_BITS)


# --- plain values: metrics, hyperparameters, extras, configs ------------------------------------


@dataclasses.dataclass
class _Walk:
    """The limits of one walk over a plain value, and how many leaves it has met so far."""

    field: str
    max_nesting: int
    max_items: int
    count_tensor_elements: bool
    items: int = 0

    def add(self, count: int) -> None:
        self.items += count
        if self.items > self.max_items:
            raise FieldError(f"{self.field} holds more than {self.max_items:,} values")


def check_plain(
    value: Any,
    field: str,
    *,
    max_nesting: int = MAX_NESTING,
    max_items: int = MAX_ITEMS,
    count_tensor_elements: bool = True,
) -> None:
    """Refuse a value nested deeper than ``max_nesting``, with more than ``max_items`` leaves or a huge string.

    Args:
        value: plain values (numbers, strings, lists, dicts) and tensors, as ``weights_only`` loads them.
        field: the name the message gives, e.g. ``metrics``.
        max_nesting: containers allowed inside each other.
        max_items: leaves allowed in all; with ``count_tensor_elements`` a tensor counts its elements.
        count_tensor_elements: count a tensor's elements (it will be turned into a list) or as one leaf.
    """
    _walk(value, 0, _Walk(field, max_nesting, max_items, count_tensor_elements))


def _walk(value: Any, depth: int, walk: _Walk) -> None:
    if isinstance(value, str):
        if len(value) > MAX_STRING_LENGTH:
            raise FieldError(
                f"{walk.field} holds a string of {len(value):,} characters, more than {MAX_STRING_LENGTH:,}"
            )
        walk.add(1)
    elif isinstance(value, torch.Tensor):
        walk.add(int(value.numel()) if walk.count_tensor_elements else 1)
    elif isinstance(value, int) and not is_number(value) and not isinstance(value, bool):
        raise FieldError(f"{walk.field} holds an integer of {value.bit_length():,} bits, more than {MAX_INT_BITS}")
    elif isinstance(value, (Mapping, list, tuple, set, frozenset)):
        # Recursion stops at the depth limit, so a list nested 10,000 deep cannot exhaust the stack.
        if depth >= walk.max_nesting:
            raise FieldError(f"{walk.field} is nested more than {walk.max_nesting} levels deep")
        walk.add(len(value))
        for item in value.values() if isinstance(value, Mapping) else value:
            _walk(item, depth + 1, walk)
        for key in value.keys() if isinstance(value, Mapping) else ():
            _walk(key, depth + 1, walk)
    else:
        walk.add(1)


def checked_plain_mapping(value: Any, field: str, max_nesting: int = MAX_NESTING) -> dict[str, Any]:
    """A dict of plain values (``metrics``, ``hyperparameters``), checked by :func:`check_plain`."""
    values = mapping_or_empty(value, field)
    check_plain(values, field, max_nesting=max_nesting)
    return values


def history_of(value: Any) -> dict[str, Any]:
    """The training history: per-epoch lists of numbers (``None`` for a missing epoch) and single numbers.

    Raises:
        FieldError: not a dict, an entry that is neither a number nor a flat list of numbers, or
            more than :data:`MAX_ITEMS` values in all.
    """
    history = mapping_or_empty(value, "history")
    total = 0
    for key, series in history.items():
        if series is None or isinstance(series, bool) or is_number(series) or _is_scalar_tensor(series):
            continue  # a single value such as best_epoch
        if not isinstance(series, (list, tuple)):
            raise FieldError(f"history[{key!r}] must be a list of numbers (one per epoch), not {shown(series)}")
        total += len(series)
        if total > MAX_ITEMS:
            raise FieldError(f"history holds more than {MAX_ITEMS:,} values")
        # Items are checked one level down only: a nested list is refused here, not walked into.
        for item in series:
            if item is not None and not is_number(item) and not _is_scalar_tensor(item):
                raise FieldError(f"history[{key!r}] must be a list of numbers (one per epoch), but holds {shown(item)}")
    return history


def _is_scalar_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.numel() == 1


def tensor_dict(value: Any, field: str) -> dict[str, torch.Tensor]:
    """A dict of named tensors (a state_dict); ``None`` is empty.

    Raises:
        FieldError: not a dict, a key that is not a string, or a value that is not a tensor.
    """
    tensors = mapping_or_empty(value, field)
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise FieldError(f"{field}[{name!r}] must be a tensor, not {shown(tensor)}")
    return tensors


# --- the task -------------------------------------------------------------------------------------


def task_kind(value: Any) -> str:
    """``task.kind``: one of :data:`TASK_KINDS`; missing means ``unknown``."""
    if value is None or value == "":
        return "unknown"
    if not isinstance(value, str) or value not in TASK_KINDS:
        raise FieldError(f"task.kind must be one of {', '.join(TASK_KINDS)}, not {shown(value)}")
    return value


def shape_or_none(value: Any, field: str, length: int | None = None) -> tuple[int, ...] | None:
    """A shape of positive integers (``None`` when missing), e.g. ``task.input_shape``.

    Args:
        value: a list or tuple of integers.
        field: the name the message gives.
        length: the number of sizes required (3 for an image's C, H, W), else 1 to :data:`MAX_DIMENSIONS`.
    """
    if value is None or (isinstance(value, (list, tuple)) and not value):
        return None
    wanted = f"{length} positive integers" if length else f"1 to {MAX_DIMENSIONS} positive integers"
    if not isinstance(value, (list, tuple)) or not (len(value) == length if length else len(value) <= MAX_DIMENSIONS):
        raise FieldError(f"{field} must be {wanted}, not {shown(value)}")
    sizes = []
    for size in value:
        index = _index_or_none(size)
        if index is None or not 1 <= index <= MAX_SIZE:
            raise FieldError(f"{field} must be {wanted}, not {shown(value)}")
        sizes.append(index)
    return tuple(sizes)


def _index_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def class_names(value: Any) -> tuple[str, ...]:
    """``task.class_names``: at most :data:`MAX_CLASS_NAMES` strings of at most :data:`MAX_NAME_LENGTH` characters."""
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise FieldError(f"task.class_names must be a list of strings, not {shown(value)}")
    if len(value) > MAX_CLASS_NAMES:
        raise FieldError(f"task.class_names has {len(value):,} names, more than {MAX_CLASS_NAMES:,}")
    for name in value:
        if not isinstance(name, str):
            raise FieldError(f"task.class_names must be a list of strings, but holds {shown(name)}")
        if len(name) > MAX_NAME_LENGTH:
            raise FieldError(f"task.class_names holds a name of {len(name):,} characters, more than {MAX_NAME_LENGTH}")
    return tuple(value)


def normalization(value: Any) -> dict[str, list[float]] | None:
    """``task.normalization``: ``{"mean": [...], "std": [...]}`` of finite numbers, one per channel."""
    values = mapping_or_empty(value, "task.normalization")
    if not values:
        return None
    if set(values) != {"mean", "std"}:
        keys = ", ".join(repr(key) for key in sorted(values)[:5])
        raise FieldError(f"task.normalization must have exactly the keys 'mean' and 'std', not {keys}")
    result = {}
    for key, numbers in values.items():
        numbers = [numbers] if is_number(numbers) else numbers
        if (
            not isinstance(numbers, (list, tuple))
            or not 0 < len(numbers) <= MAX_CHANNELS
            or not all(is_number(number) and math.isfinite(number) for number in numbers)
        ):
            raise FieldError(
                f"task.normalization[{key!r}] must be a list of finite numbers (one per channel), not {shown(numbers)}"
            )
        result[key] = [float(number) for number in numbers]
    return result


def domain(value: Any) -> tuple[float, float] | None:
    """``task.domain``: two finite numbers, low < high."""
    if value is None or (isinstance(value, (list, tuple)) and not value):
        return None
    finite = isinstance(value, (list, tuple)) and all(is_number(v) and math.isfinite(v) for v in value)
    if not finite or len(value) != 2:
        raise FieldError(f"task.domain must be two finite numbers (low, high), not {shown(value)}")
    low, high = float(value[0]), float(value[1])
    if not low < high:
        raise FieldError(f"task.domain must have low < high, not ({low:g}, {high:g})")
    return low, high


def dataset_name(value: Any) -> str:
    """``task.dataset``: a string of at most :data:`MAX_DATASET_LENGTH` characters."""
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_DATASET_LENGTH:
        raise FieldError(
            f"task.dataset must be a string of at most {MAX_DATASET_LENGTH:,} characters, not {shown(value)}"
        )
    return value


# --- probes ---------------------------------------------------------------------------------------


def probe_tensors(inputs: Any, labels: Any, source: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Probe inputs (a floating-point batch, at least 2 dimensions, at least one input) and labels.

    Raises:
        CheckpointError: naming ``source`` (the probe file, or ``FILE: probe``).
    """
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 2:
        raise CheckpointError(
            f"{source}: a probe must be a batch tensor of inputs (at least 2 dimensions) "
            f"or a dict with 'inputs', not {shown(inputs)}"
        )
    if not inputs.is_floating_point():
        raise CheckpointError(f"{source}: probe inputs must be floating point, not {inputs.dtype}")
    if inputs.shape[0] < 1:
        raise CheckpointError(f"{source}: the probe holds no inputs (its first dimension is 0)")
    if labels is not None and (
        not isinstance(labels, torch.Tensor) or labels.dim() < 1 or labels.shape[0] != inputs.shape[0]
    ):
        raise CheckpointError(f"{source}: probe labels must be a tensor with one entry per input, not {shown(labels)}")
    return inputs, labels
