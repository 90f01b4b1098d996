"""The built-in analyzers, found by scanning this package's public modules for ``@analyzer`` functions.

There is no list to keep: a function decorated with ``@analyzer`` in a public module (a name not
starting with ``_``) is a built-in. The gallery shows modules in the order of their ``POSITION``
(modules without one come last, by name) and a module's analyzers in the order they are defined.
Importing this package does not import torch.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from types import ModuleType
from typing import Any

from introspect.spec import spec_of

#: Where a module without a ``POSITION`` goes: after every module that declares one.
_LAST = 1_000_000

#: Old module names kept as deprecated shims for one release; they define no analyzers, so the scan skips them.
MOVED = {
    "kernels": "weight_images",
    "dynamics": "activation_units",
    "images": "activation_maps",
    "gradients": "attribution",
    "sanity": "attribution_sanity",
}


def _public_modules(package: ModuleType) -> list[ModuleType]:
    """The package's public modules, imported, in gallery order."""
    modules = [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_") and not (package.__name__ == __name__ and info.name in MOVED)
    ]
    return sorted(modules, key=lambda module: (getattr(module, "POSITION", _LAST), module.__name__))


def _defined_here(module: ModuleType) -> list[Callable[..., Any]]:
    """The module's own ``@analyzer`` functions in definition order (re-exports from elsewhere skipped)."""
    found = {
        id(value): value
        for value in vars(module).values()
        # isfunction first: asking a lazy-import proxy for the spec attribute would import torch.
        if inspect.isfunction(value) and value.__module__ == module.__name__ and spec_of(value) is not None
    }
    return sorted(found.values(), key=lambda func: func.__code__.co_firstlineno)


def discover(package: ModuleType | None = None) -> tuple[Callable[..., Any], ...]:
    """Every ``@analyzer`` function defined in ``package``'s public modules (this package by default).

    Args:
        package: the package to scan; tests pass a temporary one.

    Returns:
        The analyzer functions, module by module in gallery order, each module's in definition order.
    """
    import introspect.analyzers as default_package

    scanned = package if package is not None else default_package
    return tuple(func for module in _public_modules(scanned) for func in _defined_here(module))


def __getattr__(name: str) -> Any:
    # BUILTINS stays importable, but is computed by the scan so it can never miss an analyzer.
    if name == "BUILTINS":
        return discover()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
