"""weight_histograms against numpy."""

from __future__ import annotations

import numpy as np
import torch

from introspect.analyzers.weights import weight_histograms
from introspect.subject import Subject
from introspect.testing import conv_image_subject


def test_histogram_counts_equal_numpy_for_every_tensor() -> None:
    subject = conv_image_subject()
    artifacts = weight_histograms(subject, bins=17)
    stats = {key: value for artifact in artifacts for key, value in artifact.data.items()}
    assert set(stats) == set(subject.weights)
    for name, tensor in subject.weights.items():
        counts, edges = np.histogram(tensor.double().numpy().ravel(), bins=17)
        np.testing.assert_array_equal(stats[name]["counts"], counts)
        np.testing.assert_allclose(stats[name]["edges"], edges)
        assert stats[name]["mean"] == np.float64(tensor.double().mean())


def test_non_finite_weights_are_counted_and_left_out() -> None:
    weights = {"fc.weight": torch.tensor([[1.0, float("nan")], [float("inf"), 3.0]]), "fc.bias": torch.zeros(2)}
    artifacts = weight_histograms(Subject(weights=weights))
    stats = artifacts[0].data["fc.weight"]
    assert stats["non_finite"] == 2 and stats["count"] == 2
    assert stats["mean"] == 2.0
    assert "2 NaN/Inf values left out" in artifacts[0].caption


def test_huge_layer_is_sampled_with_a_note() -> None:
    weights = {"big.weight": torch.arange(5000, dtype=torch.float32)}
    artifact = weight_histograms(Subject(weights=weights), max_sample=1000)[0]
    stats = artifact.data["big.weight"]
    assert stats["sampled"] and stats["count"] == 1000
    assert "1,000 of 5,000 values sampled" in artifact.caption
    # A uniform sample of 0..4999 has its mean near 2499.5.
    assert abs(stats["mean"] - 2499.5) < 150


def test_many_layers_are_paged_twelve_per_figure() -> None:
    weights = {f"layer{index}.weight": torch.randn(3, 3) for index in range(30)}
    artifacts = weight_histograms(Subject(weights=weights))
    assert [len(artifact.data) for artifact in artifacts] == [12, 12, 6]
    assert "layers 25-30 of 30" in artifacts[-1].caption
