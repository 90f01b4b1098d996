"""Where the model looks, on average, for each class over a whole dataset split (``--data``)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from introspect._lazy import lazy_import
from introspect.analyzers._dataset import class_names
from introspect.artifacts import Artifact
from introspect.dataset.reducers import ClassMeans
from introspect.errors import SkipAnalyzer
from introspect.model_output import logits_of
from introspect.needs import Needs
from introspect.plotting import new_figure, short_label
from introspect.spec import analyzer

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure

    from introspect.dataset.run import Reduced
    from introspect.dataset.sources import Batch
    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

POSITION = 15
MAX_CLASSES = 20


def saliency_maps(model: Any, inputs: torch.Tensor, targets: torch.Tensor, image_shape: tuple[int, ...]) -> np.ndarray:
    """(inputs, H, W) gradient saliency (Simonyan et al. 2014): |d score / d input|, the max over channels,
    each map scaled to its own maximum so that every input counts the same in a class mean."""
    with torch.enable_grad():
        x = inputs.detach().clone().requires_grad_(True)
        scores = logits_of(model(x)).gather(1, targets.reshape(-1, 1)).sum()
        (gradient,) = torch.autograd.grad(scores, x)
    maps = gradient.detach().abs().reshape(len(x), *image_shape).amax(dim=1).double().cpu().numpy()
    peaks = maps.reshape(len(maps), -1).max(axis=1).reshape(-1, 1, 1)
    return np.divide(maps, peaks, out=np.zeros_like(maps), where=peaks > 0)


@dataclasses.dataclass
class ClassSaliency:
    """Per class: the mean and spread of the saliency maps of its inputs (the label's class, else the predicted one)."""

    model: Any
    num_classes: int
    image_shape: tuple[int, int, int]
    device: str = "cpu"

    def __post_init__(self) -> None:
        self.layers: tuple[str, ...] = ()
        self.means = ClassMeans(self.num_classes, tuple(self.image_shape[1:]))
        self.by_prediction = 0

    def feed(self, batch: Batch, logits: torch.Tensor, outputs: dict[str, torch.Tensor]) -> None:
        """Saliency maps of the batch (one more forward and backward), added to their classes' sums."""
        if batch.labels is None:
            targets = logits.argmax(dim=1)
            self.by_prediction += len(targets)
        else:
            targets = batch.labels.long()
        maps = saliency_maps(self.model, batch.inputs.to(self.device), targets.to(self.device), self.image_shape)
        self.means.update(targets.numpy(), maps)

    def merge(self, other: ClassSaliency) -> ClassSaliency:
        """Fold a reducer of another shard into this one; returns ``self``."""
        self.means.merge(other.means)
        self.by_prediction += other.by_prediction
        return self

    def __getstate__(self) -> dict[str, Any]:
        """Without the model: a shard's state travels between processes, the model does not."""
        return {key: value for key, value in self.__dict__.items() if key != "model"}

    def bind(self, model: Any, device: str) -> None:
        """Give a copy of this reducer in another process that process's model (the Ray executor does)."""
        self.model, self.device = model, device


def class_saliency_reducer(subject: Subject) -> ClassSaliency:
    """Running per-class sums of saliency maps over the pass."""
    num_classes = len(subject.task.class_names) or len(subject.data.source.class_names)
    if num_classes < 2:
        raise SkipAnalyzer("the checkpoint and the dataset name no classes")
    return ClassSaliency(subject.model, num_classes, tuple(subject.task.image_shape), subject.device)


@analyzer(
    needs=Needs.DATASET | Needs.GRADIENTS | Needs.IMAGE_INPUT | Needs.CLASSIFICATION, reducer=class_saliency_reducer
)
def class_saliency(subject: Subject, reduced: Reduced, /, *, max_classes: int = MAX_CLASSES) -> list[Artifact]:
    """The mean gradient-saliency map of each class over the split, with its spread.

    Each input's map is |d class score / d pixel| (the largest over colour channels), scaled to
    its own maximum, so every input weighs the same. The top row is the class mean: where the
    model looks for that class on average. The bottom row is the standard deviation: bright where
    the evidence moves from input to input.
    """
    state: ClassSaliency = reduced.state
    means, spreads, counts = state.means.means(), state.means.stds(), state.means.counts
    seen = np.flatnonzero(counts)[:max_classes]
    if not len(seen):
        raise SkipAnalyzer("no input was seen")
    names = class_names(subject, state.num_classes)
    figure = _class_maps_figure(
        means[seen], spreads[seen], [f"{short_label(names[i], 14)} (n={counts[i]})" for i in seen]
    )
    caption = f"{reduced.describe()} Mean and spread of the saliency maps per class, on one scale per row."
    if state.by_prediction:
        caption += f" {state.by_prediction} inputs without a label are counted under their predicted class."
    data = {"means": means, "stds": spreads, "counts": counts, "class_names": names}
    summary = {"num_classes_seen": len(seen), "num_inputs": int(counts.sum())}
    return [Artifact(name="class-saliency", caption=caption, figure=figure, data=data, summary=summary)]


def _class_maps_figure(means: np.ndarray, spreads: np.ndarray, titles: list[str]) -> Figure:
    columns = len(titles)
    figure = new_figure(1.3 * columns + 1.0, 3.2)
    rows = [("mean", means, "inferno"), ("std", spreads, "viridis")]
    for row, (label, maps, colours) in enumerate(rows):
        top = float(np.nanmax(maps)) or 1.0
        for column in range(columns):
            axes = figure.add_subplot(2, columns, row * columns + column + 1)
            shown = axes.imshow(maps[column], cmap=colours, vmin=0.0, vmax=top, interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            if row == 0:
                axes.set_title(titles[column], fontsize=7)
            if column == 0:
                axes.set_ylabel(label, fontsize=8)
        figure.colorbar(shown, ax=figure.axes[-columns:], shrink=0.8, pad=0.01)
    return figure
