"""Reading a training history: the one definition of its best epoch.

A history is a checkpoint's dict of per-epoch lists (``epoch``, ``train_loss``, ``val_loss``,
``val_accuracy``...). Its best epoch is the epoch of the lowest validation loss: the usual
early-stopping definition, and the weights a trainer keeps as "best". Loss rather than accuracy
because it is what training minimises, it exists for regression as well as classification, and it
is continuous, so it does not tie over many epochs the way accuracy on a small validation set does.
Without any validation loss the lowest training loss stands in; ties go to the earliest epoch.

Plain Python, no torch or numpy, so anything (the CLI included) may call it cheaply::

    best_epoch({"epoch": [1, 2, 3], "val_loss": [0.9, 0.4, 0.5]})  # 2
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["best_epoch", "best_index"]

#: The series that decide the best epoch, in order of preference.
WATCHED = ("val_loss", "train_loss")


def best_epoch(history: Mapping[str, Any]) -> int | None:
    """The epoch of the lowest validation loss (else of the lowest training loss), or ``None``.

    Args:
        history: per-epoch series; ``history["epoch"]`` numbers the epochs (1, 2, ... when it is
            missing or does not match). Values that are not finite numbers are skipped, so an
            epoch without validation (NaN) never counts as the best.

    Returns:
        The epoch's number as ``history["epoch"]`` gives it, or ``None`` when neither loss has
        a finite value.
    """
    index = best_index(history)
    if index is None:
        return None
    epochs = history.get("epoch")
    if isinstance(epochs, (list, tuple)) and index < len(epochs):
        number = _finite(epochs[index])
        if number is not None and number == int(number):
            return int(number)
    return index + 1


def best_index(history: Mapping[str, Any]) -> int | None:
    """The position (from 0) of the best epoch in the history's series, or ``None``."""
    for key in WATCHED:
        index = _argmin(history.get(key))
        if index is not None:
            return index
    return None


def _argmin(values: Any) -> int | None:
    """Position of the smallest finite number in ``values``, the earliest on ties."""
    if values is None or isinstance(values, (str, bytes, Mapping)):
        return None
    try:
        items = list(values)
    except TypeError:
        return None
    best, best_value = None, math.inf
    for index, value in enumerate(items):
        number = _finite(value)
        if number is not None and (best is None or number < best_value):
            best, best_value = index, number
    return best


def _finite(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
