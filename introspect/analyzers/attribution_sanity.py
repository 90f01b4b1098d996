"""Sanity checks for attribution: do the saliency maps depend on what the network learned?"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import
from introspect.analyzers._attribution import (
    ProbeSelection,
    affordable_passes,
    attribute,
    choose_probe,
    estimate_macs,
    in_eval_mode,
)
from introspect.analyzers._attribution_maps import channel_maps, colourize
from introspect.analyzers._faithfulness import (
    average_ranks as average_ranks,  # re-exported: it was defined here before
)
from introspect.analyzers._faithfulness import (
    baseline_band,
    falls_to_baseline,
    parameterized_layers,
    random_pair_similarities,
    rank_correlation,
    reinitialize,
)
from introspect.analyzers._shared import display_images
from introspect.artifacts import Artifact
from introspect.errors import SkipAnalyzer
from introspect.needs import Needs
from introspect.plotting import montage, new_figure, short_label
from introspect.spec import analyzer

#: Where this module's analyzers come in the gallery (see ``introspect.analyzers``).
POSITION = 10

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure
    from torch import nn

    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

MAX_STEPS = 12
MAX_STRIP_MAPS = 6
FAIL_FROM = 0.8


@analyzer(needs=Needs.FORWARD | Needs.GRADIENTS | Needs.IMAGE_INPUT)
@in_eval_mode
def saliency_sanity(
    subject: Subject, /, *, max_per_class: int = 2, max_images: int = 8, max_steps: int = MAX_STEPS
) -> list[Artifact]:
    """Model-parameter randomization test: do the Saliency maps change when the learned weights are destroyed?

    Following Adebayo et al. (2018), layers with parameters are re-initialized (each with its
    own initializer) cumulatively from the output down, on a copy of the model, and the
    Saliency maps are computed again. The curve is the Spearman rank correlation of |saliency|
    between the trained and the randomized model, averaged over the probe images (band:
    lowest to highest image). A curve that falls towards 0 means the maps depend on the learned
    weights; one that stays high means the maps show the input's structure rather than the
    model. The dotted green line and band are the random-pair baseline: the correlation of the
    trained maps of two unrelated probe images (mean +- 1 std); the test passes when the fully
    randomized maps fall to it, not below a fixed number. The dashed line is a Sobel edge
    detector's correlation with the trained maps: an explanation that needs no model at all.
    """
    layers = parameterized_layers(subject.model)
    if not layers:
        raise SkipAnalyzer("the model has no layers with parameters to randomize")
    macs = estimate_macs(subject.model, subject.probe_inputs[:1].to(subject.device))
    # On a big model fewer depths are measured (at least 2), so one image stays within the work cap.
    max_steps = min(max_steps, max(2, int(affordable_passes(subject, macs) / 3) - 2))
    counts = cut_points(len(layers), max_steps)
    probe = choose_probe(subject, max_per_class, max_images, forward_passes=3 * (len(counts) + 1), macs=macs)
    trained = saliency_maps(subject.model, probe, subject.task.image_shape)
    randomized = randomized_maps(subject, probe, layers, counts)
    images = display_images(subject, probe.inputs)
    spearman, edge_spearman = _correlations(trained, randomized, images)
    modules = dict(subject.model.named_modules())
    labels = ["none"] + [_step_label(layers[count - 1], modules) for count in counts[1:]]
    baseline = random_pair_similarities(trained, seed=subject.seed)
    band = baseline_band(baseline)
    verdict, sentence = _verdict(spearman, edge_spearman, len(layers), band)
    figure = _sanity_figure(spearman, edge_spearman, labels, images[0], trained[0], randomized, probe.titles[0], band)
    caption = _sanity_caption(len(trained), probe.note, sentence, len(counts) - 1, len(layers))
    data = {
        "counts": np.array(counts),
        "spearman": spearman,
        "edge_spearman": edge_spearman,
        "baseline_spearman": baseline,
        "trained_maps": trained,
        "randomized_maps": np.stack(randomized),
        "indices": probe.indices,
    }
    summary = _sanity_summary(verdict, labels, spearman, edge_spearman, band, len(layers))
    return [Artifact(name="randomization", caption=caption, figure=figure, data=data, summary=summary)]


def _sanity_caption(num_images: int, note: str, sentence: str, num_steps: int, num_layers: int) -> str:
    """The test, its verdict sentence, and how many of the cumulative steps were measured when not all."""
    skipped = (
        f" Correlations are computed after {num_steps} of the {num_layers} cumulative steps (evenly spaced)."
        if num_steps < num_layers
        else ""
    )
    return f"Saliency model-parameter randomization test on {num_images} probe images{note}. {sentence}{skipped}"


def _correlations(
    trained: np.ndarray, randomized: list[np.ndarray], images: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rank correlations with the trained maps: (steps, images) of the randomized maps, (images,) of Sobel edges."""
    spearman = np.array([[rank_correlation(trained[i], maps[i]) for i in range(len(trained))] for maps in randomized])
    edges = sobel_magnitude(images.mean(axis=3))
    edge_spearman = np.array([rank_correlation(trained[i], edges[i]) for i in range(len(trained))])
    return spearman, edge_spearman


def _sanity_summary(
    verdict: str,
    labels: list[str],
    spearman: np.ndarray,
    edge_spearman: np.ndarray,
    band: tuple[float, float],
    num_layers: int,
) -> dict:
    """The verdict and the mean correlation per step, rounded for the manifest."""
    return {
        "verdict": verdict,
        "layers": labels,
        "mean_spearman": [_round(value) for value in np.nanmean(spearman, axis=1)],
        "edge_spearman": _round(np.nanmean(edge_spearman)),
        "baseline_mean": _round(band[0]),
        "baseline_std": _round(band[1]),
        "num_layers": num_layers,
        "num_images": len(edge_spearman),
    }


def _step_label(name: str, modules: dict[str, nn.Module]) -> str:
    """``"fc2 Linear"``: the layer randomized last at a step, both names cut to fit a tick label."""
    return f"{short_label(name or '(root)', 40)} {short_label(type(modules[name]).__name__, 30)}"


def cut_points(num_layers: int, max_steps: int) -> list[int]:
    """0 (nothing randomized), then at most ``max_steps`` evenly spaced counts ending at ``num_layers``."""
    if num_layers <= max_steps:
        return list(range(num_layers + 1))
    spaced = np.linspace(1, num_layers, max(2, max_steps)).round().astype(int)
    return [0, *dict.fromkeys(int(count) for count in spaced)]


def saliency_maps(model: nn.Module, probe: ProbeSelection, image_shape: tuple[int, int, int]) -> np.ndarray:
    """|d score / d input| summed over channels, (N, H, W)."""
    return channel_maps(attribute(model, probe.inputs, probe.targets, "saliency"), image_shape)


def randomized_maps(subject: Subject, probe: ProbeSelection, layers: list[str], counts: list[int]) -> list[np.ndarray]:
    """Saliency maps of a copy of the model after re-initializing the first ``count`` of ``layers``, per count.

    The subject's own model is never touched; the random initializers are seeded and the
    global random state is restored afterwards.
    """
    clone = copy.deepcopy(subject.model)
    modules = dict(clone.named_modules())
    wanted = set(counts)
    results = [saliency_maps(clone, probe, subject.task.image_shape)] if 0 in wanted else []
    devices = [probe.inputs.device.index or 0] if probe.inputs.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(subject.seed)
        for count, name in enumerate(layers, start=1):
            reinitialize(modules[name])
            if count in wanted:
                with torch.enable_grad():
                    results.append(saliency_maps(clone, probe, subject.task.image_shape))
    return results


def sobel_magnitude(images: np.ndarray) -> np.ndarray:
    """Gradient magnitude of (N, H, W) grey images by the 3x3 Sobel operator, edges mirrored."""
    padded = np.pad(np.asarray(images, dtype=np.float64), ((0, 0), (1, 1), (1, 1)), mode="symmetric")
    height, width = padded.shape[1] - 2, padded.shape[2] - 2

    def shifted(row: int, column: int) -> np.ndarray:
        return padded[:, 1 + row : 1 + row + height, 1 + column : 1 + column + width]

    smooth = (1, 2, 1)
    across = sum(weight * (shifted(offset, 1) - shifted(offset, -1)) for offset, weight in zip((-1, 0, 1), smooth))
    down = sum(weight * (shifted(1, offset) - shifted(-1, offset)) for offset, weight in zip((-1, 0, 1), smooth))
    return np.hypot(across, down)


def _round(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 4)


def _verdict(
    spearman: np.ndarray, edge_spearman: np.ndarray, num_layers: int, band: tuple[float, float]
) -> tuple[str, str]:
    """Pass when the fully randomized maps fall to the random-pair baseline (mean + 1 std), fail from 0.8."""
    final = float(np.nanmean(spearman[-1])) if np.isfinite(spearman[-1]).any() else float("nan")
    edge = float(np.nanmean(edge_spearman)) if np.isfinite(edge_spearman).any() else float("nan")
    reference = f" For reference, a Sobel edge map of the input has rank correlation {edge:.2f} with the trained maps."
    if not np.isfinite(final):
        return (
            "undetermined",
            "The randomized model's saliency maps are constant, so no correlation can be computed." + reference,
        )
    where = (
        f"with all {num_layers} layers randomized the maps keep a rank correlation of {final:.2f} with the trained ones"
    )
    if np.isfinite(band[0]):
        where += (
            f", against a random-pair baseline of {band[0]:.2f} \u00b1 {band[1]:.2f} (the correlation of the trained "
            "maps of two unrelated probe images)"
        )
    else:
        where += " (one image only: no random-pair baseline, so the test cannot pass)"
    if falls_to_baseline(final, band):
        return "pass", f"Passes: {where}, so they depend on what the network learned." + reference
    if final < FAIL_FROM:
        return "weak", f"Weak: {where}; much of the map reflects the input rather than the learned weights." + reference
    return (
        "fail",
        f"Fails: {where}; maps that do not change when the weights are destroyed do not explain the model." + reference,
    )


def _sanity_figure(
    spearman: np.ndarray,
    edge_spearman: np.ndarray,
    labels: list[str],
    image: np.ndarray,
    trained: np.ndarray,
    randomized: list[np.ndarray],
    title: str,
    band: tuple[float, float],
) -> Figure:
    figure = new_figure(max(7.0, 0.45 * len(labels) + 3), 6.2)
    curve_axes, strip_axes = figure.subplots(2, 1, height_ratios=[2.2, 1])
    positions = np.arange(len(labels))
    with np.errstate(all="ignore"):
        mean, low, high = np.nanmean(spearman, axis=1), np.nanmin(spearman, axis=1), np.nanmax(spearman, axis=1)
    curve_axes.fill_between(positions, low, high, alpha=0.2, color="tab:blue", label="range over images")
    curve_axes.plot(positions, mean, marker="o", color="tab:blue", label="Saliency: trained vs randomized")
    if np.isfinite(edge_spearman).any():
        curve_axes.axhline(
            float(np.nanmean(edge_spearman)),
            linestyle="--",
            color="tab:orange",
            label="Sobel edges vs trained saliency",
        )
    if np.isfinite(band[0]):
        _draw_baseline(curve_axes, band)
    curve_axes.axhline(0.0, color="black", linewidth=0.6)
    curve_axes.set_ylim(min(-0.1, float(np.nanmin(low)) - 0.05) if np.isfinite(low).any() else -0.1, 1.05)
    curve_axes.set_xticks(positions, labels, rotation=45, ha="right", fontsize=7)
    curve_axes.set_xlabel("randomized cumulatively from the output down to this layer", fontsize=8)
    curve_axes.set_ylabel("Spearman rank correlation", fontsize=8)
    curve_axes.legend(fontsize=7)
    picks = (
        np.unique(np.linspace(1, len(randomized) - 1, min(MAX_STRIP_MAPS, len(randomized) - 1)).round().astype(int))
        if len(randomized) > 1
        else []
    )
    maps = np.stack([trained, *(randomized[index][0] for index in picks)])
    tiles = np.concatenate([image[None], colourize(maps, signed=False)])
    strip_axes.imshow(np.clip(montage(tiles, columns=len(tiles), padding=1, fill=1.0), 0, 1), interpolation="nearest")
    width = tiles.shape[2] + 1
    names = ["input", "trained"] + [f"to\n{labels[index].rsplit(' ', 1)[0]}" for index in picks]
    strip_axes.set_xticks([width * column + (width - 2) / 2 for column in range(len(tiles))], names, fontsize=6)
    strip_axes.set_yticks([])
    first = short_label(title.splitlines()[0])
    strip_axes.set_title(f"|saliency| of the first image ({first}), each map scaled to its maximum", fontsize=8)
    return figure


def _draw_baseline(axes, band: tuple[float, float]) -> None:
    """The random-pair baseline: its mean as a dotted line, mean +- 1 std shaded; falling into it passes."""
    mean, spread = band
    axes.axhspan(mean - spread, mean + spread, color="tab:green", alpha=0.12)
    axes.axhline(mean, linestyle=":", color="tab:green", label="random-pair baseline (unrelated images), \u00b1 1 std")
