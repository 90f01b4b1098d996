"""The Subject: everything an analyzer may look at, gathered once from a checkpoint or a model."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from introspect import validate
from introspect._lazy import lazy_import
from introspect.needs import Needs

if TYPE_CHECKING:
    import torch
    from torch import nn

    from introspect.dataset.plan import DatasetPlan
else:
    torch = lazy_import("torch")

_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


@dataclasses.dataclass(frozen=True)
class Task:
    """What the network does and what its inputs look like.

    Attributes:
        kind: ``"classification"``, ``"regression"`` or ``"unknown"``.
        input_shape: the shape of one input as the model takes it, without the batch dimension.
        image_shape: how one input is shown as an image, (C, H, W), when it is one; a dense
            network on MNIST takes (784,) but its inputs are shown as (1, 28, 28).
        class_names: one name per output for classification.
        normalization: ``{"mean": [...], "std": [...]}`` applied to raw inputs, if any.
        dataset: the name of the dataset, for the gallery header.
        domain: for scalar inputs, the (low, high) range of x the task covers.
    """

    kind: str = "unknown"
    input_shape: tuple[int, ...] | None = None
    image_shape: tuple[int, int, int] | None = None
    class_names: tuple[str, ...] = ()
    normalization: Mapping[str, Sequence[float]] | None = None
    dataset: str = ""
    domain: tuple[float, float] | None = None

    @property
    def is_image(self) -> bool:
        """Whether inputs can be shown as images."""
        return self.image_shape is not None

    @property
    def is_scalar(self) -> bool:
        """Whether the input is a single number (a 1-D function of x)."""
        return self.input_shape is not None and tuple(self.input_shape) == (1,)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, as stored in a checkpoint and a manifest."""
        return {
            "kind": self.kind,
            "input_shape": list(self.input_shape) if self.input_shape else None,
            "image_shape": list(self.image_shape) if self.image_shape else None,
            "class_names": list(self.class_names),
            "normalization": dict(self.normalization) if self.normalization else None,
            "dataset": self.dataset,
            "domain": list(self.domain) if self.domain else None,
        }

    @classmethod
    def from_dict(cls, values: Any) -> Task:
        """Inverse of :meth:`to_dict`; missing keys take their defaults.

        Raises:
            FieldError: ``values`` is not a dict, or a field is of the wrong type or out of range
                (the message names it, e.g. ``task.image_shape``).
        """
        values = validate.mapping_or_empty(values, "task")
        image_shape = validate.shape_or_none(values.get("image_shape"), "task.image_shape", length=3)
        return cls(
            kind=validate.task_kind(values.get("kind")),
            input_shape=validate.shape_or_none(values.get("input_shape"), "task.input_shape"),
            image_shape=image_shape,  # type: ignore[arg-type]
            class_names=validate.class_names(values.get("class_names")),
            normalization=validate.normalization(values.get("normalization")),
            dataset=validate.dataset_name(values.get("dataset")),
            domain=validate.domain(values.get("domain")),
        )


@dataclasses.dataclass(frozen=True)
class Subject:
    """What analyzers receive.

    Attributes:
        weights: named parameter tensors (always present, on the CPU).
        model: the rebuilt network, or ``None`` when only weights could be recovered.
        task: what the network does and what its inputs look like.
        probe_inputs: a small fixed batch of inputs, or ``None``.
        probe_labels: targets for ``probe_inputs``, or ``None``.
        probe_is_synthetic: the probe was generated (random), not taken from data.
        history: per-epoch training history, lists keyed by metric name.
        snapshots: values recorded during training (``epochs``, ``inputs``, ``outputs``).
        initial_weights: named tensors as they were before training (for drift figures).
        metadata: architecture, hyperparameters, metrics, source path and sha256.
        differentiable: whether gradients can flow through ``model``.
        model_note: why there is no model, or how it was obtained.
        seed: the seed for every random choice an analyzer makes.
        device: where the model runs.
        data: the dataset the dataset analyzers stream through the model
            (:class:`~introspect.dataset.plan.DatasetPlan`), or ``None``.
        drift: each layer's drift over training, as ``own_format.drift_of`` reads it: ``epochs``,
            ``layers``, and (epochs x layers) arrays ``cka_to_final`` and ``relative_change``.
    """

    weights: Mapping[str, torch.Tensor]
    model: nn.Module | None = None
    task: Task = Task()
    probe_inputs: torch.Tensor | None = None
    probe_labels: torch.Tensor | None = None
    probe_is_synthetic: bool = False
    history: Mapping[str, Sequence[Any]] | None = None
    snapshots: Mapping[str, Any] | None = None
    initial_weights: Mapping[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    differentiable: bool = True
    model_note: str = ""
    seed: int = 0
    device: str = "cpu"
    data: DatasetPlan | None = None
    drift: Mapping[str, Any] | None = None

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        inputs: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        *,
        task: Task | None = None,
        seed: int = 0,
        **extra: Any,
    ) -> Subject:
        """A subject for a live module and a batch of inputs, with no checkpoint involved."""
        if task is None:
            task = infer_task(model, inputs, labels)
        return cls(
            weights=parameters_of(model),
            model=model,
            task=task,
            probe_inputs=inputs,
            probe_labels=labels,
            seed=seed,
            **extra,
        )

    def available(self) -> Needs:
        """The needs this subject meets."""
        offered = Needs.WEIGHTS
        if self.model is not None and self.probe_inputs is not None:
            offered |= Needs.FORWARD
            if self.differentiable and self.probe_inputs.is_floating_point():
                offered |= Needs.GRADIENTS
        if self.probe_labels is not None:
            offered |= Needs.LABELS
        if self.task.is_image:
            offered |= Needs.IMAGE_INPUT
        if self.task.is_scalar:
            offered |= Needs.SCALAR_INPUT
        if self.data is not None and self.model is not None:
            offered |= Needs.DATASET
        if self.task.kind == "classification":
            offered |= Needs.CLASSIFICATION
        if self.history:
            offered |= Needs.HISTORY
        if self.snapshots:
            offered |= Needs.SNAPSHOTS
        if self.drift:
            offered |= Needs.DRIFT
        return offered

    def missing_reason(self, needs: Needs) -> str:
        """One sentence saying why ``needs`` are not met, or ``""`` when they are."""
        missing = needs & ~self.available()
        reasons = [_MISSING_REASONS[flag](self) for flag in Needs if flag and flag in missing]
        return "; ".join(dict.fromkeys(reasons))  # two needs unmet for one cause are said once


def _no_model_reason(subject: Subject) -> str:
    if subject.model is None:
        return (
            subject.model_note
            or "the checkpoint holds only weights, so no forward pass can run (pass --arch MODULE:CALLABLE to "
            "rebuild the model)"
        )
    return "there are no probe inputs (pass --probe FILE or --input-shape)"


def _no_gradient_reason(subject: Subject) -> str:
    if subject.model is None or subject.probe_inputs is None:
        return _no_model_reason(subject)
    if not subject.probe_inputs.is_floating_point():
        return "the inputs are token ids (integers), which have no gradient"
    return "the model does not support gradients"


_MISSING_REASONS = {
    Needs.WEIGHTS: lambda s: "the checkpoint holds no weights",
    Needs.FORWARD: _no_model_reason,
    Needs.GRADIENTS: lambda s: _no_gradient_reason(s),
    Needs.LABELS: lambda s: "the probe inputs have no labels",
    Needs.IMAGE_INPUT: lambda s: "the inputs are not images",
    Needs.SCALAR_INPUT: lambda s: "the input is not a single number",
    Needs.CLASSIFICATION: lambda s: "the task is not classification",
    Needs.HISTORY: lambda s: "the checkpoint has no training history",
    Needs.SNAPSHOTS: lambda s: "the checkpoint has no snapshots over epochs",
    Needs.DRIFT: lambda s: "the checkpoint has no layer drift over epochs (introspect's trainers record it)",
    Needs.DATASET: lambda s: _no_model_reason(s) if s.model is None else "no dataset was given (pass --data SOURCE)",
}


def parameters_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached CPU copies of a model's parameters, by name."""
    return {name: parameter.detach().cpu() for name, parameter in model.named_parameters()}


def weights_from_state_dict(state_dict: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The learnable-looking tensors of a state_dict: floating point, not normalization statistics."""
    return {
        name: tensor
        for name, tensor in state_dict.items()
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not name.endswith(_BUFFER_SUFFIXES)
    }


def infer_task(model: nn.Module, inputs: torch.Tensor | None, labels: torch.Tensor | None = None) -> Task:
    """A best guess at the task from the inputs' shape and the labels' dtype."""
    input_shape = tuple(inputs.shape[1:]) if inputs is not None else None
    image_shape = input_shape if input_shape is not None and len(input_shape) == 3 else None
    kind = "unknown"
    if labels is not None:
        kind = "regression" if labels.is_floating_point() else "classification"
    class_names: tuple[str, ...] = ()
    if kind == "classification":
        num_classes = int(labels.max()) + 1 if labels is not None and labels.numel() else 0
        class_names = tuple(str(index) for index in range(num_classes))
    return Task(kind=kind, input_shape=input_shape, image_shape=image_shape, class_names=class_names)  # type: ignore[arg-type]
