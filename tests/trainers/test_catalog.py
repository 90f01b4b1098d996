"""The catalog: the entry points' network records, their recipes (variants included), lookups by name."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainers.catalog import get_network, get_recipe, list_recipes, networks, train
from trainers.networks.neta import NETA1
from trainers.settings import RecipeError, RunSettings


def test_every_first_trainer_is_listed_with_its_summary() -> None:
    names = {recipe.name: recipe for recipe in list_recipes()}
    for name in ("regression-mlp", "regression-wide", "digits-mlp", "mnist-mlp", "mnist-ffnn", "lenet5"):
        assert name in names
        assert names[name].summary and "\n" not in names[name].summary
    assert [recipe.name for recipe in list_recipes()] == sorted(names)


def test_unknown_network_lists_known_names() -> None:
    with pytest.raises(RecipeError, match="unknown network 'lenet6'.*lenet5"):
        get_recipe("lenet6")


def test_variants_are_recipes_of_their_network_and_the_network_alone_is_not() -> None:
    recipe = get_recipe("neta1-hf")
    assert recipe.network is NETA1 and recipe.variant is not None and recipe.variant.name == "hf"
    assert recipe.architecture == "neta1"
    assert get_network("neta1-hf") is get_network("neta1") is NETA1
    with pytest.raises(RecipeError, match="unknown network 'neta1'.*neta1-dt, neta1-hf, neta1-ht"):
        get_recipe("neta1")
    recipes = {recipe.name for recipe in list_recipes()}
    assert {network.name for network in networks()} - recipes == {"neta1", "neta2"}


def test_train_by_name_saves_a_checkpoint_that_names_the_architecture(tmp_path: Path) -> None:
    path = train("regression-mlp", RunSettings(quick=True, epochs=2), tmp_path / "r.pt")
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["architecture"]["key"] == "regression-mlp"
    assert checkpoint["history"]["epoch"] == [1, 2]
