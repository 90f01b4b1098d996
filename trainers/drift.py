"""Each layer's drift over training: how far its weights moved, and how alike its representation is to the end.

:class:`DriftRecorder` is an ``on_epoch`` callback for :func:`trainers.loop.fit`. At epoch 0 and
after up to :data:`MAX_SNAPSHOTS` evenly spaced epochs it records, for every layer that holds
parameters, the relative weight change ``||W_e - W_0|| / ||W_0||`` (Frobenius norm over all the
layer's own parameters) and the centred linear-kernel Gram matrix of the layer's output on a fixed
probe of training inputs. Only the Gram matrices (probe x probe) are kept, so at the end linear
CKA (Kornblith et al. 2019) between each snapshot and the final model comes from them alone::

    recorder = DriftRecorder(drift_probe(train.inputs, seed=0), num_epochs=config.epochs)
    fit(model, train, validation, config, on_epoch=recorder)
    checkpoint["drift"] = recorder.drift(model)

The checkpoint keeps only the small result: epochs, layer names, and two (snapshots x layers)
matrices (CKA to the final model, relative weight change).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from introspect.analyzers._cka import centered_grams, cka_from_kernels
from introspect.analyzers._faithfulness import parameterized_layers

MAX_SNAPSHOTS = 20
MAX_PROBE = 128

EpochFn = Callable[[int, nn.Module], None]


def snapshot_epochs(num_epochs: int, max_snapshots: int = MAX_SNAPSHOTS) -> list[int]:
    """Epoch 0 and the epochs after which to record: all of them, or ``max_snapshots`` evenly spaced ones."""
    if num_epochs + 1 <= max_snapshots:
        return list(range(num_epochs + 1))
    return sorted({int(epoch) for epoch in np.linspace(0, num_epochs, max_snapshots).round()})


def drift_probe(inputs: torch.Tensor, size: int = MAX_PROBE, seed: int = 0) -> torch.Tensor:
    """A fixed, seeded choice of at most ``size`` training inputs (a copy, so the data can change)."""
    if len(inputs) <= size:
        return inputs.detach().clone()
    picks = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(seed))[:size]
    return inputs[picks.sort().values].detach().clone()


def chained(*callbacks: EpochFn | None) -> EpochFn:
    """One ``on_epoch`` callback that calls each of ``callbacks`` (``None`` ones skipped) in order."""
    present = [callback for callback in callbacks if callback is not None]

    def call_each(epoch: int, model: nn.Module) -> None:
        for callback in present:
            callback(epoch, model)

    return call_each


def relative_change(current: Sequence[torch.Tensor], initial: Sequence[torch.Tensor]) -> float:
    """``||current - initial|| / ||initial||``, the Frobenius norm taken over all the tensors together."""
    moved = sum(float(((now.detach().cpu().double() - start) ** 2).sum()) for now, start in zip(current, initial))
    size = sum(float((start**2).sum()) for start in initial)
    return math.sqrt(moved / size)


class DriftRecorder:
    """An ``on_epoch`` callback that records each layer's weight change and probe Gram matrix at chosen epochs.

    Args:
        probe: inputs as the model takes them (at most :data:`MAX_PROBE`, see :func:`drift_probe`).
        num_epochs: the epochs training will run, to choose the recorded ones up front.
        max_snapshots: most snapshots, epoch 0 included.
    """

    def __init__(self, probe: torch.Tensor, num_epochs: int, max_snapshots: int = MAX_SNAPSHOTS) -> None:
        if len(probe) > MAX_PROBE:
            raise ValueError(f"the drift probe holds {len(probe)} inputs; at most {MAX_PROBE}")
        self.probe = probe
        self.planned = set(snapshot_epochs(num_epochs, max_snapshots))
        self.layers: list[str] = []
        self.initial: dict[str, list[torch.Tensor]] = {}
        self.epochs: list[int] = []
        self.grams: list[dict[str, torch.Tensor]] = []
        self.changes: list[list[float]] = []
        self.last_epoch: int | None = None

    def __call__(self, epoch: int, model: nn.Module) -> None:
        if self.last_epoch is None:
            self._start(model)
        self.last_epoch = epoch
        if epoch in self.planned:
            self._record(epoch, model)

    def _start(self, model: nn.Module) -> None:
        """The layers followed: those with parameters, in forward order, whose initial weights are not all zero."""
        modules = dict(model.named_modules())
        for name in parameterized_layers(model)[::-1]:
            start = [parameter.detach().cpu().double().clone() for parameter in modules[name].parameters(recurse=False)]
            # A relative change from all-zero weights is undefined.
            if sum(float((tensor**2).sum()) for tensor in start) > 0:
                self.layers.append(name)
                self.initial[name] = start

    def _record(self, epoch: int, model: nn.Module) -> None:
        device = next(model.parameters()).device
        kernels = centered_grams(model, self.probe.to(device), self.layers)
        modules = dict(model.named_modules())
        self.epochs.append(epoch)
        self.grams.append({name: kernel.float() for name, kernel in kernels.items()})
        self.changes.append(
            [relative_change(list(modules[name].parameters(recurse=False)), self.initial[name]) for name in self.layers]
        )

    def drift(self, model: nn.Module) -> dict[str, Any] | None:
        """The checkpoint's ``drift`` entry, ``model`` being the final one; ``None`` when nothing was recorded.

        When training stopped before the last planned epoch, the final model is recorded as one
        more snapshot (there is room: the planned last epoch was never reached). Layers whose CKA
        is undefined at some snapshot (an output constant over the probe) are left out.
        """
        if self.last_epoch is None or not self.layers:
            return None
        if self.epochs[-1] != self.last_epoch:
            self._record(self.last_epoch, model)
        final = self.grams[-1]
        kept = [column for column, name in enumerate(self.layers) if all(name in kernels for kernels in self.grams)]
        cka = np.array(
            [
                [_cka(kernels[self.layers[column]], final[self.layers[column]]) for column in kept]
                for kernels in self.grams
            ]
        )
        change = np.array(self.changes)[:, kept]
        defined = [index for index in range(len(kept)) if np.isfinite(cka[:, index]).all()]
        if not defined:
            return None
        return {
            "epochs": list(self.epochs),
            "layers": [self.layers[kept[index]] for index in defined],
            "cka_to_final": torch.tensor(cka[:, defined], dtype=torch.float32),
            "relative_change": torch.tensor(change[:, defined], dtype=torch.float32),
        }


def _cka(first: torch.Tensor, second: torch.Tensor) -> float:
    """Linear CKA of two centred Gram matrices, computed in float64."""
    return float(cka_from_kernels([first.double(), second.double()])[0, 1])
