"""Bayesian search: Optuna's TPE sampler over a search space, in a study several workers may share.

With a storage URL (``sqlite:///study.db``, a PostgreSQL URL) every worker that names the same
study adds its trials to it, and each sees all of them: the results of one are the results of all.
:func:`run_bayes` is what :func:`trainers.search.search` calls for ``method="bayes"``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from trainers.search_space import Dimension, as_plain, as_text

#: Scores kept beside each trial's value, so a row read back from the study is a full row.
ROW_EXTRAS = ("fold_losses", "std_val_loss", "mean_val_accuracy", "seconds")

#: ``announce(number, total, params, loss)``: one line per finished trial (``total`` is ``None``).
AnnounceFn = Callable[[int, "int | None", Mapping[str, Any], float], None]


def run_bayes(
    score: Callable[[Mapping[str, Any]], dict[str, Any]],
    space: Mapping[str, Dimension],
    *,
    seed: int,
    num_trials: int,
    storage: str | None,
    study_name: str,
    announce: AnnounceFn,
) -> list[dict[str, Any]]:
    """Run ``num_trials`` trials minimising ``score(params)["mean_val_loss"]``; every completed trial's row.

    The rows include trials that other workers added to the same study.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(study_name, storage, optuna.samplers.TPESampler(seed=_sampler_seed(seed, storage)))

    def objective(trial: Any) -> float:
        params = {key: _suggest(trial, key, dimension) for key, dimension in space.items()}
        scores = score(params)
        trial.set_user_attr("params", {key: as_plain(value) for key, value in params.items()})
        for key in ROW_EXTRAS:
            if key in scores:
                trial.set_user_attr(key, scores[key])
        announce(trial.number, None, params, scores["mean_val_loss"])
        return scores["mean_val_loss"]

    study.optimize(objective, n_trials=num_trials)
    return [_row_of(trial) for trial in study.get_trials(deepcopy=False) if trial.state.name == "COMPLETE"]


def _suggest(trial: Any, name: str, dimension: Dimension) -> Any:
    if dimension.kind == "categorical":
        # Optuna stores categorical choices as plain values: tuples go in as their --set text.
        by_text = {as_text(choice): choice for choice in dimension.choices}
        return by_text[trial.suggest_categorical(name, list(by_text))]
    if dimension.kind == "int":
        return trial.suggest_int(name, int(dimension.low), int(dimension.high))
    return trial.suggest_float(name, dimension.low, dimension.high, log=dimension.log)


def _sampler_seed(seed: int, storage: str | None) -> int:
    # Workers sharing a study must not draw the same start-up points: mix in the process id.
    return seed if storage is None else (seed * 1_000_003 + os.getpid()) % 2**31


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
                study_name=study_name,
                storage=_storage(storage),
                load_if_exists=True,
                direction="minimize",
                sampler=sampler,
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
    row.update({key: attrs[key] for key in ROW_EXTRAS if key in attrs})
    return row
