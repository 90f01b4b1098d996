"""Shared by the attribution checks: rank similarity, the random-pair baseline, removal curves, ROAD imputation.

Everything here works on plain numpy arrays, so each piece can be tested against a direct
computation. Maps are (N, H, W); images are (N, C, H, W) in the model's input space.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import

if TYPE_CHECKING:
    import torch
    from torch import nn
else:
    torch = lazy_import("torch")

#: ROAD's noise: standard deviation of the noise added to imputed pixels, as a fraction of the input range.
ROAD_NOISE = 0.025
#: Unordered pairs of probe images the random-pair baseline looks at, at most.
MAX_PAIRS = 64
#: ROAD's imputation weights (Rong et al. 2022, as in its reference code): 1/6 per side neighbour, 1/12 per diagonal.
ROAD_NEIGHBOURS = tuple(
    ((step_row, step_column), 1 / 6 if 0 in (step_row, step_column) else 1 / 12)
    for step_row in (-1, 0, 1)
    for step_column in (-1, 0, 1)
    if (step_row, step_column) != (0, 0)
)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``values``, tied values sharing their mean rank (numpy only: scipy.stats imports slowly)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    ends = np.append(starts[1:], len(values))
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return ranks


def rank_correlation(first: np.ndarray, second: np.ndarray) -> float:
    """Spearman's rank correlation of two maps (average ranks for ties); NaN when one is constant."""
    ranks_a = average_ranks(np.ravel(first)) - (first.size + 1) / 2
    ranks_b = average_ranks(np.ravel(second)) - (second.size + 1) / 2
    denominator = float(np.sqrt((ranks_a**2).sum() * (ranks_b**2).sum()))
    return float((ranks_a * ranks_b).sum() / denominator) if denominator > 0 else float("nan")


def map_similarity(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per image, the rank correlation of |first| and |second| ((N, H, W) each): the MPRT's similarity."""
    return np.array([rank_correlation(np.abs(a), np.abs(b)) for a, b in zip(first, second)])


def image_pairs(count: int, max_pairs: int = MAX_PAIRS, seed: int = 0) -> list[tuple[int, int]]:
    """Unordered pairs (i, j), i < j, of ``count`` images: all of them, or a seeded sample of ``max_pairs``."""
    pairs = [(i, j) for i in range(count) for j in range(i + 1, count)]
    if len(pairs) <= max_pairs:
        return pairs
    picks = np.random.default_rng(seed).choice(len(pairs), size=max_pairs, replace=False)
    return [pairs[index] for index in sorted(picks)]


def random_pair_similarities(maps: np.ndarray, max_pairs: int = MAX_PAIRS, seed: int = 0) -> np.ndarray:
    """Similarity of |maps| of unrelated probe images: what "no longer related to the trained map" looks like.

    An MPRT similarity is only low or high against this: two maps of different images already
    share structure (centred objects, borders), so their correlation is rarely 0.
    """
    return np.array(
        [rank_correlation(np.abs(maps[i]), np.abs(maps[j])) for i, j in image_pairs(len(maps), max_pairs, seed)]
    )


def baseline_band(similarities: np.ndarray) -> tuple[float, float]:
    """Mean and population std of the finite random-pair similarities (NaN, NaN when there are none)."""
    finite = similarities[np.isfinite(similarities)]
    if not len(finite):
        return float("nan"), float("nan")
    return float(finite.mean()), float(finite.std())


def falls_to_baseline(similarity: float, band: tuple[float, float]) -> bool | None:
    """Whether ``similarity`` is within the baseline's mean + 1 std; None when either is unknown."""
    mean, spread = band
    if not (np.isfinite(similarity) and np.isfinite(mean)):
        return None
    return bool(similarity <= mean + spread)


def removal_order(saliency: np.ndarray) -> np.ndarray:
    """Pixel indices of one (H, W) map from the highest value to the lowest (ties in reading order)."""
    return np.argsort(-np.ravel(saliency), kind="stable")


def step_counts(num_pixels: int, num_steps: int) -> np.ndarray:
    """Pixels removed after each of ``num_steps`` steps, from 0 to all: round(k / K x pixels)."""
    return np.round(np.linspace(0, num_pixels, num_steps + 1)).astype(int)


def removal_masks(saliency: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(len(counts), H, W) boolean masks: True where one of the top ``count`` pixels of ``saliency`` is."""
    order = removal_order(saliency)
    masks = np.zeros((len(counts), saliency.size), dtype=bool)
    for row, count in enumerate(counts):
        masks[row, order[:count]] = True
    return masks.reshape(len(counts), *saliency.shape)


def deletion_inputs(image: np.ndarray, saliency: np.ndarray, num_steps: int) -> np.ndarray:
    """(K+1, C, H, W): ``image`` with its most relevant pixels (all channels) set to 0, 0 to all of them."""
    masks = removal_masks(saliency, step_counts(saliency.size, num_steps))
    return np.where(masks[:, None], 0.0, image[None])


def insertion_inputs(image: np.ndarray, saliency: np.ndarray, num_steps: int) -> np.ndarray:
    """(K+1, C, H, W): an all-zero canvas with the most relevant pixels of ``image`` put back, none to all."""
    masks = removal_masks(saliency, step_counts(saliency.size, num_steps))
    return np.where(masks[:, None], image[None], 0.0)


def trapezoid_auc(values: np.ndarray) -> np.ndarray:
    """Area under curves sampled at evenly spaced fractions of [0, 1] (last axis), by the trapezoid rule."""
    values = np.asarray(values, dtype=np.float64)
    width = 1.0 / (values.shape[-1] - 1)
    return width * (values[..., 1:] + values[..., :-1]).sum(axis=-1) / 2


def neighbour_fill(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """``image`` (C, H, W) with each ``removed`` pixel (H, W mask) the weighted mean of its 8 neighbours.

    The removed pixels are the unknowns of one sparse linear system: each equals the
    ``ROAD_NEIGHBOURS``-weighted mean of its neighbours inside the image, known or themselves
    unknown (a discrete Laplace equation). This is ROAD's linear imputation, weights included.
    Pixels not removed are unchanged.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import splu

    height, width = removed.shape
    unknown = np.flatnonzero(removed.ravel())
    if not len(unknown):
        return image.copy()
    slot = np.full(height * width, -1)
    slot[unknown] = np.arange(len(unknown))
    rows, columns = np.divmod(unknown, width)
    flat = image.reshape(len(image), -1).astype(np.float64)
    weight_sum, known_sum = np.zeros(len(unknown)), np.zeros((len(unknown), len(image)))
    diagonal = np.arange(len(unknown))
    entry_rows, entry_columns, entry_values = [diagonal], [diagonal], []
    for (step_row, step_column), weight in ROAD_NEIGHBOURS:
        row, column = rows + step_row, columns + step_column
        inside = (row >= 0) & (row < height) & (column >= 0) & (column < width)
        neighbour = np.where(inside, row * width + column, 0)
        weight_sum += weight * inside
        coupled = inside & (slot[neighbour] >= 0)
        known = inside & ~coupled
        entry_rows.append(np.flatnonzero(coupled))
        entry_columns.append(slot[neighbour[coupled]])
        entry_values.append(np.full(int(coupled.sum()), -weight))
        known_sum[known] += weight * flat[:, neighbour[known]].T
    # weight_sum * x_i - weighted sum of unknown neighbours = weighted sum of known neighbours.
    entries = (np.concatenate([weight_sum, *entry_values]), (np.concatenate(entry_rows), np.concatenate(entry_columns)))
    system = coo_matrix(entries, shape=(len(unknown),) * 2).tocsc()
    filled = flat.copy()
    filled[:, unknown] = splu(system).solve(known_sum).T
    return filled.reshape(image.shape)


def road_impute(image: np.ndarray, removed: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """ROAD's noisy linear imputation (Rong et al. 2022): the weighted neighbour fill plus Gaussian noise on it."""
    filled = neighbour_fill(image, removed)
    jitter = rng.normal(0.0, noise, size=filled.shape) * removed[None]
    return filled + jitter


def gaussian_blur(maps: np.ndarray, sigma: float) -> np.ndarray:
    """(N, H, W) maps blurred by a Gaussian of ``sigma`` pixels per map (edges mirrored)."""
    from scipy.ndimage import gaussian_filter

    return np.stack([gaussian_filter(np.asarray(item, dtype=np.float64), sigma, mode="reflect") for item in maps])


def parameterized_layers(model: nn.Module) -> list[str]:
    """Names of modules that hold parameters themselves, from the output end to the input end."""
    names = [name for name, module in model.named_modules() if next(module.parameters(recurse=False), None) is not None]
    return names[::-1]


def reinitialize(module: nn.Module) -> None:
    """Draw ``module``'s own parameters afresh: its ``reset_parameters``, else a normal of the same spread."""
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()
        return
    for parameter in module.parameters(recurse=False):
        spread = float(parameter.std()) if parameter.numel() > 1 else 0.0
        parameter.normal_(0.0, spread or 0.02)


def randomized_copy(model: nn.Module, layers: list[str], seed: int) -> nn.Module:
    """A copy of ``model`` with ``layers`` re-initialized, each after seeding torch with ``seed``.

    Seeding before every layer, as Quantus's MPRT does (its ``seed`` + 1), gives a layer the same
    new weights in every copy that randomizes it. The model and the global random state are untouched.
    """
    clone = copy.deepcopy(model)
    modules = dict(clone.named_modules())
    device = next(clone.parameters()).device
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        for name in layers:
            torch.manual_seed(seed)
            reinitialize(modules[name])
    return clone
