"""Units over a whole dataset split (``--data``): which are dead or saturated, and what drives each one."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from introspect.analyzers._dataset import strip_rows_figure, thumbnails, unit_layers
from introspect.analyzers._shared import activation_layers
from introspect.artifacts import Artifact
from introspect.dataset.passes import HealthReducer, TopUnitsReducer
from introspect.errors import SkipAnalyzer
from introspect.needs import Needs
from introspect.plotting import new_figure, short_label
from introspect.spec import analyzer

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from introspect.dataset.run import Reduced
    from introspect.subject import Subject

POSITION = 13
#: A unit active on fewer than this share of the inputs is "rarely active".
RARE = 0.01


def health_reducer(
    subject: Subject, *, layers: str | None = None, max_layers: int = 24, eps: float = 0.01
) -> HealthReducer:
    """Moments and activity of each unit of the activation layers (or ``layers``) over the pass."""
    names = unit_layers(subject, layers, max_layers)
    kinds = activation_layers(subject.model)
    bounds = {name: kinds[name][1] for name in names if name in kinds and kinds[name][0] == "bounded"}
    return HealthReducer(names, bounds=bounds, eps=eps)


@analyzer(needs=Needs.DATASET, reducer=health_reducer)
def dataset_health(
    subject: Subject, reduced: Reduced, /, *, layers: str | None = None, max_layers: int = 24, eps: float = 0.01
) -> list[Artifact]:
    """Dead, rarely active and saturated units measured over the whole split, not just the probe.

    A unit (a conv channel counts as one, by its mean over positions) is dead when it is never
    above zero on any input of the split, and rarely active when it is above zero on fewer than 1%
    of them. A bounded unit (sigmoid, tanh) is saturated on an input when it sits within ``eps``
    of a bound; the bars show the share of units saturated on most inputs.
    """
    state: HealthReducer = reduced.state
    if not state.moments:
        raise SkipAnalyzer("no followed layer produced a tensor output")
    modules = dict(subject.model.named_modules())
    rows, shares = [], {}
    for name, moments in state.moments.items():
        fraction = moments.active_fraction
        saturated = state.saturated.get(name)
        mostly_saturated = None if saturated is None else saturated / max(moments.count, 1) >= 0.5
        shares[name] = (
            float((moments.active == 0).mean()),
            float(((fraction > 0) & (fraction < RARE)).mean()),
            float(mostly_saturated.mean()) if mostly_saturated is not None else 0.0,
        )
        rows.append(
            {
                "layer": name,
                "type": type(modules[name]).__name__,
                "units": moments.num_units,
                "dead": int((moments.active == 0).sum()),
                "rarely active": int(((fraction > 0) & (fraction < RARE)).sum()),
                "saturated": None if mostly_saturated is None else int(mostly_saturated.sum()),
                "mean": round(float(moments.mean.mean()), 4),
                "max": round(float(moments.maximum.max()), 4),
            }
        )
    figure = _shares_figure(shares)
    dead = sum(row["dead"] for row in rows)
    units = sum(row["units"] for row in rows)
    caption = f"{reduced.describe()} {dead} of {units} units in {len(rows)} layers were never active."
    data = {
        "layers": list(state.moments),
        "active_fraction": {name: moments.active_fraction for name, moments in state.moments.items()},
        "dead": {name: np.flatnonzero(moments.active == 0) for name, moments in state.moments.items()},
    }
    summary = {"num_dead_units": dead, "num_units": units, "num_inputs": reduced.seen}
    return [
        Artifact(name="dataset-health", caption=caption, figure=figure, data=data, summary=summary),
        Artifact(name="dataset-health-table", caption="Units per layer over the split.", table=rows),
    ]


def _shares_figure(shares: dict[str, tuple[float, float, float]]) -> Figure:
    names = list(shares)
    figure = new_figure(7.5, 1.2 + 0.3 * len(names))
    axes = figure.add_subplot(1, 1, 1)
    positions = np.arange(len(names))
    values = np.array([shares[name] for name in names])
    left = np.zeros(len(names))
    for column, (label, colour) in enumerate(
        [("dead", "tab:red"), (f"active on < {RARE:.0%} of inputs", "tab:orange"), ("saturated", "tab:purple")]
    ):
        axes.barh(positions, values[:, column], left=left, color=colour, label=label)
        left = left + values[:, column]
    axes.set_yticks(positions, [short_label(name, 28) for name in names], fontsize=7)
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.set_xlabel("share of the layer's units")
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    return figure


def top_units_reducer(
    subject: Subject, *, layers: str | None = None, max_layers: int = 4, k: int = 8
) -> TopUnitsReducer:
    """The k inputs that drive each unit of the followed layers hardest, kept over the pass."""
    return TopUnitsReducer(unit_layers(subject, layers, max_layers), k=k)


@analyzer(needs=Needs.DATASET | Needs.IMAGE_INPUT, reducer=top_units_reducer)
def top_activations(
    subject: Subject, reduced: Reduced, /, *, layers: str | None = None, max_layers: int = 4, k: int = 8,
    max_units: int = 12,
) -> list[Artifact]:  # fmt: skip
    """For each unit or channel, the dataset inputs that drive it hardest (Distill's dataset examples).

    Each row is one unit of a layer, with the k inputs of the split that gave it its largest
    values (a conv channel by its mean over positions), the largest first. Beside it: the unit's
    mean and maximum over the split, and the share of inputs at which it is active (> 0). The
    units shown are those with the largest maxima; every unit's top inputs are in the data.
    """
    state: TopUnitsReducer = reduced.state
    if not state.top:
        raise SkipAnalyzer("no followed layer produced a tensor output")
    artifacts = []
    for name, top in state.top.items():
        moments = state.moments[name]
        units = np.argsort(-moments.maximum, kind="stable")[:max_units]
        indices = [int(index) for unit in units for index in top.indices[unit] if index >= 0]
        images = thumbnails(subject, indices)
        if images is None:
            raise SkipAnalyzer("the data cannot be indexed, so its inputs cannot be shown again")
        rows, start = [], 0
        for unit in units:
            count = int((top.indices[unit] >= 0).sum())
            label = (
                f"unit {unit}\nmean {moments.mean[unit]:.2g}\nmax {moments.maximum[unit]:.2g}\n"
                f"active {moments.active_fraction[unit]:.0%}"
            )
            captions = [f"{value:.2g}" for value in top.scores[unit][:count]]
            rows.append((label, images[start : start + count], captions))
            start += count
        figure = strip_rows_figure(rows, f"{short_label(name, 40)}: the inputs that drive each unit hardest")
        caption = (
            f"{reduced.describe()} Layer {name} ({top.num_units} units): for the {len(units)} units with the largest "
            f"maxima, the {top.k} inputs with the largest values (under each, the value)."
        )
        data = {"units": units, "top_indices": top.indices, "top_values": top.scores, "mean": moments.mean}
        data |= {"max": moments.maximum, "active_fraction": moments.active_fraction}
        summary = {"layer": name, "num_units": top.num_units, "num_shown": len(units)}
        artifacts.append(Artifact(name="top-activations", caption=caption, layer=name, figure=figure, data=data,
                                  summary=summary))  # fmt: skip
    return artifacts
