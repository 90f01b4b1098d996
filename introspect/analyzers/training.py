"""Analyzers of how training went: learning curves, and the fitted function of a scalar regression."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from introspect import history as history_module
from introspect._lazy import lazy_import
from introspect.analyzers._curves import (
    LOG_SCALE_RATIO,  # noqa: F401 - re-exported: it was defined here before
    curves_figure,
    value_at,
)
from introspect.artifacts import Artifact
from introspect.errors import SkipAnalyzer
from introspect.needs import Needs
from introspect.plotting import new_figure
from introspect.spec import analyzer

#: Where this module's analyzers come in the gallery (see ``introspect.analyzers``).
POSITION = 5

if TYPE_CHECKING:
    import torch
    from torch import nn

    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

NUM_POINTS = 400
MATCH_TOLERANCE = 1e-3
_KNOWN_SERIES = (
    "train_loss",
    "val_loss",
    "train_accuracy",
    "val_accuracy",
    "seconds_per_batch",
    "seconds_per_epoch",
    "lr",
    "learning_rate",
)


def numeric_series(values: Any) -> np.ndarray | None:
    """A per-epoch list as float64 with ``None`` as NaN, or ``None`` when it is not a list of numbers."""
    if not isinstance(values, Sequence) or isinstance(values, str) or not len(values):
        return None
    try:
        return np.array([np.nan if value is None else float(value) for value in values], dtype=np.float64)
    except (TypeError, ValueError):
        return None


def best_epoch_of(history: Mapping[str, Any]) -> int | None:
    """The best epoch by :func:`introspect.history.best_epoch`, the one definition the comparison table uses too.

    A ``best_epoch`` recorded in the history is not consulted: it could disagree with the curves
    drawn, and the comparison of checkpoints would then mark a different epoch than this figure.
    """
    return history_module.best_epoch(history)


def _last(series: np.ndarray | None) -> float | None:
    if series is None or not np.isfinite(series).any():
        return None
    return float(series[np.isfinite(series)][-1])


def curve_summary(series: dict[str, np.ndarray], epochs: np.ndarray, best: int | None) -> dict[str, Any]:
    """Best epoch, values at it, final values and mean time per batch."""
    timing = series.get("seconds_per_batch")
    return {
        "num_epochs": int(len(epochs)),
        "best_epoch": best,
        "best_val_loss": value_at(series.get("val_loss"), epochs, best),
        "val_accuracy_at_best": value_at(series.get("val_accuracy"), epochs, best),
        "final_train_loss": _last(series.get("train_loss")),
        "final_val_loss": _last(series.get("val_loss")),
        "final_train_accuracy": _last(series.get("train_accuracy")),
        "final_val_accuracy": _last(series.get("val_accuracy")),
        "mean_seconds_per_batch": float(np.nanmean(timing))
        if timing is not None and np.isfinite(timing).any()
        else None,
        "learning_rate_range": _range(series.get("lr", series.get("learning_rate"))),
    }


def _range(values: np.ndarray | None) -> list[float] | None:
    if values is None or not np.isfinite(values).any():
        return None
    return [float(np.nanmin(values)), float(np.nanmax(values))]


@analyzer(needs=Needs.HISTORY)
def training_curves(subject: Subject, /) -> list[Artifact]:
    """Loss and accuracy per epoch for training and validation, the best epoch marked, and time per batch.

    Validation loss that rises while training loss keeps falling means overfitting; the star
    marks the epoch with the best validation result (the one a checkpoint usually keeps).
    Curves that are still falling at the end suggest training longer. The lower panels show
    how long a batch took, so slow epochs stand out, and the learning rate if it was recorded.
    """
    history = subject.history
    series = {key: values for key in _KNOWN_SERIES if (values := numeric_series(history.get(key))) is not None}
    panels = [stem for stem in ("loss", "accuracy") if f"train_{stem}" in series or f"val_{stem}" in series]
    timing = "seconds_per_batch" in series or "seconds_per_epoch" in series
    rate = "lr" if "lr" in series else "learning_rate" if "learning_rate" in series else None
    if rate is not None and np.nanmin(series[rate]) == np.nanmax(series[rate]):
        rate = None  # a constant learning rate is said in the caption, not drawn
    if not panels and not timing:
        raise SkipAnalyzer("the training history has no loss, accuracy or timing series")
    length = max(len(values) for values in series.values())
    epochs = numeric_series(history.get("epoch"))
    epochs = np.arange(1, length + 1, dtype=np.float64) if epochs is None or len(epochs) < length else epochs
    best = best_epoch_of(history)
    small = [name for name, present in (("timing", timing), ("rate", rate is not None)) if present]
    figure = curves_figure(epochs, series, panels, small, rate, best)
    summary = curve_summary(series, epochs, best)
    return [
        Artifact(
            name="curves",
            caption=_curves_caption(history, summary),
            figure=figure,
            data={"epochs": epochs, **series},
            summary=summary,
        )
    ]


def _curves_caption(history: Mapping[str, Any], summary: dict) -> str:
    caption = f"Training history over {summary['num_epochs']} epochs."
    if summary["best_epoch"] is not None:
        caption += f" Best epoch {summary['best_epoch']}"
        if summary["best_val_loss"] is not None:
            caption += f" (validation loss {summary['best_val_loss']:.4g}"
            caption += (
                f", accuracy {summary['val_accuracy_at_best']:.1%})"
                if summary["val_accuracy_at_best"] is not None
                else ")"
            )
        caption += ", dotted red line."
    if summary["mean_seconds_per_batch"] is not None:
        caption += f" Mean {1000 * summary['mean_seconds_per_batch']:.3g} ms per batch."
    rates = summary["learning_rate_range"]
    if rates is not None and rates[0] == rates[1]:
        caption += f" Constant learning rate {rates[0]:.3g}."
    others = [key for key in history if key not in (*_KNOWN_SERIES, "epoch", "best_epoch")]
    if others:
        caption += f" Also recorded, not drawn: {', '.join(others[:6])}."
    return caption


def _flat(values: Any) -> np.ndarray | None:
    if values is None:
        return None
    if hasattr(values, "detach"):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64).reshape(-1)


def regression_data(subject: Subject) -> dict[str, np.ndarray]:
    """Data points and the true function from the trainer's extras, else the probe set as data."""
    extras = (subject.metadata.get("extras") or {}).get("regression") or {}
    keys = ("train_inputs", "train_targets", "test_inputs", "test_targets", "true_inputs", "true_outputs")
    found = {key: value for key in keys if (value := _flat(extras.get(key))) is not None}
    if "train_inputs" not in found and subject.probe_labels is not None:
        found["probe_inputs"] = _flat(subject.probe_inputs)
        found["probe_targets"] = _flat(subject.probe_labels)
    return found


def model_function(model: nn.Module, x: np.ndarray, device: str) -> np.ndarray:
    """The model's first output for each scalar input in ``x``, as float64."""
    parameter = next(model.parameters(), None)
    dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32
    with torch.no_grad():
        output = model(torch.as_tensor(x, dtype=dtype).reshape(-1, 1).to(device))
    if isinstance(output, (tuple, list)):
        output = output[0]
    return output.detach().cpu().double().reshape(len(x), -1)[:, 0].numpy()


def best_state_model(subject: Subject) -> tuple[nn.Module | None, str]:
    """A deep copy of the model with ``metadata["best_state_dict"]`` loaded, or ``None`` and why not.

    The subject's own model is never touched: other analyzers must see the final state.
    """
    state = subject.metadata.get("best_state_dict")
    if not state:
        return None, "the checkpoint has no best-validation state"
    model = copy.deepcopy(subject.model)
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as error:
        return None, f"the best-validation state does not fit the model ({str(error).splitlines()[0]})"
    return model.eval(), ""


def mean_squared_error(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, device: str) -> float:
    """Mean of (model(x) - y)^2 over the given points."""
    return float(np.mean((model_function(model, inputs, device) - targets) ** 2))


def _domain(subject: Subject, data: dict[str, np.ndarray]) -> tuple[float, float]:
    if subject.task.domain:
        return float(subject.task.domain[0]), float(subject.task.domain[1])
    inputs = np.concatenate([values for key, values in data.items() if key.endswith("inputs")])
    return float(inputs.min()), float(inputs.max())


def fit_errors(subject: Subject, data: dict[str, np.ndarray], best: nn.Module | None) -> dict[str, Any]:
    """Test MSE (or probe MSE without a test set) of the final and best states, and the recorded metric."""
    split = "test" if "test_inputs" in data and "test_targets" in data else "probe" if "probe_targets" in data else None
    errors: dict[str, Any] = {"split": split}
    if split is not None:
        inputs, targets = data[f"{split}_inputs"], data[f"{split}_targets"]
        errors["final_mse"] = mean_squared_error(subject.model, inputs, targets, subject.device)
        errors["best_mse"] = mean_squared_error(best, inputs, targets, subject.device) if best is not None else None
    recorded = (subject.metadata.get("metrics") or {}).get("test_mse")
    errors["recorded_test_mse"] = float(recorded) if isinstance(recorded, (int, float)) else None
    errors["recorded_matches"] = _matching_state(errors) if split == "test" else None
    if errors["recorded_matches"] is not None:
        recorded = errors["recorded_test_mse"]
        errors["recorded_relative_difference"] = abs(errors["final_mse"] - recorded) / max(abs(recorded), 1e-12)
    return errors


def _matching_state(errors: dict[str, Any]) -> str | None:
    """``"final"`` or ``"best"`` when the recorded test MSE equals that state's (within 0.1%), else ``"neither"``."""
    recorded = errors["recorded_test_mse"]
    if recorded is None:
        return None
    for state in ("final", "best"):
        value = errors.get(f"{state}_mse")
        if value is not None and math.isclose(value, recorded, rel_tol=MATCH_TOLERANCE, abs_tol=1e-9):
            return state
    return "neither"


def _fit_figure(data: dict[str, np.ndarray], grid: np.ndarray, curves: dict[str, np.ndarray], errors: dict[str, Any]):  # noqa: ANN202
    figure = new_figure(8, 4.5)
    axes = figure.add_subplot()
    styles = {
        "train": ("o", "0.55", "training data"),
        "test": ("x", "tab:green", "test data"),
        "probe": ("o", "0.55", "probe data"),
    }
    for split, (marker, colour, label) in styles.items():
        if f"{split}_inputs" in data and f"{split}_targets" in data:
            axes.scatter(
                data[f"{split}_inputs"],
                data[f"{split}_targets"],
                s=10,
                marker=marker,
                color=colour,
                alpha=0.6,
                label=label,
            )
    if "true_inputs" in data and "true_outputs" in data:
        order = np.argsort(data["true_inputs"])
        axes.plot(data["true_inputs"][order], data["true_outputs"][order], "k--", linewidth=1.2, label="true function")
    axes.plot(grid, curves["final"], color="tab:blue", linewidth=2, label="network, final")
    if "best" in curves:
        axes.plot(
            grid, curves["best"], color="tab:red", linewidth=1.5, linestyle="-.", label="network, best validation"
        )
    if errors["split"] is not None:
        best = f", best {errors['best_mse']:.4g}" if errors.get("best_mse") is not None else ""
        axes.set_title(f"{errors['split']} MSE: final {errors['final_mse']:.4g}{best}", fontsize=10)
    axes.set_xlabel("x")
    axes.set_ylabel("y")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return figure


@analyzer(needs=Needs.FORWARD | Needs.SCALAR_INPUT)
def regression_fit(subject: Subject, /, *, num_points: int = NUM_POINTS) -> list[Artifact]:
    """The fitted function over the input domain: data, true function, the network at its final and best states.

    Where the blue curve leaves the dashed true function the network has not learned it;
    wiggles between data points are overfitting, a too-flat curve underfitting. The
    best-validation curve (red) is the state early stopping would keep. The title gives the
    test MSE of both states, computed here from the test points.
    """
    if subject.task.kind == "classification":
        raise SkipAnalyzer("the task is classification, not regression")
    data = regression_data(subject)
    low, high = _domain(subject, data) if data or subject.task.domain else (-1.0, 1.0)
    grid = np.linspace(low, high, num_points)
    best, best_note = best_state_model(subject)
    curves = {"final": model_function(subject.model, grid, subject.device)}
    if best is not None:
        curves["best"] = model_function(best, grid, subject.device)
    errors = fit_errors(subject, data, best)
    figure = _fit_figure(data, grid, curves, errors)
    summary = {key: value for key, value in errors.items()}
    summary["domain"] = [low, high]
    return [
        Artifact(
            name="fit",
            caption=_fit_caption(errors, best_note),
            figure=figure,
            data={"grid": grid, **{f"{state}_outputs": values for state, values in curves.items()}, **data, **errors},
            summary=summary,
        )
    ]


def _fit_caption(errors: dict[str, Any], best_note: str) -> str:
    caption = "Network output across the input domain with the data and, when known, the true function."
    if errors["split"] is not None:
        caption += f" {errors['split'].capitalize()} MSE of the final state: {errors['final_mse']:.4g}"
        caption += (
            f"; of the best-validation state: {errors['best_mse']:.4g}." if errors.get("best_mse") is not None else "."
        )
    if best_note:
        caption += f" No best-validation curve: {best_note}."
    recorded, match = errors["recorded_test_mse"], errors["recorded_matches"]
    if recorded is not None and match is not None:
        verdict = {
            "best": "matches the best-validation state",
            "final": "matches the final state",
            "neither": "matches neither state computed here",
        }[match]
        caption += f" The test MSE recorded in the checkpoint ({recorded:.4g}) {verdict}"
        caption += (
            "." if match != "neither" else f" (final state {100 * errors['recorded_relative_difference']:.2g}% off)."
        )
    return caption
