"""Representations compared with linear CKA: which layers compute alike, and how far training moved each one.

CKA (see :mod:`introspect.analyzers._cka`) compares the similarity structure of the same inputs
in two layers, so it is 1 for a layer against itself and for any orthogonal transform or
rescaling of it, and falls towards 0 as two layers see the inputs differently. A block of high
values along the diagonal is a run of layers that compute much the same thing.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import
from introspect.analyzers._cka import MIN_BATCH, MinibatchCKAReducer, centered_grams, cka_from_kernels
from introspect.analyzers._shared import activation_layers, evenly_spaced, interesting_layers, requested_layers
from introspect.artifacts import Artifact
from introspect.capture import check_hookable
from introspect.errors import SkipAnalyzer
from introspect.needs import Needs
from introspect.plotting import new_figure, short_label
from introspect.spec import analyzer

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from introspect.dataset.run import Reduced
    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

#: After the activation maps, before the animations.
POSITION = 7
#: Layers whose CKA values are written in the cells; above this the colours alone must do.
MAX_ANNOTATED = 12


def compared_layers(subject: Subject, requested: str | None, max_layers: int) -> list[str]:
    """The layers compared: ``requested`` (comma-separated), else each activation's output and the last layer.

    Activation outputs are where a representation is complete (a conv and its ReLU would
    otherwise pair up as near-copies); without activations, every layer that transforms its input.
    """
    check_hookable(subject.model)
    if requested:
        names = requested_layers(subject.model, requested)
    else:
        transforming = interesting_layers(subject.model)
        names = list(activation_layers(subject.model)) or transforming
        if transforming and transforming[-1] not in names:
            names.append(transforming[-1])  # the output layer: how the classes are read
        names = evenly_spaced(names, max(2, max_layers))
    if len(names) < 2:
        raise SkipAnalyzer("the model has fewer than two layers to compare")
    return names


@analyzer(needs=Needs.FORWARD)
def layer_similarity(subject: Subject, /, *, layers: str | None = None, max_layers: int = 16) -> list[Artifact]:
    """Linear CKA between every pair of layers over the probe, and each layer's CKA with its untrained self.

    A cell is 1 when two layers represent the probe inputs alike (up to a rotation and a scale)
    and near 0 when they are unrelated. When the checkpoint keeps its initial weights, a second
    figure shows, for each layer, the CKA between the trained network and the same network before
    training on the same inputs: 1 means training left that layer's representation as it was.
    """
    inputs = subject.probe_inputs
    if len(inputs) < MIN_BATCH:
        raise SkipAnalyzer(f"CKA needs at least {MIN_BATCH} probe inputs, the probe has {len(inputs)}")
    names = compared_layers(subject, layers, max_layers)
    kernels = centered_grams(subject.model, inputs.to(subject.device), names)
    names = [name for name in names if name in kernels]
    if len(names) < 2:
        raise SkipAnalyzer("fewer than two of the compared layers gave a tensor output")
    matrix = cka_from_kernels([kernels[name] for name in names])
    caption = (
        f"Linear CKA (Kornblith et al. 2019) between the outputs of {len(names)} layers over the "
        f"{len(inputs)} probe inputs: 1 is the same representation up to a rotation and a scale, 0 unrelated."
    )
    artifacts = [_matrix_artifact("layer-similarity", matrix, names, caption, len(inputs))]
    if subject.initial_weights:
        artifacts.append(_drift_artifact(subject, names, kernels))
    return artifacts


def cka_reducer(subject: Subject, *, layers: str | None = None, max_layers: int = 16) -> MinibatchCKAReducer:
    """Minibatch CKA between every pair of the compared layers, summed over the pass."""
    return MinibatchCKAReducer(compared_layers(subject, layers, max_layers))


@analyzer(needs=Needs.DATASET, reducer=cka_reducer)
def dataset_layer_similarity(
    subject: Subject, reduced: Reduced, /, *, layers: str | None = None, max_layers: int = 16
) -> list[Artifact]:
    """Linear CKA between every pair of layers over a whole dataset split, by minibatch CKA.

    The unbiased HSIC of each pair is averaged over the batches of the pass (Nguyen et al. 2021),
    so the numbers do not depend on the batch size the way the probe's biased estimate does, and
    the memory stays one number per pair however large the split.
    """
    state: MinibatchCKAReducer = reduced.state
    if not state.batches:
        raise SkipAnalyzer(f"no batch of the dataset had the {MIN_BATCH} inputs minibatch CKA needs")
    caption = (
        f"Minibatch linear CKA (Nguyen et al. 2021) between {len(state.layers)} layers over {reduced.seen:,} "
        f"inputs in {state.batches} batches: 1 is the same representation up to a rotation and a scale, 0 unrelated."
    )
    if state.skipped:
        caption += f" {state.skipped} batch(es) of fewer than {MIN_BATCH} inputs were left out."
    return [_matrix_artifact("dataset-layer-similarity", state.cka(), list(state.layers), caption, reduced.seen)]


def _matrix_artifact(name: str, matrix: np.ndarray, layers: list[str], caption: str, num_inputs: int) -> Artifact:
    adjacent = [float(matrix[index, index + 1]) for index in range(len(layers) - 1)]
    summary = {
        "layers": layers,
        "num_inputs": num_inputs,
        "adjacent_cka": adjacent,
        "first_last_cka": float(matrix[0, -1]),
    }
    data = {"cka": matrix}  # the layers, in order, are in the summary
    return Artifact(name=name, caption=caption, figure=_heatmap(matrix, layers), data=data, summary=summary)


def _heatmap(matrix: np.ndarray, layers: list[str]) -> Figure:
    side = min(11.0, 2.5 + 0.45 * len(layers))
    figure = new_figure(side + 1.2, side)
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    labels = [short_label(layer, 24) for layer in layers]
    axes.set_xticks(range(len(layers)), labels, rotation=90, fontsize=7)
    axes.set_yticks(range(len(layers)), labels, fontsize=7)
    if len(layers) <= MAX_ANNOTATED:
        for (row, column), value in np.ndenumerate(matrix):
            text = "-" if not np.isfinite(value) else f"{value:.2f}"
            axes.text(
                column, row, text, ha="center", va="center", fontsize=6, color="white" if value < 0.6 else "black"
            )
    axes.set_title("Linear CKA between layers", fontsize=10)
    figure.colorbar(image, ax=axes, shrink=0.8, label="CKA")
    return figure


def _drift_artifact(subject: Subject, names: list[str], trained: dict[str, torch.Tensor]) -> Artifact:
    """Per layer: CKA between the trained network's output and the initial network's on the probe (both as kernels)."""
    untrained = copy.deepcopy(subject.model)
    state = {name: tensor.to(subject.device) for name, tensor in subject.initial_weights.items()}
    untrained.load_state_dict(state, strict=False)  # buffers the checkpoint did not keep stay as trained
    initial = centered_grams(untrained, subject.probe_inputs.to(subject.device), names)
    del untrained
    values = np.array(
        [cka_from_kernels([trained[name], initial[name]])[0, 1] if name in initial else np.nan for name in names]
    )
    figure = new_figure(max(6.5, 0.5 * len(names) + 2.0), 3.6)
    axes = figure.add_subplot()
    axes.bar(range(len(names)), values, color="tab:blue")
    axes.set_xticks(range(len(names)), [short_label(name, 24) for name in names], rotation=90, fontsize=7)
    axes.set_ylim(0.0, 1.0)
    axes.set_ylabel("CKA, trained vs initial")
    axes.set_title("Each layer against its untrained self (1: training left it unchanged)", fontsize=10)
    caption = (
        "For each layer, linear CKA between its outputs in the trained network and in the same network with "
        f"its initial weights, on the {len(subject.probe_inputs)} probe inputs; lower means training moved it further."
    )
    summary = {"layers": names, "cka_with_initial": [None if np.isnan(v) else float(v) for v in values]}
    return Artifact(name="drift-from-initial", caption=caption, figure=figure, data={"cka": values}, summary=summary)
