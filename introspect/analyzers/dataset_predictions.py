"""What the model gets right and wrong over a whole dataset split (``--data``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import
from introspect.analyzers._dataset import class_names, fetch_inputs, strip_rows_figure, thumbnails
from introspect.artifacts import Artifact
from introspect.dataset.passes import ConfusionReducer
from introspect.errors import SkipAnalyzer
from introspect.model_output import logits_of
from introspect.needs import Needs
from introspect.plotting import new_figure, short_label
from introspect.spec import analyzer

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure

    from introspect.dataset.run import Reduced
    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

POSITION = 12
MAX_CLASSES = 30
MAX_ANNOTATED = 12


def output_width(subject: Subject) -> int:
    """How many classes the model scores: its output width on one probe input."""
    with torch.no_grad():
        output = logits_of(subject.model(subject.probe_inputs[:1].to(subject.device)))
    return int(output.shape[1]) if output.dim() == 2 else 0


def confusion_reducer(subject: Subject, *, mistakes_per_class: int = 6) -> ConfusionReducer:
    """The confusion counts and each class's most confident mistakes, kept over the pass."""
    width = output_width(subject) if subject.probe_inputs is not None else len(subject.task.class_names)
    if width < 2:
        raise SkipAnalyzer("the model does not give one score per class")
    return ConfusionReducer(num_classes=width, mistakes_per_class=mistakes_per_class)


def precision_recall(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class: precision (of the predictions of the class, the right ones) and recall; NaN where undefined."""
    correct = np.diag(counts).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return correct / counts.sum(axis=0), correct / counts.sum(axis=1)


@analyzer(needs=Needs.DATASET | Needs.CLASSIFICATION, reducer=confusion_reducer)
def dataset_confusion(
    subject: Subject, reduced: Reduced, /, *, mistakes_per_class: int = 6, max_classes: int = MAX_CLASSES
) -> list[Artifact]:
    """The confusion matrix with per-class precision and recall over the whole split, and the most confident mistakes.

    Row i of the matrix shows where the inputs of true class i went (row-normalized: a strong
    diagonal is good). Precision is the share of a class's predictions that are right, recall the
    share of its inputs that are found. The strips show, per true class, the mistakes the model
    was most sure of: often mislabelled data or a real ambiguity.
    """
    state: ConfusionReducer = reduced.state
    counts = state.counts.counts
    if counts.sum() == 0:
        raise SkipAnalyzer("the dataset has no labels, so there is nothing to compare the predictions with")
    names = class_names(subject, len(counts))
    precision, recall = precision_recall(counts)
    accuracy = float(np.trace(counts) / counts.sum())
    support = counts.sum(axis=1)
    shown = np.sort(np.argsort(-support, kind="stable")[:max_classes])
    figure = _matrix_figure(counts[np.ix_(shown, shown)], [short_label(names[i], 24) for i in shown], accuracy)
    caption = f"{reduced.describe()} Accuracy {accuracy:.1%}; row-normalized confusion matrix, cell labels are counts."
    if state.unlabelled:
        caption += f" {state.unlabelled} inputs without a label are not counted."
    if len(shown) < len(counts):
        caption += f" Shown: the {len(shown)} of {len(counts)} classes with the most inputs; the data has all."
    table = [
        {"class": name, "inputs": int(count), "precision": _rounded(right), "recall": _rounded(found)}
        for name, count, right, found in zip(names, support, precision, recall, strict=True)
    ]
    data = {"counts": counts, "precision": precision, "recall": recall, "class_names": names}
    summary = {"accuracy": accuracy, "num_inputs": int(counts.sum()), "num_classes": len(counts)}
    artifacts = [
        Artifact(name="dataset-confusion", caption=caption, figure=figure, data=data, summary=summary),
        Artifact(name="dataset-precision-recall", caption="Precision and recall per class.", table=table),
    ]
    mistakes = _mistakes_artifact(subject, state, names, shown)
    return artifacts + ([mistakes] if mistakes is not None else [])


def _rounded(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 4)


def _matrix_figure(counts: np.ndarray, names: list[str], accuracy: float) -> Figure:
    size = len(names)
    side = min(9.0, 2.5 + 0.4 * size)
    figure = new_figure(side + 1.5, side)
    axes = figure.add_subplot(1, 1, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalized = counts / counts.sum(axis=1, keepdims=True)
    shown = axes.imshow(np.nan_to_num(normalized), cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    ticks = np.arange(size)
    axes.set_xticks(ticks, names, rotation=90, fontsize=8 if size <= MAX_ANNOTATED else 6)
    axes.set_yticks(ticks, names, fontsize=8 if size <= MAX_ANNOTATED else 6)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(f"accuracy {accuracy:.1%} over {int(counts.sum())} inputs", fontsize=10)
    if size <= MAX_ANNOTATED:
        for (row, column), count in np.ndenumerate(counts):
            if count:
                colour = "white" if normalized[row, column] > 0.5 else "black"
                axes.text(column, row, str(count), ha="center", va="center", fontsize=7, color=colour)
    figure.colorbar(shown, ax=axes, shrink=0.7, label="fraction of the true class")
    return figure


def _mistakes_artifact(
    subject: Subject, state: ConfusionReducer, names: list[str], shown: np.ndarray
) -> Artifact | None:
    """Thumbnails of each class's most confident mistakes, with the class the model gave them."""
    classes = [int(i) for i in shown if (state.mistakes.indices[i] >= 0).any()][:MAX_ANNOTATED]
    indices = [int(index) for i in classes for index in state.mistakes.indices[i] if index >= 0]
    images = thumbnails(subject, indices)
    if images is None:
        return None
    with torch.no_grad():
        predicted = logits_of(subject.model(fetch_inputs(subject, indices).to(subject.device))).argmax(dim=1)
    rows, start = [], 0
    for i in classes:
        count = int((state.mistakes.indices[i] >= 0).sum())
        confidence = state.mistakes.scores[i][:count]
        chosen = predicted[start : start + count].tolist()
        captions = [f"{short_label(names[p], 10)} {c:.2f}" for p, c in zip(chosen, confidence, strict=True)]
        rows.append((short_label(names[i], 14), images[start : start + count], captions))
        start += count
    figure = strip_rows_figure(rows, "most confident mistakes per true class (predicted class, its probability)")
    total = int(state.counts.counts.sum() - np.trace(state.counts.counts))
    caption = (
        f"Per true class (left), the inputs it got wrong with the highest confidence; under each, the class the "
        f"model chose and its softmax probability. {len(indices)} of {total} mistakes shown."
    )
    data = {"indices": np.asarray(indices), "predicted": predicted.numpy()}
    return Artifact(name="dataset-mistakes", caption=caption, figure=figure, data=data)
