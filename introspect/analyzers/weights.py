"""Analyzers that need only the weights."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np

from introspect.artifacts import Artifact
from introspect.needs import Needs
from introspect.plotting import new_figure, panel_grid
from introspect.spec import analyzer

if TYPE_CHECKING:
    from introspect.subject import Subject

MAX_SAMPLE = 1_000_000
LAYERS_PER_FIGURE = 12


def group_by_layer(weights: dict) -> dict[str, dict[str, np.ndarray]]:
    """``{"fc1.weight": w, "fc1.bias": b}`` → ``{"fc1": {"weight": w, "bias": b}}``, in order."""
    layers: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    for name, tensor in weights.items():
        layer, _, kind = name.rpartition(".")
        layers[layer or name][kind or name] = tensor
    return dict(layers)


def bounded_values(tensor, max_sample: int, seed: int) -> tuple[np.ndarray, bool]:
    """All finite values of ``tensor`` as float64, or a seeded random sample of ``max_sample``.

    Returns the values and whether they were sampled.
    """
    flat = tensor.detach().reshape(-1)
    sampled = flat.numel() > max_sample
    if sampled:
        rng = np.random.default_rng(seed)
        flat = flat[rng.choice(flat.numel(), size=max_sample, replace=False)]
    values = flat.double().cpu().numpy()
    return values[np.isfinite(values)], sampled


def describe(values: np.ndarray, bins: int) -> dict:
    """Histogram counts, edges and moments of ``values``."""
    if values.size == 0:
        return {"count": 0, "counts": [], "edges": [], "mean": float("nan"), "std": float("nan")}
    counts, edges = np.histogram(values, bins=bins)
    return {
        "count": int(values.size),
        "counts": counts,
        "edges": edges,
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
    }


@analyzer(needs=Needs.WEIGHTS)
def weight_histograms(subject: Subject, /, *, bins: int = 60, max_sample: int = MAX_SAMPLE) -> list[Artifact]:
    """Distribution of weights and biases, one panel per layer.

    Each panel shows how a layer's weights (and its biases, in orange) are spread. Weights
    piled near zero are barely used; very wide or lopsided spreads can signal exploding or
    badly initialized layers. Non-finite values are counted and left out of the histogram.
    """
    layers = group_by_layer(dict(subject.weights))
    stats: dict[str, dict] = {}
    notes: list[str] = []
    for layer, tensors in layers.items():
        for kind, tensor in tensors.items():
            values, sampled = bounded_values(tensor, max_sample, subject.seed)
            entry = describe(values, bins)
            entry["non_finite"] = int(tensor.numel() - (values.size if not sampled else tensor.isfinite().sum().item()))
            entry["sampled"] = sampled
            stats[f"{layer}.{kind}"] = entry
            if sampled:
                notes.append(f"{layer}.{kind}: {max_sample:,} of {tensor.numel():,} values sampled")
            if entry["non_finite"]:
                notes.append(f"{layer}.{kind}: {entry['non_finite']} NaN/Inf values left out")
    layer_names = list(layers)
    return [
        _histogram_page(layer_names[start : start + LAYERS_PER_FIGURE], layers, stats, notes, start, len(layer_names))
        for start in range(0, len(layer_names), LAYERS_PER_FIGURE)
    ]


def _histogram_page(names: list[str], layers: dict, stats: dict, notes: list[str], start: int, total: int) -> Artifact:
    figure = new_figure(12, 2.6 * -(-len(names) // 4))
    for axes, layer in zip(panel_grid(figure, len(names)), names):
        for kind, colour in (("weight", "tab:blue"), ("bias", "tab:orange")):
            entry = stats.get(f"{layer}.{kind}")
            if entry and entry["count"]:
                axes.stairs(entry["counts"], entry["edges"], fill=True, alpha=0.6, color=colour, label=kind)
        others = [kind for kind in layers[layer] if kind not in ("weight", "bias")]
        for kind in others:
            entry = stats[f"{layer}.{kind}"]
            if entry["count"]:
                axes.stairs(entry["counts"], entry["edges"], alpha=0.8, label=kind)
        axes.set_title(layer, fontsize=9)
        axes.tick_params(labelsize=7)
        axes.legend(fontsize=7)
    shown = {key: value for key, value in stats.items() if key.rsplit(".", 1)[0] in names}
    page = f" (layers {start + 1}-{start + len(names)} of {total})" if total > len(names) else ""
    caption = f"Histograms of weights and biases per layer{page}."
    if notes:
        caption += " Note: " + "; ".join(notes) + "."
    return Artifact(
        name=f"layers-{start + 1:03d}",
        caption=caption,
        figure=figure,
        data=shown,
        summary={key: {"mean": v["mean"], "std": v["std"], "count": v["count"]} for key, v in shown.items()},
    )


ANALYZERS = (weight_histograms,)
