"""How the classes lie in the model's representations over a dataset split (``--data``).

Both analyzers keep a uniform sample of the split's inputs (a bottom-k reservoir keyed by dataset
index, so every layer samples the same inputs and any split of the work samples the same way).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from introspect._lazy import lazy_import
from introspect.analyzers._dataset import class_names, penultimate_layer, small_thumbnails, unit_layers
from introspect.artifacts import Artifact
from introspect.dataset.passes import LayerOutputs, unit_means_of
from introspect.dataset.reducers import Reservoir
from introspect.errors import SkipAnalyzer
from introspect.needs import Needs
from introspect.plotting import new_figure, short_label
from introspect.report.interactive import scatter_view
from introspect.spec import analyzer

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure

    from introspect.dataset.run import Reduced
    from introspect.dataset.sources import Batch
    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

POSITION = 14
#: Flattened features kept per input; a wider layer is represented by its channel means.
MAX_FEATURES = 4096
MAX_LEGEND_CLASSES = 20


def layer_features(outputs: Mapping[str, torch.Tensor], name: str, chosen: np.ndarray) -> np.ndarray:
    """(chosen inputs, features) of layer ``name``: the flattened output, or its channel means when that is
    wider than MAX_FEATURES; only the ``chosen`` rows (a boolean mask over the batch) are converted."""
    output = outputs[name].detach()
    if math.prod(output.shape[1:]) > MAX_FEATURES:
        return unit_means_of(outputs, name)[chosen]
    if chosen.all() and isinstance(outputs, LayerOutputs):
        return outputs.float64(name).flatten(1).numpy()  # the float64 copy the unit means may share
    rows = output if chosen.all() else output[torch.from_numpy(chosen)]
    return rows.double().flatten(1).numpy()


@dataclasses.dataclass
class SampledLayers:
    """A uniform sample of the split's inputs, with each followed layer's features for them."""

    layers: Sequence[str]
    size: int
    seed: int = 0

    def __post_init__(self) -> None:
        self.samples = {name: Reservoir(self.size, self.seed) for name in self.layers}

    def feed(self, batch: Batch, logits: torch.Tensor, outputs: dict[str, torch.Tensor]) -> None:
        """Offer the batch's inputs to each layer's reservoir."""
        classified = batch.labels is not None and not batch.labels.is_floating_point()
        labels = batch.labels.numpy() if classified else None
        indices = batch.indices.numpy()
        for name in self.layers:
            if name in outputs:
                sample = self.samples[name]
                # Rows that cannot enter the sample are never converted (most of them, once it is full).
                chosen = sample.candidates(indices)
                if chosen.any():
                    chosen_labels = None if labels is None else labels[chosen]
                    sample.update(layer_features(outputs, name, chosen), indices[chosen], chosen_labels)

    def merge(self, other: SampledLayers) -> SampledLayers:
        """Fold a reducer of another shard into this one; returns ``self``."""
        for name, sample in other.samples.items():
            self.samples[name].merge(sample)
        return self


def projection_reducer(subject: Subject, *, layer: str | None = None, sample_size: int = 2000) -> SampledLayers:
    """A sample of the penultimate layer's (or ``layer``'s) features over the pass."""
    return SampledLayers([penultimate_layer(subject, layer)], sample_size, subject.seed)


@analyzer(needs=Needs.DATASET, reducer=projection_reducer)
def embedding_projection(
    subject: Subject,
    reduced: Reduced,
    /,
    *,
    layer: str | None = None,
    sample_size: int = 2000,
    perplexity: float = 30.0,
) -> list[Artifact]:
    """The penultimate layer's representations of a sample of the split, projected to 2-D and coloured by class.

    PCA keeps the directions of largest variance (distances along them are meaningful); t-SNE
    keeps neighbourhoods (clusters are meaningful, distances between them and their sizes are
    not). Classes that form separate clusters are what the last layer can read apart.
    """
    state: SampledLayers = reduced.state
    (name,) = state.layers
    sample = state.samples[name]
    if sample.rows is None or len(sample.rows) < 3:
        raise SkipAnalyzer("fewer than 3 inputs were seen, too few to project")
    rows, labels = sample.rows, sample.labels
    by_pca, by_tsne, explained, used_perplexity = _projections(rows, perplexity, subject.seed)
    names = class_names(subject, int(labels.max()) + 1) if (labels >= 0).any() else []
    panels = [("PCA", by_pca), ("t-SNE", by_tsne)]
    figure = _scatter_figure(panels, labels, names, name)
    caption = (
        f"{reduced.describe()} A uniform sample of {len(rows)} inputs; layer {name} ({rows.shape[1]} features). "
        f"PCA's two axes explain {explained[0]:.1%} and {explained[1]:.1%} of the variance; t-SNE with "
        f"perplexity {used_perplexity:g}."
    )
    data = {"indices": sample.indices, "labels": labels, "pca": by_pca, "tsne": by_tsne, "class_names": names}
    summary = {"layer": name, "num_points": len(rows), "pca_explained": [float(value) for value in explained]}
    view = _scatter_page(subject, sample, panels, names)
    caption += " In the page, hover a point to see its input; click a class to hide it."
    return [
        Artifact(
            name="embedding", caption=caption, layer=name, figure=figure, data=data, summary=summary, interactive=view
        )
    ]


def _projections(rows: np.ndarray, perplexity: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The rows by PCA and by t-SNE (2-D each), PCA's explained variance ratios, and the perplexity t-SNE used
    (at most a third of the points less one, which t-SNE requires)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    pca = PCA(n_components=2, random_state=seed).fit(rows)
    tsne = TSNE(n_components=2, perplexity=min(perplexity, (len(rows) - 1) / 3), init="pca", random_state=seed)
    by_tsne = tsne.fit_transform(rows)
    return pca.transform(rows), by_tsne, pca.explained_variance_ratio_, tsne.perplexity


def _scatter_page(
    subject: Subject, sample: Reservoir, panels: Sequence[tuple[str, np.ndarray]], names: Sequence[str]
) -> dict[str, Any]:
    """The interactive scatter of the sampled points, with each point's input as a thumbnail."""
    from matplotlib.colors import to_hex

    colours = [to_hex(colour) for colour in _class_colours(len(names))]
    thumbnails = small_thumbnails(subject, sample.indices)
    return scatter_view(panels, sample.labels, names, colours, indices=sample.indices, thumbnails=thumbnails)


def _scatter_figure(
    panels: Sequence[tuple[str, np.ndarray]], labels: np.ndarray, names: Sequence[str], layer: str
) -> Figure:
    figure = new_figure(5.2 * len(panels) + 1.6, 5.0)
    colours = _class_colours(len(names))
    for position, (title, points) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), position + 1)
        if not len(names):
            axes.scatter(points[:, 0], points[:, 1], s=4, color="tab:blue", alpha=0.7, linewidths=0)
        for index, name in enumerate(names):
            chosen = labels == index
            axes.scatter(points[chosen, 0], points[chosen, 1], s=4, color=colours[index], alpha=0.75, linewidths=0,
                         label=short_label(name, 18))  # fmt: skip
        axes.set_title(f"{title} of {short_label(layer, 30)}", fontsize=10)
        axes.set_xticks([])
        axes.set_yticks([])
    if 0 < len(names) <= MAX_LEGEND_CLASSES:
        figure.axes[-1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, markerscale=3, frameon=False)
    figure.subplots_adjust(left=0.02, right=0.86, bottom=0.03, top=0.92, wspace=0.05)
    return figure


def _class_colours(count: int) -> list[tuple[float, ...]]:
    from matplotlib import colormaps

    palette = colormaps["tab10" if count <= 10 else "tab20"]
    return [palette(index % palette.N) for index in range(count)]


def probe_reducer(
    subject: Subject, *, layers: str | None = None, max_layers: int = 12, sample_size: int = 2000
) -> SampledLayers:
    """The same uniform sample of inputs, with the features of every followed layer."""
    return SampledLayers(unit_layers(subject, layers, max_layers), sample_size, subject.seed)


@analyzer(needs=Needs.DATASET | Needs.CLASSIFICATION, reducer=probe_reducer)
def linear_probes(
    subject: Subject, reduced: Reduced, /, *, layers: str | None = None, max_layers: int = 12, sample_size: int = 2000
) -> list[Artifact]:
    """Linear probes: how well a logistic regression reads the class from each layer, by depth.

    A probe is trained on 70% of a uniform sample of the split and scored on the other 30%
    (stratified, seeded). A rising curve shows the classes becoming linearly separable layer by
    layer; the dashed line is chance (the most frequent class).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    state: SampledLayers = reduced.state
    first = next(iter(state.samples.values()))
    if first.rows is None or (first.labels < 0).any():
        raise SkipAnalyzer("the dataset has no labels to train the probes on")
    labels = first.labels
    counts = np.bincount(labels)
    if (counts[counts > 0] < 2).any() or len(labels) < 10:
        raise SkipAnalyzer("too few labelled inputs per class to train and score a probe")
    train, test = train_test_split(np.arange(len(labels)), test_size=0.3, stratify=labels, random_state=subject.seed)
    accuracies = {}
    for name, sample in state.samples.items():
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
        probe.fit(sample.rows[train], labels[train])
        accuracies[name] = float(probe.score(sample.rows[test], labels[test]))
    chance = float(np.bincount(labels[test]).max() / len(test))
    figure = _depth_figure(accuracies, chance)
    caption = (
        f"{reduced.describe()} Probes on {len(train)} sampled inputs, scored on {len(test)} others; "
        f"best layer {max(accuracies, key=accuracies.get)} at {max(accuracies.values()):.1%}, chance {chance:.1%}."
    )
    table = [{"layer": name, "features": state.samples[name].rows.shape[1], "probe accuracy": round(value, 4)}
             for name, value in accuracies.items()]  # fmt: skip
    data = {"layers": list(accuracies), "accuracy": np.array(list(accuracies.values())), "chance": chance}
    data |= {"train_indices": first.indices[train], "test_indices": first.indices[test]}
    summary = {"accuracy": accuracies, "chance": chance}
    return [
        Artifact(name="linear-probes", caption=caption, figure=figure, data=data, summary=summary),
        Artifact(name="linear-probes-table", caption="Probe accuracy per layer.", table=table),
    ]


def _depth_figure(accuracies: dict[str, float], chance: float) -> Figure:
    figure = new_figure(max(5.0, 0.55 * len(accuracies) + 2.0), 3.8)
    axes = figure.add_subplot(1, 1, 1)
    positions = np.arange(len(accuracies))
    axes.plot(positions, list(accuracies.values()), marker="o", color="tab:blue", label="probe accuracy")
    axes.axhline(chance, color="black", linestyle="--", linewidth=1, label="chance")
    axes.set_xticks(positions, [short_label(name, 20) for name in accuracies], rotation=45, ha="right", fontsize=7)
    axes.set_ylim(0, 1.02)
    axes.set_ylabel("held-out accuracy")
    axes.set_xlabel("layer (execution depth)")
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    return figure
