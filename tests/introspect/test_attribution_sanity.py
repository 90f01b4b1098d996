"""saliency_sanity for every method: each curve recomputed with captum, hand-made Grad-CAM and scipy's Spearman."""

from __future__ import annotations

import copy
from itertools import combinations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from introspect.analyzers import _attribution, attribution_sanity
from introspect.subject import Subject, Task
from introspect.testing import conv_image_subject

SEED = 0


def randomized_by_hand(model: torch.nn.Module, count: int, seed: int) -> torch.nn.Module:
    """A copy with the last ``count`` modules that hold parameters re-drawn, torch seeded before each one."""
    clone = copy.deepcopy(model)
    holders = [module for module in clone.modules() if next(module.parameters(recurse=False), None) is not None]
    with torch.no_grad():
        for module in holders[::-1][:count]:
            torch.manual_seed(seed)
            module.reset_parameters()
    return clone


def grad_cam_by_hand(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, layer: str) -> np.ndarray:
    """Channel weights = mean gradient over positions; ReLU of the weighted sum; bilinear upsampling."""
    kept = {}
    handle = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: kept.setdefault("out", o))
    try:
        scores = model(inputs).gather(1, targets.reshape(-1, 1)).sum()
    finally:
        handle.remove()
    (gradient,) = torch.autograd.grad(scores, kept["out"])
    cam = torch.relu((gradient.mean(dim=(2, 3), keepdim=True) * kept["out"]).sum(dim=1, keepdim=True))
    upsampled = torch.nn.functional.interpolate(cam, size=inputs.shape[2:], mode="bilinear", align_corners=False)
    return upsampled[:, 0].detach().double().numpy()


def maps_by_hand(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, np.ndarray]:
    """|map| per method straight from captum (Integrated Gradients, Guided Backprop) or autograd (Saliency)."""
    from captum.attr import GuidedBackprop, IntegratedGradients

    x = inputs.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(model(x).gather(1, targets.reshape(-1, 1)).sum(), x)
    integrated = IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=targets, n_steps=16)
    guided = GuidedBackprop(model).attribute(x, target=targets)
    return {
        "saliency": gradient.abs().sum(dim=1).double().numpy(),
        "integrated_gradients": np.abs(integrated.detach().sum(dim=1).double().numpy()),
        "guided_backprop": np.abs(guided.detach().sum(dim=1).double().numpy()),
        "grad_cam": grad_cam_by_hand(model, inputs, targets, "3"),
    }


def spearman_per_image(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return np.array([spearmanr(a.ravel(), b.ravel()).statistic for a, b in zip(first, second)])


@pytest.fixture(scope="module")
def conv_result() -> tuple[Subject, object]:
    subject = conv_image_subject(seed=SEED, channels=1)
    return subject, attribution_sanity.saliency_sanity(subject)[0]


def test_every_method_is_measured_on_a_convolutional_net(conv_result) -> None:
    _, artifact = conv_result
    assert artifact.data["methods"] == ["saliency", "integrated_gradients", "smoothgrad", "guided_backprop", "grad_cam"]
    assert set(artifact.summary["methods"]) == set(artifact.data["methods"])
    # The old keys still mean Saliency's numbers.
    np.testing.assert_array_equal(artifact.data["spearman"], artifact.data["spearman_saliency"])
    np.testing.assert_array_equal(artifact.data["baseline_spearman"], artifact.data["baseline_spearman_saliency"])


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "guided_backprop", "grad_cam"])
def test_each_step_equals_spearman_of_captum_maps_on_a_copy_randomized_by_hand(conv_result, method: str) -> None:
    subject, artifact = conv_result
    model = copy.deepcopy(subject.model).eval()
    indices = artifact.data["indices"]
    inputs, targets = subject.probe_inputs[indices], subject.probe_labels[indices]
    trained = maps_by_hand(model, inputs, targets)[method]
    measured = artifact.data[f"spearman_{method}"]
    for step, count in enumerate(artifact.data["counts"]):
        randomized = maps_by_hand(randomized_by_hand(model, int(count), SEED).eval(), inputs, targets)[method]
        np.testing.assert_allclose(measured[step], spearman_per_image(trained, randomized), atol=1e-4)
    pairs = [
        spearmanr(trained[i].ravel(), trained[j].ravel()).statistic for i, j in combinations(range(len(trained)), 2)
    ]
    np.testing.assert_allclose(artifact.data[f"baseline_spearman_{method}"], pairs, atol=1e-4)


def test_each_verdict_compares_the_final_step_with_that_methods_baseline(conv_result) -> None:
    _, artifact = conv_result
    for method, numbers in artifact.summary["methods"].items():
        assert np.isfinite(artifact.data[f"spearman_{method}"]).all(), method  # seed 0: no constant map
        final = float(np.mean(artifact.data[f"spearman_{method}"][-1]))
        baseline = artifact.data[f"baseline_spearman_{method}"]
        passes = final <= baseline.mean() + baseline.std()
        expected = "pass" if passes else ("weak" if final < 0.8 else "fail")
        assert numbers["verdict"] == expected, method
        assert numbers["final_spearman"] == pytest.approx(final, abs=1e-4)
        assert f"{attribution_sanity.METHOD_TITLES[method]} {final:.2f} vs" in artifact.caption


class SquaredEnergy(torch.nn.Module):
    """score_k = scale_k * sum(x^2): every map is a positive multiple of |x| or x^2, whatever the scales are."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.linspace(1.0, 2.0, num_classes))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.scale.abs() * inputs.flatten(1).pow(2).sum(dim=1, keepdim=True) + 1e-3


def test_maps_that_ignore_the_learned_values_fail_for_every_method() -> None:
    torch.manual_seed(0)
    inputs, labels = torch.rand(6, 1, 8, 8), torch.arange(6) % 3
    task = Task(kind="classification", input_shape=(1, 8, 8), image_shape=(1, 8, 8), class_names=("a", "b", "c"))
    subject = Subject.from_model(SquaredEnergy(3), inputs, labels, task=task)
    artifact = attribution_sanity.saliency_sanity(subject)[0]
    methods = artifact.summary["methods"]
    assert list(methods) == ["saliency", "integrated_gradients", "smoothgrad", "guided_backprop"]
    for method, numbers in methods.items():
        # Rescaling a map keeps its ranks: correlation 1 with the trained maps, far above unrelated images' maps.
        np.testing.assert_allclose(artifact.data[f"spearman_{method}"][-1], 1.0, atol=1e-9)
        assert numbers["baseline_mean"] < 0.5 and numbers["verdict"] == "fail", method
    assert "Grad-CAM left out: the model has no Conv2d" in artifact.caption


def test_work_cap_drops_integrated_gradients_first_and_measures_fewer_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    subject = conv_image_subject(seed=SEED, channels=1)
    macs = _attribution.estimate_macs(subject.model, subject.probe_inputs[:1])
    # 300 passes per image: all five methods cost 81 per depth, 2 images x 3 depths need 486; without IG 198.
    monkeypatch.setattr(_attribution, "WORK_BUDGET_MACS", 300 * macs)
    artifact = attribution_sanity.saliency_sanity(subject)[0]
    assert artifact.data["methods"] == ["saliency", "smoothgrad", "guided_backprop", "grad_cam"]
    assert "integrated_gradients" not in artifact.summary["methods"]
    assert "Integrated Gradients left out to stay within the work cap" in artifact.caption
    # 33 passes per depth for 2 images: int(300 / 66) - 1 = 3 of the 4 cumulative steps; 300 // (33 x 4) = 2 images.
    assert artifact.data["counts"].tolist() == [0, 1, 2, 4]
    assert len(artifact.data["indices"]) == 2
    assert "after 3 of the 4 cumulative steps" in artifact.caption
