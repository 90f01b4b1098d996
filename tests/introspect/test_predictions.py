"""confusion_matrix and model_summary: numbers against scikit-learn and direct parameter counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision
from sklearn import metrics

from introspect.analyzers.predictions import confusion_matrix, model_summary
from introspect.capture import capture_activations
from introspect.runner import run_one
from introspect.spec import spec_of
from introspect.subject import Subject, Task
from introspect.testing import check_analyzer, conv_image_subject

NAMES = ("cat", "dog", "bird", "fish")


def run(func, subject: Subject, **options):
    result = run_one(subject, spec_of(func), options)
    assert result.status != "failed", result.traceback
    return result


def noisy_classifier(num_samples: int = 120, seed: int = 0) -> tuple[Subject, np.ndarray]:
    """A linear 4-class model with labels that agree with it about two times in three."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(6, 4)
    inputs = torch.randn(num_samples, 6)
    with torch.no_grad():
        labels = model(inputs).argmax(dim=1)
    labels[::3] = torch.randint(0, 4, (len(labels[::3]),))
    task = Task(kind="classification", input_shape=(6,), class_names=NAMES)
    predictions = model(inputs).argmax(dim=1).numpy()
    return Subject.from_model(model, inputs, labels, task=task), predictions


def test_confusion_matrix_passes_conformance_check() -> None:
    statuses = check_analyzer(confusion_matrix)
    assert statuses["dense_image"] == statuses["conv_gray"] == "ok"
    assert statuses["scalar_regression"] == statuses["weights_only"] == "skipped"


def test_model_summary_passes_conformance_check() -> None:
    statuses = check_analyzer(model_summary)
    assert statuses["weights_only"] == "skipped"
    assert statuses["scalar_regression"] == statuses["conv_rgb"] == "ok"


def test_confusion_matrix_equals_sklearn_row_normalized() -> None:
    subject, predictions = noisy_classifier()
    labels = subject.probe_labels.numpy()
    artifact = run(confusion_matrix, subject).artifacts[0]
    np.testing.assert_array_equal(
        artifact.data["counts"], metrics.confusion_matrix(labels, predictions, labels=range(4))
    )
    np.testing.assert_allclose(
        artifact.data["normalized"], metrics.confusion_matrix(labels, predictions, labels=range(4), normalize="true")
    )
    assert artifact.summary["accuracy"] == pytest.approx(metrics.accuracy_score(labels, predictions))
    recall = metrics.recall_score(labels, predictions, average=None, labels=range(4))
    assert list(artifact.summary["per_class_accuracy"].values()) == pytest.approx(recall)
    assert list(artifact.summary["per_class_accuracy"]) == list(NAMES)
    assert f"{metrics.accuracy_score(labels, predictions):.1%}" in artifact.caption


def test_confusion_matrix_leaves_a_class_without_samples_blank() -> None:
    subject, _ = noisy_classifier()
    keep = subject.probe_labels != 2
    subject = Subject.from_model(
        subject.model, subject.probe_inputs[keep], subject.probe_labels[keep], task=subject.task
    )
    artifact = run(confusion_matrix, subject).artifacts[0]
    assert np.isnan(artifact.data["normalized"][2]).all()
    assert artifact.summary["per_class_accuracy"]["bird"] is None
    assert artifact.data["support"][2] == 0


def test_confusion_matrix_reads_one_output_column_as_a_binary_logit() -> None:
    torch.manual_seed(1)
    model = torch.nn.Linear(3, 1)
    inputs = torch.randn(40, 3)
    labels = (torch.arange(40) % 2).float()
    subject = Subject.from_model(model, inputs, labels, task=Task(kind="classification", input_shape=(3,)))
    artifact = run(confusion_matrix, subject).artifacts[0]
    predictions = (model(inputs).squeeze(1) > 0).long().numpy()
    np.testing.assert_array_equal(artifact.data["counts"], metrics.confusion_matrix(labels.long().numpy(), predictions))


def test_confusion_matrix_caps_the_drawn_classes_but_keeps_all_counts() -> None:
    subject, predictions = noisy_classifier(num_samples=200)
    artifact = run(confusion_matrix, subject, max_classes=2).artifacts[0]
    assert artifact.data["counts"].shape == (4, 4)
    assert len(artifact.summary["per_class_accuracy"]) == 2
    assert "the 2 of 4 classes" in artifact.caption


def test_model_summary_counts_parameters_and_output_shapes_of_a_small_cnn() -> None:
    subject = conv_image_subject(channels=3)
    layers, totals = run(model_summary, subject).artifacts
    model = subject.model
    expected_total = sum(parameter.numel() for parameter in model.parameters())
    assert totals.summary["total_params"] == expected_total
    assert sum(row["trainable params"] for row in layers.table) == expected_total
    outputs = capture_activations(model, subject.probe_inputs[:2])
    assert [row["layer"] for row in layers.table] == list(outputs)
    for row in layers.table:
        assert row["output shape"] == str([-1, *outputs[row["layer"]].shape[1:]])
        module = dict(model.named_modules())[row["layer"]]
        assert row["trainable params"] == sum(p.numel() for p in module.parameters())
    per_sample = sum(math.prod(output.shape[1:]) for output in outputs.values())
    assert totals.summary["forward_backward_size_mb"] == pytest.approx(2 * per_sample * 4 / 2**20)
    assert totals.summary["input_size_mb"] == pytest.approx(3 * 12 * 12 * 4 / 2**20)
    assert totals.summary["params_size_mb"] == pytest.approx(expected_total * 4 / 2**20)
    assert totals.summary["estimated_total_size_mb"] == pytest.approx(
        totals.summary["input_size_mb"] + totals.summary["forward_backward_size_mb"] + totals.summary["params_size_mb"]
    )


def test_model_summary_of_resnet18_separates_frozen_parameters_and_repeated_calls() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    for parameter in (*model.conv1.parameters(), *model.bn1.parameters()):
        parameter.requires_grad_(False)
    subject = Subject.from_model(
        model, torch.rand(2, 3, 32, 32), task=Task(input_shape=(3, 32, 32), image_shape=(3, 32, 32))
    )
    layers, totals = run(model_summary, subject).artifacts
    frozen = model.conv1.weight.numel() + sum(p.numel() for p in model.bn1.parameters())
    assert totals.summary["total_params"] == sum(p.numel() for p in model.parameters()) == 11_181_642
    assert totals.summary["frozen_params"] == frozen
    assert totals.summary["trainable_params"] == 11_181_642 - frozen
    rows = {row["layer"]: row for row in layers.table}
    assert rows["conv1"]["frozen params"] == 9408 and rows["conv1"]["trainable params"] == 0
    assert rows["conv1"]["output shape"] == "[-1, 64, 16, 16]"
    assert rows["fc"]["output shape"] == "[-1, 10]"
    assert rows["layer1.0.relu (call 2)"]["trainable params"] == 0
    assert sum(row["trainable params"] + row["frozen params"] for row in layers.table) == 11_181_642
    assert {row["quantity"]: row["value"] for row in totals.table}["Total params"] == 11_181_642
    assert all(parameter.requires_grad for parameter in model.layer1.parameters())
