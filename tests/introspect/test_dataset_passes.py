"""One dataset pass feeding several reducers, checked against a direct pass over the whole split, and
every dataset analyzer's reducer merged over random splits against one pass."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import confusion_matrix

from introspect.analyzers.dataset_attribution import ClassSaliency
from introspect.analyzers.dataset_space import SampledLayers
from introspect.dataset.passes import ConfusionReducer, HealthReducer, TopUnitsReducer, reduce_dataset
from introspect.dataset.sources import Batch, batches, open_torchvision

DATA = Path(os.environ["INTROSPECT_DATA"])


def small_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 5),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(4),
        torch.nn.Flatten(),
        torch.nn.Linear(64, 10),
    )


def direct_pass(model: torch.nn.Module, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        relu = model[1](model[0](inputs))
        return model(inputs), relu


def test_one_pass_gives_the_whole_split_confusion_and_health() -> None:
    model, source = small_cnn(), open_torchvision("mnist", DATA)
    stream = list(batches(source, batch_size=128))
    confusion, health = ConfusionReducer(10, mistakes_per_class=3), HealthReducer(["1"])
    seen: list[int] = []
    assert reduce_dataset(model, stream, [confusion, health], progress=seen.append) == 1000
    assert seen[-1] == 1000 and len(seen) == len(stream)

    inputs = torch.cat([batch.inputs for batch in stream])
    labels = torch.cat([batch.labels for batch in stream]).numpy()
    logits, relu = direct_pass(model, inputs)
    probabilities = torch.softmax(logits.double(), dim=1).numpy()
    predicted = probabilities.argmax(axis=1)
    np.testing.assert_array_equal(confusion.counts.counts, confusion_matrix(labels, predicted, labels=range(10)))
    for label in range(10):
        wrong = np.flatnonzero((labels == label) & (predicted != label))
        expected = wrong[np.argsort(-probabilities[wrong].max(axis=1), kind="stable")][:3]
        assert list(confusion.mistakes.indices[label][: len(expected)]) == list(expected)

    channel_means = relu.double().mean(dim=(2, 3)).numpy()
    moments = health.moments["1"]
    np.testing.assert_allclose(moments.mean, channel_means.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(moments.active_fraction, (channel_means > 0).mean(axis=0))
    np.testing.assert_array_equal(health.dead_units("1"), np.flatnonzero((channel_means > 0).sum(axis=0) == 0))


def test_shards_reduced_apart_and_merged_equal_one_pass() -> None:
    model, source = small_cnn(), open_torchvision("mnist", DATA)
    stream = list(batches(source, batch_size=100, limit=500))
    whole = [ConfusionReducer(10), HealthReducer(["1", "4"])]
    reduce_dataset(model, stream, whole)
    first, second = [ConfusionReducer(10), HealthReducer(["1", "4"])], [ConfusionReducer(10), HealthReducer(["1", "4"])]
    reduce_dataset(model, stream[3:], second)
    reduce_dataset(model, stream[:3], first)
    merged = [a.merge(b) for a, b in zip(second, first)]
    np.testing.assert_array_equal(merged[0].counts.counts, whole[0].counts.counts)
    np.testing.assert_array_equal(merged[0].mistakes.indices, whole[0].mistakes.indices)
    for name in ("1", "4"):
        np.testing.assert_allclose(merged[1].moments[name].mean, whole[1].moments[name].mean, rtol=1e-12)
        np.testing.assert_array_equal(merged[1].moments[name].active, whole[1].moments[name].active)


def tiny_pass() -> dict[str, torch.Tensor]:
    """A tiny conv net's logits and layer outputs over 48 random 8x8 images of 3 classes, computed once."""
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(108, 3), torch.nn.Tanh()
    ).double()
    inputs = torch.rand(48, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        relu = model[1](model[0](inputs))
        tanh = model[4](model[3](model[2](relu)))
    return {"model": model, "inputs": inputs, "labels": torch.arange(48) % 3, "1": relu, "4": tanh, "logits": tanh}


TINY = tiny_pass()
ANALYZER_REDUCERS = {
    "confusion": lambda: ConfusionReducer(3, mistakes_per_class=4),
    "health": lambda: HealthReducer(["1", "4"], bounds={"4": (-1.0, 1.0)}, eps=0.2),
    "top units": lambda: TopUnitsReducer(["1", "4"], k=5),
    "sampled layers": lambda: SampledLayers(["1", "4"], size=10, seed=3),
    "class saliency": lambda: ClassSaliency(TINY["model"], 3, (1, 8, 8)),
}


def feed_range(reducer, start: int, stop: int) -> None:  # noqa: ANN001
    if start == stop:
        return  # an empty shard: never fed, and merged all the same
    rows = slice(start, stop)
    batch = Batch(inputs=TINY["inputs"][rows], labels=TINY["labels"][rows], indices=torch.arange(start, stop))
    reducer.feed(batch, TINY["logits"][rows], {"1": TINY["1"][rows], "4": TINY["4"][rows]})


def assert_same_state(merged, whole, path: str = "") -> None:  # noqa: ANN001
    """Every array and number of two reducers' states equal (floats up to summation order)."""
    if isinstance(whole, np.ndarray) or isinstance(merged, np.ndarray):
        merged, whole = np.asarray(merged), np.asarray(whole)
        if np.issubdtype(whole.dtype, np.floating):
            np.testing.assert_allclose(merged, whole, rtol=1e-9, atol=1e-12, err_msg=path)
        else:
            np.testing.assert_array_equal(merged, whole, err_msg=path)
    elif isinstance(whole, dict):
        assert merged.keys() == whole.keys(), path
        for key in whole:
            assert_same_state(merged[key], whole[key], f"{path}[{key!r}]")
    elif hasattr(whole, "__dict__") and not isinstance(whole, torch.nn.Module):
        assert_same_state(vars(merged), vars(whole), f"{path}.{type(whole).__name__}")
    elif isinstance(whole, float):
        assert merged == pytest.approx(whole, rel=1e-9), path
    elif not isinstance(whole, torch.nn.Module):
        assert merged == whole, path


@settings(max_examples=30, deadline=None)
@given(cuts=st.lists(st.floats(min_value=0, max_value=1), max_size=6), order=st.permutations(range(7)))
@pytest.mark.parametrize("kind", list(ANALYZER_REDUCERS))
def test_every_analyzers_reducer_merged_over_a_random_split_equals_one_pass(kind: str, cuts, order) -> None:  # noqa: ANN001
    make = ANALYZER_REDUCERS[kind]
    whole = make()
    feed_range(whole, 0, 48)
    points = sorted({0, 48, *(round(cut * 48) for cut in cuts)})
    shards = []
    for start, stop in zip(points[:-1], points[1:]):
        shard = make()
        feed_range(shard, start, stop)
        shards.append(shard)
    merged = make()
    for position in (position for position in order if position < len(shards)):  # merged in a random order
        merged.merge(shards[position])
    assert_same_state(merged, whole)
