"""The attribution scorecard: its numbers against numpy, scipy and a model whose answer is known."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from introspect.analyzers import _attribution, _faithfulness, attribution_scorecard
from introspect.errors import SkipAnalyzer
from introspect.subject import Subject, Task
from introspect.testing import check_analyzer, conv_image_subject, scalar_regression_subject

SIDE = 8


def quadrant_weights(strength: float = 0.5) -> np.ndarray:
    """(1, 8, 8) weights: ``strength`` on the top-left quadrant, 0 elsewhere."""
    weights = np.zeros((1, SIDE, SIDE))
    weights[0, : SIDE // 2, : SIDE // 2] = strength
    return weights


def quadrant_subject(num_images: int = 8) -> Subject:
    """A 2-class linear model on 1x8x8 images whose class-0 logit is 2 w.x (w on one quadrant), class 1's -w.x."""
    weights = torch.as_tensor(quadrant_weights().reshape(1, -1), dtype=torch.float32)
    linear = torch.nn.Linear(SIDE * SIDE, 2, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.cat([weights, -weights]))
    model = torch.nn.Sequential(torch.nn.Flatten(), linear)
    torch.manual_seed(0)
    inputs = torch.rand(num_images, 1, SIDE, SIDE)
    labels = torch.arange(num_images) % 2
    task = Task(kind="classification", input_shape=(1, SIDE, SIDE), image_shape=(1, SIDE, SIDE), class_names=("a", "b"))
    return Subject.from_model(model, inputs, labels, task=task, seed=0)


def numpy_removal_auc(image: np.ndarray, order_map: np.ndarray, target: int, steps: int, insert: bool) -> float:
    """Deletion (or insertion) AUC of the quadrant model, written out in numpy from the definition."""
    weights = quadrant_weights().ravel()
    order = np.argsort(-order_map.ravel(), kind="stable")
    probabilities = []
    for step in range(steps + 1):
        count = int(round(step * image.size / steps))
        kept = np.zeros(image.size, dtype=bool)
        kept[order[:count]] = True
        pixels = np.where(kept, image.ravel(), 0.0) if insert else np.where(kept, 0.0, image.ravel())
        logits = np.array([weights @ pixels, -(weights @ pixels)])
        probabilities.append(np.exp(logits[target]) / np.exp(logits).sum())
    return float(np.trapezoid(probabilities, dx=1.0 / steps))


@pytest.fixture(scope="module")
def quadrant_scorecard():
    subject = quadrant_subject()
    return subject, attribution_scorecard.attribution_scorecard(subject, num_steps=8)[0]


def test_deletion_and_insertion_auc_equal_a_numpy_computation(quadrant_scorecard) -> None:
    subject, artifact = quadrant_scorecard
    data = artifact.data
    images = subject.probe_inputs.double().numpy()[data["indices"], 0]
    maps = {
        "saliency": [quadrant_weights()[0]] * len(images),  # |d logit / d x|: the same for both classes, tied
        "random": np.random.default_rng(subject.seed).random((len(images), SIDE, SIDE)),  # the control, untied
    }
    for (name, order_maps), (kind, insert) in itertools.product(
        maps.items(), (("deletion", False), ("insertion", True))
    ):
        expected = [
            numpy_removal_auc(image, order_map, target, 8, insert)
            for image, order_map, target in zip(images, order_maps, data["targets"])
        ]
        np.testing.assert_allclose(data[kind][name], expected, atol=1e-6)
    # Class 0 images: removing the quadrant first takes the probability from ~1 to 1/2 within a quarter of the pixels.
    assert data["deletion"]["saliency"][data["targets"] == 0].max() < 0.6


def test_random_map_scores_worse_than_saliency_on_deletion_for_the_quadrant_model(quadrant_scorecard) -> None:
    _, artifact = quadrant_scorecard
    data = artifact.data
    class_0 = data["targets"] == 0
    assert data["deletion"]["saliency"][class_0].mean() < data["deletion"]["random"][class_0].mean() - 0.1
    assert data["insertion"]["saliency"][class_0].mean() > data["insertion"]["random"][class_0].mean() + 0.03
    row = next(row for row in artifact.table if row["method"] == "control: random map")
    assert row["MPRT passes"] == "no" and row["random logit (lower better)"].startswith("1.000")
    assert "Grad-CAM (upsampled)" not in {row["method"] for row in artifact.table}  # no convolution to attach to


def test_trapezoid_auc_matches_numpy() -> None:
    curves = np.random.default_rng(3).random((4, 17))
    np.testing.assert_allclose(_faithfulness.trapezoid_auc(curves), np.trapezoid(curves, dx=1 / 16, axis=1), atol=1e-12)


#: ROAD's weights written out: 1/6 for the 4 side neighbours, 1/12 for the 4 diagonal ones.
SIDE_WEIGHT, DIAGONAL_WEIGHT = 1 / 6, 1 / 12


def neighbour_weights(row: int, column: int, height: int, width: int) -> dict[tuple[int, int], float]:
    """The in-image 8-neighbours of one pixel with ROAD's weights."""
    weights = {}
    for step_row in (-1, 0, 1):
        for step_column in (-1, 0, 1):
            neighbour = (row + step_row, column + step_column)
            if (step_row, step_column) != (0, 0) and 0 <= neighbour[0] < height and 0 <= neighbour[1] < width:
                weights[neighbour] = SIDE_WEIGHT if 0 in (step_row, step_column) else DIAGONAL_WEIGHT
    return weights


def dense_neighbour_solve(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """The weighted neighbour-mean system solved densely with numpy, one equation per removed pixel."""
    height, width = removed.shape
    unknown = list(zip(*np.nonzero(removed)))
    slot = {pixel: index for index, pixel in enumerate(unknown)}
    matrix, right = np.zeros((len(unknown), len(unknown))), np.zeros((len(unknown), image.shape[0]))
    for index, (row, column) in enumerate(unknown):
        for neighbour, weight in neighbour_weights(row, column, height, width).items():
            matrix[index, index] += weight
            if neighbour in slot:
                matrix[index, slot[neighbour]] -= weight
            else:
                right[index] += weight * image[:, neighbour[0], neighbour[1]]
    filled = image.copy()
    solution = np.linalg.solve(matrix, right)
    for index, (row, column) in enumerate(unknown):
        filled[:, row, column] = solution[index]
    return filled


def test_neighbour_fill_keeps_other_pixels_and_solves_the_neighbour_mean_system() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(3, 7, 9))
    removed = rng.random((7, 9)) < 0.6
    filled = _faithfulness.neighbour_fill(image, removed)
    np.testing.assert_array_equal(filled[:, ~removed], image[:, ~removed])
    np.testing.assert_allclose(filled, dense_neighbour_solve(image, removed), atol=1e-10)
    # One removed pixel alone: (4 sides / 6 + 4 diagonals / 12); in a corner 2 sides and 1 diagonal, over 5/12.
    single = np.zeros((7, 9), dtype=bool)
    single[3, 4] = single[0, 0] = True
    alone = _faithfulness.neighbour_fill(image, single)
    sides = image[:, 2, 4] + image[:, 4, 4] + image[:, 3, 3] + image[:, 3, 5]
    diagonals = image[:, 2, 3] + image[:, 2, 5] + image[:, 4, 3] + image[:, 4, 5]
    np.testing.assert_allclose(alone[:, 3, 4], sides / 6 + diagonals / 12)
    np.testing.assert_allclose(alone[:, 0, 0], (2 * image[:, 1, 0] + 2 * image[:, 0, 1] + image[:, 1, 1]) / 5)


def test_road_noise_falls_on_the_imputed_pixels_only() -> None:
    image = np.random.default_rng(1).normal(size=(1, 6, 6))
    removed = np.zeros((6, 6), dtype=bool)
    removed[2:4, 1:5] = True
    noisy = _faithfulness.road_impute(image, removed, 0.1, np.random.default_rng(2))
    clean = _faithfulness.neighbour_fill(image, removed)
    np.testing.assert_array_equal(noisy[:, ~removed], image[:, ~removed])
    assert 0.02 < np.abs(noisy - clean)[:, removed].mean() < 0.2


def test_random_pair_baseline_matches_scipy_spearman() -> None:
    from scipy.stats import spearmanr

    maps = np.random.default_rng(4).normal(size=(5, 6, 6))
    maps[:, :3] += 2.0  # shared structure, so the baseline is clearly above 0
    similarities = _faithfulness.random_pair_similarities(maps)
    expected = [
        spearmanr(np.abs(maps[i]).ravel(), np.abs(maps[j]).ravel()).statistic
        for i, j in [(i, j) for i in range(5) for j in range(i + 1, 5)]
    ]
    np.testing.assert_allclose(similarities, expected, atol=1e-12)
    mean, spread = _faithfulness.baseline_band(similarities)
    assert mean == pytest.approx(np.mean(expected)) and spread == pytest.approx(np.std(expected))
    assert _faithfulness.falls_to_baseline(mean + 0.9 * spread, (mean, spread))
    assert not _faithfulness.falls_to_baseline(mean + 1.1 * spread, (mean, spread))
    assert len(_faithfulness.image_pairs(20, max_pairs=64)) == 64


def test_scorecard_skips_a_model_over_the_work_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_attribution, "WORK_BUDGET_MACS", 1e4)
    with pytest.raises(SkipAnalyzer, match="work cap"):
        attribution_scorecard.attribution_scorecard(conv_image_subject())


def test_scorecard_passes_check_analyzer_on_a_small_conv_subject() -> None:
    statuses = check_analyzer(
        attribution_scorecard.attribution_scorecard,
        {"conv_gray": conv_image_subject(), "scalar_regression": scalar_regression_subject()},
    )
    assert statuses == {"conv_gray": "ok", "scalar_regression": "skipped"}


def test_ranks_by_row_and_map_similarity_equal_scipy_with_ties_and_constant_maps() -> None:
    from scipy.stats import rankdata, spearmanr

    rng = np.random.default_rng(7)
    first = rng.integers(0, 4, size=(6, 5, 5)).astype(float)  # few distinct values: many ties
    second = rng.integers(0, 4, size=(6, 5, 5)).astype(float)
    second[2] = 1.0  # a constant map has no rank correlation
    np.testing.assert_array_equal(
        _faithfulness.average_ranks_by_row(first.reshape(6, -1)), rankdata(first.reshape(6, -1), axis=1)
    )
    similarity = _faithfulness.map_similarity(first, second)
    for index in (0, 1, 3, 4, 5):
        assert similarity[index] == pytest.approx(spearmanr(first[index].ravel(), second[index].ravel()).statistic)
    assert np.isnan(similarity[2])
