"""``check_recipe``: the round trip every registered network must pass (train, save, reload).

``tests/trainers/test_networks.py`` runs it for every recipe of every network; the author of a
network kept in another package runs it on theirs::

    report = check_recipe("lenet5", tmp_path)
    assert report.max_abs_diff == 0.0
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import torch

from trainers.catalog import get_recipe
from trainers.network import Network, Variant
from trainers.settings import RunSettings


@dataclasses.dataclass(frozen=True)
class RecipeCheck:
    """What :func:`check_recipe` measured.

    Attributes:
        checkpoint: the dict as read back from the file (``weights_only=True``).
        subject: the :class:`introspect.subject.Subject` that ``load_checkpoint`` gave.
        max_abs_diff: largest difference between the reloaded model's outputs on the probe and
            those of the network rebuilt directly from the saved config and weights.
        seconds: wall time of training and saving.
        path: where the checkpoint was written.
    """

    checkpoint: dict[str, Any]
    subject: Any
    max_abs_diff: float
    seconds: float
    path: Path


def check_recipe(
    name: str, out_dir: str | os.PathLike[str], *, epochs: int = 1, seed: int = 0, **overrides: str
) -> RecipeCheck:
    """Train the recipe ``name`` for ``epochs`` quick epochs, save it, reload it through ``introspect``.

    Raises:
        AssertionError: as :func:`check_network`.
    """
    recipe = get_recipe(name)
    settings = RunSettings(
        epochs=epochs,
        quick=True,
        seed=seed,
        device="cpu",
        data_dir=os.environ.get("INTROSPECT_DATA"),
        overrides=overrides,
    )
    return check_network(recipe.network, out_dir, settings, recipe.variant)


def check_network(
    network: Network, out_dir: str | os.PathLike[str], settings: RunSettings, variant: Variant | None = None
) -> RecipeCheck:
    """Train ``network`` as ``settings`` say, save it, and reload it as any user would.

    The reload goes through ``introspect`` and the registered entry point, so a record that is not
    the installed one (a test's copy with smaller data) is checked against the installed factory.

    Raises:
        AssertionError: the checkpoint does not reload to the same network, its architecture
            is not the network's, or its probe is missing.
    """
    from introspect.architectures import build_registered
    from introspect.checkpoint import save_checkpoint
    from introspect.loading import load_checkpoint
    from trainers.training import train

    started = time.perf_counter()
    path = save_checkpoint(Path(out_dir) / f"{network.recipe_name(variant)}.pt", train(network, settings, variant))
    seconds = time.perf_counter() - started
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert checkpoint["architecture"]["key"] == network.name, checkpoint["architecture"]
    subject = load_checkpoint(path, device="cpu")
    assert subject.model is not None, subject.model_note
    probe = checkpoint["probe"]["inputs"]
    assert probe is not None and len(probe) > 0, "the checkpoint has no probe inputs"
    direct = build_registered(network.name, checkpoint["architecture"]["config"])
    direct.load_state_dict(checkpoint["state_dict"])
    with torch.no_grad():
        reloaded_out = subject.model.eval()(probe)
        direct_out = direct.eval()(probe)
    for key, tensor in direct.state_dict().items():
        assert torch.equal(tensor, subject.model.state_dict()[key]), f"{key} differs after reloading"
    max_abs_diff = float((reloaded_out - direct_out).abs().max())
    return RecipeCheck(checkpoint=checkpoint, subject=subject, max_abs_diff=max_abs_diff, seconds=seconds, path=path)
