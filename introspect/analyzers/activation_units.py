"""Analyzers of single units over the probe: dead and saturated units, and responses as x sweeps the domain."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import
from introspect.analyzers._sequences import recurrent_kinds, units_on_dim1
from introspect.analyzers._shared import (
    activation_layers,
    curve_layers,
    evenly_spaced,
    interesting_layers,
    scalar_domain,
)
from introspect.artifacts import MAX_TABLE_ROWS, Artifact
from introspect.capture import (
    capture_activations,
    check_hookable,
    evaluation_mode,
    first_tensor,
)
from introspect.errors import SkipAnalyzer
from introspect.needs import Needs
from introspect.plotting import bounded_text, new_figure, panel_grid, short_label
from introspect.spec import analyzer

#: Where this module's analyzers come in the gallery (see ``introspect.analyzers``).
POSITION = 6

if TYPE_CHECKING:
    import torch
    from torch import nn

    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

MAX_SAMPLE = 200_000
LAYERS_PER_PAGE = 12
MAX_BAR_LAYERS = 64


@dataclasses.dataclass(frozen=True)
class UnitHealth:
    """How the units of one layer behaved over the probe set.

    Attributes:
        kind: ``"relu"`` (can die), ``"bounded"`` (can saturate) or ``"other"``.
        num_units: units in the layer (dimension 1 of its output: features or channels).
        dead: per unit, whether its output was <= 0 for every input and position (relu only).
        saturated: per unit, whether it sat within eps of a bound for most values (bounded only).
        sample: the output values the histogram is drawn from (all, or a seeded sample).
        sampled: whether ``sample`` is a sample rather than every value.
        moments: mean, std, min, max and the fraction of values exactly zero.
    """

    kind: str
    num_units: int
    dead: np.ndarray | None
    saturated: np.ndarray | None
    sample: np.ndarray
    sampled: bool
    moments: dict


def unit_values(output: torch.Tensor) -> torch.Tensor:
    """``output`` as (inputs, units, positions): dimension 1 is the unit (a conv channel)."""
    values = output.detach().float()
    if values.dim() < 2:
        values = values.reshape(-1, 1)
    return values.reshape(values.shape[0], values.shape[1], -1)


def measure_health(
    output: torch.Tensor,
    kind: str,
    bounds: tuple[float, float] | None,
    *,
    eps: float,
    min_share: float,
    max_sample: int,
    seed: int,
) -> UnitHealth:
    """Dead and saturated units and the value distribution of one layer's output."""
    units = unit_values(output)
    dead = (units <= 0).all(dim=2).all(dim=0).cpu().numpy() if kind == "relu" else None
    saturated = None
    if kind == "bounded" and bounds is not None:
        low, high = bounds
        near = ((units - low).abs() <= eps) | ((high - units).abs() <= eps)
        saturated = (near.double().mean(dim=(0, 2)) >= min_share).cpu().numpy()
    flat = units.reshape(-1)
    sampled = flat.numel() > max_sample
    if sampled:
        generator = torch.Generator(device=flat.device).manual_seed(seed)
        flat_sample = flat[torch.randint(flat.numel(), (max_sample,), generator=generator, device=flat.device)]
    else:
        flat_sample = flat
    whole = flat.double()
    moments = {
        "mean": float(whole.mean()),
        "std": float(whole.std()) if whole.numel() > 1 else 0.0,
        "min": float(whole.min()),
        "max": float(whole.max()),
        "zero_fraction": float((whole == 0).double().mean()),
    }
    return UnitHealth(kind, units.shape[1], dead, saturated, flat_sample.double().cpu().numpy(), sampled, moments)


def measure_layers(
    model: nn.Module, inputs: torch.Tensor, measure: Callable[[str, torch.Tensor], object], layers: list[str]
) -> tuple[dict[str, object], dict[str, int]]:
    """One forward pass in eval mode, reducing each layer's output with ``measure`` inside its hook.

    Reducing in the hook keeps memory flat on big models (no layer output is kept). A module
    called several times (a shared ReLU in a ResNet block) keeps the result of its last call.

    Returns:
        Layer name → the result of ``measure``, and layer name → how often the layer ran.
    """
    check_hookable(model)
    modules = dict(model.named_modules())
    results: dict[str, object] = {}
    calls: dict[str, int] = {}

    def hook_for(name: str):  # noqa: ANN202 - a closure per layer name
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            tensor = first_tensor(output)  # nn.LSTM's (output, (h_n, c_n)) is measured by its output
            if tensor is not None:
                results[name] = measure(name, units_on_dim1(module, tensor))
                calls[name] = calls.get(name, 0) + 1

        return hook

    handles = [modules[name].register_forward_hook(hook_for(name)) for name in layers]
    try:
        with evaluation_mode(model), torch.no_grad():
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return results, calls


RECURRENT_NOTE = (
    " Recurrent layers (RNN, LSTM, GRU) return tuples and are measured by their first tensor, the output at "
    "every time step, each hidden unit counting as one unit; their values lie in (-1, 1) unless they use "
    "ReLU or a projection."
)


@analyzer(needs=Needs.FORWARD)
def activation_health(
    subject: Subject,
    /,
    *,
    eps: float = 0.01,
    min_share: float = 0.9,
    bins: int = 50,
    max_layers: int = 24,
    max_sample: int = MAX_SAMPLE,
) -> list[Artifact]:
    """Dead and saturated units per layer over the probe set, and the distribution of activations.

    A ReLU-like unit (a conv channel counts as one unit) is dead when its output is <= 0 for
    every probe input and position: it passes no signal and gets no gradient. A sigmoid, tanh
    or hardtanh unit is saturated when (by default) at least 90% of its values lie within 0.01
    of a bound, where its gradient vanishes. Histograms (log counts) show each layer's spread.
    An LSTM, GRU or tanh RNN layer is measured like a tanh, by its output at every time step.
    """
    recurrent = recurrent_kinds(subject.model)
    kinds = {**activation_layers(subject.model), **recurrent}
    fallback = not kinds
    if fallback:
        kinds = {name: ("other", None) for name in interesting_layers(subject.model)}
    if not kinds:
        raise SkipAnalyzer("the model has no layers to measure")

    def measure(name: str, output: torch.Tensor) -> UnitHealth:
        kind, bounds = kinds[name]
        return measure_health(
            output, kind, bounds, eps=eps, min_share=min_share, max_sample=max_sample, seed=subject.seed
        )

    health, calls = measure_layers(subject.model, subject.probe_inputs.to(subject.device), measure, list(kinds))
    if not health:
        raise SkipAnalyzer("no measured layer produced a tensor output")
    modules = dict(subject.model.named_modules())
    types = {name: type(modules[name]).__name__ for name in health}
    artifacts = [_fractions_artifact(health, types, fallback, [name for name, count in calls.items() if count > 1])]
    if any(name in health for name in recurrent):
        artifacts[0] = dataclasses.replace(artifacts[0], caption=artifacts[0].caption + RECURRENT_NOTE)
    shown = evenly_spaced(list(health), max_layers)
    histograms = {name: _histogram(health[name], kinds[name][1], bins) for name in shown}
    for start in range(0, len(shown), LAYERS_PER_PAGE):
        names = shown[start : start + LAYERS_PER_PAGE]
        artifacts.append(_distribution_page(names, types, health, histograms, start, len(shown), len(health)))
    if len(health) > MAX_BAR_LAYERS:
        artifacts.append(_health_table(health, types))
    return artifacts


def _health_table(health: dict[str, UnitHealth], types: dict[str, str]) -> Artifact:
    """Every measured layer's numbers (capped), since the bar chart draws only some of them."""
    names = list(health)[:MAX_TABLE_ROWS]
    table = [
        {"layer": bounded_text(name), "type": bounded_text(types[name]), **health_summary(health[name])}
        for name in names
    ]
    caption = f"Unit health and output moments of the {len(health):,} measured layers over the probe set."
    if len(health) > len(names):
        table.append({key: (f"and {len(health) - len(names):,} more" if key == "layer" else None) for key in table[0]})
        caption += f" The first {len(names):,} are listed."
    return Artifact(name="all-layers", caption=caption, table=table, summary={"num_layers": len(health)})


def _histogram(item: UnitHealth, bounds: tuple[float, float] | None, bins: int) -> dict:
    finite = item.sample[np.isfinite(item.sample)]
    value_range = bounds if bounds is not None else ((finite.min(), finite.max()) if finite.size else (0.0, 1.0))
    counts, edges = np.histogram(finite, bins=bins, range=value_range)
    return {"counts": counts, "edges": edges}


def health_summary(item: UnitHealth) -> dict:
    """JSON-ready numbers for one layer: unit counts and fractions, and the value moments."""
    summary: dict = {"kind": item.kind, "num_units": item.num_units}
    for key, flags in (("dead", item.dead), ("saturated", item.saturated)):
        summary[f"num_{key}"] = int(flags.sum()) if flags is not None else None
        summary[f"{key}_fraction"] = float(flags.mean()) if flags is not None and flags.size else None
    return {**summary, **item.moments, "sampled": item.sampled}


def _first(health: dict[str, UnitHealth], drawn: set[str]) -> list[str]:
    """The first MAX_TABLE_ROWS layers, and the drawn ones after them: what the summary keeps."""
    names = list(health)
    return names[:MAX_TABLE_ROWS] + [name for name in names[MAX_TABLE_ROWS:] if name in drawn]


def _fractions_artifact(
    health: dict[str, UnitHealth], types: dict[str, str], fallback: bool, repeated: list[str]
) -> Artifact:
    names = evenly_spaced(list(health), MAX_BAR_LAYERS)
    kept = _first(health, set(names))
    summaries = {name: {"type": bounded_text(types[name]), **health_summary(health[name])} for name in kept}
    figure = new_figure(8, 1.2 + 0.28 * len(names))
    axes = figure.add_subplot()
    rows = np.arange(len(names))
    for offset, key, colour in ((-0.2, "dead", "tab:red"), (0.2, "saturated", "tab:orange")):
        values = [summaries[name][f"{key}_fraction"] for name in names]
        if all(value is None for value in values):
            continue
        axes.barh(rows + offset, [value or 0.0 for value in values], height=0.38, color=colour, label=f"{key} units")
        for row, name, value in zip(rows, names, values):
            if value is not None:
                axes.text(
                    max(value, 0) + 0.01,
                    row + offset,
                    f"{summaries[name][f'num_{key}']}/{summaries[name]['num_units']}",
                    va="center",
                    fontsize=6,
                )
    axes.set_yticks(rows, [f"{short_label(name)} ({short_label(types[name], 30)})" for name in names], fontsize=7)
    axes.invert_yaxis()
    axes.set_xlim(0, 1.12)
    axes.set_xlabel("fraction of units")
    if not fallback:
        axes.legend(fontsize=7, loc="lower right")
    axes.set_title("Dead and saturated units per layer", fontsize=10)
    caption = (
        "Fraction of dead (ReLU-like, never > 0 on the probe set) and saturated (sigmoid/tanh within eps of a "
        "bound) units per activation layer; conv channels count as units."
    )
    if fallback:
        caption = (
            "The model has no activation modules (activations applied as functions are invisible to hooks), "
            "so no unit can be called dead or saturated; the distributions of every layer's output are shown."
        )
    if len(names) < len(health):
        caption += f" {len(names)} of {len(health)} layers are drawn (evenly spaced); all are in the manifest."
    if repeated:
        caption += (
            f" {len(repeated)} modules run more than once per forward pass (shared ReLUs) are measured at "
            "their last call."
        )
    data = {"dead": {n: h.dead for n, h in health.items()}, "saturated": {n: h.saturated for n, h in health.items()}}
    summary = {"layers": {bounded_text(name): numbers for name, numbers in summaries.items()}}
    return Artifact(name="unit-health", caption=caption, figure=figure, data=data, summary=summary)


def _distribution_page(
    names: list[str], types: dict[str, str], health: dict, histograms: dict, start: int, num_shown: int, total: int
) -> Artifact:
    from matplotlib.ticker import NullLocator

    figure = new_figure(12, 2.4 * -(-len(names) // 4))
    for axes, name in zip(panel_grid(figure, len(names), title_lines=2), names):
        histogram, item = histograms[name], health[name]
        axes.stairs(histogram["counts"], histogram["edges"], fill=True, alpha=0.7)
        axes.set_yscale("log")
        axes.yaxis.set_minor_locator(NullLocator())  # log minor ticks cost a third of the drawing time
        label = f"zero: {item.moments['zero_fraction']:.0%}"
        if item.dead is not None:
            label = f"dead {int(item.dead.sum())}/{item.dead.size}, " + label
        if item.saturated is not None:
            label = f"saturated {int(item.saturated.sum())}/{item.saturated.size}"
        axes.set_title(f"{short_label(name)} ({short_label(types[name], 30)})\n{label}", fontsize=8)
        axes.tick_params(labelsize=7)
    page = (
        f" (layers {start + 1}-{start + len(names)} of {num_shown} drawn, of {total})"
        if num_shown > len(names) or total > num_shown
        else ""
    )
    sampled = [name for name in names if health[name].sampled]
    note = f" Values of {len(sampled)} large layers are a seeded random sample." if sampled else ""
    return Artifact(
        name=f"distributions-{start + 1:03d}",
        caption=f"Histograms of activation values over the probe set, log counts{page}.{note}",
        figure=figure,
        data={name: histograms[name] for name in names},
        summary={name: health[name].moments for name in names},
    )


def sweep(subject: Subject, grid: np.ndarray, layers: list[str]) -> dict[str, np.ndarray]:
    """Each of ``layers``' outputs, as (points, units) arrays, for scalar inputs ``grid``."""
    dtype = subject.probe_inputs.dtype if subject.probe_inputs.is_floating_point() else torch.float32
    inputs = torch.as_tensor(grid, dtype=dtype).reshape(-1, 1).to(subject.device)
    outputs = capture_activations(subject.model, inputs, layers)
    return {name: outputs[name].double().reshape(len(grid), -1).numpy() for name in layers if name in outputs}


@analyzer(needs=Needs.FORWARD | Needs.SCALAR_INPUT)
def response_curves(
    subject: Subject, /, *, num_points: int = 400, max_units: int = 32, max_layers: int = 12
) -> list[Artifact]:
    """Each unit's activation as the input x sweeps the whole domain, one panel per layer.

    Where a ReLU unit's curve leaves zero is where in the input space it switches on; a
    sigmoid or tanh unit is most sensitive where its curve is steepest. Flat curves are units
    that do nothing anywhere in the domain.
    """
    low, high = scalar_domain(subject)
    grid = np.linspace(low, high, num_points)
    responses = sweep(subject, grid, curve_layers(subject.model))
    if not responses:
        raise SkipAnalyzer("no layer produced an output to draw")
    names = evenly_spaced(list(responses), max_layers)
    figure = new_figure(12, 2.8 * -(-len(names) // 3))
    summaries = {}
    kinds, modules = activation_layers(subject.model), dict(subject.model.named_modules())
    for axes, name in zip(panel_grid(figure, len(names), max_columns=3), names):
        values = responses[name]
        drawn = np.sort(np.argsort(-values.std(axis=0), kind="stable")[:max_units])
        axes.plot(grid, values[:, drawn], linewidth=1)
        more = (
            f"{len(drawn)} of {values.shape[1]} units"
            if len(drawn) < values.shape[1]
            else f"{values.shape[1]} unit" + "s" * (values.shape[1] != 1)
        )
        axes.set_title(f"{short_label(name)} ({short_label(type(modules[name]).__name__, 30)}), {more}", fontsize=8)
        axes.tick_params(labelsize=7)
        axes.set_xlabel("x", fontsize=7)
        summaries[bounded_text(name)] = _response_summary(values, kinds.get(name, ("other", None))[0], len(drawn))
    caption = (
        f"Unit activations over x in [{low:g}, {high:g}] ({num_points} points); units that vary most are "
        f"drawn when a layer has more than {max_units}."
    )
    if len(names) < len(responses):
        caption += f" {len(names)} of {len(responses)} layers are drawn (evenly spaced)."
    data = {"x": grid, "layers": responses}
    return [
        Artifact(
            name="response-curves",
            caption=caption,
            figure=figure,
            data=data,
            summary={"domain": [low, high], "layers": summaries},
        )
    ]


def _response_summary(values: np.ndarray, kind: str, num_drawn: int) -> dict:
    summary = {
        "num_units": int(values.shape[1]),
        "units_drawn": num_drawn,
        "min": float(values.min()),
        "max": float(values.max()),
    }
    if kind == "relu":
        active = values > 0
        summary["num_inactive_everywhere"] = int((~active.any(axis=0)).sum())
        summary["mean_active_fraction"] = float(active.mean())
    return summary
