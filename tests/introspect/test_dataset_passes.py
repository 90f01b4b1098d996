"""One dataset pass feeding several reducers, checked against a direct pass over the whole split."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import confusion_matrix

from introspect.dataset.passes import ConfusionReducer, HealthReducer, reduce_dataset
from introspect.dataset.sources import batches, open_torchvision

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
