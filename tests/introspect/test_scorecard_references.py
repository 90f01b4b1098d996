"""The attribution scorecard's ROAD and MPRT numbers against pytorch-grad-cam and Quantus on the same inputs.

Definitions that differ, and how each test brings them together:

- ROAD (pytorch-grad-cam ``metrics.road``): its ``percentile`` is the share of pixels kept, so removing
  the 20% most relevant is ``ROADMostRelevantFirst(percentile=80)``; it removes every pixel at or past
  the percentile threshold (all tied pixels at once) where the scorecard removes exactly
  round(fraction x pixels) in rank order, so the tests use untied maps; its noise is 0.01 absolute
  (the scorecard's: 2.5% of the input range, from another generator), so both run with noise 0; it
  scores the logit by default and returns the change from the unperturbed input, so the tests use its
  ``ClassifierOutputSoftmaxTarget`` and add the unperturbed probability back.
- MPRT (Quantus ``MPRT``, top-down cascade, Spearman of |map|): Quantus seeds torch with ``seed`` + 1
  before each layer's ``reset_parameters``, the scorecard with its seed, so Quantus runs with the
  scorecard's seed - 1; Quantus randomizes only modules with ``reset_parameters`` (the scorecard also
  redraws other modules that own parameters; the model here has none); Quantus scales each map by its
  largest magnitude first, which leaves the rank correlation unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from introspect.analyzers import _faithfulness, attribution_scorecard
from introspect.testing import conv_image_subject

FRACTIONS = attribution_scorecard.ROAD_FRACTIONS
# pytorch-grad-cam's imputer calls np.argwhere on a torch tensor, which numpy 2 warns about; the result is unchanged.
pytestmark = pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning")


def gradcam_road(model, images: np.ndarray, maps: np.ndarray, targets: np.ndarray, fraction: float, most: bool):
    """pytorch-grad-cam's ROAD without noise: the imputed images and the target's softmax probability after."""
    from pytorch_grad_cam.metrics.perturbation_confidence import (
        PerturbationConfidenceMetric,
        RemoveLeastRelevantFirst,
        RemoveMostRelevantFirst,
    )
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    kept_percent = round(100 * (1 - fraction))
    removal = (RemoveMostRelevantFirst if most else RemoveLeastRelevantFirst)(kept_percent, NoisyLinearImputer(0.0))
    inputs = torch.as_tensor(images, dtype=torch.float32)
    change, imputed = PerturbationConfidenceMetric(removal)(
        inputs, maps, [ClassifierOutputSoftmaxTarget(int(target)) for target in targets], model, True
    )
    with torch.no_grad():
        before = torch.softmax(model(inputs), dim=1)[torch.arange(len(inputs)), torch.as_tensor(targets)].numpy()
    return imputed.numpy(), change + before


@pytest.fixture(scope="module")
def colour_case():
    """A 3-channel conv model, its 6 probe images, untied float32 maps and each image's predicted class."""
    subject = conv_image_subject(channels=3)
    model = subject.model.eval()
    images = subject.probe_inputs.numpy()
    maps = np.random.default_rng(5).random((len(images), 12, 12)).astype(np.float32)
    with torch.no_grad():
        targets = model(subject.probe_inputs).argmax(dim=1).numpy()
    return model, images, maps, targets


def test_neighbour_fill_equals_pytorch_grad_cam_noisy_linear_imputer_without_noise() -> None:
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer

    rng = np.random.default_rng(7)
    image = rng.random((3, 10, 13)).astype(np.float32)
    removed = rng.random((10, 13)) < 0.7
    theirs = NoisyLinearImputer(noise=0.0)(torch.as_tensor(image), torch.as_tensor(~removed, dtype=torch.float32))
    ours = _faithfulness.neighbour_fill(image.astype(np.float64), removed)
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-5)  # theirs is float32
    assert np.abs(ours - image)[:, removed].mean() > 0.05  # the fill did change the removed pixels


def test_road_scores_equal_pytorch_grad_cam_morf_and_lerf(colour_case, monkeypatch: pytest.MonkeyPatch) -> None:
    model, images, maps, targets = colour_case
    monkeypatch.setattr(_faithfulness, "ROAD_NOISE", 0.0)
    like = torch.as_tensor(images[:1])
    morf, lerf = attribution_scorecard.road_scores(model, images.astype(np.float64), maps, targets, like, seed=0)
    for column, fraction in enumerate(FRACTIONS):
        for ours, most in ((morf, True), (lerf, False)):
            imputed, probabilities = gradcam_road(model, images, maps, targets, fraction, most)
            np.testing.assert_allclose(ours[:, column], probabilities, atol=1e-5)
            # The same pixels were imputed: as many as the scorecard removes, round(fraction x 144).
            changed = (np.abs(imputed - images) > 0).any(axis=1).sum(axis=(1, 2))
            np.testing.assert_array_equal(changed, round(fraction * 144))
    assert np.ptp(morf) > 0.01  # the comparison is not between constants


def quantus_saliency(model, inputs, targets, **_) -> np.ndarray:
    """captum Saliency (|gradient|) of a grayscale model, as Quantus's ``explain_func`` (N, 1, H, W)."""
    from captum.attr import Saliency

    x = torch.as_tensor(inputs, dtype=torch.float32).requires_grad_(True)
    return Saliency(model).attribute(x, target=torch.as_tensor(targets), abs=True).detach().numpy()


@pytest.mark.slow
def test_mprt_equals_quantus_cascading_randomization() -> None:
    quantus = pytest.importorskip("quantus", reason="Quantus (the test extra) is not installed")

    subject = conv_image_subject()
    options = {"num_steps": 4, "n_steps": 4, "nt_samples": 2, "occlusion_positions": 3}
    data = attribution_scorecard.attribution_scorecard(subject, **options)[0].data
    model = subject.model.eval()
    metric = quantus.MPRT(layer_order="top_down", seed=subject.seed - 1, disable_warnings=True)
    scores = metric(
        model=model,
        x_batch=subject.probe_inputs.numpy()[data["indices"]],
        y_batch=data["targets"],
        a_batch=None,
        explain_func=quantus_saliency,
        channel_first=True,
        device="cpu",
    )
    layers = [name for name in scores if name != "original"]
    assert layers == _faithfulness.parameterized_layers(model)  # the same layers, output end first
    np.testing.assert_allclose(data["mprt_last"]["saliency"], scores[layers[0]], atol=1e-6)
    np.testing.assert_allclose(data["mprt_full"]["saliency"], scores[layers[-1]], atol=1e-6)
    np.testing.assert_allclose(scores["original"], 1.0, atol=1e-9)
    assert np.ptp(scores[layers[-1]]) > 0.05  # per-image numbers that differ, not one constant
