"""Which attribution to trust: faithfulness and sanity numbers for every method, beside two reference maps.

One table, one row per method (Saliency, Integrated Gradients, SmoothGrad, Guided Backprop,
Grad-CAM, occlusion) and two controls (a random map, and the Saliency map blurred), with the
deletion and insertion AUC (RISE), ROAD (Rong et al. 2022), the model parameter randomization
test against a random-pair baseline (Adebayo et al. 2018) and the random-logit test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import
from introspect.analyzers import _faithfulness as faith
from introspect.analyzers._attribution import (
    ProbeSelection,
    affordable_passes,
    attribute,
    choose_probe,
    estimate_macs,
    in_eval_mode,
    occlusion_window,
    row_cap,
)
from introspect.analyzers._attribution_maps import channel_maps
from introspect.analyzers._randomization import GRADIENT_METHODS, grad_cam_maps, last_convolution
from introspect.analyzers._scorecard_table import scorecard_artifact
from introspect.errors import SkipAnalyzer
from introspect.needs import Needs
from introspect.spec import analyzer

#: Where this module's analyzers come in the gallery: just after ``attribution_sanity`` (10).
POSITION = 11

if TYPE_CHECKING:
    import torch
    from torch import nn

    from introspect.artifacts import Artifact
    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

ROAD_FRACTIONS = (0.2, 0.4, 0.6, 0.8)
#: ROAD solves one sparse system per image, fraction and order; bigger images skip it.
MAX_ROAD_PIXELS = 64 * 64


@analyzer(needs=Needs.FORWARD | Needs.GRADIENTS | Needs.IMAGE_INPUT | Needs.CLASSIFICATION)
@in_eval_mode
def attribution_scorecard(
    subject: Subject,
    /,
    *,
    max_images: int = 6,
    num_steps: int = 12,
    n_steps: int = 12,
    nt_samples: int = 8,
    occlusion_positions: int = 5,
) -> list[Artifact]:
    """Scorecard of the attribution methods: deletion/insertion AUC, ROAD, MPRT and random-logit, with controls.

    Every method's map is computed for up to 6 probe images (at most 2 per class). Deletion and
    insertion remove or insert pixels in order of attribution in 12 steps and integrate the
    target's softmax probability; ROAD removes 20-80% of the pixels most (MoRF) or least (LeRF)
    relevant first and fills them from their neighbours; the MPRT and random-logit columns are
    rank correlations of |map|, read against the similarity of maps of unrelated image pairs.
    A random map and a blurred Saliency map are reference rows: a method should beat them.
    """
    model = subject.model
    macs = estimate_macs(model, subject.probe_inputs[:1].to(subject.device))
    convolution = last_convolution(model)
    per_image = _passes_per_image(num_steps, n_steps, nt_samples, occlusion_positions, convolution is not None)
    affordable = affordable_passes(subject, macs)
    if affordable < 2 * per_image:
        raise SkipAnalyzer(
            f"the scorecard needs about {2 * per_image:,} forward passes for 2 images and the work cap allows "
            f"{int(affordable):,} for a model this size (about {macs:,.0f} multiply-accumulates per input)"
        )
    probe = choose_probe(subject, 2, max_images, forward_passes=per_image, macs=macs)
    if len(probe.indices) < 2:
        raise SkipAnalyzer("the random-pair baseline needs at least 2 probe images")
    options = {"n_steps": n_steps, "nt_samples": nt_samples, "positions": occlusion_positions, "seed": subject.seed}
    trained = method_maps(subject, model, probe, probe.targets, convolution, options)
    scores = {
        **removal_scores(subject, probe, trained, num_steps),
        **randomization_scores(subject, probe, trained, convolution, options),
    }
    return [scorecard_artifact(list(trained), scores, probe, num_steps)]


def _passes_per_image(num_steps: int, n_steps: int, nt_samples: int, positions: int, has_convolution: bool) -> int:
    """Forward-pass equivalents for one probe image (a gradient pass counts 3): 4 sets of maps and the curves."""
    maps = 3 * (2 + n_steps + nt_samples + has_convolution) + positions**2 + 1
    rows = len(GRADIENT_METHODS) + has_convolution + 3
    return 4 * maps + rows * (2 * (num_steps + 1) + 2 * len(ROAD_FRACTIONS))


def method_maps(
    subject: Subject,
    model: nn.Module,
    probe: ProbeSelection,
    targets: torch.Tensor,
    convolution: str | None,
    options: dict,
) -> dict[str, np.ndarray]:
    """Every method's (N, H, W) map of ``model`` for ``targets``, and the two controls, in table order."""
    shape = subject.task.image_shape
    maps = {}
    for method in GRADIENT_METHODS:
        values = attribute(
            model,
            probe.inputs,
            targets,
            method,
            n_steps=options["n_steps"],
            nt_samples=options["nt_samples"],
            seed=options["seed"],
        )
        maps[method] = channel_maps(values, shape)
    if convolution is not None:
        maps["grad_cam"] = grad_cam_maps(model, probe.inputs, targets, convolution, shape[1:])
    maps["occlusion"] = occlusion_maps(model, probe.inputs, targets, shape, options["positions"])
    # The random map is drawn from the seed alone: the same for every model and class, as a control should be.
    maps["random"] = np.random.default_rng(options["seed"]).random((len(probe.indices), *shape[1:]))
    maps["blurred"] = faith.gaussian_blur(maps["saliency"], blur_sigma(shape[1:]))
    return maps


def blur_sigma(size: tuple[int, int]) -> float:
    """The blurred control's Gaussian: an eighth of the shorter side (3.5 pixels on MNIST)."""
    return max(1.0, min(size) / 8)


def occlusion_maps(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, shape: tuple[int, int, int], positions: int
) -> np.ndarray:
    """captum Occlusion (zero baseline) with at most ``positions`` windows per side, channel mean."""
    from captum.attr import Occlusion

    (window_h, stride_h), (window_w, stride_w) = (occlusion_window(side, positions) for side in shape[1:])
    images = inputs.detach().reshape(len(inputs), *shape)
    input_shape = tuple(inputs.shape[1:])

    def on_images(batch: torch.Tensor) -> torch.Tensor:
        return model(batch.reshape(batch.shape[0], *input_shape))

    with torch.no_grad():
        result = Occlusion(on_images).attribute(
            images,
            sliding_window_shapes=(shape[0], window_h, window_w),
            strides=(shape[0], stride_h, stride_w),
            baselines=0.0,
            target=targets,
            perturbations_per_eval=max(1, row_cap(images, 64) // len(images)),
        )
    return channel_maps(result.detach(), shape, reduce="mean")


def target_probabilities(model: nn.Module, images: np.ndarray, targets: np.ndarray, like: torch.Tensor) -> np.ndarray:
    """Softmax probability of ``targets`` for (M, C, H, W) ``images``, run in passes of bounded size."""
    batch = torch.as_tensor(images, dtype=like.dtype, device=like.device).reshape(len(images), *like.shape[1:])
    index = torch.as_tensor(targets, device=like.device).reshape(-1, 1)
    rows = row_cap(batch[:1], 256)
    with torch.no_grad():
        parts = [
            torch.softmax(model(batch[start : start + rows]).reshape(min(rows, len(batch) - start), -1), dim=1).gather(
                1, index[start : start + rows]
            )[:, 0]
            for start in range(0, len(batch), rows)
        ]
    return torch.cat(parts).cpu().double().numpy()


def removal_scores(
    subject: Subject, probe: ProbeSelection, maps: dict[str, np.ndarray], num_steps: int
) -> dict[str, dict[str, np.ndarray]]:
    """Deletion and insertion AUC per image, and ROAD MoRF/LeRF probabilities per image and fraction."""
    shape = subject.task.image_shape
    images = probe.inputs.detach().cpu().double().numpy().reshape(len(probe.indices), *shape)
    targets = probe.target_array()
    scores: dict[str, dict[str, np.ndarray]] = {"deletion": {}, "insertion": {}, "morf": {}, "lerf": {}}
    for name, method in maps.items():
        # Per image: its deletion inputs, then its insertion inputs.
        batch = np.concatenate(
            [
                np.concatenate(faith.deletion_and_insertion_inputs(image, saliency, num_steps))
                for image, saliency in zip(images, method)
            ]
        )
        curves = target_probabilities(subject.model, batch, np.repeat(targets, 2 * (num_steps + 1)), probe.inputs)
        curves = curves.reshape(len(images), 2, num_steps + 1)
        scores["deletion"][name], scores["insertion"][name] = faith.trapezoid_auc(curves).T
        if shape[1] * shape[2] <= MAX_ROAD_PIXELS:
            morf, lerf = road_scores(subject.model, images, method, targets, probe.inputs, subject.seed)
            scores["morf"][name], scores["lerf"][name] = morf, lerf
    return scores


def road_scores(
    model: nn.Module, images: np.ndarray, maps: np.ndarray, targets: np.ndarray, like: torch.Tensor, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) target probabilities after imputing the most (MoRF) and the least (LeRF) relevant 20-80%."""
    rng = np.random.default_rng(seed)
    noise = faith.ROAD_NOISE * float(images.max() - images.min() or 1.0)
    counts = np.round(np.array(ROAD_FRACTIONS) * maps[0].size).astype(int)
    # Per image: the MoRF masks, then the LeRF ones, each image repeated once per mask.
    masks = np.stack([faith.removal_masks(order, counts) for saliency in maps for order in (saliency, -saliency)])
    masks = masks.reshape(-1, *maps.shape[1:])
    batch = faith.road_impute_many(np.repeat(images, 2 * len(counts), axis=0), masks, noise, rng)
    probabilities = target_probabilities(model, batch, np.repeat(targets, 2 * len(counts)), like)
    probabilities = probabilities.reshape(len(images), 2, len(counts))
    return probabilities[:, 0], probabilities[:, 1]


def randomization_scores(
    subject: Subject, probe: ProbeSelection, trained: dict[str, np.ndarray], convolution: str | None, options: dict
) -> dict[str, dict[str, np.ndarray]]:
    """Per method and image: similarity to the last-layer and fully randomized maps, to another class's map.

    Also the random-pair baseline: the similarity of the trained maps of unrelated image pairs.
    """
    layers = faith.parameterized_layers(subject.model)
    scores: dict[str, dict[str, np.ndarray]] = {"mprt_last": {}, "mprt_full": {}, "baseline": {}, "logit": {}}
    for key, count in (("mprt_last", 1), ("mprt_full", len(layers))):
        clone = faith.randomized_copy(subject.model, layers[:count], subject.seed)
        randomized = method_maps(subject, clone, probe, probe.targets, convolution, options)
        scores[key] = {name: faith.map_similarity(trained[name], randomized[name]) for name in trained}
    others = other_classes(probe.target_array(), len(subject.task.class_names) or _num_outputs(subject), subject.seed)
    other_targets = torch.as_tensor(others, device=probe.inputs.device)
    other_maps = method_maps(subject, subject.model, probe, other_targets, convolution, options)
    scores["logit"] = {name: faith.map_similarity(trained[name], other_maps[name]) for name in trained}
    scores["baseline"] = {
        name: faith.random_pair_similarities(maps, seed=subject.seed) for name, maps in trained.items()
    }
    return scores


def other_classes(targets: np.ndarray, num_classes: int, seed: int) -> np.ndarray:
    """A different class for each target, drawn uniformly from the others (seeded)."""
    shifts = np.random.default_rng(seed).integers(1, max(2, num_classes), size=len(targets))
    return (targets + shifts) % max(2, num_classes)


def _num_outputs(subject: Subject) -> int:
    with torch.no_grad():
        return int(subject.model(subject.probe_inputs[:1].to(subject.device)).reshape(1, -1).shape[1])
