"""Attribution with captum: which input pixels (or values of x) move the output.

The shared pieces (choosing probe images and targets, batched captum calls, a work cap that
keeps big models affordable, and the image/map/overlay strips) live in :mod:`._attribution`;
this module holds ``input_saliency`` (``grad_cam`` is in :mod:`.attribution_cam`, ``occlusion`` in
:mod:`.attribution_occlusion`). :func:`attribute` is
the batched call ``input_saliency`` makes, re-exported for benchmarks.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import
from introspect.analyzers._attribution import (
    INTERNAL_BATCH_SIZE,
    ProbeSelection,
    affordable_passes,
    attribute,
    choose_probe,
    estimate_macs,
    in_eval_mode,
)
from introspect.analyzers._attribution_maps import channel_maps, flat_map_counts, flat_map_note, strip_figure, tiles_for
from introspect.analyzers._sequences import sequence_layout, sequence_maps_figure
from introspect.analyzers._shared import display_images
from introspect.artifacts import Artifact
from introspect.needs import Needs
from introspect.plotting import new_figure, short_label
from introspect.spec import analyzer

#: Where this module's analyzers come in the gallery (see ``introspect.analyzers``).
POSITION = 9

if TYPE_CHECKING:
    import torch

    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

METHODS = ("saliency", "integrated_gradients", "smoothgrad", "guided_backprop")
METHOD_TEXT = {
    "saliency": ("Saliency", "|d score / d input| (Simonyan et al. 2013)"),
    "integrated_gradients": (
        "Integrated Gradients",
        "gradients averaged on the straight path from an all-zero input, times (input - 0); the values sum to "
        "score(input) - score(zeros)",
    ),
    "smoothgrad": (
        "SmoothGrad",
        "|gradient| averaged over noisy copies of the input (Gaussian, sd = 15% of the input range; seeded)",
    ),
    "guided_backprop": (
        "Guided Backprop",
        "gradient with negative signals blocked at every nn.ReLU module on the way back",
    ),
}
SIGNED = {"saliency": False, "integrated_gradients": True, "smoothgrad": False, "guided_backprop": True}
NUM_CURVE_POINTS = 256
MAX_CURVE_OUTPUTS = 4


@analyzer(needs=Needs.FORWARD | Needs.GRADIENTS)
@in_eval_mode
def input_saliency(
    subject: Subject,
    /,
    *,
    methods: tuple[str, ...] = METHODS,
    max_per_class: int = 2,
    max_images: int = 8,
    n_steps: int = 32,
    nt_samples: int = 16,
    internal_batch_size: int = INTERNAL_BATCH_SIZE,
) -> list[Artifact]:
    """Which parts of the input the target score is sensitive to: Saliency, IG, SmoothGrad, Guided Backprop.

    Image inputs: one figure per method; the top row is the input, the middle row the
    attribution for the target class (the probe label, else the predicted class), the bottom row
    the attribution laid over the input. Bright or strongly coloured regions are where the score
    reacts; maps of several methods that agree are more trustworthy. Red is positive evidence,
    blue negative for the signed methods. Each map is scaled to its own maximum. Scalar input:
    the output curve over the domain with its derivative d output / d x beneath it.
    """
    unknown = [method for method in methods if method not in METHOD_TEXT]
    if unknown:
        raise ValueError(f"unknown attribution method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    if subject.task.is_scalar:
        return [_scalar_derivative(subject)]
    macs = estimate_macs(subject.model, subject.probe_inputs[:1].to(subject.device))
    n_steps, nt_samples, cut = _fit_steps(subject, methods, n_steps, nt_samples, macs)
    passes = sum(
        {"saliency": 1, "integrated_gradients": n_steps, "smoothgrad": nt_samples, "guided_backprop": 1}[m]
        for m in methods
    )
    probe = choose_probe(subject, max_per_class, max_images, forward_passes=3 * passes, macs=macs)
    probe = dataclasses.replace(probe, note=probe.note + cut)
    options = {
        "n_steps": n_steps,
        "nt_samples": nt_samples,
        "internal_batch_size": internal_batch_size,
        "seed": subject.seed,
    }
    artifacts = []
    for method in methods:
        result = attribute(subject.model, probe.inputs, probe.targets, method, **options)
        artifacts.append(_method_artifact(subject, probe, method, result, options))
    return artifacts


def _fit_steps(
    subject: Subject, methods: tuple[str, ...], n_steps: int, nt_samples: int, macs: float
) -> tuple[int, int, str]:
    """Fewer IG steps and SmoothGrad samples (at least 4) when one image alone would exceed the work cap."""
    gradient_passes = affordable_passes(subject, macs) / 3
    fixed = sum(method in methods for method in ("saliency", "guided_backprop"))
    scalable = n_steps * ("integrated_gradients" in methods) + nt_samples * ("smoothgrad" in methods)
    if not scalable or fixed + scalable <= gradient_passes:
        return n_steps, nt_samples, ""
    factor = max(0.0, gradient_passes - fixed) / scalable
    fitted = max(4, int(n_steps * factor)), max(4, int(nt_samples * factor))
    return (
        *fitted,
        f"; Integrated Gradients steps cut to {fitted[0]} and SmoothGrad samples to {fitted[1]} by the work cap",
    )


def _method_artifact(
    subject: Subject, probe: ProbeSelection, method: str, result: torch.Tensor, options: dict
) -> Artifact:
    values = result.detach().cpu().double()
    title, how = METHOD_TEXT[method]
    summary: dict = {"num_images": len(probe.indices), "mean_abs": float(values.abs().mean())}
    if method == "integrated_gradients":
        summary["completeness_gap"] = _completeness_gap(subject, probe, values)
        summary["n_steps"] = options["n_steps"]
    if method == "smoothgrad":
        summary["nt_samples"] = options["nt_samples"]
    data = {"attributions": values.numpy(), "indices": probe.indices, "targets": probe.target_array()}
    layout = None if subject.task.is_image else sequence_layout(subject.model, tuple(values.shape[1:]))
    if subject.task.is_image:
        maps = channel_maps(values, subject.task.image_shape)
        images = display_images(subject, probe.inputs)
        figure = strip_figure(tiles_for(images, maps, SIGNED[method]), probe.titles, f"{title}: {how}")
        data["maps"] = maps
    elif layout is not None:
        figure = sequence_maps_figure(values.numpy(), layout, probe.titles, f"{title}: {how}", SIGNED[method])
    else:
        figure = _feature_heatmap(values.reshape(len(values), -1).numpy(), probe.titles, title, SIGNED[method])
    caption = (
        f"{title} ({how}) for {len(probe.indices)} probe inputs{probe.note}; each map is scaled to its own maximum."
    )
    if layout is not None:
        caption += f" One panel per input: its {layout.row_word}s (rows) at each {layout.column_word}."
    if method == "guided_backprop" and isinstance(subject.model, torch.jit.ScriptModule):
        caption += " TorchScript modules run no Python hooks, so Guided Backprop equals the plain gradient here."
    elif method == "guided_backprop" and not _has_relu_modules(subject.model):
        caption += " The model has no nn.ReLU modules, so Guided Backprop equals the plain gradient here."
    # A zero-initialized head, or a score that ignores the input, leaves nothing to show: say so, and why.
    caption += flat_map_note(values.reshape(len(values), -1).numpy(), subject.model)
    summary["num_zero_maps"], summary["num_constant_maps"] = flat_map_counts(values.reshape(len(values), -1).numpy())
    return Artifact(name=method.replace("_", "-"), caption=caption, figure=figure, data=data, summary=summary)


def _completeness_gap(subject: Subject, probe: ProbeSelection, attributions: torch.Tensor) -> float:
    """Largest |sum of IG attributions - (score(x) - score(0))| over the images: the IG error."""
    with torch.no_grad():
        inputs = probe.inputs
        gain = probe.select(subject.model(inputs)) - probe.select(subject.model(torch.zeros_like(inputs)))
    totals = attributions.reshape(len(attributions), -1).sum(dim=1)
    return float((totals - gain.detach().cpu().double()).abs().max())


def _has_relu_modules(model: torch.nn.Module) -> bool:
    return any(isinstance(module, torch.nn.ReLU) for module in model.modules())


def _feature_heatmap(values: np.ndarray, titles: list[str], title: str, signed: bool):
    """Attributions of non-image, non-scalar inputs: inputs by features, one row per input."""
    labels = [short_label(text) for text in titles]
    # Room for the row labels (class names), so that a few input features do not squeeze the layout to nothing.
    width = 2.0 + 0.08 * values.shape[1] + 0.06 * max((len(label) for label in labels), default=0)
    figure = new_figure(min(12.0, width), 0.45 * len(values) + 1.2)
    axes = figure.add_subplot()
    limit = float(max(np.abs(values).max(), 1e-12))
    image = axes.imshow(
        values,
        aspect="auto",
        interpolation="nearest",
        cmap="RdBu_r" if signed else "inferno",
        vmin=-limit if signed else 0.0,
        vmax=limit,
    )
    axes.set_yticks(range(len(titles)), labels, fontsize=7)
    axes.set_xlabel("input feature")
    axes.set_title(title, fontsize=10)
    figure.colorbar(image, ax=axes)
    return figure


def _scalar_derivative(subject: Subject) -> Artifact:
    """The output over the domain and d output / d x, by autograd at each point of a fine grid."""
    low, high = subject.task.domain or (float(subject.probe_inputs.min()), float(subject.probe_inputs.max()))
    grid = torch.linspace(low, high, NUM_CURVE_POINTS, dtype=subject.probe_inputs.dtype, device=subject.device)
    x = grid.unsqueeze(1).requires_grad_(True)
    outputs = subject.model(x).reshape(NUM_CURVE_POINTS, -1)[:, :MAX_CURVE_OUTPUTS]
    # In eval mode each output row depends on its own x only, so the gradient of the column sum
    # is the per-point derivative.
    derivatives = [
        torch.autograd.grad(outputs[:, k].sum(), x, retain_graph=True)[0][:, 0] for k in range(outputs.shape[1])
    ]
    xs = grid.detach().cpu().double().numpy()
    ys = outputs.detach().cpu().double().numpy()
    slopes = torch.stack(derivatives, dim=1).detach().cpu().double().numpy()
    figure = _derivative_figure(subject, xs, ys, slopes)
    caption = (
        f"Network output over x in [{low:g}, {high:g}] ({NUM_CURVE_POINTS} points) and its derivative d output / d "
        "x by autograd; "
        "where the derivative is large the output is most sensitive to the input."
    )
    summary = {
        "max_abs_derivative": float(np.abs(slopes).max()),
        "mean_abs_derivative": float(np.abs(slopes).mean()),
        "domain": [low, high],
    }
    return Artifact(
        name="derivative",
        caption=caption,
        figure=figure,
        data={"x": xs, "output": ys, "derivative": slopes},
        summary=summary,
    )


def _derivative_figure(subject: Subject, xs: np.ndarray, ys: np.ndarray, slopes: np.ndarray):
    figure = new_figure(7, 5)
    top, bottom = figure.subplots(2, 1, sharex=True)
    if subject.probe_labels is not None and subject.probe_labels.is_floating_point():
        top.scatter(
            subject.probe_inputs.reshape(-1).cpu().numpy(),
            subject.probe_labels.reshape(len(subject.probe_labels), -1)[:, 0].cpu().numpy(),
            s=8,
            color="tab:grey",
            label="probe targets",
        )
    for k in range(ys.shape[1]):
        label = f"output {k}" if ys.shape[1] > 1 else "output"
        top.plot(xs, ys[:, k], label=label)
        bottom.plot(xs, slopes[:, k], label=f"d {label} / dx")
    bottom.axhline(0.0, color="black", linewidth=0.6)
    top.set_ylabel("output")
    bottom.set_ylabel("d output / dx")
    bottom.set_xlabel("x")
    top.legend(fontsize=7)
    bottom.legend(fontsize=7)
    return figure
