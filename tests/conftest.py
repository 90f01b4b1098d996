"""Shared test set-up: offline data, a quiet matplotlib, and small thread counts."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"

os.environ.setdefault("INTROSPECT_DATA", str(SHARED_DATASETS))
os.environ.setdefault("MPLBACKEND", "Agg")
# Plugins installed in the environment must not change what the built-in tests see.
os.environ.setdefault("INTROSPECT_DISABLE_PLUGIN_AUTOLOAD", "1")
