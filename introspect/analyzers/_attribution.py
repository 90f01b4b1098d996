"""Shared by the attribution analyzers: probe choice, batched captum calls, a work cap (maps: _attribution_maps).

Attribution is run once over the chosen probe images as one batch; Integrated Gradients and
SmoothGrad expand that batch by their steps or samples, and captum's ``internal_batch_size`` /
``nt_samples_batch_size`` keep each pass at most :data:`INTERNAL_BATCH_SIZE` rows (fewer for
large inputs) so memory stays bounded.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from introspect._lazy import lazy_import
from introspect.capture import evaluation_mode, leaf_layers, recording
from introspect.errors import SkipAnalyzer
from introspect.plotting import short_label

if TYPE_CHECKING:
    import torch
    from torch import nn

    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

INTERNAL_BATCH_SIZE = 64
MAX_BATCH_ELEMENTS = 4_000_000
"""Input values per internal pass (64 RGB 144x144 images), whatever ``internal_batch_size`` says."""
WORK_BUDGET_MACS = 5e10
"""Multiply-accumulates one analyzer may spend on the CPU (a few seconds on two cores); a GPU gets 20x."""
SMOOTHGRAD_NOISE = 0.15


def in_eval_mode(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run an analyzer with the model in eval mode, restored after, also when called without the runner.

    Attribution in training mode would mix the probe images through BatchNorm's batch statistics.
    """

    @functools.wraps(func)
    def wrapper(subject: Subject, /, **options: Any) -> Any:
        if subject.model is None:
            return func(subject, **options)
        with evaluation_mode(subject.model):
            return func(subject, **options)

    return wrapper


@dataclasses.dataclass(frozen=True)
class ProbeSelection:
    """The probe inputs chosen for attribution.

    Attributes:
        indices: positions in ``subject.probe_inputs``.
        inputs: those inputs as the model takes them, on the model's device.
        targets: the output index attributed, per input; ``None`` for a model with one output.
        titles: a short label per input (target class, and the prediction when it differs).
        note: what was left out, as a phrase for captions ("" when nothing was).
    """

    indices: np.ndarray
    inputs: torch.Tensor
    targets: torch.Tensor | None
    titles: list[str]
    note: str = ""

    def select(self, outputs: torch.Tensor) -> torch.Tensor:
        """Each row's target score from a batch of outputs."""
        flat = outputs.reshape(outputs.shape[0], -1)
        if self.targets is None:
            return flat[:, 0]
        return flat.gather(1, self.targets.reshape(-1, 1).to(flat.device))[:, 0]

    def target_array(self) -> np.ndarray:
        """Targets as integers (-1 where the model has a single output)."""
        if self.targets is None:
            return np.full(len(self.indices), -1)
        return self.targets.cpu().numpy()


def choose_probe(
    subject: Subject, max_per_class: int, max_images: int, forward_passes: float, macs: float | None = None
) -> ProbeSelection:
    """Up to ``max_per_class`` probe inputs per target class, ``max_images`` in all, within the work cap.

    Classes take turns, so a cap smaller than the number of classes still shows as many
    classes as it can. ``forward_passes`` is what one input costs in forward-pass equivalents
    (a gradient pass counts about 3); big models get fewer images (at least one). Only the
    chosen inputs are run, unless there are no labels to choose by.
    """
    model, all_inputs = subject.model, subject.probe_inputs.to(subject.device)
    labels = _class_labels(subject)
    pool_outputs = None
    if labels is None:
        # Without labels the classes come from predictions; a bounded pool keeps that forward pass cheap.
        pool_outputs = _forward(model, all_inputs[: min(len(all_inputs), 4 * max_images)])
    keys = labels.cpu().numpy() if labels is not None else _output_keys(subject, pool_outputs)
    chosen = _round_robin(keys, max_per_class, max_images)
    macs = estimate_macs(model, all_inputs[:1]) if macs is None else macs
    affordable = max(1, int(work_budget(subject) // max(1.0, macs * forward_passes)))
    note = ""
    if len(chosen) > affordable:
        chosen = chosen[:affordable]
        note = f"; only {affordable} because of the work cap for a model this size"
    chosen = np.array(sorted(chosen, key=lambda index: (keys[index], index)), dtype=np.int64)
    if len(chosen) < len(all_inputs):
        note = (
            f" ({len(chosen)} of {len(all_inputs)} probe inputs: at most {max_per_class} per class and "
            f"{max_images} in all{note})"
        )
    index_tensor = torch.as_tensor(chosen, device=all_inputs.device)
    inputs = all_inputs[index_tensor]
    outputs = pool_outputs[index_tensor] if pool_outputs is not None else _forward(model, inputs)
    targets, predictions = _targets(
        subject, outputs, None if labels is None else labels[index_tensor.cpu()].to(inputs.device)
    )
    titles = [_title(subject, targets, predictions, row) for row in range(len(chosen))]
    return ProbeSelection(indices=chosen, inputs=inputs, targets=targets, titles=titles, note=note)


def _forward(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        outputs = model(inputs)
    return outputs.reshape(outputs.shape[0], -1)


def _class_labels(subject: Subject) -> torch.Tensor | None:
    labels = subject.probe_labels
    if subject.task.kind != "classification" or labels is None or labels.is_floating_point():
        return None
    return labels.reshape(-1).long()


def _output_keys(subject: Subject, outputs: torch.Tensor) -> np.ndarray:
    if outputs.shape[1] > 1 and subject.task.kind != "regression":
        return outputs.argmax(dim=1).cpu().numpy()
    return np.zeros(len(outputs), dtype=np.int64)


def _targets(subject: Subject, outputs: torch.Tensor, labels: torch.Tensor | None) -> tuple:
    """Target per input: the class label if there is one, else the predicted class; output 0 for regression."""
    if outputs.shape[1] == 1:
        return None, None
    predictions = outputs.argmax(dim=1).cpu().numpy()
    if labels is not None:
        return labels, predictions
    if subject.task.kind == "regression":
        return torch.zeros(len(outputs), dtype=torch.long, device=outputs.device), None
    return torch.as_tensor(predictions, device=outputs.device), None


def _round_robin(keys: np.ndarray, max_per_class: int, max_images: int) -> list[int]:
    by_class = {key: np.flatnonzero(keys == key)[:max_per_class].tolist() for key in sorted(set(keys.tolist()))}
    chosen: list[int] = []
    for turn in range(max_per_class):
        chosen.extend(indices[turn] for indices in by_class.values() if turn < len(indices))
    return chosen[:max_images]


def _title(subject: Subject, targets: torch.Tensor | None, predictions: np.ndarray | None, row: int) -> str:
    if targets is None:
        return "output"
    target = int(targets[row])
    if subject.task.kind == "regression":
        return f"output {target}"
    names = subject.task.class_names
    # Class names come from the file: cut to fit under one tile.
    name = short_label(names[target], 20) if 0 <= target < len(names) else str(target)
    if predictions is None or int(predictions[row]) == target:
        return name
    predicted = int(predictions[row])
    return f"{name}\n(pred {short_label(names[predicted], 20) if 0 <= predicted < len(names) else predicted})"


def affordable_passes(subject: Subject, macs: float) -> float:
    """How many forward passes over one input the work cap allows."""
    return work_budget(subject) / max(1.0, macs)


def work_budget(subject: Subject) -> float:
    """Multiply-accumulates one analyzer may spend on ``subject``'s device."""
    return WORK_BUDGET_MACS * (20 if str(subject.device).startswith("cuda") else 1)


def estimate_macs(model: nn.Module, example: torch.Tensor) -> float:
    """Multiply-accumulates of one forward pass on ``example`` (one input), from its weighted layers.

    Each layer with a weight matrix (Linear, Conv*) costs output elements x weight row size.
    Models that cannot carry hooks count one MAC per parameter instead.
    """
    weighted = {
        name: module
        for name, module in leaf_layers(model)
        if getattr(module, "weight", None) is not None and module.weight.dim() >= 2
    }
    parameter_count = float(sum(parameter.numel() for parameter in model.parameters()))
    try:
        with recording(model, weighted, to_cpu=False) as outputs, torch.no_grad():
            model(example)
    except SkipAnalyzer:
        return parameter_count
    total = sum(outputs[name].numel() * weighted[name].weight[0].numel() for name in outputs)
    return float(total) or parameter_count


def row_cap(inputs: torch.Tensor, internal_batch_size: int) -> int:
    """Rows per internal pass: ``internal_batch_size``, fewer for large inputs, never below the batch."""
    per_row = max(1, inputs[0].numel())
    return max(len(inputs), min(internal_batch_size, MAX_BATCH_ELEMENTS // per_row))


def even_chunk(total: int, most: int) -> int:
    """The largest divisor of ``total`` not above ``most`` (at least 1).

    Equal chunks give every pass the same batch shape; on the CPU each new shape costs a
    one-time kernel set-up that can exceed the pass itself.
    """
    return max(divisor for divisor in range(1, max(1, min(total, most)) + 1) if total % divisor == 0)


def attribute(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor | None,
    method: str,
    *,
    n_steps: int = 32,
    nt_samples: int = 16,
    internal_batch_size: int = INTERNAL_BATCH_SIZE,
    seed: int = 0,
) -> torch.Tensor:
    """One captum attribution over the whole batch, w.r.t. a copy of ``inputs`` only.

    Args:
        model: the network (in eval mode); its parameters get no ``.grad``.
        inputs: a batch as the model takes it.
        targets: output index per row, or ``None`` for a single-output model.
        method: ``saliency``, ``integrated_gradients`` (zero baseline), ``smoothgrad`` or
            ``guided_backprop``.
        n_steps: Integrated Gradients steps.
        nt_samples: SmoothGrad noisy samples (noise seeded by ``seed``).
        internal_batch_size: most rows per pass for Integrated Gradients and SmoothGrad.
        seed: seed for SmoothGrad's noise; the global RNG is left as it was.
    """
    from captum.attr import GuidedBackprop, IntegratedGradients, Saliency

    x = inputs.detach().clone().requires_grad_(True)
    rows = row_cap(x, internal_batch_size)
    with warnings.catch_warnings():
        # captum warns that it adds (and removes) ReLU hooks; that is expected here.
        warnings.simplefilter("ignore", UserWarning)
        if method == "saliency":
            result = Saliency(model).attribute(x, target=targets, abs=True)
        elif method == "integrated_gradients":
            rows = len(x) * even_chunk(n_steps, rows // len(x))
            result = IntegratedGradients(model).attribute(
                x, baselines=torch.zeros_like(x), target=targets, n_steps=n_steps, internal_batch_size=rows
            )
        elif method == "smoothgrad":
            result = _smoothgrad(model, x, targets, nt_samples, even_chunk(nt_samples, rows // len(x)), seed)
        elif method == "guided_backprop":
            result = GuidedBackprop(model).attribute(x, target=targets)
        else:
            raise ValueError(f"unknown attribution method {method!r}")
    return result.detach()


def _smoothgrad(
    model: nn.Module, x: torch.Tensor, targets: torch.Tensor | None, nt_samples: int, samples_per_pass: int, seed: int
) -> torch.Tensor:
    """Mean |gradient| over ``nt_samples`` noisy copies of ``x`` (Smilkov et al. 2017), as captum's NoiseTunnel.

    The noise comes from a generator seeded with ``seed``, sample after sample, so the result
    does not depend on how many samples share a pass, and the global random state is untouched.
    """
    from captum.attr import Saliency

    clean = x.detach()
    deviation = SMOOTHGRAD_NOISE * (float(clean.max() - clean.min()) or 1.0)
    generator = torch.Generator(device=clean.device).manual_seed(seed)
    total = torch.zeros_like(clean)
    for start in range(0, nt_samples, samples_per_pass):
        count = min(samples_per_pass, nt_samples - start)
        noise = torch.randn((count, *clean.shape), generator=generator, device=clean.device, dtype=clean.dtype)
        noisy = (
            (clean.unsqueeze(0) + deviation * noise).reshape(count * len(clean), *clean.shape[1:]).requires_grad_(True)
        )
        repeated = None if targets is None else targets.repeat(count)
        total += Saliency(model).attribute(noisy, target=repeated, abs=True).reshape(count, *clean.shape).sum(dim=0)
    return total / nt_samples


def occlusion_window(side: int, max_positions: int = 11) -> tuple[int, int]:
    """Window and stride for one image side: stride ceil(side / (max_positions + 1)), window about twice it.

    The window is widened until whole strides reach the far edge, so every window has the same
    size (captum would otherwise clip the last one) and each side has at most ``max_positions``
    positions (121 occlusions per image by default).
    """
    stride = max(1, math.ceil(side / (max_positions + 1)))
    window = min(side, 2 * stride)
    window += (side - window) % stride
    return window, stride
