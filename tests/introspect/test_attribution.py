"""Gradient attribution analyzers: numbers checked against hand-written autograd, captum and numpy."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from introspect.analyzers import (
    _attribution,
    _shared,
    attribution,
    attribution_cam,
    attribution_occlusion,
    attribution_sanity,
)
from introspect.runner import run_one
from introspect.spec import spec_of
from introspect.subject import Subject, Task
from introspect.testing import check_analyzer, conv_image_subject, dense_image_subject, scalar_regression_subject

ANALYZERS = (
    attribution.input_saliency,
    attribution_cam.grad_cam,
    attribution_occlusion.occlusion,
    attribution_sanity.saliency_sanity,
)
MNIST_NORMALIZATION = {"mean": [0.1307], "std": [0.3081]}


def only(artifacts: list, name: str):
    return next(artifact for artifact in artifacts if artifact.name == name)


def target_scores(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return model(inputs).gather(1, targets.reshape(-1, 1))[:, 0]


@pytest.fixture(scope="module")
def mnist_cnn_subject() -> Subject:
    """A small CNN trained for one pass over 2000 real MNIST digits (about 0.5 s)."""
    from torchvision.datasets import MNIST

    root = os.environ.get("INTROSPECT_DATA", str(Path(__file__).resolve().parents[3] / "shared" / "datasets"))
    dataset = MNIST(root, train=True, download=False)
    images = ((dataset.data[:2040].float() / 255 - 0.1307) / 0.3081).unsqueeze(1)
    labels = dataset.targets[:2040]
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 12, 5),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(192, 10),
    )
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    for start in range(0, 2000, 64):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images[start : start + 64]), labels[start : start + 64]).backward()
        optimizer.step()
    for parameter in model.parameters():
        parameter.grad = None
    task = Task(
        kind="classification",
        input_shape=(1, 28, 28),
        image_shape=(1, 28, 28),
        class_names=tuple(str(digit) for digit in range(10)),
        normalization=MNIST_NORMALIZATION,
    )
    return Subject.from_model(model.eval(), images[2000:], labels[2000:], task=task)


@pytest.mark.parametrize("func", ANALYZERS, ids=lambda func: func.__name__)
def test_analyzer_passes_conformance_check(func) -> None:
    statuses = check_analyzer(func)
    assert statuses["weights_only"] == "skipped"
    assert statuses["conv_gray"] == statuses["conv_rgb"] == "ok"


def test_saliency_equals_abs_gradient_of_target_logit_by_hand() -> None:
    subject = conv_image_subject(channels=1)
    artifact = attribution.input_saliency(subject, methods=("saliency",))[0]
    indices = artifact.data["indices"]
    inputs = subject.probe_inputs[indices].clone().requires_grad_(True)
    targets = subject.probe_labels[indices]
    (gradient,) = torch.autograd.grad(target_scores(subject.model.eval(), inputs, targets).sum(), inputs)
    np.testing.assert_allclose(artifact.data["attributions"], gradient.abs().double().numpy(), rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(artifact.data["targets"], targets.numpy())
    assert artifact.data["maps"].shape == (len(indices), 12, 12)


def test_rgb_saliency_maps_sum_the_three_channels() -> None:
    subject = conv_image_subject(channels=3)
    artifact = attribution.input_saliency(subject, methods=("saliency",))[0]
    attributions = artifact.data["attributions"]
    assert attributions.shape[1:] == (3, 12, 12)
    np.testing.assert_allclose(artifact.data["maps"], attributions.sum(axis=1))


def test_batched_saliency_matches_a_direct_captum_call() -> None:
    from captum.attr import Saliency

    subject = conv_image_subject(channels=3)
    model, inputs, targets = subject.model.eval(), subject.probe_inputs, subject.probe_labels
    ours = _attribution.attribute(model, inputs, targets, "saliency")
    direct = Saliency(model).attribute(inputs.clone().requires_grad_(True), target=targets)
    torch.testing.assert_close(ours, direct)
    assert all(parameter.grad is None for parameter in model.parameters())


def test_integrated_gradients_sum_to_score_difference_from_zero_baseline() -> None:
    subject = dense_image_subject()
    artifact = attribution.input_saliency(subject, methods=("integrated_gradients",), n_steps=64)[0]
    indices = artifact.data["indices"]
    model, inputs, targets = subject.model.eval(), subject.probe_inputs[indices], subject.probe_labels[indices]
    with torch.no_grad():
        gain = target_scores(model, inputs, targets) - target_scores(model, torch.zeros_like(inputs), targets)
    totals = artifact.data["attributions"].reshape(len(indices), -1).sum(axis=1)
    np.testing.assert_allclose(totals, gain.double().numpy(), atol=1e-4)
    assert artifact.summary["completeness_gap"] < 1e-4


def test_integrated_gradients_chunks_do_not_change_the_result() -> None:
    subject = conv_image_subject(channels=1)
    model, inputs, targets = subject.model.eval(), subject.probe_inputs, subject.probe_labels
    whole = _attribution.attribute(model, inputs, targets, "integrated_gradients", n_steps=12, internal_batch_size=1000)
    chunked = _attribution.attribute(
        model, inputs, targets, "integrated_gradients", n_steps=12, internal_batch_size=len(inputs) * 2
    )
    torch.testing.assert_close(whole, chunked, rtol=1e-4, atol=1e-7)
    assert _attribution.even_chunk(12, 5) == 4 and _attribution.even_chunk(7, 3) == 1


def test_smoothgrad_is_seeded_and_leaves_the_global_random_state_alone() -> None:
    subject = conv_image_subject(channels=1)
    model, inputs, targets = subject.model.eval(), subject.probe_inputs, subject.probe_labels
    state = torch.get_rng_state()
    first = _attribution.attribute(model, inputs, targets, "smoothgrad", nt_samples=6, seed=3)
    second = _attribution.attribute(
        model, inputs, targets, "smoothgrad", nt_samples=6, seed=3, internal_batch_size=len(inputs) * 2
    )
    other = _attribution.attribute(model, inputs, targets, "smoothgrad", nt_samples=6, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    torch.testing.assert_close(first, second)
    assert not torch.allclose(first, other)


def test_guided_backprop_passes_only_positive_gradients_through_relu() -> None:
    torch.manual_seed(0)
    first, second = torch.nn.Linear(5, 7), torch.nn.Linear(7, 3)
    model = torch.nn.Sequential(first, torch.nn.ReLU(), second).eval()
    inputs, targets = torch.randn(4, 5), torch.tensor([0, 1, 2, 1])
    result = _attribution.attribute(model, inputs, targets, "guided_backprop")
    with torch.no_grad():
        active = (first(inputs) > 0).double()
        upstream = second.weight.double()[targets].clamp(min=0) * active  # relu of the gradient into the ReLU
        expected = upstream @ first.weight.double()
    np.testing.assert_allclose(result.double().numpy(), expected.numpy(), rtol=1e-5, atol=1e-7)
    assert all(not module._backward_hooks and not module._forward_hooks for module in model.modules())


def test_analyzers_called_directly_leave_no_grad_hooks_or_mode_changes() -> None:
    subject = conv_image_subject(channels=3)
    subject.model.train()
    for func in ANALYZERS:
        func(subject)
    assert subject.model.training
    assert all(parameter.grad is None and parameter.requires_grad for parameter in subject.model.parameters())
    assert all(not (m._forward_hooks or m._backward_hooks or m._forward_pre_hooks) for m in subject.model.modules())


def test_scalar_input_derivative_equals_finite_differences() -> None:
    subject = scalar_regression_subject()
    artifact = attribution.input_saliency(subject)[0]
    x = torch.as_tensor(artifact.data["x"])
    model = subject.model.double().eval()
    step = 1e-4
    with torch.no_grad():
        expected = (model((x + step).unsqueeze(1)) - model((x - step).unsqueeze(1)))[:, 0] / (2 * step)
        outputs = model(x.unsqueeze(1))[:, 0]
    subject.model.float()
    np.testing.assert_allclose(artifact.data["derivative"][:, 0], expected.numpy(), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(artifact.data["output"][:, 0], outputs.numpy(), rtol=1e-5, atol=1e-6)
    assert (x[0].item(), x[-1].item()) == (-5.0, 5.0)


def test_regression_on_images_attributes_the_single_output() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(2 * 6 * 6, 1)
    ).eval()
    inputs = torch.rand(5, 1, 8, 8)
    task = Task(kind="regression", input_shape=(1, 8, 8), image_shape=(1, 8, 8))
    subject = Subject.from_model(model, inputs, torch.rand(5, 1), task=task)
    artifact = attribution.input_saliency(subject, methods=("saliency",))[0]
    x = inputs[artifact.data["indices"]].clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(model(x).sum(), x)
    np.testing.assert_allclose(artifact.data["attributions"], gradient.abs().double().numpy(), rtol=1e-5, atol=1e-9)
    assert list(artifact.data["targets"]) == [-1] * len(x)


def test_occlusion_equals_score_drop_of_each_window_by_hand() -> None:
    subject = conv_image_subject(channels=1)
    artifact = attribution_occlusion.occlusion(subject, window=4, stride=4)[0]
    index = int(artifact.data["indices"][0])
    image, target = subject.probe_inputs[index : index + 1], subject.probe_labels[index : index + 1]
    model = subject.model.eval()
    with torch.no_grad():
        base = target_scores(model, image, target).item()
        for top in range(0, 12, 4):
            for left in range(0, 12, 4):
                occluded = image.clone()
                occluded[..., top : top + 4, left : left + 4] = 0.0
                drop = base - target_scores(model, occluded, target).item()
                np.testing.assert_allclose(
                    artifact.data["maps"][0, top : top + 4, left : left + 4], drop, rtol=1e-4, atol=1e-6
                )
    assert artifact.summary["positions"] == 9


def test_occlusion_on_a_dense_net_slides_over_the_image_shape() -> None:
    subject = dense_image_subject()
    artifact = attribution_occlusion.occlusion(subject)[0]
    assert artifact.data["maps"].shape[1:] == (8, 8)
    assert np.isfinite(artifact.data["maps"]).all()


@pytest.mark.parametrize("side", [8, 12, 28, 32, 64, 224])
def test_occlusion_windows_cover_every_pixel_with_at_most_eleven_positions(side: int) -> None:
    window, stride = _attribution.occlusion_window(side)
    assert (side - window) % stride == 0
    assert 2 <= (side - window) // stride + 1 <= 11 or side < 12
    assert window >= stride


@pytest.mark.parametrize("layer", [None, "3"])
def test_grad_cam_equals_gradient_weighted_channels_of_the_layer_by_hand(layer: str | None) -> None:
    # By default the layer is the last module with a 4-D output in execution order: the ReLU
    # after the last convolution ("4"), not the convolution itself ("3"), which is still choosable.
    subject = conv_image_subject(channels=3)
    artifact = attribution_cam.grad_cam(subject, layer=layer)[0]
    indices = artifact.data["indices"]
    model, inputs, targets = subject.model.eval(), subject.probe_inputs[indices], subject.probe_labels[indices]
    stored = {}
    hooked = model[4 if layer is None else 3]
    handle = hooked.register_forward_hook(lambda module, args, output: stored.setdefault("a", output))
    try:
        scores = target_scores(model, inputs, targets)
    finally:
        handle.remove()
    (gradient,) = torch.autograd.grad(scores.sum(), stored["a"])
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    expected = torch.relu((weights * stored["a"]).sum(dim=1, keepdim=True)).detach()
    np.testing.assert_allclose(artifact.data["cam"], expected.double().numpy(), rtol=1e-4, atol=1e-7)
    assert artifact.data["upsampled"].shape == (len(indices), 12, 12)
    assert artifact.layer == ("4" if layer is None else "3")
    assert ("chosen by hand" in artifact.caption) == (layer is not None)


def test_grad_cam_skips_a_model_without_convolutions() -> None:
    result = run_one(dense_image_subject(), spec_of(attribution_cam.grad_cam))
    assert result.status == "skipped" and "Conv2d" in result.reason


def test_probe_choice_takes_one_image_per_class_before_a_second() -> None:
    subject = dense_image_subject(num_classes=6)
    probe = _attribution.choose_probe(subject, max_per_class=2, max_images=8, forward_passes=1)
    classes = subject.probe_labels[probe.indices].tolist()
    assert sorted(set(classes)) == list(range(6)) and len(classes) == 8
    assert classes == sorted(classes)


def test_work_cap_leaves_fewer_images_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_attribution, "WORK_BUDGET_MACS", 1.0)
    artifacts = attribution.input_saliency(conv_image_subject(channels=1), methods=("saliency", "integrated_gradients"))
    assert len(artifacts[0].data["indices"]) == 1
    assert "work cap" in artifacts[0].caption
    assert artifacts[1].summary["n_steps"] == 4


def test_display_images_undo_the_normalization() -> None:
    raw = torch.rand(3, 1, 6, 6)
    inputs = (raw - 0.1307) / 0.3081
    task = Task(kind="classification", input_shape=(36,), image_shape=(1, 6, 6), normalization=MNIST_NORMALIZATION)
    subject = Subject(weights={}, task=task)
    shown = _shared.display_images(subject, inputs.reshape(3, 36))
    np.testing.assert_allclose(shown[..., 0], raw[:, 0].double().numpy(), atol=1e-6)
    np.testing.assert_allclose(shown[..., 0], shown[..., 2])


def test_rank_correlation_matches_scipy_spearman_with_ties() -> None:
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    first, second = rng.integers(0, 5, size=(9, 9)).astype(float), rng.normal(size=(9, 9))
    second[:3] = 0.0
    assert attribution_sanity.rank_correlation(first, second) == pytest.approx(
        spearmanr(first.ravel(), second.ravel()).statistic, abs=1e-12
    )
    assert attribution_sanity.rank_correlation(first, first) == pytest.approx(1.0)
    assert np.isnan(attribution_sanity.rank_correlation(first, np.zeros_like(first)))


def test_sobel_magnitude_matches_scipy_ndimage() -> None:
    from scipy import ndimage

    images = np.random.default_rng(1).random((2, 7, 9))
    expected = np.stack(
        [
            np.hypot(ndimage.sobel(image, axis=0, mode="reflect"), ndimage.sobel(image, axis=1, mode="reflect"))
            for image in images
        ]
    )
    np.testing.assert_allclose(attribution_sanity.sobel_magnitude(images), expected, atol=1e-12)


def test_cut_points_keep_first_and_last_layer() -> None:
    assert attribution_sanity.cut_points(3, 12) == [0, 1, 2, 3]
    points = attribution_sanity.cut_points(107, 12)
    assert points[:2] == [0, 1] and points[-1] == 107 and len(points) == 13


def test_randomization_correlation_is_one_untouched_then_drops_on_trained_mnist_cnn(mnist_cnn_subject: Subject) -> None:
    before = {name: tensor.clone() for name, tensor in mnist_cnn_subject.model.state_dict().items()}
    artifact = attribution_sanity.saliency_sanity(mnist_cnn_subject)[0]
    spearman = artifact.data["spearman"]
    np.testing.assert_allclose(spearman[0], 1.0)
    mean = np.nanmean(spearman, axis=1)
    assert mean[-1] < 0.8 and mean[1] < mean[0] - 0.3
    assert artifact.summary["layers"] == ["none", "7 Linear", "3 Conv2d", "0 Conv2d"]
    assert (
        artifact.summary["verdict"] in {"pass", "weak"} and artifact.summary["verdict"].capitalize() in artifact.caption
    )
    # The independent check of one point: the fully randomized maps' correlation, recomputed with scipy.
    from scipy.stats import spearmanr

    trained, randomized = artifact.data["trained_maps"], artifact.data["randomized_maps"][-1]
    assert spearman[-1, 0] == pytest.approx(spearmanr(trained[0].ravel(), randomized[0].ravel()).statistic, abs=1e-9)
    assert all(torch.equal(before[name], tensor) for name, tensor in mnist_cnn_subject.model.state_dict().items())


def test_randomization_verdict_reads_against_the_random_pair_baseline(mnist_cnn_subject: Subject) -> None:
    # The baseline replaced a fixed 0.5: passing means falling to the correlation of unrelated images' maps.
    from itertools import combinations

    from scipy.stats import spearmanr

    artifact = attribution_sanity.saliency_sanity(mnist_cnn_subject)[0]
    trained = artifact.data["trained_maps"]
    pairs = [
        spearmanr(trained[i].ravel(), trained[j].ravel()).statistic for i, j in combinations(range(len(trained)), 2)
    ]
    summary = artifact.summary
    assert summary["baseline_mean"] == pytest.approx(np.mean(pairs), abs=1e-4)
    assert summary["baseline_std"] == pytest.approx(np.std(pairs), abs=1e-4)
    final = summary["mean_spearman"][-1]
    expected = "pass" if final <= summary["baseline_mean"] + summary["baseline_std"] else "weak"
    assert summary["verdict"] == expected and "random-pair baseline" in artifact.caption


def test_saliency_on_trained_mnist_cnn_follows_the_digit(mnist_cnn_subject: Subject) -> None:
    artifact = attribution.input_saliency(mnist_cnn_subject, methods=("integrated_gradients",))[0]
    images = _shared.display_images(mnist_cnn_subject, mnist_cnn_subject.probe_inputs[artifact.data["indices"]])[..., 0]
    ink = images > 0.5
    magnitude = np.abs(artifact.data["maps"])
    # Against a zero (mean-grey) baseline, Integrated Gradients concentrate on the strokes.
    assert magnitude[ink].mean() > 3 * magnitude[~ink].mean()


def test_smoothgrad_is_the_mean_abs_gradient_over_seeded_noisy_copies() -> None:
    subject = conv_image_subject(channels=1)
    model, inputs, targets = subject.model.eval(), subject.probe_inputs, subject.probe_labels
    result = _attribution.attribute(model, inputs, targets, "smoothgrad", nt_samples=3, seed=5)
    generator = torch.Generator().manual_seed(5)
    deviation = 0.15 * float(inputs.max() - inputs.min())
    expected = torch.zeros_like(inputs)
    for _ in range(3):
        noisy = (inputs + deviation * torch.randn(inputs.shape, generator=generator)).requires_grad_(True)
        (gradient,) = torch.autograd.grad(target_scores(model, noisy, targets).sum(), noisy)
        expected += gradient.abs() / 3
    torch.testing.assert_close(result, expected, rtol=1e-4, atol=1e-7)


def test_occlusion_counts_the_clipped_edge_window_like_captum() -> None:
    subject = conv_image_subject(channels=1)
    artifact = attribution_occlusion.occlusion(subject, window=5, stride=5)[0]
    assert artifact.summary["positions"] == 9  # starts 0, 5, 10 per side; the last is clipped to 2 pixels
    index = int(artifact.data["indices"][0])
    image, target = subject.probe_inputs[index : index + 1], subject.probe_labels[index : index + 1]
    occluded = image.clone()
    occluded[..., 10:, 10:] = 0.0
    with torch.no_grad():
        drop = (
            target_scores(subject.model.eval(), image, target) - target_scores(subject.model, occluded, target)
        ).item()
    np.testing.assert_allclose(artifact.data["maps"][0, 10:, 10:], drop, rtol=1e-4, atol=1e-6)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_grad_cam_skips_torchscript_with_the_reason() -> None:
    subject = conv_image_subject(channels=1)
    scripted = torch.jit.script(subject.model.eval())
    result = run_one(
        Subject.from_model(scripted, subject.probe_inputs, subject.probe_labels, task=subject.task),
        spec_of(attribution_cam.grad_cam),
    )
    assert result.status == "skipped" and "TorchScript" in result.reason
