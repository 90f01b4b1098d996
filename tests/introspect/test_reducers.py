"""Dataset reducers against direct computations over the whole array, and merges over random splits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import confusion_matrix

from introspect.dataset.reducers import (
    EMPTY,
    ClassMeans,
    ConfusionCounts,
    Reservoir,
    TopK,
    UnitMoments,
    sample_keys,
)

SIZES = st.integers(min_value=1, max_value=60)
CUTS = st.lists(st.floats(min_value=0, max_value=1), max_size=5)


def split_points(count: int, cuts: list[float]) -> list[tuple[int, int]]:
    """Contiguous shards covering range(count), cut at the given fractions (empty shards allowed)."""
    points = sorted({0, count, *(int(round(cut * count)) for cut in cuts)})
    return list(zip(points[:-1], points[1:])) or [(0, count)]


def data(seed: int, count: int, units: int = 5, ties: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(count, units))
    return np.round(values) if ties else values  # rounding makes many ties


def reduce_shards(make, feed, count: int, cuts: list[float], shuffled_merge: bool = True):
    """One reducer per shard, merged; shards merged in reverse order to show order does not matter."""
    shards = []
    for start, stop in split_points(count, cuts):
        reducer = make()
        feed(reducer, start, stop)
        shards.append(reducer)
    total = make()
    for shard in reversed(shards) if shuffled_merge else shards:
        total.merge(shard)
    return total


@settings(max_examples=40, deadline=None)
@given(count=SIZES, cuts=CUTS, seed=st.integers(0, 1000))
def test_unit_moments_equal_numpy_and_merge_like_one_pass(count: int, cuts: list[float], seed: int) -> None:
    values = data(seed, count)
    merged = reduce_shards(lambda: UnitMoments(5), lambda r, a, b: r.update(values[a:b]), count, cuts)
    assert merged.count == count
    np.testing.assert_allclose(merged.mean, values.mean(axis=0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(merged.std, values.std(axis=0), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(merged.minimum, values.min(axis=0))
    np.testing.assert_array_equal(merged.maximum, values.max(axis=0))
    np.testing.assert_allclose(merged.active_fraction, (values > 0).mean(axis=0))


def numpy_top_k(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the k largest values, ties to the lower row index (a stable sort of -values)."""
    order = np.argsort(-values, axis=0, kind="stable")[:k].T
    return np.take_along_axis(values.T, order, axis=1), order


@settings(max_examples=40, deadline=None)
@given(count=SIZES, cuts=CUTS, seed=st.integers(0, 1000), k=st.integers(1, 8))
def test_top_k_equals_a_full_sort_with_ties_for_any_split(count: int, cuts: list[float], seed: int, k: int) -> None:
    values = data(seed, count, ties=True)
    indices = np.arange(count)
    merged = reduce_shards(lambda: TopK(5, k), lambda r, a, b: r.update(values[a:b], indices[a:b]), count, cuts)
    expected_scores, expected_indices = numpy_top_k(values, k)
    kept = min(k, count)
    np.testing.assert_array_equal(merged.scores[:, :kept], expected_scores)
    np.testing.assert_array_equal(merged.indices[:, :kept], expected_indices)
    assert (merged.indices[:, kept:] == EMPTY).all() and np.isneginf(merged.scores[:, kept:]).all()


def test_top_k_with_tied_and_untied_units_in_one_batch_equals_a_full_sort() -> None:
    # Units with distinct values, with a few values, and a dead-like unit of zeros: rows of one update
    # with and without a tie at the k-th best score, fed in uneven batches.
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [rng.normal(size=(300, 6)), np.round(rng.normal(size=(300, 6))), np.zeros((300, 1))], axis=1
    )
    top = TopK(13, 8)
    for start, stop in [(0, 5), (5, 130), (130, 131), (131, 300)]:
        top.update(values[start:stop], np.arange(start, stop))
    expected_scores, expected_indices = numpy_top_k(values, 8)
    np.testing.assert_array_equal(top.scores, expected_scores)
    np.testing.assert_array_equal(top.indices, expected_indices)


def test_top_k_assigned_keeps_each_input_for_its_own_unit_only() -> None:
    # The most confident mistakes per true class: input i counts only for class units[i].
    units, scores = np.array([0, 1, 0, 2, 0]), np.array([0.9, 0.8, 0.95, 0.1, 0.3])
    top = TopK(3, 2).update_assigned(units, scores, np.arange(5))
    np.testing.assert_array_equal(top.indices, [[2, 0], [1, EMPTY], [3, EMPTY]])
    np.testing.assert_allclose(top.scores[0], [0.95, 0.9])


@settings(max_examples=30, deadline=None)
@given(count=SIZES, cuts=CUTS, seed=st.integers(0, 1000))
def test_confusion_counts_equal_sklearn(count: int, cuts: list[float], seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels, predictions = rng.integers(0, 4, count), rng.integers(0, 4, count)
    merged = reduce_shards(
        lambda: ConfusionCounts(4), lambda r, a, b: r.update(labels[a:b], predictions[a:b]), count, cuts
    )
    np.testing.assert_array_equal(merged.counts, confusion_matrix(labels, predictions, labels=range(4)))


@settings(max_examples=30, deadline=None)
@given(count=SIZES, cuts=CUTS, seed=st.integers(0, 1000))
def test_class_means_equal_the_mean_over_all_maps(count: int, cuts: list[float], seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels, maps = rng.integers(0, 3, count), rng.normal(size=(count, 2, 3))
    merged = reduce_shards(lambda: ClassMeans(3, (2, 3)), lambda r, a, b: r.update(labels[a:b], maps[a:b]), count, cuts)
    for label in range(3):
        chosen = maps[labels == label]
        if len(chosen):
            np.testing.assert_allclose(merged.means()[label], chosen.mean(axis=0), atol=1e-12)
            np.testing.assert_allclose(merged.stds()[label], chosen.std(axis=0), atol=1e-6)
        else:
            assert np.isnan(merged.means()[label]).all()


@settings(max_examples=40, deadline=None)
@given(count=SIZES, cuts=CUTS, seed=st.integers(0, 1000), size=st.integers(1, 20))
def test_reservoir_is_the_same_sample_for_any_split(count: int, cuts: list[float], seed: int, size: int) -> None:
    rows, labels, indices = data(seed, count, units=3), np.arange(count) % 4, np.arange(count)
    merged = reduce_shards(
        lambda: Reservoir(size, seed=seed),
        lambda r, a, b: r.update(rows[a:b], indices[a:b], labels[a:b]),
        count,
        cuts,
    )
    expected = np.sort(np.argsort(sample_keys(indices, seed), kind="stable")[:size])
    np.testing.assert_array_equal(merged.indices, expected)
    np.testing.assert_array_equal(merged.rows, rows[expected])
    np.testing.assert_array_equal(merged.labels, labels[expected])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 1000), size=st.integers(1, 12))
def test_reservoir_candidates_are_the_inputs_that_would_enter(seed: int, size: int) -> None:
    sample = Reservoir(size, seed=seed).update(np.arange(30.0)[:, None], np.arange(30))
    offered = np.arange(30, 90)
    # Input i enters when its key is among the `size` smallest of the 30 seen and i (ties to the lower index).
    entering = [
        30 in np.argsort(sample_keys(np.append(np.arange(30), index), seed), kind="stable")[:size] for index in offered
    ]
    np.testing.assert_array_equal(sample.candidates(offered), entering)
    assert sample.candidates(offered).sum() < len(offered)  # the sample is full: it turns inputs away


def test_reservoir_keeps_every_input_equally_often() -> None:
    # Over many seeds each of 20 inputs is in a 5-sample about a quarter of the time.
    kept = np.zeros(20)
    for seed in range(2000):
        kept[Reservoir(5, seed=seed).update(np.zeros((20, 1)), np.arange(20)).indices] += 1
    np.testing.assert_allclose(kept / 2000, 0.25, atol=0.04)


def test_state_stays_bounded_whatever_the_number_of_inputs() -> None:
    top, sample = TopK(4, 3), Reservoir(10)
    for start in range(0, 5000, 100):
        batch = np.random.default_rng(start).normal(size=(100, 4))
        top.update(batch, np.arange(start, start + 100))
        sample.update(batch, np.arange(start, start + 100))
    assert top.scores.shape == (4, 3) and sample.rows.shape == (10, 4)


@pytest.mark.parametrize("make", [lambda: UnitMoments(2), lambda: TopK(2, 2), lambda: Reservoir(3)])
def test_merging_an_empty_reducer_changes_nothing(make) -> None:
    values = np.array([[1.0, -2.0], [3.0, 4.0]])
    full = make()
    if isinstance(full, UnitMoments):
        full.update(values)
    else:
        full.update(values, np.arange(2))
    before = {key: np.copy(value) for key, value in vars(full).items() if isinstance(value, np.ndarray)}
    full.merge(make())
    for key, value in before.items():
        np.testing.assert_array_equal(getattr(full, key), value)
