"""Analyzers that run the model forward and look at what each layer outputs."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import
from introspect.analyzers._sequences import units_last_layouts
from introspect.analyzers._shared import evenly_spaced, interesting_layers
from introspect.artifacts import MAX_TABLE_ROWS, Artifact
from introspect.capture import is_recurrent
from introspect.colours import diverging_colormap
from introspect.needs import Needs
from introspect.plotting import SMALL_PANEL_TICKS, bounded_text, fixed_gridspec, new_figure, short_label
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
#: Values of a layer's output kept in its artifact's data (the first inputs' whole outputs): a result
#: is held until the gallery is written, and ResNet50's 24 drawn layers at 224x224 held 0.6 GB.
MAX_KEPT_VALUES = 2**20


def layer_statistics(output: torch.Tensor) -> dict:
    """Mean, spread and sparsity of one layer's output over the probe batch."""
    std, mean = chunked_std_mean(output)
    return {
        "shape": list(output.shape[1:]),
        "mean": mean,
        "std": std if output.numel() > 1 else 0.0,
        "min": float(output.min()),
        "max": float(output.max()),
        "fraction_positive": float((output > 0).sum()) / output.numel(),
    }


#: Values converted to float64 at a time by :func:`chunked_std_mean`.
CHUNK_VALUES = 2**20


def chunked_std_mean(values: torch.Tensor) -> tuple[float, float]:
    """The std (Bessel's correction) and mean of all of ``values`` in float64, a slice of inputs at a time.

    Converting a whole output to float64 at once doubled it: 0.2 GB for one ResNet50 layer over 16
    inputs at 224x224, on top of the forward's own memory. Two passes (deviations from the mean)
    keep the std accurate when the mean is large.
    """
    flat = values.detach().reshape(len(values), -1) if values.dim() else values.detach().reshape(1, 1)
    rows = max(1, CHUNK_VALUES // max(1, flat.shape[1]))
    chunks = [flat[start : start + rows] for start in range(0, len(flat), rows)]
    count = flat.numel()
    mean = sum(float(chunk.sum(dtype=torch.float64)) for chunk in chunks) / count
    squares = sum(float(((chunk.double() - mean) ** 2).sum()) for chunk in chunks)
    return (squares / (count - 1)) ** 0.5 if count > 1 else float("nan"), mean


@analyzer(needs=Needs.FORWARD)
def activations(subject: Subject, /, *, max_layers: int = MAX_LAYER_FIGURES) -> list[Artifact]:
    """What every layer outputs for the probe inputs: stem plots for dense layers, channel summaries for conv layers.

    A dense layer's panel shows each unit's output for a few probe inputs: units that never
    move are not contributing. A conv layer's panel shows each channel's mean output over the
    probe batch with its range, so silent or exploding channels stand out.
    """
    inputs = subject.probe_inputs.to(subject.device)
    # Every layer's numbers first, reduced as each layer runs, then the outputs of only the drawn layers:
    # a deep network's outputs for the whole probe at once would take gigabytes (ResNet50: 2.7 GB).
    sketch = sketch_layers(subject.model, inputs, interesting_layers(subject.model))
    shapes = sketch.shapes
    shown = _drawn_layers(list(shapes), shapes, max_layers)
    left_out = len(shapes) - len(shown)
    modules = dict(subject.model.named_modules())
    drawn = _drawn_artifacts(subject.model, inputs, shown, units_last_layouts(shapes, modules))
    artifacts = [drawn[name] for name in shown if name in drawn]
    artifacts = [_with_tuple_note(artifact, modules, sketch.tuple_shapes) for artifact in artifacts]
    if left_out and artifacts:
        first = artifacts[0]
        note = f" {left_out} of {len(shapes)} layers are not drawn (evenly spaced); the table has their numbers."
        artifacts[0] = dataclasses.replace(first, caption=first.caption + note)
    if artifacts:
        last = artifacts[-1]
        artifacts[-1] = dataclasses.replace(last, summary={**last.summary, "all_layers": sketch.statistics})
    if left_out and artifacts:
        artifacts.append(_statistics_table(sketch.statistics, len(shapes), set(shown)))
    return artifacts


@dataclasses.dataclass(frozen=True)
class LayerSketch:
    """What one forward pass says of every layer without keeping its output.

    Attributes:
        statistics: :func:`all_layer_statistics`-style numbers of the first MAX_TABLE_ROWS layers.
        shapes: every layer that gave a tensor, in the order they ran, as a ``meta`` tensor of its
            output's shape (batch first), which takes no memory.
        tuple_shapes: the layers whose output was a tuple, with its shapes as text.
    """

    statistics: dict[str, dict]
    shapes: dict[str, torch.Tensor]
    tuple_shapes: dict[str, str]


def sketch_layers(model: torch.nn.Module, inputs: torch.Tensor, layers: list[str]) -> LayerSketch:
    """Run ``model`` once in eval mode, reducing each layer's output to its statistics as it is produced."""
    from introspect.capture import batch_first, each_output, evaluation_mode, first_tensor, structure_text

    statistics: dict[str, dict] = {}
    shapes: dict[str, torch.Tensor] = {}
    tuple_shapes: dict[str, str] = {}

    def reduced(name: str, module: torch.nn.Module, output: object) -> None:
        tensor = first_tensor(output)
        if tensor is None:
            return
        if tensor is not output:
            tuple_shapes[name] = structure_text(output)
        value = batch_first(module, tensor.detach())
        shapes.pop(name, None)  # a layer called twice is described by its last call, in its last place
        shapes[name] = torch.empty(value.shape, device="meta")
        key = bounded_text(name)
        if key in statistics or len(statistics) < MAX_TABLE_ROWS:
            statistics[key] = output_statistics(value)

    with each_output(model, layers, reduced), evaluation_mode(model), torch.no_grad():
        model(inputs)
    return LayerSketch(statistics, shapes, tuple_shapes)


def _drawn_artifacts(
    model: torch.nn.Module, inputs: torch.Tensor, shown: list[str], layouts: dict[str, bool]
) -> dict[str, Artifact]:
    """Each shown layer's artifact, drawn as the layer runs, so only one layer's output is held at a time.

    Holding the 24 drawn outputs of ResNet50 for 16 inputs at 224x224 took 0.4 GB at once. Each
    output is copied before it is drawn: a later in-place operation (an in-place ReLU, a residual
    add) must not change the figure's numbers. A layer called twice is drawn from its last call.
    """
    from introspect.capture import batch_first, each_output, evaluation_mode, first_tensor

    drawn: dict[str, Artifact] = {}

    def draw(name: str, module: torch.nn.Module, output: object) -> None:
        tensor = first_tensor(output)
        if tensor is not None:
            value = batch_first(module, tensor.detach()).to("cpu", copy=True)
            drawn[name] = _layer_artifact(name, value, module, layouts.get(name, False))

    with each_output(model, shown, draw), evaluation_mode(model), torch.no_grad():
        model(inputs)
    return drawn


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


def output_statistics(output: torch.Tensor) -> dict:
    """The numbers :func:`all_layer_statistics` gives one output, by a few whole-tensor reductions.

    :func:`~introspect.analyzers._stats.tensor_statistics` is built for many small tensors (weights)
    and costs several passes per value; one large, finite output needs a few whole-tensor reductions.
    Outputs with NaN or inf values go through it, since its statistics skip them.
    """
    values = output.detach()
    if values.numel() < 2 or not bool(torch.isfinite(values).all()):
        return all_layer_statistics({"output": values})["output"]
    std, mean = chunked_std_mean(values)
    return {
        "shape": list(values.shape[1:]),
        "mean": mean,
        "min": float(values.min()),
        "max": float(values.max()),
        "fraction_positive": float((values > 0).sum()) / values.numel(),
        "std": std,
    }


def _statistics_table(statistics: dict[str, dict], num_layers: int, drawn: set[str]) -> Artifact:
    table = [
        {"layer": name, "drawn": name in drawn, **numbers, "shape": "x".join(map(str, numbers["shape"]))}
        for name, numbers in statistics.items()
    ]
    caption = f"Output statistics of the {num_layers:,} layers over the probe batch (std with Bessel's correction)."
    if num_layers > len(table):
        table.append({key: (f"and {num_layers - len(table):,} more" if key == "layer" else None) for key in table[0]})
        caption += f" The first {len(statistics):,} are listed."
    return Artifact(name="all-layers", caption=caption, table=table, summary={"num_layers": num_layers})


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
    kept = _kept_rows(output)
    # A slice of its own, so the rest of the output is freed with the figure's other temporaries.
    data = {"output": output.numpy() if kept == len(output) else output[:kept].clone().numpy()}
    if kept < len(output):
        data["output_inputs"] = kept
        caption += f" The data keeps the outputs of the first {kept} of the {len(output)} probe inputs."
    return Artifact(name=name, caption=caption, layer=name, figure=figure, data=data, summary=stats)


def _kept_rows(output: torch.Tensor) -> int:
    """How many inputs' outputs fit in :data:`MAX_KEPT_VALUES` (at least one)."""
    per_input = max(1, output[:1].numel())
    return max(1, min(len(output), MAX_KEPT_VALUES // per_input))


def _dense_stems(name: str, output: torch.Tensor) -> tuple:
    # Probe batches are often ordered (a grid of x, images sorted by class): spread the rows.
    picked = np.unique(np.linspace(0, output.shape[0] - 1, min(MAX_STEM_INPUTS, output.shape[0])).round().astype(int))
    rows = len(picked)
    units = min(MAX_STEM_UNITS, output.shape[1])
    figure = new_figure(8, 1.6 * rows + 0.6)
    # Fixed room: y labels and ticks on the left, the title above, one x axis below (rows share it).
    grid = fixed_gridspec(figure, rows, left=0.75, right=0.15, top=0.4, bottom=0.5, down=0.15)
    axes_list = [figure.add_subplot(grid[0])]
    axes_list += [figure.add_subplot(grid[row], sharex=axes_list[0]) for row in range(1, rows)]
    for index, axes in zip(picked, axes_list):
        values = output[index, :units].numpy()
        axes.stem(np.arange(units), values, basefmt="k-", markerfmt=".")
        axes.set_ylabel(f"input {index}", fontsize=8)
        axes.tick_params(labelsize=7)
        axes.locator_params(axis="y", nbins=SMALL_PANEL_TICKS)
        axes.label_outer(remove_inner_ticks=False)
    axes_list[-1].set_xlabel("unit")
    if units <= 10:  # a one-unit output gets a unit axis, not -0.04..0.04
        axes_list[-1].set_xlim(-0.5, units - 0.5)
        axes_list[-1].set_xticks(range(units))
    figure.suptitle(f"{short_label(name)}: unit outputs", fontsize=10)
    more = f" (first {units} of {output.shape[1]} units)" if units < output.shape[1] else ""
    caption = f"Outputs of the {output.shape[1]} units of {name} for probe inputs {', '.join(map(str, picked))}{more}."
    return figure, caption


def _channel_summary(name: str, output: torch.Tensor) -> tuple:
    # Reduced in place over every dimension but the channels: no float64 or transposed copy of the output.
    others = (0, *range(2, output.dim()))
    means = (output.sum(dim=others, dtype=torch.float64) / (output.numel() // output.shape[1])).numpy()
    lows, highs = output.amin(dim=others).double().numpy(), output.amax(dim=others).double().numpy()
    channels = np.arange(len(means))
    figure = new_figure(8, 3)
    axes = figure.add_subplot(fixed_gridspec(figure, 1, left=0.75, right=0.15, top=0.35, bottom=0.5)[0])
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
