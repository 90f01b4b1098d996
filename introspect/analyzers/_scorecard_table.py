"""The attribution scorecard's table: cells of mean ± std over the probe images, the best per column marked."""

from __future__ import annotations

import numpy as np

from introspect.analyzers import _faithfulness as faith
from introspect.analyzers._attribution import ProbeSelection
from introspect.artifacts import Artifact

LABELS = {
    "saliency": "Saliency",
    "integrated_gradients": "Integrated Gradients",
    "smoothgrad": "SmoothGrad",
    "guided_backprop": "Guided Backprop",
    "grad_cam": "Grad-CAM (upsampled)",
    "occlusion": "Occlusion",
    "random": "control: random map",
    "blurred": "control: blurred Saliency",
}
CONTROLS = ("random", "blurred")
FRACTIONS = (20, 40, 60, 80)
BEST = " \u2605"

#: Column header → (score key, "low" or "high" is better); ROAD columns are added per fraction.
COLUMNS = {
    "deletion AUC (lower better)": ("deletion", "low"),
    "insertion AUC (higher better)": ("insertion", "high"),
    **{f"ROAD MoRF {f}% (lower better)": (f"morf:{i}", "low") for i, f in enumerate(FRACTIONS)},
    **{f"ROAD LeRF {f}% (higher better)": (f"lerf:{i}", "high") for i, f in enumerate(FRACTIONS)},
    "ROAD LeRF - MoRF (higher better)": ("road", "high"),
    "MPRT last layer (lower better)": ("mprt_last", "low"),
    "MPRT full cascade (lower better)": ("mprt_full", "low"),
    "random-pair baseline": ("baseline", ""),
    "random logit (lower better)": ("logit", "low"),
}

EXPLAINED = (
    "Deletion AUC (RISE, Petsiuk et al. 2018): pixels are set to 0 (all channels) from the most to the least "
    "attributed in {steps} steps, and the area under the target's softmax probability over the fraction removed "
    "is taken by the trapezoid rule. Lower is better: a faithful map names the pixels whose loss hurts first. "
    "Insertion AUC: the same from an all-zero canvas, putting the most attributed pixels back first. Higher is "
    "better: the evidence the map names should restore the prediction quickly. "
    "ROAD MoRF/LeRF (Rong et al. 2022): 20-80% of the pixels, most (MoRF) or least (LeRF) relevant first, are "
    "filled by noisy linear imputation (each the weighted mean of its 8 neighbours, 1/6 per side and 1/12 per "
    "diagonal, solved as one sparse system, plus Gaussian noise of 2.5% of the input range), so the filled image "
    "carries no shape of the mask; a cell is the target's softmax probability after the fill. Without noise "
    "these equal pytorch-grad-cam's ROAD with ClassifierOutputSoftmaxTarget, whose percentile is the share "
    "kept (MoRF 20% here is its ROADMostRelevantFirst(80)) and whose default returns the change in the logit; "
    "its noise is 0.01 absolute, and it removes all pixels tied at the threshold where this removes exactly "
    "the fraction. Lower MoRF and higher LeRF are better; LeRF - MoRF (means over 20-80%) sums both, higher "
    "better (pytorch-grad-cam's ROADCombined is half of it, over 10-90%). "
    "MPRT (Adebayo et al. 2018): the Spearman rank correlation of |map| between the trained model and a copy "
    "whose last layer, or every layer from the output end, is re-initialized (reset_parameters, torch seeded "
    "before each layer; this equals Quantus's MPRT, top_down, with its seed one lower; modules with parameters "
    "but no reset_parameters, which Quantus leaves alone, are drawn from a normal of their own spread). A map "
    "that explains the model should fall to the random-pair baseline, the correlation of maps of two unrelated "
    "probe images; 'passes' means the full "
    "cascade's mean is within the baseline's mean + 1 std. "
    "Random logit: the rank correlation of |map| for the true class and for another, seeded random class. Lower "
    "is better: a map that is the same for every class does not explain the class. "
    "Cells are mean \u00b1 std over the probe images; \u2605 marks the best method per column (controls are "
    "references, not candidates). The random map is drawn once from the seed, so it is the same for every model "
    "and class: it scores 1 on MPRT and random logit by construction."
)


def values_for(scores: dict, key: str, name: str) -> np.ndarray | None:
    """Per-image values of one column for one row, or None where the column was not measured."""
    if key == "road":
        if name not in scores["lerf"]:
            return None
        return scores["lerf"][name].mean(axis=1) - scores["morf"][name].mean(axis=1)
    base, _, column = key.partition(":")
    found = scores.get(base, {}).get(name)
    return found if found is None or not column else found[:, int(column)]


def mean_and_spread(values: np.ndarray | None) -> tuple[float, float]:
    """Mean and population std of the finite values (NaN, NaN when there are none)."""
    finite = np.asarray([] if values is None else values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return (float(finite.mean()), float(finite.std())) if len(finite) else (float("nan"), float("nan"))


def best_rows(scores: dict, names: list[str]) -> dict[str, str | None]:
    """Column header → the method (not a control) with the best mean, None for unranked or empty columns."""
    best = {}
    for header, (key, better) in COLUMNS.items():
        means = {name: mean_and_spread(values_for(scores, key, name))[0] for name in names if name not in CONTROLS}
        means = {name: value for name, value in means.items() if np.isfinite(value)}
        best[header] = (min if better == "low" else max)(means, key=means.get) if better and means else None
    return best


def cell(values: np.ndarray | None, marked: bool) -> str:
    mean, spread = mean_and_spread(values)
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.3f} \u00b1 {spread:.3f}" + (BEST if marked else "")


def scorecard_artifact(names: list[str], scores: dict, probe: ProbeSelection, num_steps: int) -> Artifact:
    """The scorecard as one table Artifact, with the per-image numbers in ``data`` and the means in ``summary``."""
    best = best_rows(scores, names)
    num_images = len(probe.indices)
    table, passes = [], {}
    for name in names:
        row: dict = {"method": LABELS[name]}
        for header, (key, _) in COLUMNS.items():
            row[header] = cell(values_for(scores, key, name), best[header] == name)
        band = mean_and_spread(scores["baseline"][name])
        passes[name] = faith.falls_to_baseline(mean_and_spread(scores["mprt_full"][name])[0], band)
        row["MPRT passes"] = {True: "yes", False: "no", None: "n/a"}[passes[name]]
        table.append(row)
    summary = {
        "num_images": num_images,
        "best": {header: LABELS[name] if name else None for header, name in best.items()},
        "mprt_passes": {LABELS[name]: passes[name] for name in names},
        "means": {
            LABELS[name]: {
                header: _json(mean_and_spread(values_for(scores, key, name))[0]) for header, (key, _) in COLUMNS.items()
            }
            for name in names
        },
    }
    road = "" if scores["morf"] else " ROAD was skipped: the images are too large for its sparse solves."
    caption = f"Attribution scorecard on {num_images} probe images{probe.note}.{road} " + EXPLAINED.format(
        steps=num_steps
    )
    data = {**scores, "indices": probe.indices, "targets": probe.target_array(), "num_steps": num_steps}
    return Artifact(name="scorecard", caption=caption, table=table, data=data, summary=summary)


def _json(value: float) -> float | None:
    return round(value, 4) if np.isfinite(value) else None
