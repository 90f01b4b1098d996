"""best_epoch: the lowest validation loss, else the lowest training loss, the earliest on ties."""

from __future__ import annotations

import math

import pytest

from introspect.history import best_epoch, best_index


def test_best_epoch_is_the_lowest_validation_loss_not_the_best_accuracy() -> None:
    history = {"epoch": [1, 2, 3, 4], "val_loss": [0.9, 0.4, 0.5, 0.6], "val_accuracy": [0.5, 0.7, 0.8, 0.9]}
    assert best_epoch(history) == 2
    assert best_index(history) == 1


def test_ties_go_to_the_earliest_epoch_and_numbers_come_from_the_epoch_series() -> None:
    assert best_epoch({"epoch": [5, 6, 7], "val_loss": [0.3, 0.2, 0.2]}) == 6
    assert best_epoch({"val_loss": [0.3, 0.2, 0.2]}) == 2  # no epoch series: counted from 1


def test_non_finite_values_are_skipped_and_training_loss_stands_in_without_validation() -> None:
    assert best_epoch({"val_loss": [math.nan, 0.5, math.inf, 0.7]}) == 2
    assert best_epoch({"val_loss": [math.nan, math.nan], "train_loss": [0.8, 0.6]}) == 2
    assert best_epoch({"train_loss": [0.8, 0.6, 0.7]}) == 2


@pytest.mark.parametrize(
    "history", [{}, {"val_loss": []}, {"val_loss": [math.nan]}, {"val_loss": "0.1"}, {"val_loss": [None, "x", True]}]
)
def test_no_finite_loss_gives_none(history: dict) -> None:
    assert best_epoch(history) is None
