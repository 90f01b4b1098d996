"""training_curves and regression_fit: best epochs, timings and MSEs against direct computations."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from introspect.analyzers.training import regression_fit, training_curves
from introspect.runner import run_one
from introspect.spec import spec_of
from introspect.subject import Subject, Task
from introspect.testing import check_analyzer, dense_image_subject, scalar_regression_subject

HISTORY = {
    "epoch": [1, 2, 3, 4],
    "train_loss": [1.0, 0.6, 0.4, 0.3],
    "val_loss": [1.1, 0.7, 0.75, 0.9],
    "train_accuracy": [0.5, 0.7, 0.8, 0.9],
    "val_accuracy": [0.45, 0.66, 0.64, 0.6],
    "seconds_per_batch": [0.02, 0.01, 0.012, 0.011],
    "lr": [0.1, 0.1, 0.01, 0.001],
    "momentum": [0.9, 0.9, 0.9, 0.9],
}


def run(func, subject: Subject, **options):
    result = run_one(subject, spec_of(func), options)
    assert result.status != "failed", result.traceback
    return result


def with_history(history: dict) -> Subject:
    return dataclasses.replace(dense_image_subject(), history=history)


def regression_subject(metrics: dict | None = None) -> tuple[Subject, torch.nn.Module]:
    """The tiny regression MLP with data extras and a best-validation state that differs from the final one."""
    subject = scalar_regression_subject()
    best = copy.deepcopy(subject.model)
    with torch.no_grad():
        for parameter in best.parameters():
            parameter.mul_(0.5)
    generator = torch.Generator().manual_seed(2)
    train_x = torch.rand(30, generator=generator) * 10 - 5
    test_x = torch.rand(20, generator=generator) * 10 - 5
    true_x = torch.linspace(-5, 5, 101)
    extras = {
        "regression": {
            "train_inputs": train_x,
            "train_targets": torch.sin(train_x) + 0.1 * torch.randn(30, generator=generator),
            "test_inputs": test_x,
            "test_targets": torch.sin(test_x) + 0.1 * torch.randn(20, generator=generator),
            "true_inputs": true_x,
            "true_outputs": torch.sin(true_x),
        }
    }
    metadata = {"extras": extras, "best_state_dict": best.state_dict(), "metrics": dict(metrics or {})}
    return dataclasses.replace(subject, metadata=metadata), best


def direct_mse(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    with torch.no_grad():
        outputs = model(inputs.reshape(-1, 1)).reshape(-1).double().numpy()
    return float(np.mean((outputs - targets.reshape(-1).double().numpy()) ** 2))


def test_training_curves_passes_conformance_check() -> None:
    statuses = check_analyzer(training_curves)
    assert statuses["weights_only"] == "skipped"
    assert statuses["dense_image"] == statuses["scalar_regression"] == "ok"


def test_regression_fit_passes_conformance_check() -> None:
    statuses = check_analyzer(regression_fit)
    assert statuses["scalar_regression"] == "ok"
    assert statuses["dense_image"] == statuses["weights_only"] == "skipped"


def test_training_curves_finds_the_lowest_validation_loss_when_no_best_epoch_is_recorded() -> None:
    artifact = run(training_curves, with_history(HISTORY)).artifacts[0]
    assert artifact.summary["best_epoch"] == int(np.argmin(HISTORY["val_loss"])) + 1 == 2
    assert artifact.summary["best_val_loss"] == pytest.approx(0.7)
    assert artifact.summary["val_accuracy_at_best"] == pytest.approx(0.66)
    assert artifact.summary["final_val_loss"] == pytest.approx(0.9)
    assert artifact.summary["mean_seconds_per_batch"] == pytest.approx(np.mean(HISTORY["seconds_per_batch"]))
    assert "Also recorded, not drawn: momentum." in artifact.caption
    loss, accuracy, timing, rate = artifact.figure.axes
    np.testing.assert_allclose(timing.get_lines()[0].get_ydata(), 1000 * np.array(HISTORY["seconds_per_batch"]))
    np.testing.assert_allclose(rate.get_lines()[0].get_ydata(), HISTORY["lr"])
    assert rate.get_yscale() == "log"
    assert artifact.summary["learning_rate_range"] == pytest.approx([0.001, 0.1])


def test_training_curves_marks_the_one_best_epoch_even_when_another_is_recorded() -> None:
    from introspect.history import best_epoch

    history = {**HISTORY, "best_epoch": 3}
    artifact = run(training_curves, with_history(history)).artifacts[0]
    # introspect.history.best_epoch is the one definition (lowest validation loss); a recorded
    # best_epoch that disagrees with it is not what the figure marks.
    assert artifact.summary["best_epoch"] == best_epoch(history) == 2
    assert artifact.summary["best_val_loss"] == pytest.approx(0.7)
    loss_axes = artifact.figure.axes[0]
    stars = [line for line in loss_axes.get_lines() if line.get_marker() == "*"]
    assert [tuple(stars[0].get_xdata()), tuple(stars[0].get_ydata())] == [(2,), pytest.approx((0.7,))]


def test_training_curves_draws_loss_only_histories_without_an_accuracy_panel() -> None:
    history = {"train_loss": [3.0, 2.0, None], "val_loss": [3.5, 2.5, 2.6], "lr": [0.01, 0.01, 0.01]}
    artifact = run(training_curves, with_history(history)).artifacts[0]
    assert len(artifact.figure.axes) == 1
    assert "Constant learning rate 0.01." in artifact.caption
    np.testing.assert_array_equal(artifact.data["epochs"], [1, 2, 3])
    assert artifact.summary["final_train_loss"] == pytest.approx(2.0)
    assert artifact.summary["best_epoch"] == 2


def test_training_curves_skips_a_history_without_curves() -> None:
    result = run(training_curves, with_history({"notes": ["nothing numeric"]}))
    assert result.status == "skipped" and "no loss" in result.reason


def test_regression_fit_computes_test_mse_of_final_and_best_states() -> None:
    subject, best = regression_subject()
    before = {name: tensor.clone() for name, tensor in subject.model.state_dict().items()}
    artifact = run(regression_fit, subject).artifacts[0]
    test = subject.metadata["extras"]["regression"]
    assert artifact.summary["split"] == "test"
    assert artifact.summary["final_mse"] == pytest.approx(
        direct_mse(subject.model, test["test_inputs"], test["test_targets"]), rel=1e-6
    )
    assert artifact.summary["best_mse"] == pytest.approx(
        direct_mse(best, test["test_inputs"], test["test_targets"]), rel=1e-6
    )
    assert artifact.summary["best_mse"] != pytest.approx(artifact.summary["final_mse"])
    grid = torch.linspace(-5, 5, 400)
    with torch.no_grad():
        np.testing.assert_allclose(
            artifact.data["final_outputs"], subject.model(grid[:, None]).squeeze(1).numpy(), rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(
            artifact.data["best_outputs"], best(grid[:, None]).squeeze(1).numpy(), rtol=1e-5, atol=1e-6
        )
    for name, tensor in subject.model.state_dict().items():
        assert torch.equal(tensor, before[name]), f"{name} was changed by loading the best state"


def test_regression_fit_says_which_state_the_recorded_test_mse_belongs_to() -> None:
    probe, _ = regression_subject()
    test = probe.metadata["extras"]["regression"]
    recorded = direct_mse(probe.model, test["test_inputs"], test["test_targets"])
    matching, _ = regression_subject(metrics={"test_mse": recorded})
    artifact = run(regression_fit, matching).artifacts[0]
    assert artifact.summary["recorded_matches"] == "final"
    assert "matches the final state" in artifact.caption
    wrong, _ = regression_subject(metrics={"test_mse": recorded * 2})
    artifact = run(regression_fit, wrong).artifacts[0]
    assert artifact.summary["recorded_matches"] == "neither"
    assert artifact.summary["recorded_relative_difference"] == pytest.approx(0.5, rel=1e-4)


def test_regression_fit_uses_the_probe_as_data_without_extras() -> None:
    subject = scalar_regression_subject()
    artifact = run(regression_fit, subject).artifacts[0]
    assert artifact.summary["split"] == "probe"
    assert artifact.summary["best_mse"] is None
    expected = direct_mse(subject.model, subject.probe_inputs, subject.probe_labels)
    assert artifact.summary["final_mse"] == pytest.approx(expected, rel=1e-6)
    assert "no best-validation state" in artifact.caption


def test_regression_fit_reports_a_best_state_that_does_not_fit() -> None:
    subject = scalar_regression_subject()
    subject = dataclasses.replace(subject, metadata={"best_state_dict": {"0.weight": torch.zeros(3, 3)}})
    artifact = run(regression_fit, subject).artifacts[0]
    assert "best_outputs" not in artifact.data
    assert "does not fit the model" in artifact.caption


def test_regression_fit_skips_a_scalar_input_classifier() -> None:
    model = torch.nn.Linear(1, 3)
    task = Task(kind="classification", input_shape=(1,), class_names=("a", "b", "c"))
    subject = Subject.from_model(model, torch.rand(5, 1), torch.tensor([0, 1, 2, 0, 1]), task=task)
    result = run(regression_fit, subject)
    assert result.status == "skipped" and "classification" in result.reason
