"""Deferred imports, so that ``introspect --help`` and ``introspect list`` never load torch."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule(ModuleType):
    """A stand-in for a module that is imported on first attribute access."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._lazy_target: ModuleType | None = None

    def _load(self) -> ModuleType:
        if self._lazy_target is None:
            self._lazy_target = importlib.import_module(self.__name__)
        return self._lazy_target

    def __getattr__(self, attribute: str) -> Any:
        # Kept on the stand-in, so the next look-up is a plain attribute read: the loader's loops over
        # 100,000 tensors made 600,000 ``torch.Tensor`` look-ups, 0.4 s through this method. A name
        # rebound on the real module later (a test's monkeypatch of ``torch.load``) is not seen here.
        value = getattr(self._load(), attribute)
        setattr(self, attribute, value)
        return value


def lazy_import(name: str) -> Any:
    """Return ``name`` as a module that is only imported when first used."""
    return LazyModule(name)
