"""The analyzer registry: built-ins, plugins, conflicts and lookups."""

from __future__ import annotations

import sys
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
    points = [
        metadata.EntryPoint(name=name, value=value, group="introspect.analyzers") for name, value in values.items()
    ]
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
    assert [s.name for s in registry.select(["weight_histograms", "fresh_analyzer"])] == [
        "fresh_analyzer",
        "weight_histograms",
    ]


def test_decorator_requires_docstring_and_snake_case() -> None:
    with pytest.raises(ValueError, match="docstring"):
        analyzer(lambda subject: [], name="nodoc")
    with pytest.raises(ValueError, match="snake_case"):
        analyzer(fresh_analyzer, name="Bad-Name")


NEW_MODULE = '''
"""A module that a developer just added."""

from introspect import Needs, analyzer


@analyzer(needs=Needs.WEIGHTS)
def parameter_count(subject, /):
    """How many parameters the model has; returns no artifact."""
    return []


@analyzer(needs=Needs.WEIGHTS)
def second_new(subject, /):
    """A second analyzer, defined after the first."""
    return []
'''


def _temporary_package(tmp_path, monkeypatch: pytest.MonkeyPatch, name: str):
    """A package on ``sys.path`` holding one public analyzer module and one private one."""
    import importlib

    package_dir = tmp_path / name
    package_dir.mkdir()
    (package_dir / "__init__.py").write_text("")
    (package_dir / "fresh.py").write_text(NEW_MODULE)
    # A private module is a helper, never scanned, even if it holds an analyzer.
    (package_dir / "_helpers.py").write_text(NEW_MODULE.replace("parameter_count", "hidden_one"))
    monkeypatch.syspath_prepend(str(tmp_path))
    return importlib.import_module(name)


def test_an_analyzer_added_to_a_module_is_found_without_touching_a_list(tmp_path, monkeypatch, request) -> None:
    from introspect import analyzers
    from introspect.testing import check_analyzer

    package = _temporary_package(tmp_path, monkeypatch, "introspect_discovery_probe")
    found = analyzers.discover(package)
    assert [func.__name__ for func in found] == ["parameter_count", "second_new"]
    assert check_analyzer(found[0])["weights_only"] == "ok"

    # The default registry scans introspect.analyzers' own path: add a folder to it, so the new
    # module is imported as introspect.analyzers.fresh, exactly like a file added to the package.
    monkeypatch.setattr(analyzers, "__path__", [*analyzers.__path__, str(tmp_path / "introspect_discovery_probe")])
    request.addfinalizer(lambda: sys.modules.pop("introspect.analyzers.fresh", None))
    registry = Registry.default(load_plugins=False)
    assert "parameter_count" in registry and "hidden_one" not in registry
    assert registry.get("parameter_count").package == "introspect"
    assert check_analyzer(registry.get("parameter_count"))["weights_only"] == "ok"


def test_every_public_analyzer_function_is_a_builtin() -> None:
    import inspect
    import pkgutil

    from introspect import analyzers

    registered = {spec.func for spec in Registry.default(load_plugins=False)}
    for info in pkgutil.iter_modules(analyzers.__path__):
        module = __import__(f"introspect.analyzers.{info.name}", fromlist=["_"])
        for value in vars(module).values():
            if inspect.isfunction(value) and spec_of(value) is not None and not info.name.startswith("_"):
                assert value in registered, f"{info.name}.{value.__name__} is not registered"
