"""Analyzers of weight statistics, which need only the weights: value histograms and a table per tensor."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np

from introspect.analyzers._shared import evenly_spaced
from introspect.analyzers._stats import shape_text, tensor_statistics
from introspect.artifacts import MAX_TABLE_ROWS, Artifact
from introspect.needs import Needs
from introspect.plotting import bounded_text, new_figure, panel_grid, short_label
from introspect.spec import analyzer

#: Where this module's analyzers come in the gallery (see ``introspect.analyzers``).
POSITION = 1

if TYPE_CHECKING:
    import torch

    from introspect.subject import Subject

MAX_SAMPLE = 1_000_000
LAYERS_PER_FIGURE = 12
#: Layers drawn (3 pages of 12 panels); the rest are in the table of every tensor.
MAX_DRAWN_LAYERS = 36


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
def weight_histograms(
    subject: Subject, /, *, bins: int = 60, max_sample: int = MAX_SAMPLE, max_layers: int = MAX_DRAWN_LAYERS
) -> list[Artifact]:
    """Distribution of weights and biases, one panel per layer.

    Each panel shows how a layer's weights (and its biases, in orange) are spread. Weights
    piled near zero are barely used; very wide or lopsided spreads can signal exploding or
    badly initialized layers. Non-finite values are counted and left out of the histogram.
    A model with more than 36 layers gets 36 panels, evenly spaced, and a table of every
    tensor's numbers.
    """
    layers = group_by_layer(dict(subject.weights))
    layer_names = list(layers)
    shown = evenly_spaced(layer_names, max_layers)
    stats = {
        f"{layer}.{kind}": _tensor_entry(tensor, bins, max_sample, subject.seed)
        for layer in shown
        for kind, tensor in layers[layer].items()
    }
    artifacts = [
        _histogram_page(shown[start : start + LAYERS_PER_FIGURE], layers, stats, start, len(shown), len(layer_names))
        for start in range(0, len(shown), LAYERS_PER_FIGURE)
    ]
    if len(shown) < len(layer_names):
        artifacts.append(_statistics_table(layers, set(shown)))
    return artifacts


def _tensor_entry(tensor: torch.Tensor, bins: int, max_sample: int, seed: int) -> dict:
    values, sampled = bounded_values(tensor, max_sample, seed)
    entry = describe(values, bins)
    entry["non_finite"] = int(tensor.numel() - (values.size if not sampled else tensor.isfinite().sum().item()))
    entry["sampled"] = sampled
    entry["numel"] = int(tensor.numel())
    entry["sample_size"] = min(int(tensor.numel()), max_sample)
    return entry


def _page_notes(keys: list[str], stats: dict) -> list[str]:
    notes = []
    for key in keys:
        entry = stats[key]
        if entry["sampled"]:
            notes.append(f"{short_label(key)}: {entry['sample_size']:,} of {entry['numel']:,} values sampled")
        if entry["non_finite"]:
            notes.append(f"{short_label(key)}: {entry['non_finite']} NaN/Inf values left out")
    return notes


def _histogram_page(names: list[str], layers: dict, stats: dict, start: int, num_shown: int, total: int) -> Artifact:
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
                axes.stairs(entry["counts"], entry["edges"], alpha=0.8, label=short_label(kind))
        axes.set_title(short_label(layer), fontsize=9)
        axes.tick_params(labelsize=7)
        axes.legend(fontsize=7)
    keys = [f"{layer}.{kind}" for layer in names for kind in layers[layer]]
    shown = {key: stats[key] for key in keys}
    caption = f"Histograms of weights and biases per layer{_page_text(start, len(names), num_shown, total)}."
    notes = _page_notes(keys, stats)
    if notes:
        caption += " Note: " + "; ".join(notes) + "."
    return Artifact(
        name=f"layers-{start + 1:03d}",
        caption=caption,
        figure=figure,
        data=shown,
        summary={bounded_text(key): {k: value[k] for k in ("mean", "std", "count")} for key, value in shown.items()},
    )


def _page_text(start: int, count: int, num_shown: int, total: int) -> str:
    if num_shown < total:
        drawn = f"{start + 1}-{start + count} of the {num_shown} drawn"
        return f" (layers {drawn}, evenly spaced over {total:,}; the table lists all)"
    return f" (layers {start + 1}-{start + count} of {total})" if total > count else ""


def _statistics_table(layers: dict[str, dict[str, torch.Tensor]], drawn: set[str]) -> Artifact:
    """Every tensor's numbers in one table (capped), computed in batches rather than tensor by tensor."""
    entries = [(layer, kind, tensor) for layer, tensors in layers.items() for kind, tensor in tensors.items()]
    rows = entries[:MAX_TABLE_ROWS]
    numbers = tensor_statistics([tensor for _, _, tensor in rows])
    table = [
        {
            "tensor": bounded_text(f"{layer}.{kind}"),
            "shape": shape_text(tensor.shape),
            "drawn": layer in drawn,
            **{key: _number(numbers[key][index]) for key in ("mean", "std", "min", "max")},
            "non_finite": int(numbers["non_finite"][index]),
        }
        for index, (layer, kind, tensor) in enumerate(rows)
    ]
    caption = f"Numbers of the {len(entries):,} weight tensors ({len(layers):,} layers; population std, finite values)."
    if len(entries) > len(rows):
        table.append({key: (f"and {len(entries) - len(rows):,} more" if key == "tensor" else None) for key in table[0]})
        caption += f" The first {len(rows):,} are listed."
    summary = {"num_tensors": len(entries), "num_layers": len(layers)}
    return Artifact(name="all-tensors", caption=caption, table=table, summary=summary)


def _number(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)
