"""Search spaces: the hyperparameters a search of one network varies, and the problem it trains.

A network's record carries its default space, a dict from ``--set`` key to :class:`Dimension`::

    SPACE = {**OPTIMIZER_SPACE, "dropout": float_range(0.0, 0.5, grid=(0.1, 0.3))}

:mod:`trainers.search` turns each candidate into ``--set`` overrides, builds the network's
:class:`SearchProblem` for it and runs the grid, random or Bayesian search.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from trainers.loop import AugmentFn, TensorSplit, TrainConfig


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One searched hyperparameter.

    Attributes:
        kind: ``categorical``, ``float`` or ``int``.
        choices: the values of a categorical dimension.
        low: lower bound of a numeric dimension.
        high: upper bound of a numeric dimension (inclusive).
        log: sample a float dimension on a log scale.
        grid: the values a grid search tries (a numeric range has no natural grid).
    """

    kind: str
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    grid: tuple[Any, ...] = ()

    def describe(self) -> str:
        """One line for the checkpoint: the choices or the range."""
        if self.kind == "categorical":
            return "one of " + ", ".join(map(as_text, self.choices))
        scale = " (log)" if self.log else ""
        return f"{self.kind} in [{self.low:g}, {self.high:g}]{scale}; grid {', '.join(map(as_text, self.grid))}"


def categorical(*choices: Any) -> Dimension:
    """A dimension taking one of ``choices`` (all of them in a grid search)."""
    return Dimension("categorical", choices=tuple(choices), grid=tuple(choices))


def log_float(low: float, high: float, grid: Sequence[float]) -> Dimension:
    """A float drawn log-uniformly from [low, high]; ``grid`` for grid search."""
    return Dimension("float", low=low, high=high, log=True, grid=tuple(grid))


def float_range(low: float, high: float, grid: Sequence[float]) -> Dimension:
    """A float drawn uniformly from [low, high]; ``grid`` for grid search."""
    return Dimension("float", low=low, high=high, grid=tuple(grid))


def int_range(low: int, high: int, grid: Sequence[int]) -> Dimension:
    """An integer drawn uniformly from [low, high]; ``grid`` for grid search."""
    return Dimension("int", low=low, high=high, grid=tuple(grid))


#: Learning rate, weight decay, optimizer and batch size: what every classifier's space starts from.
OPTIMIZER_SPACE = {
    "lr": log_float(1e-4, 1e-2, grid=(1e-3, 3e-3)),
    "weight_decay": log_float(1e-6, 1e-3, grid=(1e-5,)),
    "optimizer": categorical("adam", "sgd"),
    "batch_size": categorical(32, 64, 128),
}


@dataclasses.dataclass(frozen=True)
class SearchProblem:
    """What cross-validation needs from a network for one candidate configuration.

    Attributes:
        pool: the training data that the folds split (shaped as the model takes it).
        make_model: builds a fresh network with the candidate's config (same seed every call).
        train_config: the loop's settings with the candidate's overrides applied.
        augment: the training-batch augmentation, if the run uses one.
    """

    pool: TensorSplit
    make_model: Callable[[], nn.Module]
    train_config: TrainConfig
    augment: AugmentFn | None = None


def as_text(value: Any) -> str:
    """A parameter value as ``--set`` takes it (``true``, ``64,32``, ``0.001``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(as_text(item) for item in value)
    return str(value.item() if hasattr(value, "item") else value)


def as_plain(value: Any) -> Any:
    """A numpy scalar as a Python number, a tuple as a list (for CSV rows and checkpoints)."""
    if hasattr(value, "item"):
        return value.item()
    return list(value) if isinstance(value, tuple) else value
