"""An example introspect plugin: one analyzer, advertised under ``introspect.analyzers``."""

from __future__ import annotations

import numpy as np

from introspect import Artifact, Needs, Subject, analyzer
from introspect.plotting import new_figure


@analyzer(needs=Needs.WEIGHTS)
def weight_norms(subject: Subject, /) -> list[Artifact]:
    """The L2 norm of every parameter tensor, as a bar chart.

    Layers whose norm dwarfs the others dominate the network's output; a norm near zero marks a
    layer that barely contributes.
    """
    names = list(subject.weights)
    norms = np.array([float(subject.weights[name].double().norm()) for name in names])
    figure = new_figure(8, 0.3 * len(names) + 1.2)
    axes = figure.add_subplot()
    axes.barh(np.arange(len(names)), norms)
    axes.set_yticks(np.arange(len(names)), names, fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("L2 norm")
    return [
        Artifact(
            name="norms",
            caption="L2 norm of each parameter tensor.",
            figure=figure,
            data={"norms": dict(zip(names, norms.tolist()))},
            summary={"largest": names[int(norms.argmax())] if names else None},
        )
    ]
