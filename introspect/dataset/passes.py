"""One pass over a dataset, many reducers: the model runs once per batch, hooks feed every reducer.

A :class:`DatasetReducer` names the layers it needs and folds each batch's logits and layer
outputs into bounded state (see :mod:`introspect.dataset.reducers`). :func:`reduce_dataset` runs
the stream once for all of them; reducers of the same kind from different shards merge, so a
pass can be split over workers and combined afterwards.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from introspect._lazy import lazy_import
from introspect.capture import evaluation_mode, recording
from introspect.dataset.reducers import ConfusionCounts, TopK, UnitMoments
from introspect.dataset.sources import DataError
from introspect.model_output import logits_of

if TYPE_CHECKING:
    import torch
    from torch import nn

    from introspect.dataset.sources import Batch
else:
    torch = lazy_import("torch")

#: Called after each batch with the number of inputs seen so far.
Progress = Callable[[int], None]


class DatasetReducer(Protocol):
    """What :func:`reduce_dataset` feeds: the layers it needs, then every batch."""

    layers: Sequence[str]

    def feed(self, batch: Batch, logits: torch.Tensor, outputs: dict[str, torch.Tensor]) -> None: ...  # noqa: D102


def reduce_dataset(
    model: nn.Module,
    stream: Iterable[Batch],
    reducers: Sequence[DatasetReducer],
    *,
    device: str = "cpu",
    progress: Progress | None = None,
) -> int:
    """Run ``model`` once over ``stream`` in eval mode, feeding every reducer; returns the inputs seen."""
    layers = list(dict.fromkeys(name for reducer in reducers for name in reducer.layers))
    seen = 0
    with evaluation_mode(model), torch.no_grad():
        for batch in stream:
            with recording(model, layers, copied=None) as recorded:
                logits = logits_of(model(batch.inputs.to(device))).detach().cpu()
            outputs = LayerOutputs(recorded)
            for reducer in reducers:
                reducer.feed(batch, logits, outputs)
            seen += len(batch.indices)
            if progress is not None:
                progress(seen)
    return seen


@dataclasses.dataclass
class ConfusionReducer:
    """The confusion counts over the whole split, and each class's most confident mistakes."""

    num_classes: int
    mistakes_per_class: int = 8
    layers: Sequence[str] = ()

    def __post_init__(self) -> None:
        self.counts = ConfusionCounts(self.num_classes)
        self.mistakes = TopK(self.num_classes, self.mistakes_per_class)
        self.unlabelled = 0

    def feed(self, batch: Batch, logits: torch.Tensor, outputs: dict[str, torch.Tensor]) -> None:
        """Count the batch's (label, prediction) pairs and offer its mistakes by confidence."""
        if batch.labels is None:
            self.unlabelled += len(batch.indices)
            return
        if logits.dim() != 2 or logits.shape[1] != self.num_classes:
            shape = tuple(logits.shape[1:])
            raise DataError(f"the model gives outputs of shape {shape}, not {self.num_classes} class scores")
        labels = batch.labels.numpy()
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise DataError(f"the data has label {int(labels.max())}, outside the model's {self.num_classes} classes")
        probabilities = torch.softmax(logits.double(), dim=1)
        confidence, predicted = probabilities.max(dim=1)
        self.counts.update(labels, predicted.numpy())
        wrong = predicted.numpy() != labels
        self.mistakes.update_assigned(labels[wrong], confidence.numpy()[wrong], batch.indices.numpy()[wrong])

    def merge(self, other: ConfusionReducer) -> ConfusionReducer:
        """Fold a reducer of another shard into this one; returns ``self``."""
        self.counts.merge(other.counts)
        self.mistakes.merge(other.mistakes)
        self.unlabelled += other.unlabelled
        return self


def unit_means(output: torch.Tensor) -> np.ndarray:
    """(inputs, units) values of a layer's output: a conv channel's value is its mean over positions."""
    values = output.detach().double()
    if values.dim() > 2:
        values = values.reshape(values.shape[0], values.shape[1], -1).mean(dim=2)
    return values.reshape(len(values), -1).numpy()


class LayerOutputs(dict):
    """One batch's recorded outputs by layer name, as :func:`reduce_dataset` hands them to every reducer.

    Several reducers read the same layer in float64 (health and top units its unit means, the
    sampled layers its features); :meth:`float64` and :meth:`unit_means` convert once per batch for all.
    """

    def __init__(self, outputs: Mapping[str, torch.Tensor]) -> None:
        super().__init__(outputs)
        self._float64: dict[str, torch.Tensor] = {}
        self._unit_means: dict[str, np.ndarray] = {}

    def float64(self, name: str) -> torch.Tensor:
        """The layer's output in float64, converted on the first call; shared, so never to be modified."""
        if name not in self._float64:
            self._float64[name] = self[name].detach().double()
        return self._float64[name]

    def unit_means(self, name: str) -> np.ndarray:
        """The layer's :func:`unit_means`, computed on the first call; read-only, since every reducer shares it."""
        if name not in self._unit_means:
            values = unit_means(self.float64(name))
            values.flags.writeable = False
            self._unit_means[name] = values
        return self._unit_means[name]


def unit_means_of(outputs: Mapping[str, torch.Tensor], name: str) -> np.ndarray:
    """The unit means of layer ``name``: shared when ``outputs`` is a :class:`LayerOutputs`, computed otherwise."""
    return outputs.unit_means(name) if isinstance(outputs, LayerOutputs) else unit_means(outputs[name])


@dataclasses.dataclass
class HealthReducer:
    """Per layer and unit: moments over the split, how often the unit was active (> 0), and for
    bounded activations how often it sat within ``eps`` of a bound.

    A unit never active on any input of the split is dead on the data, not just on a probe.
    """

    layers: Sequence[str]
    bounds: Mapping[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    eps: float = 0.01

    def __post_init__(self) -> None:
        self.moments: dict[str, UnitMoments] = {}
        self.saturated: dict[str, np.ndarray] = {}

    def feed(self, batch: Batch, logits: torch.Tensor, outputs: dict[str, torch.Tensor]) -> None:
        """Fold each layer's unit values of the batch into its moments."""
        for name in self.layers:
            if name in outputs:
                values = unit_means_of(outputs, name)
                self.moments.setdefault(name, UnitMoments(values.shape[1])).update(values)
                if name in self.bounds:
                    low, high = self.bounds[name]
                    near = (np.abs(values - low) <= self.eps) | (np.abs(high - values) <= self.eps)
                    self.saturated[name] = self.saturated.get(name, 0) + near.sum(axis=0)

    def merge(self, other: HealthReducer) -> HealthReducer:
        """Fold a reducer of another shard into this one; returns ``self``."""
        for name, moments in other.moments.items():
            if name in self.moments:
                self.moments[name].merge(moments)
            else:
                self.moments[name] = moments
        for name, counts in other.saturated.items():
            self.saturated[name] = self.saturated.get(name, 0) + counts
        return self

    def dead_units(self, name: str) -> np.ndarray:
        """Indices of the layer's units that were never active."""
        return np.flatnonzero(self.moments[name].active == 0)


@dataclasses.dataclass
class TopUnitsReducer:
    """Per layer and unit: the ``k`` inputs that drive it hardest, and its moments over the split."""

    layers: Sequence[str]
    k: int = 8

    def __post_init__(self) -> None:
        self.top: dict[str, TopK] = {}
        self.moments: dict[str, UnitMoments] = {}

    def feed(self, batch: Batch, logits: torch.Tensor, outputs: dict[str, torch.Tensor]) -> None:
        """Offer the batch's inputs to each unit's top-k by the unit's value (a channel's mean)."""
        for name in self.layers:
            if name in outputs:
                values = unit_means_of(outputs, name)
                self.top.setdefault(name, TopK(values.shape[1], self.k)).update(values, batch.indices.numpy())
                self.moments.setdefault(name, UnitMoments(values.shape[1])).update(values)

    def merge(self, other: TopUnitsReducer) -> TopUnitsReducer:
        """Fold a reducer of another shard into this one; returns ``self``."""
        for name in other.top:
            if name in self.top:
                self.top[name].merge(other.top[name])
                self.moments[name].merge(other.moments[name])
            else:
                self.top[name], self.moments[name] = other.top[name], other.moments[name]
        return self
