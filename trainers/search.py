"""Hyperparameter search with k-fold cross-validation: ``grid``, ``random`` or ``bayes``.

Every candidate configuration is a set of ``--set`` overrides (``lr``, ``weight_decay``,
``width``, ``depth``, ``dropout``, ``activation``, ``optimizer``, ``batch_size``...). It is scored
by k-fold cross-validation (scikit-learn's ``KFold``) over the recipe's training pool: a fresh
network per fold, trained by the shared loop, scored by its best validation loss; the score is
the mean over folds (lower is better). Candidates come from scikit-learn's ``ParameterGrid``
(grid) or ``ParameterSampler`` (random), or from Optuna's TPE sampler (bayes). With
``storage`` (an Optuna database URL such as ``sqlite:///study.db``), several workers on several
machines share one study: each runs its trials, and all trials are in the results.

The results go to a CSV beside the checkpoint and into its ``hyperparameters["search"]``; the
best configuration is retrained by the recipe itself (its usual train/validation split and
epochs) and saved. A network becomes searchable by registering a search problem next to its
recipe (:func:`trainers.search_space.searchable`).

Run a worker from a shell with ``python -m trainers.search NAME --method bayes --trials 20
--folds 3 --storage sqlite:///study.db --out best.pt``.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import re
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from trainers.catalog import RecipeError, RunSettings, get_recipe
from trainers.loop import fit
from trainers.search_space import Dimension, SearchProblem, as_plain, as_text, get_searchable

METHODS = ("grid", "random", "bayes")
SCORE = "mean validation loss over the folds (lower is better)"


# --- scoring one candidate ----------------------------------------------------------------------


def cross_validate(problem: SearchProblem, folds: int, seed: int = 0) -> dict[str, Any]:
    """Train one fresh network per fold and score it on the held-out fold.

    Returns:
        ``fold_losses`` (best validation loss of each fold), ``mean_val_loss``, ``std_val_loss``,
        and for classification ``mean_val_accuracy`` (at each fold's best epoch).
    """
    from sklearn.model_selection import KFold

    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    losses, accuracies = [], []
    for train_index, val_index in splitter.split(range(len(problem.pool))):
        train = problem.pool.take(torch.as_tensor(train_index))
        validation = problem.pool.take(torch.as_tensor(val_index))
        result = fit(problem.make_model(), train, validation, problem.train_config, augment=problem.augment)
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


def evaluate_candidate(name: str, params: Mapping[str, Any], settings: RunSettings, folds: int) -> dict[str, Any]:
    """Cross-validate recipe ``name`` with ``params`` on top of the user's ``--set`` overrides."""
    started = time.perf_counter()
    trial_settings = with_params(settings, params)
    problem = get_searchable(name).problem(trial_settings)
    scores = cross_validate(problem, folds, settings.seed)
    if not all(math.isfinite(loss) for loss in scores["fold_losses"]):
        scores["mean_val_loss"] = math.inf  # a diverged fold ranks the candidate last
    return {**scores, "seconds": time.perf_counter() - started}


def with_params(settings: RunSettings, params: Mapping[str, Any]) -> RunSettings:
    """``settings`` whose ``--set`` overrides also carry ``params`` (as text, as the CLI gives them)."""
    return dataclasses.replace(settings, overrides={**settings.overrides, **{key: as_text(value) for key, value in params.items()}})


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


def _suggest(trial: Any, name: str, dimension: Dimension) -> Any:
    if dimension.kind == "categorical":
        by_text = {as_text(choice): choice for choice in dimension.choices}
        return by_text[trial.suggest_categorical(name, list(by_text))]
    if dimension.kind == "int":
        return trial.suggest_int(name, int(dimension.low), int(dimension.high))
    return trial.suggest_float(name, dimension.low, dimension.high, log=dimension.log)


def _sampler_seed(seed: int, storage: str | None) -> int:
    # Workers sharing a study must not draw the same start-up points: mix in the process id.
    return seed if storage is None else (seed * 1_000_003 + os.getpid()) % 2**31


def _run_listed(name: str, method: str, space: Mapping[str, Dimension], settings: RunSettings, num_trials: int | None, folds: int) -> list[dict[str, Any]]:
    rows = []
    chosen = candidates(method, space, num_trials, settings.seed)
    for number, params in enumerate(chosen):
        scores = evaluate_candidate(name, params, settings, folds)
        rows.append({"trial": number, "params": params, **scores})
        _announce(settings, number, len(chosen), params, scores["mean_val_loss"])
    return rows


def _run_bayes(
    name: str, space: Mapping[str, Dimension], settings: RunSettings, num_trials: int, folds: int, storage: str | None, study_name: str
) -> list[dict[str, Any]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(study_name, storage, optuna.samplers.TPESampler(seed=_sampler_seed(settings.seed, storage)))

    def objective(trial: Any) -> float:
        params = {key: _suggest(trial, key, dimension) for key, dimension in space.items()}
        scores = evaluate_candidate(name, params, settings, folds)
        trial.set_user_attr("params", {key: as_plain(value) for key, value in params.items()})
        for key in ("fold_losses", "std_val_loss", "mean_val_accuracy", "seconds"):
            if key in scores:
                trial.set_user_attr(key, scores[key])
        _announce(settings, trial.number, None, params, scores["mean_val_loss"])
        return scores["mean_val_loss"]

    study.optimize(objective, n_trials=num_trials)
    return [_row_of(trial) for trial in study.get_trials(deepcopy=False) if trial.state.name == "COMPLETE"]


def open_study(study_name: str, storage: str | None, sampler: Any, attempts: int = 6) -> Any:
    """Create or join the Optuna study ``study_name`` in ``storage`` (in memory when ``None``).

    Workers that start together race to create the database schema and the study; the loser
    of such a race retries, so any number of workers may be launched at once.
    """
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(attempts):
        try:
            return optuna.create_study(
                study_name=study_name, storage=_storage(storage), load_if_exists=True, direction="minimize", sampler=sampler
            )
        except (SQLAlchemyError, optuna.exceptions.StorageInternalError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _storage(url: str | None) -> Any:
    import optuna

    if url is None or not url.startswith("sqlite"):
        return url
    # SQLite serializes writers; wait for the lock rather than fail when workers write at once.
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})


def _row_of(trial: Any) -> dict[str, Any]:
    attrs = trial.user_attrs
    row = {"trial": trial.number, "params": attrs.get("params", trial.params), "mean_val_loss": trial.value}
    row.update({key: attrs[key] for key in ("fold_losses", "std_val_loss", "mean_val_accuracy", "seconds") if key in attrs})
    return row


def _announce(settings: RunSettings, number: int, total: int | None, params: Mapping[str, Any], loss: float) -> None:
    shown = ", ".join(f"{key}={as_text(value)}" for key, value in params.items())
    settings.say(f"trial {number + 1}{f'/{total}' if total else ''}: {shown} -> mean val loss {loss:.4g}")


# --- results, retraining, the entry point -------------------------------------------------------


def write_results_csv(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], folds: int) -> Path:
    """One line per trial: trial, each parameter, each fold's loss, mean and spread, seconds."""
    names = sorted({key for row in rows for key in row["params"]})
    header = ["trial", *names, *(f"fold_{index + 1}_val_loss" for index in range(folds)), "mean_val_loss", "std_val_loss", "mean_val_accuracy", "seconds"]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        for row in sorted(rows, key=lambda row: row["trial"]):
            line = {"trial": row["trial"], **{key: as_text(value) for key, value in row["params"].items()}}
            line.update({f"fold_{index + 1}_val_loss": loss for index, loss in enumerate(row.get("fold_losses", []))})
            line.update({key: row.get(key, "") for key in ("mean_val_loss", "std_val_loss", "mean_val_accuracy", "seconds")})
            writer.writerow(line)
    return target


def redact(url: str | None) -> str | None:
    """A storage URL without its password, for records and messages."""
    return None if url is None else re.sub(r"(//[^:/@]*):[^@/]*@", r"\1:***@", url)


def default_space(name: str) -> dict[str, Dimension]:
    """The default search space of recipe ``name``."""
    return dict(get_searchable(name).space)


def _searched_space(name: str, space: Mapping[str, Dimension] | None, settings: RunSettings) -> dict[str, Dimension]:
    chosen = dict(space) if space is not None else default_space(name)
    fixed = {key.rpartition(".")[2] for key in settings.overrides}
    searched = {key: dimension for key, dimension in chosen.items() if key not in fixed}  # --set wins
    if not searched:
        raise RecipeError(f"nothing left to search for {name}: --set fixes every key of the space ({', '.join(chosen)})")
    return searched


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
    """Search ``recipe_name``'s hyperparameters, retrain the best and save its checkpoint.

    Args:
        recipe_name: a searchable recipe (``regression-mlp``, ``fashion-cnn``...).
        method: ``grid``, ``random`` or ``bayes``.
        settings: the run's settings; its ``--set`` overrides stay fixed (not searched).
        num_trials: candidates to try (a grid tries all combinations when ``None``).
        folds: k of the k-fold cross-validation (at least 2).
        out_path: where the retrained best network's checkpoint goes.
        storage: an Optuna storage URL shared by several workers (``bayes`` only).
        space: the search space; the recipe's default when ``None``.
        study_name: the Optuna study (default ``introspect-<recipe_name>``).
        csv_path: the results table (default ``out_path`` with suffix ``.search.csv``).
        retrain: retrain and save the best configuration (a worker may leave it to another).

    Returns:
        The checkpoint path (``out_path``), or the CSV path when ``retrain`` is off.

    Raises:
        RecipeError: an unknown method or recipe, too few folds, ``storage`` without ``bayes``.
    """
    _check_arguments(method, num_trials, folds, storage)
    searched = _searched_space(recipe_name, space, settings)
    study = study_name or f"introspect-{recipe_name}"
    settings.say(f"{method} search over {', '.join(searched)} with {folds}-fold cross-validation")
    if method == "bayes":
        rows = _run_bayes(recipe_name, searched, settings, num_trials or 20, folds, storage, study)
    else:
        rows = _run_listed(recipe_name, method, searched, settings, num_trials, folds)
    table = write_results_csv(rows, csv_path or Path(out_path).with_suffix(".search.csv"), folds)
    settings.say(f"{len(rows)} trials written to {table}")
    if not retrain:
        return table
    best = min(rows, key=lambda row: row["mean_val_loss"])
    record = {
        "method": method, "folds": folds, "score": SCORE, "num_trials": len(rows),
        "space": {key: dimension.describe() for key, dimension in searched.items()},
        "best_params": {key: as_plain(value) for key, value in best["params"].items()},
        "best_trial": best["trial"], "best_mean_val_loss": best["mean_val_loss"],
        "results": [_plain_row(row) for row in rows], "csv_path": str(table),
        "storage": redact(storage), "study_name": study if method == "bayes" else None,
    }
    return _retrain(recipe_name, with_params(settings, best["params"]), record, out_path)


def _check_arguments(method: str, num_trials: int | None, folds: int, storage: str | None) -> None:
    if method not in METHODS:
        raise RecipeError(f"--search {method}: choose one of {', '.join(METHODS)}")
    if folds < 2:
        raise RecipeError(f"--folds {folds}: k-fold cross-validation needs at least 2 folds")
    if num_trials is not None and num_trials < 1:
        raise RecipeError(f"--trials {num_trials}: need at least one trial")
    if storage and method != "bayes":
        raise RecipeError("--storage shares an Optuna study between workers: use it with --search bayes")


def _plain_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: ({k: as_plain(v) for k, v in value.items()} if key == "params" else value) for key, value in row.items()}


def _retrain(name: str, settings: RunSettings, record: dict[str, Any], out_path: str | os.PathLike[str]) -> Path:
    from introspect.checkpoint import save_checkpoint

    settings.say(f"retraining {name} with the best configuration: {record['best_params']}")
    checkpoint = get_recipe(name).run(settings)
    checkpoint["hyperparameters"] = {**checkpoint.get("hyperparameters", {}), "search": record}
    return save_checkpoint(out_path, checkpoint)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m trainers.search``: one search worker (several may share ``--storage``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m trainers.search", description=main.__doc__)
    parser.add_argument("name")
    parser.add_argument("--method", choices=METHODS, default="bayes")
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--storage", default=None)
    parser.add_argument("--study-name", default=None)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--no-retrain", action="store_true")
    args = parser.parse_args(argv)
    settings = RunSettings(
        epochs=args.epochs, quick=args.quick, data_dir=args.data_dir, seed=args.seed,
        overrides=dict(pair.split("=", 1) for pair in args.overrides), log=print,
    )
    path = run_search(
        args.name, args.method, settings, args.trials, args.folds, args.out, args.storage,
        study_name=args.study_name, retrain=not args.no_retrain,
    )
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
