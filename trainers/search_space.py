"""Search spaces and search problems: what a hyperparameter search of one recipe varies and trains.

A network module makes its recipe searchable by registering, next to the recipe, a factory that
turns the run's settings (with a candidate's ``--set`` overrides) into a :class:`SearchProblem`,
together with its default space of :class:`Dimension` s::

    @searchable("fashion-cnn", space={"lr": log_float(1e-4, 1e-2, grid=(1e-3, 3e-3))})
    def fashion_cnn_problem(settings: RunSettings) -> SearchProblem:
        ...

:mod:`trainers.search` runs the grid, random or Bayesian search over them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from trainers.catalog import RecipeError, RunSettings, get_recipe
from trainers.layers import seeded
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
        return f"{self.kind} in [{self.low:g}, {self.high:g}]{' (log)' if self.log else ''}; grid {', '.join(map(as_text, self.grid))}"


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


@dataclasses.dataclass(frozen=True)
class SearchProblem:
    """What cross-validation needs from a recipe for one candidate configuration.

    Attributes:
        pool: the training data that the folds split (shaped as the model takes it).
        make_model: builds a fresh network with the candidate's config (same seed every call).
        train_config: the loop's settings with the candidate's overrides applied.
        augment: the training-batch augmentation, if the recipe uses one.
    """

    pool: TensorSplit
    make_model: Callable[[], nn.Module]
    train_config: TrainConfig
    augment: AugmentFn | None = None


ProblemFn = Callable[[RunSettings], SearchProblem]


@dataclasses.dataclass(frozen=True)
class Searchable:
    """A recipe's search problem factory and its default search space."""

    problem: ProblemFn
    space: Mapping[str, Dimension]


_SEARCHABLE: dict[str, Searchable] = {}


def searchable(*names: str, space: Mapping[str, Dimension]) -> Callable[[ProblemFn], ProblemFn]:
    """Decorator registering ``problem(settings) -> SearchProblem`` for the recipes ``names``."""

    def decorator(problem: ProblemFn) -> ProblemFn:
        for name in names:
            _SEARCHABLE[name] = Searchable(problem, dict(space))
        return problem

    return decorator


def get_searchable(name: str) -> Searchable:
    """The search problem of recipe ``name``.

    Raises:
        RecipeError: unknown recipe, or one without a search space (lists the searchable ones).
    """
    if name not in _SEARCHABLE:
        get_recipe(name)  # imports every recipe module, so their search problems register
    if name not in _SEARCHABLE:
        raise RecipeError(f"{name} has no search space; searchable: {', '.join(sorted(_SEARCHABLE))}")
    return _SEARCHABLE[name]



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


# --- helpers for problems, and the regression MLP's space (its module belongs to the core trainers)

REGRESSION_SPACE = {
    "lr": log_float(1e-4, 3e-2, grid=(1e-3, 1e-2)),
    "weight_decay": log_float(1e-6, 1e-2, grid=(1e-4,)),
    "width": int_range(8, 128, grid=(32, 64)),
    "depth": int_range(0, 3, grid=(1, 2)),
    "dropout": float_range(0.0, 0.3, grid=(0.0,)),
    "activation": categorical("sigmoid", "tanh", "relu"),
    "optimizer": categorical("adam", "sgd"),
    "batch_size": categorical(8, 16, 32),
}


@searchable("regression-mlp", space=REGRESSION_SPACE)
def regression_mlp_problem(settings: RunSettings) -> SearchProblem:
    """The regression MLP on all of the task's training points (the folds split them)."""
    from trainers.data import regression_data
    from trainers.regression_mlp import TRAIN, RegressionMLP, RegressionMLPConfig
    from trainers.runs import configs_for

    config, train_config = configs_for(settings, RegressionMLPConfig(), TRAIN, quick_epochs=400)
    return SearchProblem(regression_data(seed=settings.seed).train, lambda: RegressionMLP(config), train_config)


# Learning rate, weight decay, optimizer and batch size: what every classifier's space starts from.
OPTIMIZER_SPACE = {
    "lr": log_float(1e-4, 1e-2, grid=(1e-3, 3e-3)),
    "weight_decay": log_float(1e-6, 1e-3, grid=(1e-5,)),
    "optimizer": categorical("adam", "sgd"),
    "batch_size": categorical(32, 64, 128),
}


def classifier_problem(
    data: Any,
    settings: RunSettings,
    make_model: Callable[[], nn.Module],
    train_config: TrainConfig,
    *,
    quick_train_size: int,
    flatten: bool = False,
    augment: AugmentFn | None = None,
) -> SearchProblem:
    """The search problem of a classification recipe that trains with ``train_classifier``.

    The folds split the dataset's training images (the same quick subset as the recipe in quick
    mode); every fold's network is built by ``make_model`` under ``settings.seed``.
    """
    from trainers.data import random_subset

    pool = random_subset(data.train, quick_train_size, settings.seed) if settings.quick else data.train
    if flatten:
        pool = pool.map_inputs(lambda x: x.flatten(1))

    def seeded_model() -> nn.Module:
        with seeded(settings.seed):
            return make_model()

    return SearchProblem(pool, seeded_model, train_config, augment)
