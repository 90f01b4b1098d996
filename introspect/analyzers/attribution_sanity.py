"""Sanity checks for attribution: do the maps of every method depend on what the network learned?"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from introspect.analyzers._attribution import (
    ProbeSelection,
    affordable_passes,
    choose_probe,
    estimate_macs,
    in_eval_mode,
)
from introspect.analyzers._attribution_maps import colourize
from introspect.analyzers._faithfulness import (
    average_ranks as average_ranks,  # re-exported: it was defined here before
)
from introspect.analyzers._faithfulness import (
    baseline_band,
    falls_to_baseline,
    map_similarity,
    parameterized_layers,
    random_pair_similarities,
    rank_correlation,
)
from introspect.analyzers._randomization import (
    affordable_methods,
    cut_points,
    finite_mean,
    last_convolution,
    method_costs,
    randomized_maps,
    sanity_maps,
    step_means,
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
    from matplotlib.figure import Figure
    from torch import nn

    from introspect.subject import Subject

MAX_STEPS = 12
MAX_STRIP_MAPS = 6
FAIL_FROM = 0.8
#: Every method the test covers, in the order of the figure and the manifest.
METHOD_TITLES = {
    "saliency": "Saliency",
    "integrated_gradients": "Integrated Gradients",
    "smoothgrad": "SmoothGrad",
    "guided_backprop": "Guided Backprop",
    "grad_cam": "Grad-CAM",
}
METHOD_COLOURS = {
    "saliency": "tab:blue",
    "integrated_gradients": "tab:purple",
    "smoothgrad": "tab:red",
    "guided_backprop": "tab:brown",
    "grad_cam": "tab:cyan",
}


@analyzer(needs=Needs.FORWARD | Needs.GRADIENTS | Needs.IMAGE_INPUT)
@in_eval_mode
def saliency_sanity(
    subject: Subject,
    /,
    *,
    max_per_class: int = 2,
    max_images: int = 8,
    max_steps: int = MAX_STEPS,
    n_steps: int = 16,
    nt_samples: int = 8,
) -> list[Artifact]:
    """Model-parameter randomization test: do every method's maps change when the learned weights are destroyed?

    Following Adebayo et al. (2018), layers with parameters are re-initialized (each with its
    own initializer, seeded) cumulatively from the output down, on a copy of the model, and the
    maps of Saliency, Integrated Gradients, SmoothGrad, Guided Backprop and (with a convolution)
    Grad-CAM are computed again. Each curve is one method's Spearman rank correlation of |map|
    between the trained and the randomized model, averaged over the probe images (band: lowest
    to highest image, for Saliency). Lower is better: a curve that falls towards 0 means the
    maps depend on the learned weights; one that stays high means they show the input's
    structure rather than the model. The bar at the right in each method's colour is its
    random-pair baseline, the correlation of the trained maps of two unrelated probe images (mean
    +- 1 std): a method passes when its fully randomized maps fall to its own baseline. Dashed: a
    Sobel edge detector's correlation with the trained Saliency maps, an explanation that needs
    no model. On a big model the work cap leaves out the costliest methods and measures fewer depths.
    """
    layers = parameterized_layers(subject.model)
    if not layers:
        raise SkipAnalyzer("the model has no layers with parameters to randomize")
    plan = _plan(subject, len(layers), max_steps, n_steps, nt_samples)
    counts = cut_points(len(layers), plan["max_steps"])
    probe = choose_probe(
        subject, max_per_class, max_images, forward_passes=plan["per_step"] * len(counts), macs=plan["macs"]
    )
    options = {"n_steps": n_steps, "nt_samples": nt_samples, "seed": subject.seed, "convolution": plan["convolution"]}
    trained = sanity_maps(subject.model, probe, subject.task.image_shape, plan["methods"], options)
    randomized = randomized_maps(subject, probe, layers, counts, trained, options)
    results = {method: _method_result(trained[method], randomized[method], subject.seed) for method in trained}
    images = display_images(subject, probe.inputs)
    edge_spearman = edge_correlations(trained["saliency"], images)
    labels = _step_labels(subject.model, layers, counts)
    saliency = results["saliency"]
    verdict, sentence = _verdict(saliency["spearman"], edge_spearman, len(layers), saliency["band"])
    figure = _sanity_figure(results, edge_spearman, labels, images[0], randomized["saliency"], probe.titles[0])
    caption = _sanity_caption(probe, sentence, results, plan["left_out"], len(counts) - 1, len(layers))
    data = _sanity_data(counts, results, edge_spearman, trained, randomized, probe.indices)
    summary = _sanity_summary(verdict, labels, results, edge_spearman, len(layers), plan["left_out"])
    return [Artifact(name="randomization", caption=caption, figure=figure, data=data, summary=summary)]


def _sanity_data(
    counts: list[int], results: dict, edge_spearman: np.ndarray, trained: dict, randomized: dict, indices: np.ndarray
) -> dict:
    """The numbers behind the figure: Saliency's under the keys from before, every method's under its own."""
    saliency = results["saliency"]
    return {
        "counts": np.array(counts),
        "spearman": saliency["spearman"],
        "edge_spearman": edge_spearman,
        "baseline_spearman": saliency["baseline"],
        "trained_maps": trained["saliency"],
        "randomized_maps": np.stack(randomized["saliency"]),
        "indices": indices,
        "methods": list(results),
        **{f"spearman_{method}": result["spearman"] for method, result in results.items()},
        **{f"baseline_spearman_{method}": result["baseline"] for method, result in results.items()},
    }


def _plan(subject: Subject, num_layers: int, max_steps: int, n_steps: int, nt_samples: int) -> dict:
    """Which methods and how many depths the work cap allows, and what one image costs per depth."""
    macs = estimate_macs(subject.model, subject.probe_inputs[:1].to(subject.device))
    convolution = last_convolution(subject.model)
    costs = method_costs(n_steps, nt_samples, convolution is not None)
    passes = affordable_passes(subject, macs)
    methods = affordable_methods(costs, passes, min(2, num_layers))
    per_step = sum(costs[method] for method in methods)
    return {
        "macs": macs,
        "convolution": convolution,
        "methods": methods,
        "per_step": per_step,
        # On a big model fewer depths are measured (at least 2), so two images (the baseline's least) fit the cap.
        "max_steps": min(max_steps, max(2, int(passes / (2 * per_step)) - 1)),
        "left_out": _left_out(methods, costs, convolution),
    }


def _left_out(methods: tuple[str, ...], costs: dict[str, int], convolution: str | None) -> list[str]:
    """Phrases for the caption: which methods are missing and why."""
    phrases = []
    capped = [METHOD_TITLES[method] for method in costs if method not in methods]
    if capped:
        phrases.append(f"{' and '.join(capped)} left out to stay within the work cap for a model this size")
    if convolution is None:
        phrases.append("Grad-CAM left out: the model has no Conv2d layer to take it from")
    return phrases


def _method_result(trained: np.ndarray, randomized: list[np.ndarray], seed: int) -> dict:
    """One method's (steps, images) correlations, its random-pair similarities and band, and its verdict."""
    spearman = np.stack([map_similarity(trained, maps) for maps in randomized])
    baseline = random_pair_similarities(trained, seed=seed)
    band = baseline_band(baseline)
    final = finite_mean(spearman[-1])
    return {
        "spearman": spearman,
        "baseline": baseline,
        "band": band,
        "final": final,
        "verdict": verdict_of(final, band),
    }


def verdict_of(final: float, band: tuple[float, float]) -> str:
    """``pass`` when the fully randomized maps fall to the random-pair baseline, ``weak`` below 0.8, else ``fail``."""
    if not np.isfinite(final):
        return "undetermined"
    if falls_to_baseline(final, band):
        return "pass"
    return "weak" if final < FAIL_FROM else "fail"


def _sanity_caption(
    probe: ProbeSelection, sentence: str, results: dict, left_out: list[str], num_steps: int, num_layers: int
) -> str:
    """The test, Saliency's verdict sentence, every method's verdict, and what was left out."""
    skipped = (
        f" Correlations are computed after {num_steps} of the {num_layers} cumulative steps (evenly spaced)."
        if num_steps < num_layers
        else ""
    )
    verdicts = "; ".join(_method_phrase(method, result) for method, result in results.items())
    missing = "".join(f" {phrase[0].upper()}{phrase[1:]}." for phrase in left_out)
    return (
        f"Model-parameter randomization test on {len(probe.indices)} probe images{probe.note}. Saliency: {sentence} "
        f"Per method, fully randomized maps against that method's random-pair baseline (mean + 1 std): {verdicts}."
        f"{missing}{skipped}"
    )


def _method_phrase(method: str, result: dict) -> str:
    """``Integrated Gradients 0.41 vs 0.30 + 0.05, weak``."""
    if result["verdict"] == "undetermined":
        return f"{METHOD_TITLES[method]} undetermined (its fully randomized maps are constant)"
    mean, spread = result["band"]
    baseline = f"{mean:.2f} + {spread:.2f}" if np.isfinite(mean) else "no baseline (one image)"
    return f"{METHOD_TITLES[method]} {result['final']:.2f} vs {baseline}, {result['verdict']}"


def edge_correlations(trained: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Rank correlation of each trained map with the Sobel edges of its (grey) input image, (images,)."""
    edges = sobel_magnitude(images.mean(axis=3))
    return np.array([rank_correlation(trained[i], edges[i]) for i in range(len(trained))])


def _sanity_summary(
    verdict: str, labels: list[str], results: dict, edge_spearman: np.ndarray, num_layers: int, left_out: list[str]
) -> dict:
    """Saliency's verdict and mean correlation per step (the keys from before), then every method's, rounded."""
    saliency = results["saliency"]
    return {
        "verdict": verdict,
        "layers": labels,
        "mean_spearman": [_round(value) for value in step_means(saliency["spearman"])],
        "edge_spearman": _round(finite_mean(edge_spearman)),
        "baseline_mean": _round(saliency["band"][0]),
        "baseline_std": _round(saliency["band"][1]),
        "num_layers": num_layers,
        "num_images": len(edge_spearman),
        "methods": {
            method: {
                "verdict": result["verdict"],
                "final_spearman": _round(result["final"]),
                "mean_spearman": [_round(value) for value in step_means(result["spearman"])],
                "baseline_mean": _round(result["band"][0]),
                "baseline_std": _round(result["band"][1]),
            }
            for method, result in results.items()
        },
        "left_out": left_out,
    }


def _step_labels(model: nn.Module, layers: list[str], counts: list[int]) -> list[str]:
    """``"none"``, then the label of the layer randomized last at each step."""
    modules = dict(model.named_modules())
    return ["none"] + [_step_label(layers[count - 1], modules) for count in counts[1:]]


def _step_label(name: str, modules: dict[str, nn.Module]) -> str:
    """``"fc2 Linear"``: the layer randomized last at a step, both names cut to fit a tick label."""
    return f"{short_label(name or '(root)', 40)} {short_label(type(modules[name]).__name__, 30)}"


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
    """Saliency's verdict (see :func:`verdict_of`) and the sentence that explains it, with the Sobel reference."""
    final, edge = finite_mean(spearman[-1]), finite_mean(edge_spearman)
    reference = f" For reference, a Sobel edge map of the input has rank correlation {edge:.2f} with the trained maps."
    verdict = verdict_of(final, band)
    if verdict == "undetermined":
        return (
            verdict,
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
    sentences = {
        "pass": f"Passes: {where}, so they depend on what the network learned.",
        "weak": f"Weak: {where}; much of the map reflects the input rather than the learned weights.",
        "fail": f"Fails: {where}; maps that do not change when the weights are destroyed do not explain the model.",
    }
    return verdict, sentences[verdict] + reference


def _sanity_figure(
    results: dict,
    edge_spearman: np.ndarray,
    labels: list[str],
    image: np.ndarray,
    randomized: list[np.ndarray],
    title: str,
) -> Figure:
    figure = new_figure(max(9.0, 0.45 * len(labels) + 6), 6.6)
    curve_axes, strip_axes = figure.subplots(2, 1, height_ratios=[2.4, 1])
    _draw_curves(curve_axes, results, edge_spearman, labels)
    _draw_strip(strip_axes, labels, image, randomized, title)
    return figure


def _draw_curves(axes, results: dict, edge_spearman: np.ndarray, labels: list[str]) -> None:
    """One mean curve per method; Saliency's range over images; each baseline as a bar beyond the last step."""
    positions = np.arange(len(labels))
    spearman = results["saliency"]["spearman"]
    low = np.array([np.min(row[np.isfinite(row)], initial=np.inf) for row in spearman])
    high = np.array([np.max(row[np.isfinite(row)], initial=-np.inf) for row in spearman])
    shown = np.isfinite(low)
    colour = METHOD_COLOURS["saliency"]
    axes.fill_between(positions[shown], low[shown], high[shown], alpha=0.15, color=colour, label="Saliency: range")
    lowest = low[shown].tolist()
    for offset, (method, result) in enumerate(results.items()):
        mean = step_means(result["spearman"])
        axes.plot(
            positions,
            mean,
            marker="o",
            markersize=3.5,
            color=METHOD_COLOURS[method],
            label=f"{METHOD_TITLES[method]}: {result['verdict']}",
        )
        mean_baseline, spread = result["band"]
        if np.isfinite(mean_baseline):
            # Side by side beyond the last step, so five baselines never hide each other.
            axes.errorbar(
                len(labels) - 0.55 + 0.16 * offset,
                mean_baseline,
                yerr=spread,
                fmt="_",
                markersize=9,
                color=METHOD_COLOURS[method],
                capsize=2,
                linewidth=1.2,
            )
            lowest.append(mean_baseline - spread)
        lowest.extend(mean[np.isfinite(mean)].tolist())
    if np.isfinite(edge_spearman).any():
        edge = finite_mean(edge_spearman)
        axes.axhline(edge, linestyle="--", color="tab:orange", linewidth=1, label="Sobel edges vs trained Saliency")
    axes.axhline(0.0, color="black", linewidth=0.6)
    axes.set_ylim(min(-0.1, min(lowest, default=0.0) - 0.05), 1.05)
    axes.set_xlim(-0.3, len(labels) - 0.55 + 0.16 * len(results))
    axes.set_xticks(positions, labels, rotation=45, ha="right", fontsize=7)
    axes.set_xlabel("randomized cumulatively from the output down to this layer", fontsize=8)
    axes.set_ylabel("Spearman rank correlation of |map|\n(trained vs randomized; lower is better)", fontsize=8)
    title = "bars at the right: each method's\nrandom-pair baseline, mean \u00b1 1 std"
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title=title, title_fontsize=7)


def _draw_strip(axes, labels: list[str], image: np.ndarray, randomized: list[np.ndarray], title: str) -> None:
    """The first image's Saliency map, trained (step 0) and after some of the steps."""
    picks = (
        np.unique(np.linspace(1, len(randomized) - 1, min(MAX_STRIP_MAPS, len(randomized) - 1)).round().astype(int))
        if len(randomized) > 1
        else []
    )
    maps = np.stack([randomized[0][0], *(randomized[index][0] for index in picks)])
    tiles = np.concatenate([image[None], colourize(maps, signed=False)])
    axes.imshow(np.clip(montage(tiles, columns=len(tiles), padding=1, fill=1.0), 0, 1), interpolation="nearest")
    width = tiles.shape[2] + 1
    names = ["input", "trained"] + [f"to\n{labels[index].rsplit(' ', 1)[0]}" for index in picks]
    axes.set_xticks([width * column + (width - 2) / 2 for column in range(len(tiles))], names, fontsize=6)
    axes.set_yticks([])
    first = short_label(title.splitlines()[0])
    axes.set_title(f"|saliency| of the first image ({first}), each map scaled to its maximum", fontsize=8)
