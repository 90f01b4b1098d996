"""How each layer drifted over training: its representation's CKA to the final model, and its weight change."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from introspect.artifacts import Artifact
from introspect.errors import SkipAnalyzer
from introspect.needs import Needs
from introspect.plotting import new_figure, short_label
from introspect.spec import analyzer

#: Where this module's analyzers come in the gallery: beside the training curves (``training``, 5).
POSITION = 5

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from introspect.subject import Subject

#: A layer counts as settled from the first snapshot after which its CKA to the final model stays at least this.
SETTLED_CKA = 0.9
#: Rows drawn at most; with more layers an evenly spaced choice is drawn (the numbers keep all).
MAX_SHOWN_LAYERS = 60


@analyzer(needs=Needs.DRIFT)
def layer_drift(subject: Subject, /) -> list[Artifact]:
    """Each layer's drift over training: CKA of its representation to the final model, and its weight change.

    Left, one row per layer with parameters (input end at the top) and one column per recorded
    epoch: linear CKA (Kornblith et al. 2019) between the layer's output on a fixed probe of
    training inputs at that epoch and at the end of training, on one 0-to-1 scale; 1 (yellow)
    means the layer already represents the probe as it does at the end, so a row that turns
    yellow early belongs to a layer that settled early. Right: the relative weight change
    ||W_e - W_0|| / ||W_0|| of each layer, 0 at the start, on a scale of its own. Recorded by
    introspect's trainers only; other checkpoints skip it.
    """
    drift = subject.drift
    if not drift:
        # The runner skips on the need already; this is for a direct call.
        raise SkipAnalyzer(subject.missing_reason(Needs.DRIFT))
    epochs, layers = list(drift["epochs"]), list(drift["layers"])
    cka, change = np.asarray(drift["cka_to_final"], dtype=np.float64), np.asarray(drift["relative_change"])
    shown = shown_rows(len(layers))
    settled = settled_epochs(epochs, cka)
    figure = _drift_figure(epochs, [layers[row] for row in shown], cka[:, shown], change[:, shown])
    data = {
        "epochs": np.array(epochs),
        "layers": layers,
        "cka_to_final": cka,
        "relative_change": change,
        "settled_epoch": settled,
    }
    summary = {
        "epochs": epochs,
        "layers": layers,
        "first_cka_to_final": [round(float(value), 4) for value in cka[0]],
        "final_relative_change": [round(float(value), 4) for value in change[-1]],
        "settled_epoch": [None if epoch is None else int(epoch) for epoch in settled],
    }
    return [
        Artifact(
            name="layer_drift",
            caption=_caption(len(layers), len(shown), len(epochs)),
            figure=figure,
            data=data,
            summary=summary,
        )
    ]


def shown_rows(num_layers: int, max_rows: int = MAX_SHOWN_LAYERS) -> list[int]:
    """All layer indices, or ``max_rows`` evenly spaced ones that keep the first and the last."""
    if num_layers <= max_rows:
        return list(range(num_layers))
    return sorted({int(row) for row in np.linspace(0, num_layers - 1, max_rows).round()})


def settled_epochs(epochs: list[int], cka: np.ndarray, threshold: float = SETTLED_CKA) -> list[int | None]:
    """Per layer, the first recorded epoch from which its CKA to the final model stays at or above ``threshold``."""
    settled: list[int | None] = []
    for column in cka.T:
        below = np.flatnonzero(column < threshold)
        first = 0 if not len(below) else int(below[-1]) + 1
        settled.append(epochs[first] if first < len(epochs) else None)
    return settled


def _caption(num_layers: int, num_shown: int, num_epochs: int) -> str:
    """Two sentences on what is shown and how to read it, and what was left out of the drawing."""
    caption = (
        f"Left: linear CKA between each of the {num_layers} layers' output on a fixed probe of training inputs at "
        f"{num_epochs} recorded epochs and the same layer at the end of training, on one 0-to-1 scale (1: the layer "
        "already represents the probe as it finally does); right: each layer's relative weight change "
        "||W_e - W_0|| / ||W_0|| since initialization. Read each row from left to right: the epoch where it "
        "reaches 1 is when that layer settled; early layers are typically expected to settle before later ones, "
        "which this figure lets you check for this network."
    )
    if num_shown < num_layers:
        caption += f" {num_shown} evenly spaced layers of {num_layers} are drawn; the numbers hold all of them."
    return caption


def _drift_figure(epochs: list[int], layers: list[str], cka: np.ndarray, change: np.ndarray) -> Figure:
    height = min(14.0, 2.2 + 0.22 * len(layers))
    figure = new_figure(max(9.0, 5.0 + 0.5 * len(epochs)), height)
    cka_axes, change_axes = figure.subplots(1, 2, sharey=True)
    image = _heatmap(cka_axes, epochs, cka.T, vmax=1.0, colours="viridis")
    figure.colorbar(image, ax=cka_axes, label="linear CKA to the final model", shrink=0.85)
    cka_axes.set_title("representation: CKA to the final model (0 to 1)", fontsize=9)
    limit = float(change.max()) if change.size and float(change.max()) > 0 else 1.0
    image = _heatmap(change_axes, epochs, change.T, vmax=limit, colours="magma")
    figure.colorbar(image, ax=change_axes, label="||W_e - W_0|| / ||W_0||", shrink=0.85)
    change_axes.set_title("weights: relative change since initialization", fontsize=9)
    # Names come from the file: one line, bounded, and no mathtext.
    cka_axes.set_yticks(range(len(layers)), [short_label(name, 40).replace("$", r"\$") for name in layers], fontsize=7)
    cka_axes.set_ylabel("layer (input end at the top)", fontsize=8)
    return figure


def _heatmap(axes: Axes, epochs: list[int], values: np.ndarray, vmax: float, colours: str):  # noqa: ANN202
    """``values`` (layers x epochs) as coloured cells from 0 to ``vmax``, one column per recorded epoch."""
    image = axes.imshow(values, aspect="auto", cmap=colours, vmin=0.0, vmax=vmax, interpolation="nearest")
    step = max(1, len(epochs) // 10)
    axes.set_xticks(range(0, len(epochs), step), [str(epoch) for epoch in epochs[::step]], fontsize=7)
    axes.set_xlabel("epoch", fontsize=8)
    return image
