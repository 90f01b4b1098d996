"""Analyzers that look at what the model predicts and at its structure: confusion matrix, layer table."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from introspect._lazy import lazy_import
from introspect.artifacts import Artifact
from introspect.capture import check_hookable, leaf_layers
from introspect.needs import Needs
from introspect.plotting import bounded_text, new_figure, short_label
from introspect.spec import analyzer

#: Where this module's analyzers come in the gallery (see ``introspect.analyzers``).
POSITION = 4

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure
    from torch import nn

    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

MAX_CLASSES = 30
MAX_ANNOTATED_CLASSES = 15
MAX_ROWS = 400
BATCH_SIZE = 256
MEGABYTE = 2**20


def model_outputs(model: nn.Module, inputs: torch.Tensor, device: str, batch_size: int = BATCH_SIZE) -> torch.Tensor:
    """The model's outputs for ``inputs`` in batches, without gradients, on the CPU.

    A model that returns a tuple or list (auxiliary heads) is read by its first tensor.
    """
    chunks = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            output = model(inputs[start : start + batch_size].to(device))
            if isinstance(output, (tuple, list)):
                output = output[0]
            chunks.append(output.detach().float().cpu())
    return torch.cat(chunks)


def predicted_classes(outputs: torch.Tensor) -> np.ndarray:
    """Argmax over class scores; a single output column is read as a binary logit (class 1 when > 0)."""
    if outputs.dim() == 1 or outputs.shape[1] == 1:
        return (outputs.reshape(-1) > 0).long().numpy()
    return outputs.reshape(len(outputs), -1).argmax(dim=1).numpy()


def label_classes(labels: torch.Tensor) -> np.ndarray:
    """Integer class labels from integer, integer-valued float, or one-hot/probability labels."""
    if labels.dim() > 1 and labels.shape[1] > 1:
        return labels.argmax(dim=1).numpy()
    return labels.reshape(-1).round().long().numpy()


def confusion_counts(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts with true classes as rows and predicted classes as columns."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (labels, predictions), 1)
    return counts


def normalize_rows(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its total; rows without samples are NaN (drawn blank)."""
    totals = counts.sum(axis=1, keepdims=True).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / np.where(totals > 0, totals, 1.0), np.nan)


def class_names_for(subject: Subject, num_classes: int) -> list[str]:
    """The task's class names when they cover every class, else the class indices."""
    names = list(subject.task.class_names)
    return names if len(names) >= num_classes else names + [str(index) for index in range(len(names), num_classes)]


@analyzer(needs=Needs.FORWARD | Needs.LABELS | Needs.CLASSIFICATION)
def confusion_matrix(
    subject: Subject, /, *, max_classes: int = MAX_CLASSES, batch_size: int = BATCH_SIZE
) -> list[Artifact]:
    """Which classes the model confuses on the probe set: the row-normalized confusion matrix and per-class accuracy.

    Row i shows where the probe samples of true class i went: a strong diagonal is good,
    a bright off-diagonal cell names a confusion (true row, predicted column). The bars give
    each class's accuracy with its number of samples; the probe set is small, so a class with
    few samples has a coarse accuracy.
    """
    outputs = model_outputs(subject.model, subject.probe_inputs, subject.device, batch_size)
    predictions, labels = predicted_classes(outputs), label_classes(subject.probe_labels)
    width = outputs.shape[1] if outputs.dim() > 1 and outputs.shape[1] > 1 else 2
    num_classes = int(max(len(subject.task.class_names), width, labels.max() + 1, predictions.max() + 1))
    counts = confusion_counts(labels, predictions, num_classes)
    normalized = normalize_rows(counts)
    support = counts.sum(axis=1)
    per_class = np.diag(normalized).copy()
    accuracy = float(np.trace(counts) / max(counts.sum(), 1))
    names = class_names_for(subject, num_classes)
    shown = _shown_classes(support, max_classes)
    labels_shown = [short_label(names[i], 30) for i in shown]
    matrix = normalized[np.ix_(shown, shown)]
    figure = _confusion_figure(matrix, per_class[shown], support[shown], labels_shown, accuracy)
    caption = f"Row-normalized confusion matrix on {int(support.sum())} probe samples: accuracy {accuracy:.1%}."
    if len(shown) < num_classes:
        caption += (
            f" Shown: the {len(shown)} of {num_classes} classes with the most probe samples; all counts are "
            "in the data."
        )
    if subject.probe_is_synthetic:
        caption += " The probe inputs are synthetic, so these numbers say nothing about real data."
    data = {
        "counts": counts,
        "normalized": normalized,
        "per_class_accuracy": per_class,
        "support": support,
        "labels": labels,
        "predictions": predictions,
        "class_names": names,
        "accuracy": accuracy,
    }
    summary = {
        "accuracy": accuracy,
        "num_samples": int(support.sum()),
        "per_class_accuracy": {
            bounded_text(names[i]): (None if math.isnan(per_class[i]) else float(per_class[i])) for i in shown
        },
    }
    return [Artifact(name="confusion", caption=caption, figure=figure, data=data, summary=summary)]


def _shown_classes(support: np.ndarray, max_classes: int) -> np.ndarray:
    if len(support) <= max_classes:
        return np.arange(len(support))
    return np.sort(np.argsort(-support, kind="stable")[:max_classes])


def _confusion_figure(
    normalized: np.ndarray, per_class: np.ndarray, support: np.ndarray, names: list[str], accuracy: float
) -> Figure:
    size = len(names)
    side = min(9.0, 2.5 + 0.35 * size)
    figure = new_figure(side + 3.5, side)
    grid = figure.add_gridspec(1, 2, width_ratios=[side, 3.0])
    matrix_axes, bar_axes = figure.add_subplot(grid[0]), figure.add_subplot(grid[1])
    shown = matrix_axes.imshow(normalized, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    ticks = np.arange(size)
    fontsize = 8 if size <= MAX_ANNOTATED_CLASSES else 6
    matrix_axes.set_xticks(ticks, names, rotation=90, fontsize=fontsize)
    matrix_axes.set_yticks(ticks, names, fontsize=fontsize)
    matrix_axes.set_xlabel("predicted class")
    matrix_axes.set_ylabel("true class")
    matrix_axes.set_title(f"accuracy {accuracy:.1%}", fontsize=10)
    if size <= MAX_ANNOTATED_CLASSES:
        for (row, column), value in np.ndenumerate(normalized):
            if np.isfinite(value) and value > 0:
                matrix_axes.text(
                    column,
                    row,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if value > 0.5 else "black",
                )
    figure.colorbar(shown, ax=matrix_axes, shrink=0.7, label="fraction of the true class")
    bar_axes.barh(ticks, np.nan_to_num(per_class), color="tab:blue")
    bar_axes.set_yticks(ticks, [f"{name} (n={count})" for name, count in zip(names, support)], fontsize=fontsize)
    bar_axes.invert_yaxis()
    bar_axes.set_xlim(0, 1)
    bar_axes.set_xlabel("per-class accuracy")
    bar_axes.axvline(accuracy, color="black", linestyle="--", linewidth=1)
    return figure


@contextlib.contextmanager
def recording_calls(model: nn.Module) -> Iterator[list[tuple[str, nn.Module, Any]]]:
    """Record ``(name, module, output)`` for every call of a leaf module or a module with its own parameters.

    Every call is recorded, so a module used twice (a shared ReLU) gets two rows, as in
    torchsummary. Hooks are removed on exit.
    """
    check_hookable(model)
    leaves = {name for name, _ in leaf_layers(model)}
    targets = [
        (name, module)
        for name, module in model.named_modules()
        if name in leaves or (name and any(True for _ in module.parameters(recurse=False)))
    ]
    calls: list[tuple[str, nn.Module, Any]] = []

    def hook_for(name: str):  # noqa: ANN202 - a closure per module name
        def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
            calls.append((name, module, output))

        return hook

    handles = [module.register_forward_hook(hook_for(name)) for name, module in targets]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def output_description(output: Any, module: nn.Module | None = None) -> tuple[str, int]:
    """``"[-1, 64, 16, 16]"``-style shape text (the batch as -1) and the number of values per sample.

    The batch is dimension 0, except in a recurrent layer's outputs: its sequence output is
    (T, N, H) unless ``batch_first``, and its final states ``h_n`` (and an LSTM's ``c_n``) are
    always (num_layers x directions, N, H), shown as ``[1, -1, 6]``. A nested tuple is shown in
    parentheses, e.g. an LSTM's ``[-1, 12, 6], ([1, -1, 6], [1, -1, 6])``.
    """
    axes = _recurrent_batch_axes(module, output) if isinstance(module, torch.nn.RNNBase) else None
    if isinstance(output, (tuple, list)):
        parts = [_described(item, 0 if axes is None else axes[index]) for index, item in enumerate(output)]
        return ", ".join(text for text, _ in parts), sum(count for _, count in parts)
    return _described(output, 0)


def _recurrent_batch_axes(module: nn.Module, output: Any) -> tuple[int | None, int | None] | None:
    """Where the batch is in a recurrent layer's (sequence, state): None for an unbatched call."""
    if not isinstance(output, tuple) or len(output) != 2 or not isinstance(output[0], torch.Tensor):
        return None
    if output[0].dim() != 3:
        return None, None  # an unbatched (T, H) call has no batch dimension anywhere
    return (0 if module.batch_first else 1), 1


def _described(output: Any, batch_axis: int | None) -> tuple[str, int]:
    """Shape text with dimension ``batch_axis`` as -1 (none when ``None``), and the values per sample."""
    if isinstance(output, torch.Tensor):
        if not output.dim():
            return "[]", 1
        shape = list(output.shape)
        if batch_axis is not None and batch_axis < len(shape):
            shape[batch_axis] = -1
        per_sample = math.prod(size for size in shape if size != -1) if batch_axis is not None else output.numel()
        return str(shape), per_sample
    if isinstance(output, (tuple, list)):
        parts = [_described(item, batch_axis) for item in output]
        return "(" + ", ".join(text for text, _ in parts) + ")", sum(count for _, count in parts)
    return "-", 0


def layer_rows(calls: list[tuple[str, nn.Module, Any]]) -> tuple[list[dict], int]:
    """Table rows, one per call, with parameters counted on a module's first call only.

    Returns the rows and the number of output values per sample over all calls.
    """
    rows, seen, values = [], {}, 0
    for name, module, output in calls:
        seen[name] = seen.get(name, 0) + 1
        shape, count = output_description(output, module)
        values += count
        first = seen[name] == 1
        own = list(module.parameters(recurse=False)) if first else []
        rows.append(
            {
                "layer": name if first else f"{name} (call {seen[name]})",
                "type": type(module).__name__,
                "output shape": shape,
                "trainable params": sum(p.numel() for p in own if p.requires_grad),
                "frozen params": sum(p.numel() for p in own if not p.requires_grad),
            }
        )
    return rows, values


def size_totals(model: nn.Module, inputs: torch.Tensor, values_per_sample: int) -> dict[str, float]:
    """Parameter counts and torchsummary's size estimate (MB, for one input; activations x2 for gradients)."""
    parameters = list(model.parameters())
    trainable = sum(p.numel() for p in parameters if p.requires_grad)
    total = sum(p.numel() for p in parameters)
    element = inputs.element_size()
    input_mb = math.prod(inputs.shape[1:]) * element / MEGABYTE
    activations_mb = 2 * values_per_sample * element / MEGABYTE
    params_mb = sum(p.numel() * p.element_size() for p in parameters) / MEGABYTE
    return {
        "total_params": total,
        "trainable_params": trainable,
        "frozen_params": total - trainable,
        "input_size_mb": input_mb,
        "forward_backward_size_mb": activations_mb,
        "params_size_mb": params_mb,
        "estimated_total_size_mb": input_mb + activations_mb + params_mb,
    }


_TOTAL_LABELS = {
    "total_params": "Total params",
    "trainable_params": "Trainable params",
    "frozen_params": "Non-trainable (frozen) params",
    "input_size_mb": "Input size (MB)",
    "forward_backward_size_mb": "Forward/backward pass size (MB)",
    "params_size_mb": "Params size (MB)",
    "estimated_total_size_mb": "Estimated total size (MB)",
}


@analyzer(needs=Needs.FORWARD)
def model_summary(subject: Subject, /, *, batch_size: int = 2, max_rows: int = MAX_ROWS) -> list[Artifact]:
    """A layer table like torchsummary: output shapes, trainable and frozen parameter counts, sizes.

    One row per layer call, in the order the forward pass runs them (a layer used twice
    appears twice, its parameters counted once). Output shapes show the batch as -1, where the
    layer puts it (a recurrent layer's final states have it second). The
    size estimate is for one input: input, layer outputs doubled for their gradients, and
    parameters, in MB.
    """
    inputs = subject.probe_inputs[:batch_size].to(subject.device)
    with recording_calls(subject.model) as calls, torch.no_grad():
        subject.model(inputs)
    rows, values = layer_rows(calls)
    totals = size_totals(subject.model, inputs, values)
    counted = sum(row["trainable params"] + row["frozen params"] for row in rows)
    shape = list(subject.probe_inputs.shape[1:])
    caption = (
        f"{len(rows)} layer calls for an input of shape {shape}; {totals['total_params']:,} parameters "
        f"({totals['frozen_params']:,} frozen)."
    )
    caption += _summary_notes(subject, calls, totals["total_params"] - counted)
    if len(rows) > max_rows:
        caption += f" Only the first {max_rows} of {len(rows)} rows are listed."
    table_rows = [
        {"quantity": _TOTAL_LABELS[key], "value": value if isinstance(value, int) else float(f"{value:.4g}")}
        for key, value in totals.items()
    ]
    return [
        Artifact(
            name="layers",
            caption=caption,
            table=rows[:max_rows],
            data={"rows": rows},
            summary={"num_rows": len(rows), "params_in_rows": counted},
        ),
        Artifact(
            name="totals",
            caption="Parameter totals and the estimated memory for one input, as torchsummary reports them.",
            table=table_rows,
            data=totals,
            summary=totals,
        ),
    ]


def _summary_notes(subject: Subject, calls: list[tuple[str, nn.Module, Any]], uncalled_params: int) -> str:
    """Caption sentences for what the table cannot show: uncalled modules, recurrent states, a guessed shape."""
    notes = ""
    if uncalled_params:
        notes += f" {uncalled_params:,} parameters belong to modules the forward pass did not call."
    if any(isinstance(module, torch.nn.RNNBase) for _, module, _ in calls):
        notes += (
            " A recurrent layer's row shows its output, then its final states (h_n, c_n for an LSTM) in "
            "parentheses, (num_layers x directions, batch, hidden): -1 marks the batch wherever it is."
        )
    guess = subject.metadata.get("input_shape_guess")
    if guess:
        notes += f" Note: {guess}; if it is wrong, pass --input-shape."
    return notes
