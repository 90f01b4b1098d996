"""The checks every network passes, parametrized over the records the entry points name.

A network added to pyproject's ``introspect.architectures`` table is tested here the day it is
added: its record is the factory introspect uses, its config round-trips through a checkpoint,
the same seed builds the same weights, every candidate of its search space is a valid ``--set``,
and a quick run of each of its recipes saves and reloads to identical outputs.
"""

from __future__ import annotations

import dataclasses
import typing
from importlib import metadata
from pathlib import Path

import pytest
import torch
from _network_checks import quick_settings, with_small_data

from introspect.architectures import build_registered
from introspect.history import best_epoch
from introspect.validate_config import config_class_of
from trainers.catalog import ARCHITECTURE_GROUP, Recipe, list_recipes, networks
from trainers.layers import config_from_dict
from trainers.network import Network
from trainers.search import candidates, with_params
from trainers.settings import RecipeError, RunSettings
from trainers.testing import check_network
from trainers.training import build_model, configure

NETWORKS = networks()
RECIPES = list_recipes()
VARIANT_RECIPES = [recipe for recipe in RECIPES if recipe.variant is not None]


def _by_name(items: list[Network] | list[Recipe]) -> dict[str, typing.Any]:
    return {"argvalues": items, "ids": [item.name for item in items]}


def _plain(config: typing.Any) -> dict[str, typing.Any]:
    """A config as a checkpoint stores it: a dict of plain values, tuples as lists."""
    return {
        key: list(value) if isinstance(value, tuple) else value for key, value in dataclasses.asdict(config).items()
    }


@pytest.fixture
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Data sets missing from the offline folder are not fetched (CIFAR-10 then falls back to generated data)."""
    import torchvision

    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("no network in the test suite")

    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", offline)
    monkeypatch.setattr(torchvision.datasets.utils, "download_url", offline)
    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", offline, raising=False)


def test_the_list_is_the_entry_points_and_every_trainers_entry_point_is_a_record() -> None:
    entry_points = {
        ep.name: ep for ep in metadata.entry_points(group=ARCHITECTURE_GROUP) if ep.value.startswith("trainers.")
    }
    assert sorted(entry_points) == [network.name for network in NETWORKS]
    for name, entry_point in entry_points.items():
        record = entry_point.load()
        assert isinstance(record, Network) and record.name == name, entry_point.value
    assert {"lenet5", "regression-mlp", "neta1", "neta2", "resnet18"} <= set(entry_points)


@pytest.mark.parametrize("network", **_by_name(NETWORKS))
def test_record_is_the_factory_introspect_rebuilds_with(network: Network) -> None:
    config = network.default_config()
    assert config_class_of(network) is network.config_class
    assert network.summary and "\n" not in network.summary
    rebuilt = build_registered(network.name, _plain(config))  # built on the meta device first, then for real
    direct = network.model(config)
    assert list(rebuilt.state_dict()) == list(direct.state_dict())
    shapes = {key: tuple(tensor.shape) for key, tensor in direct.state_dict().items()}
    assert {key: tuple(tensor.shape) for key, tensor in rebuilt.state_dict().items()} == shapes


@pytest.mark.parametrize("network", **_by_name(NETWORKS))
def test_config_round_trips_through_its_plain_form(network: Network) -> None:
    config = network.default_config()
    assert config_from_dict(network.config_class, _plain(config)) == config
    changed = configure(network, RunSettings(seed=3))[1]
    assert config_from_dict(network.config_class, _plain(changed)) == changed


@pytest.mark.parametrize("network", **_by_name(NETWORKS))
def test_same_seed_builds_identical_weights_and_leaves_the_callers_random_state(network: Network) -> None:
    config = network.default_config()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = build_model(network, config, RunSettings(seed=1)).state_dict()
    assert torch.equal(torch.rand(3), expected)
    second = build_model(network, config, RunSettings(seed=1)).state_dict()
    assert all(torch.equal(first[key], second[key]) for key in first)
    other_config = configure(network, RunSettings(seed=2))[1]
    other = build_model(network, other_config, RunSettings(seed=2)).state_dict()
    assert any(not torch.equal(first[key], other[key]) for key in first if first[key].is_floating_point())


@pytest.mark.parametrize("network", **_by_name(NETWORKS))
def test_search_space_candidates_are_valid_overrides_that_reach_the_configs(network: Network) -> None:
    assert network.space, "every network has a search space"
    drawn = candidates("grid", network.space, 4, seed=0) + candidates("random", network.space, 4, seed=0)
    assert len(drawn) >= 5
    for params in drawn:
        options, config, train_config = configure(
            network, with_params(RunSettings(), params), network.variants[0] if network.variants else None
        )
        targets = [part for part in (options, config, train_config) if part is not None]
        for key, value in params.items():
            held = [getattr(part, key) for part in targets if hasattr(part, key)]
            assert held and held[0] == (tuple(value) if isinstance(value, list) else value), (key, value, held)


@pytest.mark.parametrize("network", **_by_name(NETWORKS))
def test_unknown_set_key_is_refused_with_the_valid_keys(network: Network) -> None:
    with pytest.raises(RecipeError, match=r"--set no_such_key: unknown key; valid keys: .*\blr\b"):
        configure(
            network, RunSettings(overrides={"no_such_key": "1"}), network.variants[0] if network.variants else None
        )


@pytest.mark.parametrize("recipe", **_by_name(VARIANT_RECIPES))
def test_a_variant_fixes_its_fields_whatever_set_says(recipe: Recipe) -> None:
    fixed = recipe.network.fixed_fields(recipe.variant)
    config = configure(recipe.network, RunSettings(), recipe.variant)[1]
    assert fixed and {key: getattr(config, key) for key in fixed} == fixed
    others = [variant for variant in recipe.network.variants if variant is not recipe.variant]
    attempt = {key: str(value) for key, value in others[0].fixed_config.items()}
    config = configure(recipe.network, RunSettings(overrides=attempt), recipe.variant)[1]
    assert {key: getattr(config, key) for key in fixed} == fixed


@pytest.mark.usefixtures("no_downloads")
@pytest.mark.parametrize("recipe", **_by_name(RECIPES))
def test_quick_run_saves_and_reloads_to_identical_outputs(recipe: Recipe, tmp_path: Path) -> None:
    report = check_network(with_small_data(recipe.network), tmp_path, quick_settings(), recipe.variant)
    checkpoint = report.checkpoint
    assert report.max_abs_diff == 0.0
    assert checkpoint["architecture"]["key"] == recipe.network.name
    assert (
        config_from_dict(recipe.network.config_class, checkpoint["architecture"]["config"])
        == configure(recipe.network, quick_settings(), recipe.variant)[1]
    )
    history = checkpoint["history"]
    assert history["epoch"] == [1]
    assert history["best_epoch"] == best_epoch(history) == checkpoint["metrics"]["best_epoch"] == 1
    parameters = dict(report.subject.model.named_parameters())
    assert set(checkpoint["initial_weights"]) <= set(parameters)
    assert all(
        checkpoint["initial_weights"][key].shape == parameters[key].shape for key in checkpoint["initial_weights"]
    )
    assert checkpoint["hyperparameters"]["quick"] is True and checkpoint["hyperparameters"]["train"]["epochs"] == 1
