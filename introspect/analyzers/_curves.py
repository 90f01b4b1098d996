"""The learning-curve figure of :func:`introspect.analyzers.training.training_curves`.

Loss and accuracy panels with the best epoch starred, then short timing and learning-rate panels,
all on one epoch axis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from introspect.plotting import fixed_gridspec, new_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: A loss panel turns logarithmic when its largest value is this many times its smallest.
LOG_SCALE_RATIO = 50.0


def _marker(num_points: int) -> str:
    """Dots on short curves; long ones (hundreds of epochs) read better as plain lines."""
    return "." if num_points <= 60 else ""


def value_at(series: np.ndarray | None, epochs: np.ndarray, epoch: int | None) -> float | None:
    """The value a series has at ``epoch`` (``None`` when it was not recorded then)."""
    if series is None or epoch is None:
        return None
    where = np.flatnonzero(epochs[: len(series)] == epoch)
    return float(series[where[0]]) if where.size and np.isfinite(series[where[0]]) else None


def _plot_pair(axes: Axes, epochs: np.ndarray, series: dict, stem: str, best: int | None) -> None:
    for split, colour in (("train", "tab:blue"), ("val", "tab:orange")):
        values = series.get(f"{split}_{stem}")
        if values is not None:
            label = "validation" if split == "val" else split
            axes.plot(epochs[: len(values)], values, marker=_marker(len(values)), color=colour, label=label)
    values = series.get(f"val_{stem}")
    at_best = value_at(values, epochs, best)
    if at_best is not None:
        axes.plot(
            [best],
            [at_best],
            marker="*",
            markersize=12,
            color="tab:red",
            linestyle="none",
            label=f"best (epoch {best})",
        )
    finite = np.concatenate([v[np.isfinite(v)] for k, v in series.items() if k.endswith(stem)] or [np.array([])])
    if stem == "loss" and finite.size and finite.min() > 0 and finite.max() / finite.min() > LOG_SCALE_RATIO:
        axes.set_yscale("log")
    axes.set_ylabel(stem)
    axes.legend(fontsize=8)


def _plot_timing(axes: Axes, epochs: np.ndarray, series: dict) -> None:
    if series.get("seconds_per_batch") is not None:
        values = series["seconds_per_batch"] * 1000.0
        axes.plot(epochs[: len(values)], values, marker=_marker(len(values)), color="tab:green")
        axes.set_ylabel("ms per batch")
    else:
        values = series["seconds_per_epoch"]
        axes.plot(epochs[: len(values)], values, marker=_marker(len(values)), color="tab:green")
        axes.set_ylabel("seconds per epoch")
    axes.set_ylim(bottom=0)


def _plot_rate(axes: Axes, epochs: np.ndarray, values: np.ndarray) -> None:
    axes.plot(epochs[: len(values)], values, marker=_marker(len(values)), color="tab:purple")
    finite = values[np.isfinite(values)]
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 10:
        axes.set_yscale("log")
    axes.set_ylabel("learning rate")


def curves_figure(
    epochs: np.ndarray, series: dict, panels: list[str], small: list[str], rate: str | None, best: int | None
) -> Figure:
    """Loss/accuracy panels, then short timing and learning-rate panels, on one epoch axis."""
    from matplotlib.ticker import MaxNLocator

    figure = new_figure(7, 2.4 * len(panels) + 1.6 * len(small) + 0.4)
    ratios = [1.5] * len(panels) + [1.0] * len(small)
    # Fixed room for the y labels (log ticks included), the epoch axis below and a gap between panels.
    room = {"left": 0.8, "right": 0.15, "top": 0.1, "bottom": 0.5, "down": 0.15}
    grid = fixed_gridspec(figure, len(ratios), height_ratios=ratios, **room)
    axes_list = [figure.add_subplot(grid[0])]
    axes_list += [figure.add_subplot(grid[row], sharex=axes_list[0]) for row in range(1, len(ratios))]
    for axes in axes_list:
        axes.label_outer(remove_inner_ticks=False)
    for axes, stem in zip(axes_list, panels):
        _plot_pair(axes, epochs, series, stem, best)
    for axes, name in zip(axes_list[len(panels) :], small):
        if name == "timing":
            _plot_timing(axes, epochs, series)
        else:
            _plot_rate(axes, epochs, series[rate])
    for axes in axes_list:
        if best is not None:
            axes.axvline(best, color="tab:red", linestyle=":", linewidth=1)
        axes.grid(alpha=0.3)
    axes_list[-1].set_xlabel("epoch")
    axes_list[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    return figure
