"""introspect: look inside PyTorch networks.

The public API is listed in ``__all__``. Names are imported on first use, so ``import
introspect`` is cheap and does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "analyze": "introspect.api",
    "AnalysisReport": "introspect.api",
    "show": "introspect.api",
    "AnalyzerView": "introspect.api",
    "load_checkpoint": "introspect.loading",
    "LoadOptions": "introspect.loading",
    "save_checkpoint": "introspect.checkpoint",
    "make_checkpoint": "introspect.checkpoint",
    "capture_activations": "introspect.capture",
    "list_analyzers": "introspect.api",
    "run_analyzers": "introspect.runner",
    "write_gallery": "introspect.report",
    "GalleryWriter": "introspect.report",
    "new_figure": "introspect.plotting",
    "analyzer": "introspect.spec",
    "AnalyzerSpec": "introspect.spec",
    "Needs": "introspect.needs",
    "Artifact": "introspect.artifacts",
    "AnalyzerResult": "introspect.artifacts",
    "Subject": "introspect.subject",
    "Task": "introspect.subject",
    "Registry": "introspect.registry",
    "IntrospectError": "introspect.errors",
    "CheckpointError": "introspect.errors",
    "GalleryError": "introspect.errors",
    "PluginError": "introspect.errors",
    "SkipAnalyzer": "introspect.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'introspect' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
