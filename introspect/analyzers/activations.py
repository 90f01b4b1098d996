"""Analyzers that run the model forward and look at what each layer outputs."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import
from introspect.analyzers._sequences import units_last_layouts
from introspect.analyzers._shared import evenly_spaced, interesting_layers
from introspect.artifacts import MAX_TABLE_ROWS, Artifact
from introspect.capture import capture_activations, is_recurrent
from introspect.colours import diverging_colormap
from introspect.needs import Needs
from introspect.plotting import bounded_text, new_figure, short_label
from introspect.spec import analyzer

#: Where this module's analyzers come in the gallery (see ``introspect.analyzers``).
POSITION = 2

if TYPE_CHECKING:
    import torch

    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

MAX_LAYER_FIGURES = 24
#: Axes over all figures: a dense layer's figure has one per probe input drawn (up to 4), so a
#: deep dense network gets fewer figures; drawing is what costs time on a model of 5,000 layers.
MAX_PANELS = 48
MAX_STEM_UNITS = 256
MAX_STEM_INPUTS = 4


def layer_statistics(output: torch.Tensor) -> dict:
    """Mean, spread and sparsity of one layer's output over the probe batch."""
    values = output.double()
    return {
        "shape": list(output.shape[1:]),
        "mean": float(values.mean()),
        "std": float(values.std()) if values.numel() > 1 else 0.0,
        "min": float(values.min()),
        "max": float(values.max()),
        "fraction_positive": float((values > 0).double().mean()),
    }


@analyzer(needs=Needs.FORWARD)
def activations(subject: Subject, /, *, max_layers: int = MAX_LAYER_FIGURES) -> list[Artifact]:
    """What every layer outputs for the probe inputs: stem plots for dense layers, channel summaries for conv layers.

    A dense layer's panel shows each unit's output for a few probe inputs: units that never
    move are not contributing. A conv layer's panel shows each channel's mean output over the
    probe batch with its range, so silent or exploding channels stand out.
    """
    layers = interesting_layers(subject.model)
    inputs = subject.probe_inputs.to(subject.device)
    outputs = capture_activations(subject.model, inputs, layers)
    shown = _drawn_layers([name for name in layers if name in outputs], outputs, max_layers)
    left_out = len(outputs) - len(shown)
    modules = dict(subject.model.named_modules())
    layouts = units_last_layouts(outputs, modules)
    artifacts = [_layer_artifact(name, outputs[name], modules[name], layouts.get(name, False)) for name in shown]
    artifacts = [_with_tuple_note(artifact, modules, outputs.tuple_shapes) for artifact in artifacts]
    if left_out and artifacts:
        first = artifacts[0]
        note = f" {left_out} of {len(outputs)} layers are not drawn (evenly spaced); the table has their numbers."
        artifacts[0] = dataclasses.replace(first, caption=first.caption + note)
    if artifacts:
        summary = all_layer_statistics(outputs)
        last = artifacts[-1]
        artifacts[-1] = dataclasses.replace(last, summary={**last.summary, "all_layers": summary})
    if left_out and artifacts:
        artifacts.append(_statistics_table(outputs, set(shown)))
    return artifacts


def _with_tuple_note(artifact: Artifact, modules: dict[str, torch.nn.Module], tuple_shapes: dict[str, str]) -> Artifact:
    """Say in the caption when a layer's output is a tuple shown by its first tensor (nn.LSTM's output)."""
    shapes = tuple_shapes.get(artifact.layer)
    if shapes is None:
        return artifact
    module = modules[artifact.layer]
    note = f" {type(module).__name__} returns a tuple of shapes {shapes}; it is shown by its first tensor"
    if is_recurrent(module):
        state = "(h_n, c_n)" if isinstance(module, torch.nn.LSTM) else "h_n"
        note += f", the output at every time step ({state}: the state after the last step)"
        if not module.batch_first:
            note += ", read batch first (the layer puts time first)"
    summary = {**artifact.summary, "tuple_output": shapes}
    return dataclasses.replace(artifact, caption=artifact.caption + note + ".", summary=summary)


def _drawn_layers(names: list[str], outputs: dict[str, torch.Tensor], max_layers: int) -> list[str]:
    """The most evenly spaced layers, at most ``max_layers``, whose figures have at most MAX_PANELS axes."""

    def panels(name: str) -> int:
        return 1 if outputs[name].dim() >= 3 else min(MAX_STEM_INPUTS, len(outputs[name]))

    count = min(max_layers, len(names))
    while count > 1 and sum(panels(name) for name in evenly_spaced(names, count)) > MAX_PANELS:
        count -= 1
    return evenly_spaced(names, count)


def all_layer_statistics(outputs: dict[str, torch.Tensor], limit: int = MAX_TABLE_ROWS) -> dict[str, dict]:
    """:func:`layer_statistics` of the first ``limit`` layers, in batches rather than torch calls per layer."""
    from introspect.analyzers._stats import tensor_statistics

    names = list(outputs)[:limit]
    numbers = tensor_statistics([outputs[name] for name in names], ddof=1)
    statistics = {}
    for index, name in enumerate(names):
        single = numbers["numel"][index] <= 1
        statistics[bounded_text(name)] = {
            "shape": list(outputs[name].shape[1:]),
            **{key: float(numbers[key][index]) for key in ("mean", "min", "max", "fraction_positive")},
            "std": 0.0 if single else float(numbers["std"][index]),
        }
    return statistics


def _statistics_table(outputs: dict[str, torch.Tensor], drawn: set[str]) -> Artifact:
    statistics = all_layer_statistics(outputs)
    table = [
        {"layer": name, "drawn": name in drawn, **numbers, "shape": "x".join(map(str, numbers["shape"]))}
        for name, numbers in statistics.items()
    ]
    caption = f"Output statistics of the {len(outputs):,} layers over the probe batch (std with Bessel's correction)."
    if len(outputs) > len(table):
        table.append({key: (f"and {len(outputs) - len(table):,} more" if key == "layer" else None) for key in table[0]})
        caption += f" The first {len(statistics):,} are listed."
    return Artifact(name="all-layers", caption=caption, table=table, summary={"num_layers": len(outputs)})


def _layer_artifact(name: str, output: torch.Tensor, module: torch.nn.Module, units_are_last: bool) -> Artifact:
    stats = layer_statistics(output)
    if output.dim() == 2:
        figure, caption = _dense_stems(name, output)
    elif output.dim() == 3:
        figure, caption = _sequence_figure(name, output, module, units_are_last)
    elif output.dim() >= 4:
        figure, caption = _channel_summary(name, output)
    else:
        figure, caption = _dense_stems(name, output.reshape(output.shape[0], -1))
    return Artifact(
        name=name, caption=caption, layer=name, figure=figure, data={"output": output.numpy()}, summary=stats
    )


def _dense_stems(name: str, output: torch.Tensor) -> tuple:
    # Probe batches are often ordered (a grid of x, images sorted by class): spread the rows.
    picked = np.unique(np.linspace(0, output.shape[0] - 1, min(MAX_STEM_INPUTS, output.shape[0])).round().astype(int))
    rows = len(picked)
    units = min(MAX_STEM_UNITS, output.shape[1])
    figure = new_figure(8, 1.6 * rows + 0.6)
    axes_list = figure.subplots(rows, 1, squeeze=False, sharex=True)[:, 0]
    for index, axes in zip(picked, axes_list):
        values = output[index, :units].numpy()
        axes.stem(np.arange(units), values, basefmt="k-", markerfmt=".")
        axes.set_ylabel(f"input {index}", fontsize=8)
        axes.tick_params(labelsize=7)
    axes_list[-1].set_xlabel("unit")
    figure.suptitle(f"{short_label(name)}: unit outputs", fontsize=10)
    more = f" (first {units} of {output.shape[1]} units)" if units < output.shape[1] else ""
    caption = f"Outputs of the {output.shape[1]} units of {name} for probe inputs {', '.join(map(str, picked))}{more}."
    return figure, caption


def _channel_summary(name: str, output: torch.Tensor) -> tuple:
    per_channel = output.double().transpose(0, 1).reshape(output.shape[1], -1)
    means = per_channel.mean(dim=1).numpy()
    lows, highs = per_channel.amin(dim=1).numpy(), per_channel.amax(dim=1).numpy()
    channels = np.arange(len(means))
    figure = new_figure(8, 3)
    axes = figure.add_subplot()
    axes.fill_between(channels, lows, highs, step="mid", alpha=0.25, label="min-max over probe")
    axes.step(channels, means, where="mid", label="mean")
    axes.set_xlabel("channel")
    axes.set_ylabel("output")
    axes.legend(fontsize=7)
    axes.set_title(f"{short_label(name)}: per-channel outputs {tuple(output.shape[1:])}", fontsize=10)
    caption = (
        f"Mean output of each of the {len(means)} channels of {name} over the probe batch, with the range of values."
    )
    return figure, caption


def _sequence_figure(name: str, output: torch.Tensor, module: torch.nn.Module, units_are_last: bool) -> tuple:
    """A 3-D output over its positions: a unit x position heatmap for probe input 0, and each unit's range.

    ``output`` is (N, T, units) when ``units_are_last`` (an LSTM, a dense layer on tokens), else
    (N, units, L) (a Conv1d); either way the heatmap has units as rows and positions as columns.
    """
    from matplotlib.ticker import MaxNLocator

    values = (output.transpose(1, 2) if units_are_last else output).double()
    num_units, num_positions = values.shape[1], values.shape[2]
    unit_word = "unit" if units_are_last else "channel"
    position_word = "time step" if is_recurrent(module) else "position"
    figure = new_figure(8, 5.2)
    heat_axes, range_axes = figure.subplots(2, 1, height_ratios=[3, 2])
    first = values[0].numpy()
    limit = float(max(np.abs(first).max(), 1e-12))
    image = heat_axes.imshow(
        first, aspect="auto", interpolation="nearest", cmap=diverging_colormap(), vmin=-limit, vmax=limit
    )
    heat_axes.set_xlabel(position_word)
    heat_axes.set_ylabel(unit_word)
    heat_axes.set_title(
        f"{short_label(name)}: probe input 0, {num_units} {unit_word}s x {num_positions} {position_word}s", fontsize=10
    )
    figure.colorbar(image, ax=heat_axes, label="output")
    per_unit = values.transpose(0, 1).reshape(num_units, -1)
    edges = np.arange(num_units + 1) - 0.5  # one full-width step per unit, the first and last too
    lows, highs = per_unit.amin(dim=1).numpy(), per_unit.amax(dim=1).numpy()
    range_axes.stairs(highs, edges, baseline=lows, fill=True, alpha=0.25, label="min-max")
    range_axes.stairs(per_unit.mean(dim=1).numpy(), edges, baseline=None, linewidth=1.5, label="mean")
    range_axes.set_xlabel(unit_word)
    range_axes.set_ylabel("output")
    range_axes.set_xlim(-0.5, num_units - 0.5)
    pad = 0.05 * max(float(highs.max() - lows.min()), 1e-12)
    range_axes.set_ylim(float(lows.min()) - pad, float(highs.max()) + pad)  # stairs leave their baseline out
    range_axes.legend(fontsize=7)
    for axis in (heat_axes.xaxis, heat_axes.yaxis, range_axes.xaxis):
        axis.set_major_locator(MaxNLocator(integer=True))  # units and positions are whole numbers
    caption = (
        f"Outputs of {name} ({type(module).__name__}) over {num_positions} {position_word}s: above, each of its "
        f"{num_units} {unit_word}s at each {position_word} for probe input 0; below, each {unit_word}'s mean "
        f"over the probe batch and every {position_word}, with the range of values."
    )
    return figure, caption
