"""``check_recipe``: the round trip every registered network must pass (train, save, reload).

Our suite runs it for every network; the author of a new network runs it on theirs::

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

from trainers.catalog import RunSettings, get_recipe, train


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


def check_recipe(name: str, out_dir: str | os.PathLike[str], *, epochs: int = 1, seed: int = 0, **overrides: str) -> RecipeCheck:
    """Train ``name`` for ``epochs`` quick epochs, save it, reload it through ``introspect``.

    Raises:
        AssertionError: the checkpoint does not reload to the same network, its architecture
            is not the recipe's, or its probe is missing.
    """
    from introspect.architectures import build_registered
    from introspect.loading import load_checkpoint

    recipe = get_recipe(name)
    settings = RunSettings(epochs=epochs, quick=True, seed=seed, device="cpu", data_dir=os.environ.get("INTROSPECT_DATA"), overrides=overrides)
    started = time.perf_counter()
    path = train(name, settings, Path(out_dir) / f"{name}.pt")
    seconds = time.perf_counter() - started
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert checkpoint["architecture"]["key"] == recipe.architecture, checkpoint["architecture"]
    subject = load_checkpoint(path, device="cpu")
    assert subject.model is not None, subject.model_note
    probe = checkpoint["probe"]["inputs"]
    assert probe is not None and len(probe) > 0, "the checkpoint has no probe inputs"
    direct = build_registered(recipe.architecture, checkpoint["architecture"]["config"])
    direct.load_state_dict(checkpoint["state_dict"])
    with torch.no_grad():
        reloaded_out = subject.model.eval()(probe)
        direct_out = direct.eval()(probe)
    for key, tensor in direct.state_dict().items():
        assert torch.equal(tensor, subject.model.state_dict()[key]), f"{key} differs after reloading"
    max_abs_diff = float((reloaded_out - direct_out).abs().max())
    return RecipeCheck(checkpoint=checkpoint, subject=subject, max_abs_diff=max_abs_diff, seconds=seconds, path=path)
