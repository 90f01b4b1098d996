"""activation_health and response_curves against numpy computations on hand-built layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from introspect.analyzers._shared import activation_kind, scalar_domain
from introspect.analyzers.activation_units import activation_health, response_curves
from introspect.runner import run_one
from introspect.spec import spec_of
from introspect.subject import Subject, Task
from introspect.testing import check_analyzer, scalar_regression_subject


def _subject(model: torch.nn.Module, inputs: torch.Tensor, **task: object) -> Subject:
    return Subject.from_model(model, inputs, task=Task(input_shape=tuple(inputs.shape[1:]), **task))


def _run(function, subject: Subject, **options: object):
    result = run_one(subject, spec_of(function), options)
    assert result.status == "ok", result.reason + result.traceback
    return result.artifacts


def _dead_relu_model(dead_units: list[int]) -> torch.nn.Sequential:
    """Linear(3, 6) + ReLU; the listed units have negative weights and bias: on inputs in [0, 1] they never fire."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.rand(6, 3) + 0.1)
        model[0].bias.fill_(0.05)
        model[0].weight[dead_units] = -model[0].weight[dead_units]
        model[0].bias[dead_units] = -0.5
    return model


def test_dead_relu_units_equal_numpy_count() -> None:
    model = _dead_relu_model([0, 2, 5])
    inputs = torch.rand(20, 3, generator=torch.Generator().manual_seed(1))
    health, distributions = _run(activation_health, _subject(model, inputs))
    weight, bias = model[0].weight.detach().numpy(), model[0].bias.detach().numpy()
    activation = np.maximum(inputs.numpy() @ weight.T + bias, 0)
    expected_dead = (activation <= 0).all(axis=0)
    layer = health.summary["layers"]["1"]
    assert expected_dead.sum() == 3
    np.testing.assert_array_equal(health.data["dead"]["1"], expected_dead)
    assert layer["num_dead"] == 3 and layer["num_units"] == 6 and layer["dead_fraction"] == pytest.approx(0.5)
    assert layer["type"] == "ReLU" and layer["saturated_fraction"] is None
    assert layer["zero_fraction"] == pytest.approx((activation == 0).mean())
    assert layer["mean"] == pytest.approx(activation.mean(), rel=1e-5)
    counts, _ = np.histogram(activation, bins=50, range=(activation.min(), activation.max()))
    np.testing.assert_array_equal(distributions.data["1"]["counts"], counts)


@pytest.mark.parametrize(("layer", "low", "high"), [(torch.nn.Sigmoid(), 0.0, 1.0), (torch.nn.Tanh(), -1.0, 1.0)])
def test_saturated_units_equal_numpy_share_near_the_bounds(layer: torch.nn.Module, low: float, high: float) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 5), layer)
    with torch.no_grad():
        # Units 1 and 3 get huge weights (saturated for nearly every input), the others small ones.
        model[0].weight.copy_(torch.tensor([[0.1, 0.2], [40.0, 30.0], [-0.3, 0.1], [-50.0, -20.0], [1.5, -1.0]]))
        model[0].bias.copy_(torch.tensor([0.0, 5.0, 0.1, -5.0, 0.0]))
    inputs = torch.rand(40, 2, generator=torch.Generator().manual_seed(2)) * 2 - 0.5
    eps, share = 0.02, 0.8
    (health, distributions) = _run(activation_health, _subject(model, inputs), eps=eps, min_share=share)
    pre = (
        inputs.double().numpy() @ model[0].weight.detach().double().numpy().T + model[0].bias.detach().double().numpy()
    )
    values = 1 / (1 + np.exp(-pre)) if low == 0 else np.tanh(pre)
    near = (np.abs(values - low) <= eps) | (np.abs(high - values) <= eps)
    expected = near.mean(axis=0) >= share
    np.testing.assert_array_equal(health.data["saturated"]["1"], expected)
    assert expected.tolist() == [False, True, False, True, False]
    summary = health.summary["layers"]["1"]
    assert summary["num_saturated"] == 2 and summary["dead_fraction"] is None
    counts, _ = np.histogram(values, bins=50, range=(low, high))
    np.testing.assert_array_equal(distributions.data["1"]["counts"], counts)


def test_conv_channels_count_as_units() -> None:
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 5, 3), torch.nn.ReLU())
    with torch.no_grad():
        model[0].bias.copy_(torch.tensor([0.0, -9.0, 0.2, -9.0, 0.0]))
    inputs = torch.rand(4, 2, 7, 7, generator=torch.Generator().manual_seed(4))
    (health, _) = _run(activation_health, _subject(model, inputs))
    outputs = torch.relu(torch.nn.functional.conv2d(inputs, model[0].weight, model[0].bias)).detach().numpy()
    expected = (outputs <= 0).all(axis=(0, 2, 3))
    np.testing.assert_array_equal(health.data["dead"]["1"], expected)
    assert health.summary["layers"]["1"]["num_units"] == 5 and expected[[1, 3]].all()


def test_large_layers_are_sampled_but_moments_use_every_value() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 300), torch.nn.ReLU())
    inputs = torch.randn(50, 4, generator=torch.Generator().manual_seed(5))
    health, distributions = _run(activation_health, _subject(model, inputs), max_sample=1000)
    values = model(inputs).detach().double().numpy()
    summary = health.summary["layers"]["1"]
    assert summary["sampled"] and distributions.data["1"]["counts"].sum() == 1000
    assert summary["mean"] == pytest.approx(values.mean()) and summary["max"] == pytest.approx(values.max())
    assert "sample" in distributions.caption


def test_model_without_activation_modules_shows_distributions_only() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    (health, distributions) = _run(activation_health, _subject(model, torch.rand(6, 3)))
    assert set(health.summary["layers"]) == {"0", "1"}
    assert all(
        layer["num_dead"] is None and layer["num_saturated"] is None for layer in health.summary["layers"].values()
    )
    assert "no activation modules" in health.caption


def test_activation_kinds() -> None:
    assert activation_kind(torch.nn.LeakyReLU()) == ("relu", None)
    assert activation_kind(torch.nn.Hardtanh(-2.0, 3.0)) == ("bounded", (-2.0, 3.0))
    assert activation_kind(torch.nn.ReLU6()) == ("relu", None)
    assert activation_kind(torch.nn.Linear(1, 1)) == ("other", None)


def test_response_curves_equal_a_manual_forward_over_the_grid() -> None:
    subject = scalar_regression_subject()
    (artifact,) = _run(response_curves, subject, num_points=400)
    grid = np.linspace(-5, 5, 400)
    first, second, last = (subject.model[index] for index in (0, 2, 4))

    def affine(layer: torch.nn.Linear, values: np.ndarray) -> np.ndarray:
        return values @ layer.weight.detach().double().numpy().T + layer.bias.detach().double().numpy()

    hidden1 = 1 / (1 + np.exp(-affine(first, grid[:, None])))
    hidden2 = 1 / (1 + np.exp(-affine(second, hidden1)))
    np.testing.assert_allclose(artifact.data["x"], grid)
    np.testing.assert_allclose(artifact.data["layers"]["1"], hidden1, atol=1e-5)
    np.testing.assert_allclose(artifact.data["layers"]["3"], hidden2, atol=1e-5)
    np.testing.assert_allclose(artifact.data["layers"]["4"], affine(last, hidden2), atol=1e-5)
    assert list(artifact.data["layers"]) == ["1", "3", "4"]
    assert artifact.summary["domain"] == [-5.0, 5.0]


def test_response_curves_cap_units_and_count_relu_units_inactive_everywhere() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(1, 50), torch.nn.ReLU(), torch.nn.Linear(50, 1))
    with torch.no_grad():
        model[0].weight[:5] = 0.0
        model[0].bias[:5] = -1.0
    inputs = torch.linspace(-2, 3, 16).unsqueeze(1)
    subject = _subject(model, inputs)
    assert scalar_domain(subject) == (-2.0, 3.0)
    (artifact,) = _run(response_curves, subject, num_points=200, max_units=32)
    grid = np.linspace(-2, 3, 200)
    values = np.maximum(grid[:, None] * model[0].weight.detach().numpy().T + model[0].bias.detach().numpy(), 0)
    layer = artifact.summary["layers"]["1"]
    assert layer["units_drawn"] == 32 and layer["num_units"] == 50
    assert layer["num_inactive_everywhere"] == int((values <= 0).all(axis=0).sum()) >= 5
    assert layer["mean_active_fraction"] == pytest.approx((values > 0).mean(), abs=1e-3)
    assert "32" in artifact.caption


@pytest.mark.parametrize("function", [activation_health, response_curves])
def test_conformance(function) -> None:
    statuses = check_analyzer(function)
    assert "ok" in statuses.values()


def test_activation_health_on_resnet18_measures_every_relu_with_bounded_figures() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    inputs = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    health, *pages = _run(activation_health, _subject(model, inputs, image_shape=(3, 32, 32)))
    relus = [name for name, module in model.named_modules() if isinstance(module, torch.nn.ReLU)]
    assert list(health.summary["layers"]) == relus and len(pages) == 1
    assert "last call" in health.caption
    model.eval()
    with torch.no_grad():
        stem = model.maxpool(model.relu(model.bn1(model.conv1(inputs))))
        final = model.layer4(model.layer3(model.layer2(model.layer1(stem))))
    expected = (final <= 0).all(dim=3).all(dim=2).all(dim=0).numpy()
    np.testing.assert_array_equal(health.data["dead"]["layer4.1.relu"], expected)
