"""Rows that time drawing: kernel montages and GIF frames, against the matplotlib way.

Both sides write their files (PNG, GIF) into a scratch folder, since writing is where matplotlib
spends its time. introspect's side runs the whole analyzer (selection and computation too) and
writes through the gallery's own :func:`~introspect.report.files.write_artifact_file`; the reference
side only draws what the analyzer chose, which favours the reference.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmarks import fixtures
from benchmarks.fixtures import Sizes
from benchmarks.harness import compare, timed
from benchmarks.report import Row, ratio_row

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from introspect.artifacts import Artifact
    from introspect.subject import Subject


def kernel_grid_rows(sizes: Sizes, folder: Path) -> list[Row]:
    """``kernel_grid``: ``kernel_grids`` on ResNet18 against one matplotlib subplot per kernel."""
    from introspect.analyzers.weight_images import conv_layers, kernel_grids
    from introspect.subject import Subject

    subject = Subject.from_model(fixtures.resnet("resnet18"), fixtures.images(2, (3, 32, 32)))
    num_layers = len(conv_layers(subject))
    max_layers = num_layers if sizes.max_kernel_layers is None else sizes.max_kernel_layers
    shown = kernel_grids(subject, max_layers=max_layers)

    def ours() -> None:
        write_all(kernel_grids(subject, max_layers=max_layers), _fresh(folder / "ours"))

    def subplots() -> None:
        target = _fresh(folder / "subplots")
        for index, artifact in enumerate(shown):
            figure = kernel_subplots(artifact)
            figure.savefig(target / f"kernels-{index:02d}.png", dpi=figure.dpi)

    comparison = compare(timed(ours), timed(subplots), repeats=sizes.repeats, warmup=sizes.warmup)
    num_kernels = sum(len(artifact.data["kernels"]) for artifact in shown)
    what = (
        f"kernel_grids on ResNet18 ({len(shown)} of {num_layers} conv layers, {num_kernels} kernels drawn), PNGs "
        "written / one matplotlib subplot per kernel"
    )
    return [ratio_row("kernel_grid", what, comparison, 0.10, num_layers=len(shown), num_kernels=num_kernels)]


def write_all(artifacts: Sequence[Artifact], folder: Path) -> None:
    """Write every artifact as the gallery does."""
    from introspect.report.files import write_artifact_file

    for index, artifact in enumerate(artifacts):
        write_artifact_file(artifact, folder, f"artifact-{index:02d}")


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def kernel_subplots(artifact: Artifact) -> Figure:
    """The kernels ``kernel_grids`` drew for one layer, one subplot (axes) per kernel tile."""
    values, limit = np.asarray(artifact.data["kernels"]), float(artifact.data["limit"])
    rgb = artifact.summary["mode"] == "rgb"
    tiles = (
        np.clip(0.5 + 0.5 * values.transpose(0, 2, 3, 1) / limit, 0, 1)
        if rgb
        else values.reshape(-1, *values.shape[-2:])
    )
    columns = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    figure = _figure(0.6 * columns + 0.4, 0.6 * rows + 0.6, dpi=100)
    for index, tile in enumerate(tiles):
        axes = figure.add_subplot(rows, columns, index + 1)
        if rgb:
            axes.imshow(tile, interpolation="nearest")
        else:
            axes.imshow(tile, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        axes.set_axis_off()
    figure.suptitle(artifact.layer or artifact.name)
    return figure


def _figure(width: float, height: float, dpi: int) -> Figure:
    """A plain matplotlib figure on the Agg canvas (what pyplot.figure makes, without the GUI)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def gif_rows(sizes: Sizes, folder: Path) -> list[Row]:
    """``gif``: ``activation_gifs`` on the regression MLP against one matplotlib figure per frame."""
    from introspect.analyzers.animations import activation_gifs

    subject = fixtures.regression_subject()
    (artifact,) = activation_gifs(subject, num_frames=sizes.gif_frames)
    curve_x, curve = output_curve(subject)

    def ours() -> None:
        write_all(activation_gifs(subject, num_frames=sizes.gif_frames), _fresh(folder / "ours"))

    def figures() -> None:
        frames = [sweep_frame(artifact, curve_x, curve, index) for index in range(len(artifact.frames))]
        _write_gif(_fresh(folder / "figures") / "sweep.gif", frames, artifact.fps)

    comparison = compare(timed(ours), timed(figures), repeats=sizes.repeats, warmup=sizes.warmup)
    what = (
        f"activation_gifs on the regression MLP ({len(artifact.frames)} frames, {len(artifact.data['layers'])} "
        "layer strips), GIF written / one matplotlib figure per frame + imageio"
    )
    return [ratio_row("gif", what, comparison, 0.25, num_frames=len(artifact.frames))]


def output_curve(subject: Subject, points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """The network's output over the domain, as the sweep's backdrop shows it."""
    import torch

    from introspect.analyzers._shared import scalar_domain

    low, high = scalar_domain(subject)
    x = np.linspace(low, high, points)
    with torch.no_grad():
        y = subject.model(torch.as_tensor(x, dtype=torch.float32).reshape(-1, 1)).double().numpy()
    return x, y


def sweep_frame(artifact: Artifact, curve_x: np.ndarray, curve: np.ndarray, index: int) -> np.ndarray:
    """Frame ``index`` of the sweep as a new matplotlib figure: curve, marker, one strip per layer."""
    layers, x = artifact.data["layers"], artifact.data["x"]
    figure = _figure(6.0, 1.6 + 0.45 * len(layers), dpi=80)
    axes = figure.subplots(1 + len(layers), 1, height_ratios=[4.0] + [1.0] * len(layers), squeeze=False)[:, 0]
    axes[0].plot(curve_x, curve, color="black", linewidth=1.2)
    axes[0].axvline(x[index], color="0.45", linewidth=1)
    axes[0].plot(
        np.full(artifact.data["output"].shape[1], x[index]), artifact.data["output"][index], "o", color="tab:red"
    )
    axes[0].set_xlim(curve_x[0], curve_x[-1])
    axes[0].set_xlabel("x", fontsize=7)
    for strip_axes, (name, values) in zip(axes[1:], layers.items()):
        strip_axes.imshow(values[index][None, :], cmap="viridis", vmin=values.min(), vmax=values.max(), aspect="auto")
        strip_axes.set_yticks([])
        strip_axes.set_ylabel(name, rotation=0, ha="right", fontsize=6)
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


def _write_gif(path: Path, frames: list[np.ndarray], fps: float) -> None:
    import imageio.v3 as iio

    iio.imwrite(path, frames, extension=".gif", duration=1000.0 / fps, loop=0)
