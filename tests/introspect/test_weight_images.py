"""kernel_grids and linear_receptive_fields: numbers against numpy, skips, caps on a ResNet18."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torchvision

from introspect.analyzers.weight_images import MAX_CONV_LAYERS, MAX_KERNELS, kernel_grids, linear_receptive_fields
from introspect.runner import run_one
from introspect.spec import spec_of
from introspect.subject import Subject, Task, parameters_of
from introspect.testing import check_analyzer, conv_image_subject, dense_image_subject

CLASS_NAMES = ("zero", "one", "two", "three")


def run(func, subject: Subject, **options):
    result = run_one(subject, spec_of(func), options)
    assert result.status != "failed", result.traceback
    return result


def numpy_weight(subject: Subject, name: str) -> np.ndarray:
    return subject.weights[name].double().numpy()


def test_kernel_grids_passes_conformance_check() -> None:
    statuses = check_analyzer(kernel_grids)
    assert statuses == {
        "scalar_regression": "skipped",
        "dense_image": "skipped",
        "conv_gray": "ok",
        "conv_rgb": "ok",
        "text": "skipped",
        "weights_only": "ok",
    }


def test_linear_receptive_fields_passes_conformance_check() -> None:
    statuses = check_analyzer(linear_receptive_fields)
    assert statuses["dense_image"] == "ok"
    assert statuses["conv_gray"] == statuses["conv_rgb"] == statuses["scalar_regression"] == "skipped"


def test_kernel_grids_draws_grey_first_layer_kernels_on_a_zero_centred_scale() -> None:
    subject = conv_image_subject(channels=1)
    first = run(kernel_grids, subject).artifacts[0]
    weight = numpy_weight(subject, "0.weight")
    assert first.summary["mode"] == "single"
    np.testing.assert_allclose(first.data["kernels"], weight[:, 0])
    assert first.data["limit"] == pytest.approx(np.abs(weight).max())
    image = first.figure.axes[0].images[0]
    assert image.get_clim() == pytest.approx((-np.abs(weight).max(), np.abs(weight).max()))


def test_kernel_grids_colour_bar_spans_the_layer_limit_beside_its_panels() -> None:
    subject = conv_image_subject(channels=1)
    subject = dataclasses.replace(subject, initial_weights={"0.weight": 0.5 * subject.weights["0.weight"]})
    first = run(kernel_grids, subject).artifacts[0]
    weight = numpy_weight(subject, "0.weight")
    limit, difference_limit = np.abs(weight).max(), np.abs(weight - 0.5 * weight).max()
    *panels, bar, difference_bar = first.figure.axes
    for axes, expected in ((bar, limit), (difference_bar, difference_limit)):
        np.testing.assert_allclose(axes.get_yticks(), [-expected, -expected / 2, 0, expected / 2, expected])
        assert axes.images[0].get_clim() == pytest.approx((-expected, expected))
    assert bar.get_yticklabels()[-1].get_text() == f"{limit:.3g}"
    # left to right: initial, final, their bar, the difference, its bar; all inside the figure
    boxes = [axes.get_position() for axes in (panels[0], panels[1], bar, panels[2], difference_bar)]
    assert all(left.x1 < right.x0 for left, right in zip(boxes, boxes[1:]))
    assert boxes[0].x0 > 0 and boxes[-1].x1 < 1 and all(0 < box.y0 and box.y1 < 1 for box in boxes)


def test_kernel_grids_shows_rgb_first_layer_in_colour_and_deeper_layer_per_input_channel() -> None:
    subject = conv_image_subject(channels=3)
    first, second = run(kernel_grids, subject).artifacts
    assert first.summary["mode"] == "rgb"
    np.testing.assert_allclose(first.data["kernels"], numpy_weight(subject, "0.weight"))
    assert first.figure.axes[0].images[0].get_array().shape[-1] == 3
    assert second.summary["mode"] == "per_channel"
    np.testing.assert_allclose(second.data["kernels"], numpy_weight(subject, "3.weight"))


def test_kernel_grids_channel_mean_mode_averages_input_channels() -> None:
    subject = conv_image_subject(channels=1)
    second = run(kernel_grids, subject, deep_mode="mean").artifacts[1]
    np.testing.assert_allclose(second.data["kernels"], numpy_weight(subject, "3.weight").mean(axis=1))


def test_kernel_grids_keeps_the_strongest_kernels_when_capped() -> None:
    subject = conv_image_subject(channels=1)
    second = run(kernel_grids, subject, max_kernels=2).artifacts[1]
    weight = numpy_weight(subject, "3.weight")
    norms = np.linalg.norm(weight.reshape(len(weight), -1), axis=1)
    expected = np.sort(np.argsort(norms)[-2:])
    np.testing.assert_array_equal(second.data["channels"], expected)
    np.testing.assert_allclose(second.data["kernel_norms"], norms)
    assert "2 strongest of 6 kernels" in second.caption


def test_kernel_grids_reports_drift_from_initial_kernels() -> None:
    subject = conv_image_subject(channels=1)
    generator = torch.Generator().manual_seed(3)
    initial = {
        name: tensor + 0.05 * torch.randn(tensor.shape, generator=generator) for name, tensor in subject.weights.items()
    }
    subject = dataclasses.replace(subject, initial_weights=initial)
    artifacts = run(kernel_grids, subject).artifacts
    for artifact, name in zip(artifacts, ("0.weight", "3.weight")):
        final, start = numpy_weight(subject, name), initial[name].double().numpy()
        assert artifact.summary["drift_norm"] == pytest.approx(np.linalg.norm(final - start))
        assert artifact.summary["relative_drift"] == pytest.approx(
            np.linalg.norm(final - start) / np.linalg.norm(start)
        )
        np.testing.assert_allclose(
            artifact.data["kernel_drift"], np.linalg.norm((final - start).reshape(len(final), -1), axis=1)
        )
        assert [axes.get_title() for axes in artifact.figure.axes[:3]] == ["initial", "final", "final - initial"]
        assert "Drift" in artifact.caption


def test_kernel_grids_says_when_kernels_did_not_change() -> None:
    subject = conv_image_subject(channels=1)
    subject = dataclasses.replace(subject, initial_weights={"0.weight": subject.weights["0.weight"].clone()})
    first, second = run(kernel_grids, subject).artifacts
    assert first.summary["drift_norm"] == 0.0
    assert "did not change them" in first.caption
    assert "drift_norm" not in second.summary


def test_kernel_grids_shows_conv1d_kernels_as_channel_by_tap_images() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 5), torch.nn.Flatten(), torch.nn.Linear(3 * 12, 2))
    subject = Subject.from_model(model, torch.randn(4, 2, 16))
    artifact = run(kernel_grids, subject).artifacts[0]
    np.testing.assert_allclose(artifact.data["kernels"], model[0].weight.detach().double().numpy())


def test_kernel_grids_skips_a_network_without_convolutions() -> None:
    result = run(kernel_grids, dense_image_subject())
    assert result.status == "skipped"
    assert "convolution" in result.reason


def test_kernel_grids_on_resnet18_weights_keeps_figure_count_bounded() -> None:
    model = torchvision.models.resnet18(num_classes=10)
    subject = Subject(
        weights=parameters_of(model), task=Task(kind="classification", input_shape=(3, 32, 32), image_shape=(3, 32, 32))
    )
    artifacts = run(kernel_grids, subject).artifacts
    assert len(artifacts) == MAX_CONV_LAYERS
    assert all(artifact.summary["num_shown"] <= MAX_KERNELS for artifact in artifacts)
    assert artifacts[0].summary["mode"] == "rgb"
    assert "4 of 20 conv layers are not drawn" in artifacts[0].caption
    deepest = artifacts[-1]
    assert deepest.summary["num_kernels"] == 512 and "64 strongest of 512" in deepest.caption
    assert run(linear_receptive_fields, subject).status == "skipped"


def test_receptive_fields_are_products_of_weight_matrices() -> None:
    subject = dense_image_subject(num_classes=4)
    artifacts = run(linear_receptive_fields, subject).artifacts
    w1, w2, w3 = (numpy_weight(subject, f"{index}.weight") for index in (1, 3, 5))
    for artifact, product in zip(artifacts, (w1, w2 @ w1, w3 @ w2 @ w1)):
        np.testing.assert_allclose(artifact.data["fields"], product.reshape(-1, 1, 8, 8), rtol=1e-10)
        assert artifact.data["limit"] == pytest.approx(np.abs(product).max())
    assert "Biases and activation functions are ignored" in artifacts[1].caption


def test_receptive_fields_label_output_neurons_with_class_names() -> None:
    subject = dense_image_subject(num_classes=4)
    subject = dataclasses.replace(subject, task=dataclasses.replace(subject.task, class_names=CLASS_NAMES))
    output = run(linear_receptive_fields, subject).artifacts[-1]
    assert [text.get_text() for text in output.figure.axes[0].texts] == list(CLASS_NAMES)


def test_receptive_fields_from_weights_only_match_those_from_the_model() -> None:
    full = dense_image_subject()
    bare = Subject(weights=dict(full.weights), task=full.task)
    with_model = run(linear_receptive_fields, full).artifacts
    without = run(linear_receptive_fields, bare).artifacts
    assert len(with_model) == len(without) == 3
    for left, right in zip(with_model, without):
        np.testing.assert_allclose(left.data["fields"], right.data["fields"])


def test_receptive_fields_keep_the_strongest_units_of_a_wide_layer() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3 * 4 * 4, 30), torch.nn.ReLU(), torch.nn.Linear(30, 2))
    task = Task(kind="classification", input_shape=(48,), image_shape=(3, 4, 4), class_names=("a", "b"))
    subject = Subject.from_model(model, torch.rand(2, 48), task=task)
    first = run(linear_receptive_fields, subject, max_units=5).artifacts[0]
    weight = model[0].weight.detach().double().numpy()
    expected = np.sort(np.argsort(np.linalg.norm(weight, axis=1))[-5:])
    np.testing.assert_array_equal(first.data["units"], expected)
    np.testing.assert_allclose(first.data["fields"], weight[expected].reshape(5, 3, 4, 4))
    assert "5 strongest of 30 units" in first.caption


def test_receptive_fields_skip_when_the_first_dense_layer_does_not_see_pixels() -> None:
    result = run(linear_receptive_fields, conv_image_subject())
    assert result.status == "skipped" and "convolution" in result.reason
    model = torch.nn.Sequential(torch.nn.Linear(10, 3))
    task = Task(kind="classification", input_shape=(10,), image_shape=(1, 4, 4))
    mismatch = run(linear_receptive_fields, Subject.from_model(model, torch.rand(2, 10), task=task))
    assert mismatch.status == "skipped" and "16 input pixels" in mismatch.reason
