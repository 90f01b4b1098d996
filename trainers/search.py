"""Hyperparameter search with k-fold cross-validation: ``grid``, ``random`` or ``bayes``.

Every candidate configuration is a set of ``--set`` overrides (``lr``, ``weight_decay``,
``width``, ``dropout``, ``optimizer``, ``batch_size``...) drawn from the network's search space
(its record's ``space``). It is scored by k-fold cross-validation (scikit-learn's ``KFold``) over
the network's training pool: a fresh network per fold, trained by the shared loop, scored by its
validation loss at the best epoch; the score is the mean over folds (lower is better). Candidates
come from scikit-learn's ``ParameterGrid`` (grid) or ``ParameterSampler`` (random), or from
Optuna's TPE sampler (bayes). With ``storage`` (an Optuna database URL such as
``sqlite:///study.db``), several workers on several machines share one study: each runs its
trials, and all trials are in the results.

:func:`search` scores the candidates; :func:`run_search` (what ``introspect train NAME --search``
calls) also writes a CSV beside the checkpoint, retrains the best configuration with the usual
train/validation split and epochs, and records the search in its ``hyperparameters["search"]``.
A worker that only adds trials to a shared study runs ``introspect train NAME --search bayes
--storage URL --study-name S --no-retrain --out worker.pt``.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import math
import os
import re
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from trainers.bayes import run_bayes
from trainers.data import RegressionData
from trainers.loop import fit
from trainers.network import Network, Variant
from trainers.search_space import Dimension, SearchProblem, as_plain, as_text
from trainers.settings import RecipeError, RunSettings
from trainers.training import build_model, prepare, train, training_pool

METHODS = ("grid", "random", "bayes")
SCORE = "mean validation loss over the folds (lower is better)"

#: ``score(params) -> scores``: cross-validates one candidate (see :func:`evaluate_candidate`).
ScoreFn = Callable[[Mapping[str, Any]], dict[str, Any]]


# --- scoring one candidate ----------------------------------------------------------------------


def problem_for(network: Network, settings: RunSettings, variant: Variant | None = None) -> SearchProblem:
    """What the folds split and train for ``network`` under ``settings`` (a candidate's ``--set`` included).

    A classifier's pool is its run's training pool (the same quick subset in quick mode); a
    regression's is all of the task's training points.
    """
    run = prepare(network, settings, variant)
    if isinstance(run.data, RegressionData):
        pool = run.data.train
    else:
        if run.data.note:
            settings.say(run.data.note)
        pool = training_pool(network, run.data, settings)
    return SearchProblem(pool, lambda: build_model(network, run.config, settings), run.train_config, run.augment)


def cross_validate(problem: SearchProblem, folds: int, seed: int = 0) -> dict[str, Any]:
    """Train one fresh network per fold and score it on the held-out fold.

    Returns:
        ``fold_losses`` (validation loss of each fold at its best epoch), ``mean_val_loss``,
        ``std_val_loss``, and for classification ``mean_val_accuracy`` (at each fold's best epoch).
    """
    from sklearn.model_selection import KFold

    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    losses, accuracies = [], []
    for train_index, val_index in splitter.split(range(len(problem.pool))):
        train_split = problem.pool.take(torch.as_tensor(train_index))
        validation = problem.pool.take(torch.as_tensor(val_index))
        result = fit(problem.make_model(), train_split, validation, problem.train_config, augment=problem.augment)
        losses.append(result.best("val_loss"))
        if problem.train_config.is_classification:
            accuracies.append(result.best("val_accuracy"))
    scores = {
        "fold_losses": losses,
        "mean_val_loss": statistics.fmean(losses),
        "std_val_loss": statistics.pstdev(losses),
    }
    if accuracies:
        scores["mean_val_accuracy"] = statistics.fmean(accuracies)
    return scores


def evaluate_candidate(
    network: Network, params: Mapping[str, Any], settings: RunSettings, folds: int, variant: Variant | None = None
) -> dict[str, Any]:
    """Cross-validate ``network`` with ``params`` on top of the user's ``--set`` overrides."""
    started = time.perf_counter()
    scores = cross_validate(problem_for(network, with_params(settings, params), variant), folds, settings.seed)
    if not all(math.isfinite(loss) for loss in scores["fold_losses"]):
        scores["mean_val_loss"] = math.inf  # a diverged fold ranks the candidate last
    return {**scores, "seconds": time.perf_counter() - started}


def with_params(settings: RunSettings, params: Mapping[str, Any]) -> RunSettings:
    """``settings`` whose ``--set`` overrides also carry ``params`` (as text, as the CLI gives them)."""
    return dataclasses.replace(
        settings, overrides={**settings.overrides, **{key: as_text(value) for key, value in params.items()}}
    )


# --- the three methods --------------------------------------------------------------------------


def candidates(method: str, space: Mapping[str, Dimension], num_trials: int | None, seed: int) -> list[dict[str, Any]]:
    """The configurations a grid or random search tries, in order.

    A grid search tries every combination of the dimensions' ``grid`` values (the first
    ``num_trials`` of them when that is set); a random search draws ``num_trials`` with
    scikit-learn's ``ParameterSampler`` (log-uniform, uniform or integer distributions).
    """
    from sklearn.model_selection import ParameterGrid, ParameterSampler

    if method == "grid":
        grid = list(ParameterGrid({name: list(dimension.grid) for name, dimension in space.items()}))
        return [dict(params) for params in grid[: num_trials or len(grid)]]
    distributions = {name: _distribution(dimension) for name, dimension in space.items()}
    sampled = ParameterSampler(distributions, n_iter=num_trials or 10, random_state=seed)
    return [{name: as_plain(value) for name, value in params.items()} for params in sampled]


def _distribution(dimension: Dimension) -> Any:
    from scipy import stats

    if dimension.kind == "categorical":
        return list(dimension.choices)
    if dimension.kind == "int":
        return stats.randint(int(dimension.low), int(dimension.high) + 1)
    if dimension.log:
        return stats.loguniform(dimension.low, dimension.high)
    return stats.uniform(dimension.low, dimension.high - dimension.low)


def _run_listed(score: ScoreFn, chosen: Sequence[Mapping[str, Any]], settings: RunSettings) -> list[dict[str, Any]]:
    rows = []
    for number, params in enumerate(chosen):
        scores = score(params)
        rows.append({"trial": number, "params": dict(params), **scores})
        _announce(settings, number, len(chosen), params, scores["mean_val_loss"])
    return rows


def _announce(settings: RunSettings, number: int, total: int | None, params: Mapping[str, Any], loss: float) -> None:
    shown = ", ".join(f"{key}={as_text(value)}" for key, value in params.items())
    settings.say(f"trial {number + 1}{f'/{total}' if total else ''}: {shown} -> mean val loss {loss:.4g}")


# --- the search, its results, retraining --------------------------------------------------------


def search(
    network: Network,
    settings: RunSettings,
    method: str = "random",
    *,
    num_trials: int | None = None,
    folds: int = 3,
    storage: str | None = None,
    space: Mapping[str, Dimension] | None = None,
    study_name: str | None = None,
    variant: Variant | None = None,
) -> list[dict[str, Any]]:
    """Score candidate configurations of ``network`` by k-fold cross-validation.

    Args:
        network: the network's record; its ``space`` is searched unless ``space`` is given.
        settings: the run's settings; its ``--set`` overrides stay fixed (not searched).
        method: ``grid``, ``random`` or ``bayes``.
        num_trials: candidates to try (a grid tries all combinations when ``None``; bayes 20).
        folds: k of the k-fold cross-validation (at least 2).
        storage: an Optuna storage URL shared by several workers (``bayes`` only).
        space: the search space, instead of the network's.
        study_name: the Optuna study (default ``introspect-<recipe name>``).
        variant: the variant of ``network`` to search.

    Returns:
        One row per trial: ``trial``, ``params``, ``mean_val_loss`` and the fold scores.

    Raises:
        RecipeError: an unknown method, too few folds or trials, ``storage`` without ``bayes``,
            or ``--set`` fixing every key of the space.
    """
    _check_arguments(method, num_trials, folds, storage)
    name = network.recipe_name(variant)
    searched = _searched_space(name, network.space if space is None else space, settings)
    settings.say(f"{method} search over {', '.join(searched)} with {folds}-fold cross-validation")

    def score(params: Mapping[str, Any]) -> dict[str, Any]:
        return evaluate_candidate(network, params, settings, folds, variant)

    if method == "bayes":
        return run_bayes(
            score, searched, seed=settings.seed, num_trials=num_trials or 20, storage=storage,
            study_name=study_name or f"introspect-{name}", announce=functools.partial(_announce, settings),
        )  # fmt: skip
    return _run_listed(score, candidates(method, searched, num_trials, settings.seed), settings)


def _searched_space(name: str, space: Mapping[str, Dimension], settings: RunSettings) -> dict[str, Dimension]:
    fixed = {key.rpartition(".")[2] for key in settings.overrides}
    searched = {key: dimension for key, dimension in space.items() if key not in fixed}  # --set wins
    if not searched:
        raise RecipeError(f"nothing left to search for {name}: --set fixes every key of the space ({', '.join(space)})")
    return searched


def _check_arguments(method: str, num_trials: int | None, folds: int, storage: str | None) -> None:
    if method not in METHODS:
        raise RecipeError(f"--search {method}: choose one of {', '.join(METHODS)}")
    if folds < 2:
        raise RecipeError(f"--folds {folds}: k-fold cross-validation needs at least 2 folds")
    if num_trials is not None and num_trials < 1:
        raise RecipeError(f"--trials {num_trials}: need at least one trial")
    if storage and method != "bayes":
        raise RecipeError("--storage shares an Optuna study between workers: use it with --search bayes")


def write_results_csv(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], folds: int) -> Path:
    """One line per trial: trial, each parameter, each fold's loss, mean and spread, seconds."""
    names = sorted({key for row in rows for key in row["params"]})
    fold_columns = [f"fold_{index + 1}_val_loss" for index in range(folds)]
    header = ["trial", *names, *fold_columns, "mean_val_loss", "std_val_loss", "mean_val_accuracy", "seconds"]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        for row in sorted(rows, key=lambda row: row["trial"]):
            line = {"trial": row["trial"], **{key: as_text(value) for key, value in row["params"].items()}}
            line.update(dict(zip(fold_columns, row.get("fold_losses", []))))
            line.update(
                {key: row.get(key, "") for key in ("mean_val_loss", "std_val_loss", "mean_val_accuracy", "seconds")}
            )
            writer.writerow(line)
    return target


def redact(url: str | None) -> str | None:
    """A storage URL without its password, for records and messages."""
    return None if url is None else re.sub(r"(//[^:/@]*):[^@/]*@", r"\1:***@", url)


def run_search(
    recipe_name: str,
    method: str,
    settings: RunSettings,
    num_trials: int | None,
    folds: int,
    out_path: str | os.PathLike[str],
    storage: str | None = None,
    *,
    space: Mapping[str, Dimension] | None = None,
    study_name: str | None = None,
    csv_path: str | os.PathLike[str] | None = None,
    retrain: bool = True,
) -> Path:
    """:func:`search` the recipe ``recipe_name``, write the CSV, retrain the best and save its checkpoint.

    ``csv_path`` defaults to ``out_path`` with suffix ``.search.csv``; with ``retrain`` off (a
    worker that leaves retraining to another) nothing else is written and the CSV path returned.
    The other arguments are :func:`search`'s.

    Raises:
        RecipeError: an unknown recipe, or as :func:`search`.
    """
    from trainers.catalog import get_recipe

    recipe = get_recipe(recipe_name)
    rows = search(
        recipe.network,
        settings,
        method,
        num_trials=num_trials,
        folds=folds,
        storage=storage,
        space=space,
        study_name=study_name,
        variant=recipe.variant,
    )
    table = write_results_csv(rows, csv_path or Path(out_path).with_suffix(".search.csv"), folds)
    settings.say(f"{len(rows)} trials written to {table}")
    if not retrain:
        return table
    searched = _searched_space(recipe_name, recipe.network.space if space is None else space, settings)
    record = _search_record(rows, method, folds, searched, table, storage, study_name or f"introspect-{recipe_name}")
    return _retrain(recipe.network, recipe.variant, with_params(settings, record["best_params"]), record, out_path)


def _search_record(
    rows: Sequence[Mapping[str, Any]],
    method: str,
    folds: int,
    searched: Mapping[str, Dimension],
    table: Path,
    storage: str | None,
    study: str,
) -> dict[str, Any]:
    best = min(rows, key=lambda row: row["mean_val_loss"])
    return {
        "method": method,
        "folds": folds,
        "score": SCORE,
        "num_trials": len(rows),
        "space": {key: dimension.describe() for key, dimension in searched.items()},
        "best_params": {key: as_plain(value) for key, value in best["params"].items()},
        "best_trial": best["trial"],
        "best_mean_val_loss": best["mean_val_loss"],
        "results": [_plain_row(row) for row in rows],
        "csv_path": str(table),
        "storage": redact(storage),
        "study_name": study if method == "bayes" else None,
    }


def _plain_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: ({k: as_plain(v) for k, v in value.items()} if key == "params" else value) for key, value in row.items()
    }


def _retrain(
    network: Network,
    variant: Variant | None,
    settings: RunSettings,
    record: dict[str, Any],
    out_path: str | os.PathLike[str],
) -> Path:
    from introspect.checkpoint import save_checkpoint

    settings.say(f"retraining {network.recipe_name(variant)} with the best configuration: {record['best_params']}")
    checkpoint = train(network, settings, variant)
    checkpoint["hyperparameters"] = {**checkpoint.get("hyperparameters", {}), "search": record}
    return save_checkpoint(out_path, checkpoint)
