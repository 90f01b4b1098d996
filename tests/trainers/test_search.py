"""Hyperparameter search: k-fold scores, grid/random candidates, CSV, retrained best, shared study."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainers.catalog import get_network
from trainers.loop import fit
from trainers.search import candidates, cross_validate, problem_for, redact, run_search, search
from trainers.search_space import categorical, int_range, log_float
from trainers.settings import RecipeError, RunSettings

FAST = RunSettings(epochs=8, seed=0)


def test_cross_validation_matches_an_independent_kfold_run() -> None:
    from sklearn.model_selection import KFold

    problem = problem_for(get_network("regression-mlp"), FAST)
    scores = cross_validate(problem, folds=3, seed=0)
    expected = []
    for train_index, val_index in KFold(n_splits=3, shuffle=True, random_state=0).split(range(len(problem.pool))):
        result = fit(
            problem.make_model(),
            problem.pool.take(torch.as_tensor(train_index)),
            problem.pool.take(torch.as_tensor(val_index)),
            problem.train_config,
        )
        expected.append(result.best("val_loss"))
    assert scores["fold_losses"] == expected
    assert scores["mean_val_loss"] == pytest.approx(sum(expected) / 3, rel=1e-12)


def test_grid_over_two_values_and_two_folds_writes_csv_and_retrains_the_best(tmp_path: Path) -> None:
    out = run_search(
        "regression-mlp", "grid", FAST, None, 2, tmp_path / "best.pt", space={"lr": categorical(1e-3, 1e-2)}
    )
    with open(tmp_path / "best.search.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["lr"] for row in rows] == ["0.001", "0.01"]
    for row in rows:
        folds = [float(row["fold_1_val_loss"]), float(row["fold_2_val_loss"])]
        assert float(row["mean_val_loss"]) == pytest.approx(sum(folds) / 2, rel=1e-12)
    best_row = min(rows, key=lambda row: float(row["mean_val_loss"]))
    checkpoint = torch.load(out, weights_only=True)
    search = checkpoint["hyperparameters"]["search"]
    assert search["best_params"] == {"lr": float(best_row["lr"])}
    assert search["num_trials"] == 2 and search["folds"] == 2 and len(search["results"]) == 2
    assert checkpoint["hyperparameters"]["train"]["lr"] == float(best_row["lr"])  # retrained with it
    assert checkpoint["architecture"]["key"] == "regression-mlp"


def test_grid_and_random_candidates() -> None:
    space = {
        "lr": log_float(1e-4, 1e-1, grid=(1e-3, 1e-2)),
        "depth": int_range(1, 3, grid=(1, 2)),
        "activation": categorical("relu", "tanh"),
    }
    grid = candidates("grid", space, None, seed=0)
    assert len(grid) == 8 and {"lr": 1e-3, "depth": 1, "activation": "relu"} in grid
    assert len(candidates("grid", space, 3, seed=0)) == 3
    drawn = candidates("random", space, 25, seed=0)
    assert drawn == candidates("random", space, 25, seed=0)
    assert all(1e-4 <= params["lr"] <= 1e-1 and params["depth"] in (1, 2, 3) for params in drawn)
    assert len({params["lr"] for params in drawn}) == 25


def test_set_overrides_are_fixed_not_searched(tmp_path: Path) -> None:
    settings = RunSettings(epochs=3, overrides={"lr": "0.005"})
    run_search(
        "regression-mlp",
        "random",
        settings,
        1,
        2,
        tmp_path / "r.pt",
        space={"lr": categorical(1e-3), "width": categorical(8)},
    )
    checkpoint = torch.load(tmp_path / "r.pt", weights_only=True)
    assert checkpoint["hyperparameters"]["search"]["best_params"] == {"width": 8}
    assert checkpoint["hyperparameters"]["train"]["lr"] == 0.005
    assert checkpoint["architecture"]["config"]["width"] == 8


@pytest.mark.parametrize(
    ("method", "folds", "storage", "words"),
    [
        ("annealing", 2, None, "choose one of"),
        ("grid", 1, None, "at least 2 folds"),
        ("grid", 2, "sqlite:///x.db", "--search bayes"),
    ],
)
def test_bad_arguments_are_refused(method: str, folds: int, storage: str | None, words: str, tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=words):
        run_search("regression-mlp", method, FAST, 2, folds, tmp_path / "x.pt", storage)


def test_storage_passwords_are_not_recorded() -> None:
    assert redact("postgresql://me:secret@db:5432/optuna") == "postgresql://me:***@db:5432/optuna"
    assert redact("sqlite:///study.db") == "sqlite:///study.db"


def test_two_workers_share_one_sqlite_study(tmp_path: Path) -> None:
    import optuna

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    command = [sys.executable, "-m", "introspect", "train", "regression-mlp", "--search", "bayes", "--trials", "2",
               "--folds", "2", "--epochs", "3", "--device", "cpu", "--storage", storage, "--study-name", "shared",
               "--no-retrain"]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen(
            [*command, "--out", str(tmp_path / f"worker{index}.pt")],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index in (1, 2)
    ]
    outputs = [worker.communicate(timeout=240)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    study = optuna.load_study(study_name="shared", storage=storage)
    complete = [trial for trial in study.trials if trial.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 4
    assert sorted(trial.number for trial in complete) == [0, 1, 2, 3]
    assert all(len(trial.user_attrs["fold_losses"]) == 2 for trial in complete)
    # A third call on the same storage sees all four trials and retrains the best of them.
    out = run_search(
        "regression-mlp", "bayes", RunSettings(epochs=3), 1, 2, tmp_path / "best.pt", storage, study_name="shared"
    )
    search = torch.load(out, weights_only=True)["hyperparameters"]["search"]
    assert search["num_trials"] == 5
    assert search["best_mean_val_loss"] == min(
        trial.value for trial in optuna.load_study(study_name="shared", storage=storage).trials
    )


def test_search_of_a_variant_trains_that_variant_and_names_its_study() -> None:
    network = get_network("neta1")
    settings, space = RunSettings(epochs=1, quick=True), {"lr": categorical(1e-3)}
    rows = search(network, settings, "grid", num_trials=1, folds=2, space=space, variant=network.variants[0])
    assert [row["params"] for row in rows] == [{"lr": 1e-3}] and len(rows[0]["fold_losses"]) == 2
    pool = problem_for(network, RunSettings(quick=True), network.variants[0]).pool
    assert len(pool) == network.quick_train_size  # the same quick subset as the training run


def test_nothing_left_to_search_is_refused() -> None:
    with pytest.raises(RecipeError, match="nothing left to search for regression-mlp: --set fixes every key"):
        search(
            get_network("regression-mlp"), RunSettings(overrides={"lr": "0.1"}), "grid", space={"lr": categorical(1e-3)}
        )
