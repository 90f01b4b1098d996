"""Which analyzers exist: the built-ins plus plugins from the ``introspect.analyzers`` group.

Importing this module, and listing analyzers, does not import torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Iterable, Iterator
from importlib import metadata

from introspect.errors import PluginError
from introspect.spec import AnalyzerSpec, spec_of

ANALYZER_GROUP = "introspect.analyzers"
DISABLE_AUTOLOAD_VARIABLE = "INTROSPECT_DISABLE_PLUGIN_AUTOLOAD"


class Registry:
    """An ordered set of analyzers with unique names.

    Tests build their own; :meth:`default` builds the one the CLI uses.
    """

    def __init__(self, specs: Iterable[AnalyzerSpec] = ()) -> None:
        self._specs: dict[str, AnalyzerSpec] = {}
        self.problems: list[str] = []
        for spec in specs:
            self.add(spec)

    @classmethod
    def default(cls, *, load_plugins: bool | None = None) -> Registry:
        """Built-ins, then plugins unless disabled by argument or ``INTROSPECT_DISABLE_PLUGIN_AUTOLOAD``."""
        from introspect.analyzers import discover

        registry = cls(_spec_or_error(func, "introspect") for func in discover())
        if load_plugins is None:
            load_plugins = os.environ.get(DISABLE_AUTOLOAD_VARIABLE, "") in ("", "0")
        if load_plugins:
            registry.load_entry_points()
        return registry

    def add(self, spec: AnalyzerSpec) -> None:
        """Add ``spec``; a name that is already taken raises :class:`PluginError`."""
        existing = self._specs.get(spec.name)
        if existing is not None:
            raise PluginError(
                f"analyzer {spec.name!r} from {spec.package} is refused: "
                f"the name is already taken by {existing.package}"
            )
        self._specs[spec.name] = spec

    def load_entry_points(self, group: str = ANALYZER_GROUP) -> None:
        """Add every analyzer advertised under ``group``; broken plugins go to :attr:`problems`."""
        for entry_point in metadata.entry_points(group=group):
            package = entry_point.dist.name if entry_point.dist else entry_point.value
            try:
                loaded = entry_point.load()
                targets = loaded if isinstance(loaded, (list, tuple)) else [loaded]
                for target in targets:
                    self.add(_spec_or_error(target, package))
            except PluginError as error:
                self.problems.append(str(error))
            except Exception as error:  # a plugin's import may fail in any way
                self.problems.append(
                    f"plugin {entry_point.name!r} from {package} failed to load "
                    f"({type(error).__name__}: {error}) and was left out"
                )

    def __iter__(self) -> Iterator[AnalyzerSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def get(self, name: str) -> AnalyzerSpec:
        """The analyzer called ``name``; an unknown name raises with the closest suggestions."""
        try:
            return self._specs[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._specs, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise PluginError(f"unknown analyzer {name!r}.{hint} 'introspect list' shows them all.") from None

    def select(
        self, names: Iterable[str] = (), *, exclude: Iterable[str] = (), select_all: bool = False
    ) -> list[AnalyzerSpec]:
        """Analyzers chosen by name (or all), minus the excluded ones, in registry order."""
        excluded = {self.get(name).name for name in exclude}
        wanted = list(self._specs) if select_all else [self.get(name).name for name in names]
        return [self._specs[name] for name in self._specs if name in wanted and name not in excluded]


def _spec_or_error(target: object, package: str) -> AnalyzerSpec:
    spec = spec_of(target)
    if spec is None:
        raise PluginError(
            f"plugin object {target!r} from {package} is not decorated with @introspect.analyzer and was left out"
        )
    if spec.package != package:
        spec = dataclasses.replace(spec, package=package)
    return spec
