"""The example plugin package installs, appears in `introspect list` and in a gallery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGIN_DIR = REPO_ROOT / "examples" / "introspect-example-plugin"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin installed into its own folder, so the shared environment is untouched."""
    target = tmp_path_factory.mktemp("plugin-site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(PLUGIN_DIR),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


def run_with_plugin(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "INTROSPECT_DISABLE_PLUGIN_AUTOLOAD": "0"}
    return subprocess.run(
        [sys.executable, "-m", "introspect", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_installed_plugin_is_listed_with_its_package(plugin_site: Path) -> None:
    result = run_with_plugin(plugin_site, "list", "--json")
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["weight_norms"]["package"] == "introspect-example-plugin"
    assert rows["weight_norms"]["needs"] == ["weights"]


def test_plugin_output_lands_in_the_gallery_with_correct_numbers(plugin_site: Path, tmp_path: Path) -> None:
    import torch

    torch.manual_seed(0)
    state = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)).state_dict()
    torch.save(state, tmp_path / "weights.pt")
    result = run_with_plugin(
        plugin_site, "analyze", str(tmp_path / "weights.pt"), "-a", "weight_norms", "-o", str(tmp_path / "g")
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    [entry] = manifest["analyzers"]
    assert entry["name"] == "weight_norms" and entry["package"] == "introspect-example-plugin"
    largest = max(state, key=lambda name: float(state[name].double().norm()))
    assert entry["figures"][0]["summary"] == {"largest": largest}
    assert (tmp_path / "g" / entry["figures"][0]["file"]).exists()


def test_no_plugins_flag_leaves_it_out(plugin_site: Path) -> None:
    result = run_with_plugin(plugin_site, "list", "--json", "--no-plugins")
    assert "weight_norms" not in {row["name"] for row in json.loads(result.stdout)}
