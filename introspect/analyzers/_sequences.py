"""Helpers for sequence models (LSTM, GRU, Conv1d): where their units and time steps are, and how a sequence is drawn.

A recurrent layer's outputs are (N, T, units) batch first (:func:`introspect.capture.batch_first`),
a Conv1d's (N, channels, L); these helpers say which layout a 3-D output has, and draw
attributions of (time, feature) or (channel, position) inputs as heatmaps.
"""

from __future__ import annotations

import dataclasses
import textwrap
from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import
from introspect.capture import batch_first, units_last
from introspect.colours import DIVERGING
from introspect.plotting import new_figure, short_label

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure
    from torch import nn
else:
    torch = lazy_import("torch")

#: Where torch defines the layers that work value by value and so keep their input's layout.
_ELEMENTWISE_MODULES = ("torch.nn.modules.activation", "torch.nn.modules.dropout")


@dataclasses.dataclass(frozen=True)
class SequenceLayout:
    """How one input of shape (A, B) is drawn as a map: which axis runs along the rows, which along the columns.

    Attributes:
        row_word: what a row is (``"feature"``, ``"channel"``).
        column_word: what a column is (``"time step"``, ``"position"``).
        transpose: whether (A, B) is drawn as (B, A): an LSTM's (time, feature) input is drawn
            with time along the columns.
    """

    row_word: str
    column_word: str
    transpose: bool


def sequence_layout(model: nn.Module, input_shape: tuple[int, ...]) -> SequenceLayout | None:
    """The layout of a sequence input, from the layer that takes it; ``None`` when no layer says.

    A recurrent layer whose ``input_size`` is the last size takes (time, feature) inputs (batch
    first, or the model transposes); a Conv1d whose ``in_channels`` is the first size takes
    (channel, position) inputs. The first such layer in definition order decides.
    """
    if len(input_shape) != 2:
        return None
    for module in model.modules():
        if isinstance(module, torch.nn.RNNBase) and module.input_size == input_shape[1]:
            return SequenceLayout("feature", "time step", transpose=True)
        if isinstance(module, torch.nn.Conv1d) and module.in_channels == input_shape[0]:
            return SequenceLayout("channel", "position", transpose=False)
    return None


def sequence_maps_figure(
    values: np.ndarray, layout: SequenceLayout, titles: list[str], heading: str, signed: bool
) -> Figure:
    """Attributions of sequence inputs (N, A, B): one panel per input, a heatmap of rows x positions.

    An input with one row (a single feature or channel) is drawn as a line over its positions.
    Each panel is scaled to its own largest magnitude, which its title gives.
    """
    from matplotlib.ticker import MaxNLocator

    maps = np.swapaxes(values, 1, 2) if layout.transpose else values
    num_rows, num_columns = maps.shape[1], maps.shape[2]
    line = num_rows == 1
    panel_height = 1.3 if line else min(3.0, 0.9 + 0.12 * num_rows)
    figure = new_figure(min(12.0, 4.0 + 0.08 * num_columns), panel_height * len(maps) + 0.9)
    axes_list = figure.subplots(len(maps), 1, squeeze=False, sharex=True)[:, 0]
    for axes, single, title in zip(axes_list, maps, titles):
        limit = float(max(np.abs(single).max(), 1e-12))
        if line:
            axes.plot(np.arange(num_columns), single[0], linewidth=1.2)
            axes.axhline(0.0, color="black", linewidth=0.5)
        else:
            cmap = DIVERGING if signed else "inferno"
            axes.imshow(
                single, aspect="auto", interpolation="nearest", cmap=cmap, vmin=-limit if signed else 0.0, vmax=limit
            )
            axes.set_ylabel(layout.row_word, fontsize=7)
        axes.set_title(f"{short_label(title, 40)} (largest |value| {limit:.3g})", fontsize=8)
        axes.tick_params(labelsize=7)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        if not line:
            axes.yaxis.set_major_locator(MaxNLocator(integer=True))  # rows are features or channels
    axes_list[-1].set_xlabel(layout.column_word)
    figure.suptitle("\n".join(textwrap.wrap(heading, width=int(figure.get_figwidth() * 14))), fontsize=8)
    return figure


def units_on_dim1(module: nn.Module, output: torch.Tensor) -> torch.Tensor:
    """``output`` with its units on dimension 1, where :func:`unit_values` reads them.

    A recurrent layer's (T, N, H) output is put batch first; a 3-D output of a layer that acts on
    the last dimension (an LSTM's (N, T, H), a dense layer on tokens) has its units moved to dimension 1.
    """
    output = batch_first(module, output)
    return output.transpose(1, 2) if units_last(module) and output.dim() == 3 else output


def recurrent_kinds(model: nn.Module) -> dict[str, tuple[str, tuple[float, float] | None]]:
    """torch's recurrent layers with what their outputs can do: an LSTM's, a GRU's and a tanh RNN's lie in (-1, 1).

    Their hidden states pass through tanh (or, for a GRU, mix tanh values with the previous state),
    so a unit near -1 or 1 is saturated like a tanh unit; a ReLU RNN's units can die; an LSTM with a
    projection (``proj_size``) is bounded by nothing.
    """
    kinds: dict[str, tuple[str, tuple[float, float] | None]] = {}
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.RNNBase):
            continue
        if getattr(module, "nonlinearity", "tanh") == "relu":
            kinds[name] = ("relu", None)
        elif getattr(module, "proj_size", 0):
            kinds[name] = ("other", None)
        else:
            kinds[name] = ("bounded", (-1.0, 1.0))
    return kinds


def units_last_layouts(outputs: dict[str, torch.Tensor], modules: dict[str, torch.nn.Module]) -> dict[str, bool]:
    """For each 3-D output, whether it is (N, T, units) rather than (N, units, L) (a Conv1d's channels).

    Recurrent, dense and LayerNorm layers act on the last dimension (:func:`~introspect.capture.units_last`);
    an activation or dropout module keeps the layout of the output it was given (the one recorded
    just before it, when the shapes agree), so a ReLU after an LSTM reads as the LSTM does.
    """
    layouts: dict[str, bool] = {}
    previous: tuple[tuple[int, ...], bool] = ((), False)
    for name, output in outputs.items():  # in the order the layers ran
        module = modules[name]
        last = units_last(module)
        if not last and type(module).__module__ in _ELEMENTWISE_MODULES:
            last = previous[1] and previous[0] == tuple(output.shape)
        if output.dim() == 3:
            layouts[name] = last
        previous = (tuple(output.shape), last)
    return layouts
