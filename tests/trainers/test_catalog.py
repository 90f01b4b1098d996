"""The catalog: names → recipes, --set overrides parsed onto config dataclasses."""

from __future__ import annotations

import dataclasses

import pytest

from trainers.catalog import RecipeError, apply_overrides, get_recipe, list_recipes, parse_value, valid_keys
from trainers.loop import TrainConfig
from trainers.regression_mlp import RegressionMLPConfig


@dataclasses.dataclass(frozen=True)
class _Shape:
    hidden: tuple[int, ...] = (4, 2)
    dropout: float | None = None
    lr: float = 1.0  # shares a name with TrainConfig.lr on purpose
    batch_norm: bool = False


def test_every_first_trainer_is_listed_with_its_summary() -> None:
    names = {recipe.name: recipe for recipe in list_recipes()}
    for name in ("regression-mlp", "regression-wide", "digits-mlp", "mnist-mlp", "mnist-ffnn", "lenet5"):
        assert name in names
        assert names[name].summary and "\n" not in names[name].summary
    assert [recipe.name for recipe in list_recipes()] == sorted(names)


def test_unknown_network_lists_known_names() -> None:
    with pytest.raises(RecipeError, match="unknown network 'lenet6'.*lenet5"):
        get_recipe("lenet6")


def test_overrides_parse_by_field_type() -> None:
    shape, train = apply_overrides(
        {"hidden": "64, 32", "dropout": "0.5", "batch_norm": "yes", "epochs": "7", "optimizer": "sgd", "train.lr": "0.1", "model.lr": "2"},
        model=_Shape(),
        train=TrainConfig(),
    )
    assert shape == _Shape(hidden=(64, 32), dropout=0.5, lr=2.0, batch_norm=True)
    assert (train.epochs, train.optimizer, train.lr) == (7, "sgd", 0.1)


def test_optional_field_accepts_none() -> None:
    (shape,) = apply_overrides({"dropout": "none"}, model=_Shape(dropout=0.3))
    assert shape.dropout is None


def test_unknown_key_is_a_value_error_listing_valid_keys() -> None:
    with pytest.raises(ValueError, match="--set widht: unknown key; valid keys: .*width.*batch_size"):
        apply_overrides({"widht": "3"}, model=RegressionMLPConfig(), train=TrainConfig())


def test_shared_field_name_must_be_qualified() -> None:
    with pytest.raises(RecipeError, match="ambiguous, say model.lr or train.lr"):
        apply_overrides({"lr": "0.1"}, model=_Shape(), train=TrainConfig())
    assert "model.lr" in valid_keys(model=_Shape(), train=TrainConfig())


def test_bad_values_are_reported_with_the_key() -> None:
    with pytest.raises(RecipeError, match="--set epochs=many: expected an integer"):
        apply_overrides({"epochs": "many"}, train=TrainConfig())
    with pytest.raises(RecipeError, match="optimizer must be one of"):
        apply_overrides({"optimizer": "lbfgs"}, train=TrainConfig())
    with pytest.raises(RecipeError, match="activation must be one of"):
        apply_overrides({"activation": "swish"}, model=RegressionMLPConfig())


def test_parse_value_booleans() -> None:
    assert [parse_value(text, bool) for text in ("true", "0", "ON", "no")] == [True, False, True, False]
    with pytest.raises(ValueError):
        parse_value("maybe", bool)
