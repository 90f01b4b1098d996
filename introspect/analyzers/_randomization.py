"""Shared by the randomization checks: every method's maps, on a model and on copies re-initialized layer by layer.

Maps are (N, H, W) float64 arrays, one per probe image. The gradient methods come from
:func:`introspect.analyzers._attribution.attribute`; Grad-CAM is captum's ``LayerGradCam`` on the
last Conv2d. What a method costs is counted in forward-pass equivalents, for the work cap.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import
from introspect.analyzers._attribution import ProbeSelection, attribute
from introspect.analyzers._attribution_maps import channel_maps
from introspect.analyzers._faithfulness import reinitialize

if TYPE_CHECKING:
    import torch
    from torch import nn

    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

GRADIENT_METHODS = ("saliency", "integrated_gradients", "smoothgrad", "guided_backprop")
#: A gradient pass costs about 3 forward passes.
GRADIENT_PASS = 3


def last_convolution(model: nn.Module) -> str | None:
    """Grad-CAM's layer: the last Conv2d by name, or None (TorchScript cannot carry captum's hooks)."""
    names = [name for name, module in model.named_modules() if isinstance(module, torch.nn.Conv2d)]
    return names[-1] if names and not isinstance(model, torch.jit.ScriptModule) else None


def grad_cam_maps(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, layer_name: str, size: tuple[int, int]
) -> np.ndarray:
    """Grad-CAM on ``layer_name`` with negative values cut, upsampled bilinearly to the input size."""
    from captum.attr import LayerAttribution, LayerGradCam

    layer = dict(model.named_modules())[layer_name]
    x = inputs.detach().clone().requires_grad_(True)
    cam = LayerGradCam(model, layer).attribute(x, target=targets, relu_attributions=True).detach()
    return LayerAttribution.interpolate(cam, size, interpolate_mode="bilinear")[:, 0].cpu().double().numpy()


def method_costs(n_steps: int, nt_samples: int, has_convolution: bool) -> dict[str, int]:
    """Forward-pass equivalents of one method's maps for one image, in the figure's order."""
    passes = {"saliency": 1, "integrated_gradients": n_steps, "smoothgrad": nt_samples, "guided_backprop": 1}
    if has_convolution:
        passes["grad_cam"] = 1
    return {method: GRADIENT_PASS * count for method, count in passes.items()}


def affordable_methods(costs: dict[str, int], passes: float, min_steps: int) -> tuple[str, ...]:
    """The methods whose maps two images can afford at ``min_steps`` depths (and trained): costliest go first.

    Saliency always stays, so the test still runs (on fewer images or depths) on a model of any size.
    """
    methods = list(costs)
    for costliest in sorted(costs, key=costs.get, reverse=True):
        if costliest == "saliency" or sum(costs[method] for method in methods) * 2 * (min_steps + 1) <= passes:
            break
        methods.remove(costliest)
    return tuple(methods)


def sanity_maps(
    model: nn.Module, probe: ProbeSelection, image_shape: tuple[int, int, int], methods: tuple[str, ...], options: dict
) -> dict[str, np.ndarray]:
    """Each method's (N, H, W) map of ``model``: the gradient methods as the scorecard computes them, and Grad-CAM."""
    maps = {}
    for method in methods:
        if method in GRADIENT_METHODS:
            values = attribute(
                model,
                probe.inputs,
                probe.targets,
                method,
                n_steps=options["n_steps"],
                nt_samples=options["nt_samples"],
                seed=options["seed"],
            )
            maps[method] = channel_maps(values, image_shape)
        else:
            maps[method] = grad_cam_maps(model, probe.inputs, probe.targets, options["convolution"], image_shape[1:])
    return maps


def randomized_maps(
    subject: Subject,
    probe: ProbeSelection,
    layers: list[str],
    counts: list[int],
    trained: dict[str, np.ndarray],
    options: dict,
) -> dict[str, list[np.ndarray]]:
    """Per method, its maps after re-initializing the first ``count`` of ``layers`` of a copy, per count.

    Each layer is re-initialized after seeding torch with the subject's seed, as
    ``_faithfulness.randomized_copy`` does, so step ``count`` equals
    ``randomized_copy(model, layers[:count], seed)``. At count 0 the trained maps stand in (the
    copy is unchanged). The subject's own model and the global random state are untouched.
    """
    clone = copy.deepcopy(subject.model)
    modules = dict(clone.named_modules())
    wanted = set(counts)
    results = {method: [maps] if 0 in wanted else [] for method, maps in trained.items()}
    devices = [probe.inputs.device.index or 0] if probe.inputs.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        for count, name in enumerate(layers, start=1):
            torch.manual_seed(options["seed"])
            with torch.no_grad():
                reinitialize(modules[name])
            if count in wanted:
                step = sanity_maps(clone, probe, subject.task.image_shape, tuple(trained), options)
                for method, maps in step.items():
                    results[method].append(maps)
    return results


def cut_points(num_layers: int, max_steps: int) -> list[int]:
    """0 (nothing randomized), then at most ``max_steps`` evenly spaced counts ending at ``num_layers``."""
    if num_layers <= max_steps:
        return list(range(num_layers + 1))
    spaced = np.linspace(1, num_layers, max(2, max_steps)).round().astype(int)
    return [0, *dict.fromkeys(int(count) for count in spaced)]


def finite_mean(values: np.ndarray) -> float:
    """The mean of the finite values, NaN (without a warning) when there are none."""
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def step_means(spearman: np.ndarray) -> np.ndarray:
    """Mean over images of (steps, images) correlations, NaN (without a warning) where every map was constant."""
    return np.array([finite_mean(row) for row in spearman])
