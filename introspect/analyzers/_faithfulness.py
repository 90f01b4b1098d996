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
    return average_ranks_by_row(np.asarray(values)[None])[0]


def average_ranks_by_row(values: np.ndarray) -> np.ndarray:
    """:func:`average_ranks` of each row of the (N, P) ``values``, all rows in one sort."""
    count, size = values.shape
    order = np.argsort(values, axis=1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=1)
    ties_before = np.zeros((count, size), dtype=bool)
    ties_before[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    positions = np.broadcast_to(np.arange(size), (count, size))
    # A run of equal values spans sorted positions start..end-1 and shares the mean rank (start + end + 1) / 2.
    starts = np.maximum.accumulate(np.where(ties_before, 0, positions), axis=1)
    ties_after = np.zeros((count, size), dtype=bool)
    ties_after[:, :-1] = ties_before[:, 1:]
    ends = np.minimum.accumulate(np.where(ties_after, size, positions + 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty((count, size), dtype=np.float64)
    np.put_along_axis(ranks, order, (starts + ends + 1) / 2, axis=1)
    return ranks


def centred_ranks(maps: np.ndarray) -> np.ndarray:
    """(N, P): each map's average ranks (its pixels flattened) minus their mean, the form Spearman's rho needs."""
    flat = np.asarray(maps).reshape(len(maps), -1)
    return average_ranks_by_row(flat) - (flat.shape[1] + 1) / 2


def rank_correlations(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Row by row, Pearson's correlation of centred ranks ((N, P) each): Spearman's rho; NaN for a constant map."""
    denominator = np.sqrt((first**2).sum(axis=1) * (second**2).sum(axis=1))
    numerator = (first * second).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def rank_correlation(first: np.ndarray, second: np.ndarray) -> float:
    """Spearman's rank correlation of two maps (average ranks for ties); NaN when one is constant."""
    return float(rank_correlations(centred_ranks(first[None]), centred_ranks(second[None]))[0])


def map_similarity(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per image, the rank correlation of |first| and |second| ((N, H, W) each): the MPRT's similarity."""
    return rank_correlations(centred_ranks(np.abs(first)), centred_ranks(np.abs(second)))


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
    pairs = np.array(image_pairs(len(maps), max_pairs, seed), dtype=np.int64).reshape(-1, 2)
    ranks = centred_ranks(np.abs(maps))  # each map ranked once, however many pairs it is in
    return rank_correlations(ranks[pairs[:, 0]], ranks[pairs[:, 1]])


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
    rank = np.empty(saliency.size, dtype=np.int64)
    rank[removal_order(saliency)] = np.arange(saliency.size)  # 0 for the most relevant pixel
    return (rank[None] < np.asarray(counts)[:, None]).reshape(len(counts), *saliency.shape)


def deletion_inputs(image: np.ndarray, saliency: np.ndarray, num_steps: int) -> np.ndarray:
    """(K+1, C, H, W): ``image`` with its most relevant pixels (all channels) set to 0, 0 to all of them."""
    return deletion_and_insertion_inputs(image, saliency, num_steps)[0]


def insertion_inputs(image: np.ndarray, saliency: np.ndarray, num_steps: int) -> np.ndarray:
    """(K+1, C, H, W): an all-zero canvas with the most relevant pixels of ``image`` put back, none to all."""
    return deletion_and_insertion_inputs(image, saliency, num_steps)[1]


def deletion_and_insertion_inputs(
    image: np.ndarray, saliency: np.ndarray, num_steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`deletion_inputs` and :func:`insertion_inputs` of one map, from one ordering of its pixels."""
    masks = removal_masks(saliency, step_counts(saliency.size, num_steps))[:, None]
    return np.where(masks, 0.0, image[None]), np.where(masks, image[None], 0.0)


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
    return neighbour_fill_many(image[None], removed[None])[0]


def neighbour_fill_many(images: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """:func:`neighbour_fill` of each (C, H, W) image in ``images`` with its own (H, W) mask in ``removed``.

    All the systems are solved as one block-diagonal system (neighbours never cross from one
    image to the next), so ROAD's 64 imputations per method cost one factorization, not 64
    rounds of Python set-up (1.2 ms each on MNIST). A mask that removes every pixel of its image
    leaves nothing to fill from and raises ``numpy.linalg.LinAlgError``.
    """
    count, height, width = removed.shape
    unknown = np.flatnonzero(removed.ravel())
    flat = np.moveaxis(images.reshape(count, images.shape[1], -1), 1, 0).reshape(images.shape[1], -1)
    filled = flat.astype(np.float64)  # (C, count * H * W): pixel i of image m at m * H * W + i
    if not len(unknown):
        return _as_images(filled, images.shape)
    slot = np.full(count * height * width, -1)
    slot[unknown] = np.arange(len(unknown))
    rows, columns = np.divmod(unknown % (height * width), width)
    plane = unknown - unknown % (height * width)
    weight_sum, known_sum = np.zeros(len(unknown)), np.zeros((len(unknown), len(flat)))
    coupled_rows, coupled_columns, coupled_weights = [], [], []  # the off-diagonal entries
    for (step_row, step_column), weight in ROAD_NEIGHBOURS:
        row, column = rows + step_row, columns + step_column
        inside = (row >= 0) & (row < height) & (column >= 0) & (column < width)
        neighbour = np.where(inside, plane + row * width + column, 0)
        weight_sum += weight * inside
        coupled = inside & (slot[neighbour] >= 0)
        known = inside & ~coupled
        coupled_rows.append(np.flatnonzero(coupled))
        coupled_columns.append(slot[neighbour[coupled]])
        coupled_weights.append(np.full(int(coupled.sum()), -weight))
        known_sum[known] += weight * filled[:, neighbour[known]].T
    # weight_sum * x_i - weighted sum of unknown neighbours = weighted sum of known neighbours.
    off_diagonal = (np.concatenate(coupled_rows), np.concatenate(coupled_columns), np.concatenate(coupled_weights))
    filled[:, unknown] = _solved_banded(weight_sum, *off_diagonal, known_sum).T
    return _as_images(filled, images.shape)


def _solved_banded(
    diagonal: np.ndarray, rows: np.ndarray, columns: np.ndarray, values: np.ndarray, right_side: np.ndarray
) -> np.ndarray:
    """Solve the fill's system, given as its diagonal and off-diagonal entries, by banded Cholesky.

    The system is symmetric (a neighbour's weight depends only on the offset) and positive
    definite whenever one pixel is known (each row's weights sum to its diagonal, and every
    group of unknown pixels touches a known one). Unknowns are numbered in reading order, so a
    neighbour is at most one image row plus one pixel away: the matrix is a band that wide, and
    LAPACK's banded Cholesky solves MNIST's 64 ROAD systems of a method (25,000 unknowns) in a
    few milliseconds, where SuperLU took 35 ms.
    """
    from scipy.linalg import solveh_banded

    below = rows > columns
    offsets = rows[below] - columns[below]
    band = np.zeros((1 + int(offsets.max(initial=0)), len(diagonal)))
    band[0] = diagonal
    band[offsets, columns[below]] = values[below]
    return solveh_banded(band, right_side, lower=True, check_finite=False)


def _as_images(flat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(C, N * H * W) back to (N, C, H, W)."""
    count, channels = shape[0], shape[1]
    return np.moveaxis(flat.reshape(channels, count, *shape[2:]), 0, 1)


def road_impute(image: np.ndarray, removed: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """ROAD's noisy linear imputation (Rong et al. 2022): the weighted neighbour fill plus Gaussian noise on it."""
    return road_impute_many(image[None], removed[None], noise, rng)[0]


def road_impute_many(images: np.ndarray, removed: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """:func:`road_impute` of each image with its own mask; the noise is drawn image after image, as one by one."""
    filled = neighbour_fill_many(images, removed)
    jitter = rng.normal(0.0, noise, size=filled.shape) * removed[:, None]
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
