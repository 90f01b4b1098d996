"""The analyzer registry: built-ins, plugins, conflicts and lookups."""

from __future__ import annotations

from importlib import metadata

import pytest

from introspect import Needs, PluginError, analyzer
from introspect.registry import Registry
from introspect.spec import spec_of


@analyzer(needs=Needs.WEIGHTS)
def weight_histograms(subject, /):
    """A plugin that tries to shadow a built-in."""
    return []


@analyzer(needs=Needs.WEIGHTS)
def fresh_analyzer(subject, /):
    """A well-behaved plugin."""
    return []


def not_decorated(subject):
    return []


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    points = [metadata.EntryPoint(name=name, value=value, group="introspect.analyzers") for name, value in values.items()]
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: points if group == "introspect.analyzers" else [])


def test_builtins_are_listed_in_order_with_needs_and_summaries() -> None:
    registry = Registry.default(load_plugins=False)
    names = [spec.name for spec in registry]
    assert names[:2] == ["weight_histograms", "activations"]
    spec = registry.get("weight_histograms")
    assert spec.needs == Needs.WEIGHTS and spec.summary.startswith("Distribution of weights")
    assert spec.package == "introspect"


def test_plugins_are_loaded_and_bad_ones_reported_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    here = __name__
    fake_entry_points(
        monkeypatch,
        {
            "fresh": f"{here}:fresh_analyzer",
            "shadow": f"{here}:weight_histograms",
            "plain": f"{here}:not_decorated",
            "broken": "no_such_module_anywhere:thing",
        },
    )
    registry = Registry.default(load_plugins=True)
    assert "fresh_analyzer" in registry
    problems = "\n".join(registry.problems)
    assert "'weight_histograms'" in problems and "already taken by introspect" in problems
    assert "not decorated with @introspect.analyzer" in problems
    assert "'broken'" in problems and "failed to load" in problems
    assert registry.get("weight_histograms").package == "introspect"


def test_autoload_can_be_disabled_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch, {"fresh": f"{__name__}:fresh_analyzer"})
    monkeypatch.setenv("INTROSPECT_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "fresh_analyzer" not in Registry.default()
    monkeypatch.setenv("INTROSPECT_DISABLE_PLUGIN_AUTOLOAD", "0")
    assert "fresh_analyzer" in Registry.default()


def test_unknown_name_suggests_close_matches() -> None:
    registry = Registry.default(load_plugins=False)
    with pytest.raises(PluginError, match="Did you mean weight_histograms"):
        registry.get("weight_histogram")


def test_select_all_minus_excluded_keeps_registry_order() -> None:
    registry = Registry([spec_of(fresh_analyzer), spec_of(weight_histograms)])
    assert [s.name for s in registry.select(select_all=True, exclude=["fresh_analyzer"])] == ["weight_histograms"]
    assert [s.name for s in registry.select(["weight_histograms", "fresh_analyzer"])] == ["fresh_analyzer", "weight_histograms"]


def test_decorator_requires_docstring_and_snake_case() -> None:
    with pytest.raises(ValueError, match="docstring"):
        analyzer(lambda subject: [], name="nodoc")
    with pytest.raises(ValueError, match="snake_case"):
        analyzer(fresh_analyzer, name="Bad-Name")
