"""Tiny models and subjects, and ``check_analyzer``: a conformance check for analyzer authors.

Run ``check_analyzer(my_analyzer)`` in your plugin's tests; introspect's own suite runs it over
every registered analyzer.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from introspect._lazy import lazy_import
from introspect.artifacts import Artifact
from introspect.runner import run_one
from introspect.spec import AnalyzerSpec, spec_of
from introspect.subject import Subject, Task

if TYPE_CHECKING:
    import torch
    from torch import nn
else:
    torch = lazy_import("torch")


def scalar_regression_subject(seed: int = 0) -> Subject:
    """A 1-16-16-1 sigmoid MLP on x in [-5, 5], with history and output snapshots."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(1, 16), torch.nn.Sigmoid(), torch.nn.Linear(16, 16), torch.nn.Sigmoid(), torch.nn.Linear(16, 1)
    )
    inputs = torch.linspace(-5, 5, 64).unsqueeze(1)
    labels = torch.sin(inputs)
    epochs = [1, 2, 3]
    with torch.no_grad():
        outputs = torch.stack([model(inputs).squeeze(1) * scale for scale in (0.3, 0.6, 1.0)])
    return Subject.from_model(
        model,
        inputs,
        labels,
        task=Task(kind="regression", input_shape=(1,), domain=(-5.0, 5.0), dataset="synthetic"),
        seed=seed,
        history=_history(3, classification=False),
        snapshots={"epochs": epochs, "inputs": inputs.squeeze(1), "outputs": outputs},
    )


def dense_image_subject(seed: int = 0, num_classes: int = 4) -> Subject:
    """A 64-12-8-classes tanh MLP whose inputs are 1x8x8 images, shown flattened to the model."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(64, 12),
        torch.nn.Tanh(),
        torch.nn.Linear(12, 8),
        torch.nn.Tanh(),
        torch.nn.Linear(8, num_classes),
    )
    inputs = torch.rand(2 * num_classes, 64)
    labels = torch.arange(2 * num_classes) % num_classes
    task = Task(
        kind="classification",
        input_shape=(64,),
        image_shape=(1, 8, 8),
        class_names=tuple(f"class {index}" for index in range(num_classes)),
        dataset="random",
    )
    return Subject.from_model(
        model, inputs, labels, task=task, seed=seed, history=_history(4), drift=_drift(("1", "3", "5"))
    )


def _drift(layers: tuple[str, ...]) -> dict:
    """Layer drift as introspect's trainers record it: CKA to the final model and relative weight change."""
    return {
        "epochs": (0, 2, 4),
        "layers": layers,
        "cka_to_final": np.array([[0.8, 0.5, 0.3], [0.95, 0.8, 0.7], [1.0, 1.0, 1.0]]),
        "relative_change": np.array([[0.0, 0.0, 0.0], [0.2, 0.3, 0.25], [0.3, 0.45, 0.4]]),
    }


def conv_image_subject(seed: int = 0, channels: int = 1, num_classes: int = 3) -> Subject:
    """A two-conv-layer CNN on ``channels``x12x12 inputs with BatchNorm and ReLU."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(channels, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 6, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(6 * 6 * 6, num_classes),
    )
    inputs = torch.rand(2 * num_classes, channels, 12, 12)
    labels = torch.arange(2 * num_classes) % num_classes
    task = Task(
        kind="classification",
        input_shape=(channels, 12, 12),
        image_shape=(channels, 12, 12),
        class_names=tuple(f"class {index}" for index in range(num_classes)),
        dataset="random",
    )
    return Subject.from_model(model, inputs, labels, task=task, seed=seed, history=_history(3))


class TinyTextClassifier(torch.nn.Module):
    """Token ids → an embedding, one self-attention layer with a residual, the mean over tokens, a linear head."""

    def __init__(self, vocabulary: int = 20, width: int = 8, num_classes: int = 3) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(vocabulary, width)
        self.attention = torch.nn.MultiheadAttention(width, num_heads=2, batch_first=True)
        self.head = torch.nn.Linear(width, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        tokens = self.embedding(ids)
        attended, _ = self.attention(tokens, tokens, tokens)
        return self.head((tokens + attended).mean(dim=1))


def text_subject(seed: int = 0, num_classes: int = 3) -> Subject:
    """:class:`TinyTextClassifier` on 6 sequences of 10 token ids from a vocabulary of 20."""
    torch.manual_seed(seed)
    model = TinyTextClassifier(num_classes=num_classes)
    inputs = torch.randint(0, 20, (2 * num_classes, 10), generator=torch.Generator().manual_seed(seed))
    labels = torch.arange(2 * num_classes) % num_classes
    task = Task(
        kind="classification",
        input_shape=(10,),
        class_names=tuple(f"class {index}" for index in range(num_classes)),
        dataset="random token ids",
    )
    return Subject.from_model(model, inputs, labels, task=task, seed=seed)


def weights_only_subject(seed: int = 0) -> Subject:
    """Only the weights of :func:`conv_image_subject`: no model, no probe."""
    full = conv_image_subject(seed)
    return Subject(weights=dict(full.weights), model_note="weights only (test subject)")


def with_test_data(subject: Subject, size: int = 40, seed: int = 0) -> Subject:
    """``subject`` with a small labelled dataset of random inputs of its shape, for the dataset analyzers.

    The inputs are taken as the model takes them (no normalization is added); classification
    labels cycle through the classes, regression targets are ``sin(x)``.
    """
    from introspect.dataset.plan import DatasetPlan
    from introspect.dataset.sources import DataSource

    generator = torch.Generator().manual_seed(seed + 1)
    inputs = torch.rand(size, *subject.task.input_shape, generator=generator)
    if subject.task.kind == "classification":
        labels = torch.arange(size) % len(subject.task.class_names)
    else:
        inputs = inputs * 10 - 5
        labels = torch.sin(inputs).reshape(size, -1)[:, 0]
    dataset = torch.utils.data.TensorDataset(inputs, labels)
    source = DataSource(name="random test data", split="", dataset=dataset, pixels=False)
    return dataclasses.replace(subject, data=DatasetPlan(source, batch_size=16))


def all_test_subjects(seed: int = 0) -> dict[str, Subject]:
    """Every tiny subject by name: scalar regression, dense image, grayscale and RGB conv, text, weights only.

    The regression, dense and RGB subjects carry a small dataset (:func:`with_test_data`).
    """
    return {
        "scalar_regression": with_test_data(scalar_regression_subject(seed), seed=seed),
        "dense_image": with_test_data(dense_image_subject(seed), seed=seed),
        "conv_gray": conv_image_subject(seed, channels=1),
        "conv_rgb": with_test_data(conv_image_subject(seed, channels=3), seed=seed),
        "text": text_subject(seed),
        "weights_only": weights_only_subject(seed),
    }


def _history(epochs: int, classification: bool = True) -> dict[str, Any]:
    history: dict[str, Any] = {
        "epoch": list(range(1, epochs + 1)),
        "train_loss": [1.0 / (e + 1) for e in range(epochs)],
        "val_loss": [1.2 / (e + 1) for e in range(epochs)],
        "seconds_per_batch": [0.01] * epochs,
        "best_epoch": epochs,
    }
    if classification:
        history["train_accuracy"] = [0.5 + 0.1 * e for e in range(epochs)]
        history["val_accuracy"] = [0.45 + 0.1 * e for e in range(epochs)]
    return history


def check_analyzer(
    target: AnalyzerSpec | Callable[..., Any], subjects: dict[str, Subject] | None = None
) -> dict[str, str]:
    """Check that an analyzer behaves: raises ``AssertionError`` naming the first problem found.

    For every tiny subject it checks that the analyzer is skipped when its needs are not met,
    and otherwise: returns a list of :class:`Artifact`, opens no pyplot figure, leaves the
    model's modes, hooks, ``requires_grad`` flags and ``.grad`` as they were, and gives the
    same numbers when run twice with the same seed.

    Returns:
        Subject name → the status the analyzer had on it (``ok`` or ``skipped``).
    """
    spec = target if isinstance(target, AnalyzerSpec) else spec_of(target)
    assert spec is not None, f"{target!r} is not decorated with @introspect.analyzer"
    statuses = {}
    for name, subject in (subjects or all_test_subjects()).items():
        statuses[name] = _check_on_subject(spec, name, subject)
    return statuses


def _check_on_subject(spec: AnalyzerSpec, name: str, subject: Subject) -> str:
    where = f"{spec.name} on {name}"
    meets = not subject.missing_reason(spec.needs)
    before = _model_state(subject.model)
    figures_before = _pyplot_figure_count()
    first = run_one(subject, spec)
    assert first.status != "failed", f"{where} failed: {first.reason}\n{first.traceback}"
    if not meets:
        assert first.status == "skipped", f"{where} ran although the subject lacks {spec.needs}"
        return first.status
    assert _pyplot_figure_count() == figures_before, f"{where} left pyplot figures open (build Figure() directly)"
    assert _model_state(subject.model) == before, f"{where} changed the model's mode, hooks or gradients"
    if first.status == "ok":
        assert all(isinstance(item, Artifact) for item in first.artifacts), f"{where} returned a non-Artifact"
        second = run_one(subject, spec)
        assert _numbers(first.artifacts) == _numbers(second.artifacts), (
            f"{where} gave different numbers for the same seed"
        )
        for artifact in (*first.artifacts, *second.artifacts):
            if artifact.figure is not None:
                artifact.figure.clear()
    gc.collect()
    return first.status


def _model_state(model: nn.Module | None) -> Any:
    if model is None:
        return None
    return [
        (
            name,
            module.training,
            len(module._forward_hooks),
            len(module._forward_pre_hooks),
            len(module._backward_hooks),
            tuple((p.requires_grad, p.grad is None) for p in module.parameters(recurse=False)),
        )
        for name, module in model.named_modules()
    ]


def _pyplot_figure_count() -> int:
    import sys

    pyplot = sys.modules.get("matplotlib.pyplot")
    return len(pyplot.get_fignums()) if pyplot is not None else 0


def _numbers(artifacts: Sequence[Artifact]) -> list[Any]:
    """A comparable digest of every artifact's numbers (arrays by value, with NaN equal to NaN)."""
    return [(artifact.name, _digest(artifact.data), _digest(artifact.summary)) for artifact in artifacts]


def _digest(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple((key, _digest(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(_digest(item) for item in value)
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return (value.shape, np.nan_to_num(value.astype(np.float64), nan=1e300).round(6).tobytes())
    if isinstance(value, float):
        return round(value, 6) if np.isfinite(value) else str(value)
    return value


def build_test_network(config: dict[str, Any]) -> nn.Module:
    """A small dense network built from ``config`` (``sizes``, ``activation``): a test architecture.

    Useful for plugin authors and tests that need an architecture factory without training code,
    for example registered under ``introspect.architectures``.
    """
    sizes = list(config.get("sizes", (4, 8, 3)))
    activation = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid}[
        config.get("activation", "tanh")
    ]
    layers: list[nn.Module] = []
    for index, (width_in, width_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(width_in, width_out))
        if index < len(sizes) - 2:
            layers.append(activation())
    return torch.nn.Sequential(*layers)
