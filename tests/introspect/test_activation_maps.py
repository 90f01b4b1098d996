"""feature_maps against convolutions computed independently with torch.nn.functional."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from introspect.analyzers import (
    _shared,
    activation_maps,
    animations,
    attribution,
    attribution_cam,
    attribution_occlusion,
    attribution_sanity,
)
from introspect.analyzers._shared import display_images, pick_images
from introspect.analyzers.activation_maps import feature_maps
from introspect.runner import run_one
from introspect.spec import spec_of
from introspect.subject import Subject, Task
from introspect.testing import check_analyzer, conv_image_subject, dense_image_subject


def _run(subject: Subject, **options: object):
    result = run_one(subject, spec_of(feature_maps), options)
    assert result.status == "ok", result.reason + result.traceback
    return result.artifacts


def test_feature_maps_equal_conv2d_of_the_inputs() -> None:
    subject = conv_image_subject(channels=3)
    first, second = _run(subject)
    model = subject.model
    indices = first.summary["images"]
    assert indices == [0, 1, 2]  # one per class: labels are 0, 1, 2, 0, 1, 2
    inputs = subject.probe_inputs[indices]
    conv1 = F.conv2d(inputs, model[0].weight, model[0].bias, padding=1)
    np.testing.assert_allclose(first.data["maps"], conv1.detach().double().numpy(), atol=1e-5)
    batch_norm = model[1]
    normalized = F.batch_norm(
        conv1, batch_norm.running_mean, batch_norm.running_var, batch_norm.weight, batch_norm.bias, eps=batch_norm.eps
    )
    conv2 = F.conv2d(torch.relu(normalized), model[3].weight, model[3].bias, stride=2, padding=1)
    np.testing.assert_allclose(second.data["maps"], conv2.detach().double().numpy(), atol=1e-5)
    assert second.summary["num_channels"] == 6 and second.layer == "3"
    assert second.summary["limit"] == pytest.approx(np.abs(conv2.detach().numpy()).max(), rel=1e-5)


def test_feature_maps_keep_the_strongest_channels_when_capped() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 80, 3), torch.nn.ReLU())
    inputs = torch.rand(5, 1, 9, 9, generator=torch.Generator().manual_seed(1))
    subject = Subject.from_model(model, inputs, task=Task(input_shape=(1, 9, 9), image_shape=(1, 9, 9)))
    (artifact,) = _run(subject, max_images=2)
    outputs = F.conv2d(inputs[:2], model[0].weight, model[0].bias).detach().double().numpy()
    strongest = np.sort(np.argsort(-np.abs(outputs).mean(axis=(0, 2, 3)))[:64])
    np.testing.assert_array_equal(artifact.data["channels"], strongest)
    np.testing.assert_allclose(artifact.data["maps"], outputs[:, strongest], atol=1e-6)
    assert "64 strongest" in artifact.caption and "of 80 channels" in artifact.caption


def test_feature_maps_skip_models_without_conv_layers() -> None:
    result = run_one(dense_image_subject(), spec_of(feature_maps))
    assert result.status == "skipped" and "convolution" in result.reason


def test_pick_images_takes_one_per_class_first() -> None:
    assert pick_images(torch.tensor([2, 2, 0, 2, 1]), 5, 3) == [0, 2, 4]
    assert pick_images(torch.tensor([1, 1, 1, 1]), 4, 3) == [0, 1, 2]
    assert pick_images(None, 2, 3) == [0, 1]


def test_display_images_undo_normalization() -> None:
    raw = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    normalized = (raw - torch.tensor(mean).reshape(1, 3, 1, 1)) / torch.tensor(std).reshape(1, 3, 1, 1)
    task = Task(input_shape=(3, 4, 4), image_shape=(3, 4, 4), normalization={"mean": mean, "std": std})
    subject = Subject(weights={}, task=task)
    np.testing.assert_allclose(display_images(subject, normalized), raw.permute(0, 2, 3, 1).double().numpy(), atol=1e-6)


def test_conformance() -> None:
    subjects = {
        "gray": conv_image_subject(channels=1),
        "rgb": conv_image_subject(channels=3),
        "dense": dense_image_subject(),
    }
    assert check_analyzer(feature_maps, subjects) == {"gray": "ok", "rgb": "ok", "dense": "skipped"}


def test_feature_maps_on_resnet18_are_capped() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    inputs = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    task = Task(kind="classification", input_shape=(3, 32, 32), image_shape=(3, 32, 32))
    artifacts = _run(Subject.from_model(model, inputs, torch.arange(6) % 10, task=task))
    assert len(artifacts) == 8 and "8 of 20 conv layers" in artifacts[0].caption
    assert all(
        artifact.data["maps"].shape[:2] == (3, min(64, artifact.summary["num_channels"])) for artifact in artifacts
    )
    last = artifacts[-1]
    assert last.layer == "layer4.1.conv2" and "64 strongest (mean |output|) of 512 channels" in last.caption


def test_every_analyzer_shows_a_probe_image_with_the_one_display_images() -> None:
    # One function, so no analyzer can carry its own clipping rule.
    for module in (
        activation_maps,
        attribution,
        attribution_cam,
        attribution_occlusion,
        attribution_sanity,
        animations,
    ):
        assert module.display_images is _shared.display_images, module.__name__


def test_two_analyzers_show_the_same_probe_with_the_same_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    subject = conv_image_subject(channels=3)
    # Slightly past [0, 1], as rounding leaves it after undoing a normalization: the case the two
    # former copies treated differently (one stretched the image, the other clipped it).
    subject = dataclasses.replace(subject, probe_inputs=subject.probe_inputs * 1.01)
    shown: dict[str, dict[bytes, np.ndarray]] = {}

    def spy(module_name: str):
        def record(subject: Subject, inputs: torch.Tensor) -> np.ndarray:
            result = _shared.display_images(subject, inputs)
            rows = inputs.detach().cpu().reshape(len(inputs), -1)
            shown.setdefault(module_name, {}).update({row.numpy().tobytes(): image for row, image in zip(rows, result)})
            return result

        return record

    for module in (activation_maps, attribution_cam):
        monkeypatch.setattr(module, "display_images", spy(module.__name__))
    feature_maps(subject)
    attribution_cam.grad_cam(subject)
    first, second = shown.values()
    common = set(first) & set(second)
    assert common, "the two analyzers showed no probe in common"
    for key in common:
        np.testing.assert_array_equal(first[key], second[key])
