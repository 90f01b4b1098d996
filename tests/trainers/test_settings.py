"""Settings: ``--set key=value`` parsed once (clear errors), then onto config dataclasses by type."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner

from trainers.cli import train
from trainers.loop import TrainConfig
from trainers.networks.regression_mlp import RegressionMLPConfig
from trainers.settings import RecipeError, apply_overrides, parse_sets, parse_value, valid_keys


@dataclasses.dataclass(frozen=True)
class _Shape:
    hidden: tuple[int, ...] = (4, 2)
    dropout: float | None = None
    lr: float = 1.0  # shares a name with TrainConfig.lr on purpose
    batch_norm: bool = False


def test_overrides_parse_by_field_type() -> None:
    shape, train_config = apply_overrides(
        {"hidden": "64, 32", "dropout": "0.5", "batch_norm": "yes", "epochs": "7", "optimizer": "sgd"}
        | {"train.lr": "0.1", "model.lr": "2"},
        model=_Shape(),
        train=TrainConfig(),
    )
    assert shape == _Shape(hidden=(64, 32), dropout=0.5, lr=2.0, batch_norm=True)
    assert (train_config.epochs, train_config.optimizer, train_config.lr) == (7, "sgd", 0.1)


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


def test_parse_sets_strips_keys_and_values_and_keeps_everything_after_the_first_equals() -> None:
    assert parse_sets(["lr = 0.01", "hidden=64,32", "name=a=b", "empty="]) == {
        "lr": "0.01",
        "hidden": "64,32",
        "name": "a=b",
        "empty": "",
    }


@pytest.mark.parametrize("pair", ["lr", "=0.1", " =0.1"])
def test_parse_sets_refuses_a_pair_without_key_or_equals(pair: str) -> None:
    with pytest.raises(RecipeError, match=r"--set .* should look like KEY=VALUE"):
        parse_sets([pair])


@pytest.mark.parametrize("extra", [[], ["--search", "grid"], ["--search", "bayes", "--storage", "sqlite:///x.db"]])
def test_every_command_path_gives_the_same_usage_error_for_a_bad_set(extra: list[str]) -> None:
    result = CliRunner().invoke(train, ["regression-mlp", *extra, "--set", "lr"])
    assert result.exit_code == 2
    assert "--set 'lr' should look like KEY=VALUE" in result.output
