"""digits-mlp: the demo's classifier on scikit-learn's 8x8 digits; round trip and accuracy."""

from __future__ import annotations

from pathlib import Path

import torch

from trainers.testing import check_recipe


def test_digits_mlp_reloads_to_identical_outputs_with_image_task(tmp_path: Path) -> None:
    report = check_recipe("digits-mlp", tmp_path, epochs=1)
    assert report.max_abs_diff == 0.0
    task = report.checkpoint["task"]
    assert (task["input_shape"], task["image_shape"]) == ([64], [1, 8, 8])
    assert task["class_names"] == [str(digit) for digit in range(10)]
    labels = report.checkpoint["probe"]["labels"]
    assert len(labels) == 64 and torch.bincount(labels, minlength=10).min() >= 6


def test_digits_mlp_learns_in_a_few_epochs(tmp_path: Path) -> None:
    report = check_recipe("digits-mlp", tmp_path, epochs=8)
    metrics = report.checkpoint["metrics"]
    assert metrics["test_accuracy"] >= 0.9
    history = report.checkpoint["history"]
    assert history["train_loss"][-1] < history["train_loss"][0]
