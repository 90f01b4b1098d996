"""ROAR (Hooker et al. 2019): remove the pixels a method ranks highest, retrain, and see how far accuracy falls.

A method whose maps find the evidence makes accuracy fall faster than removing random pixels
does; retraining on the degraded images is what tells "the evidence is gone" from "the images
are out of distribution". Maps come from the checkpoint's own trained model, for the training
and the test images alike; removed pixels take the training set's per-channel mean. Every
retraining is a fresh model from the network's recipe, under the same seed.

The data randomization test (Adebayo et al. 2018) is here too: the same network trained on
permuted labels should explain the probe differently from the trained one, more differently
than a second seed of the trained one does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trainers.loop import TensorSplit, fit, split_train_validation
from trainers.training import accuracy_of, build_model, configure, training_pool

if TYPE_CHECKING:
    from torch import nn

    from trainers.data import ImageDataset
    from trainers.network import Network
    from trainers.settings import RunSettings

#: Methods ROAR ranks pixels with; ``random`` is the control every other curve is read against.
METHODS = (
    "saliency",
    "integrated_gradients",
    "smoothgrad",
    "guided_backprop",
    "smoothgrad_squared",
    "vargrad",
    "random",
)
FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
#: Noisy samples for SmoothGrad-squared and VarGrad (Hooker et al. use 15), noise 15% of the input range.
NOISE_SAMPLES = 15
NOISE_LEVEL = 0.15
CLASSIFIER_VALIDATION_FRACTION = 0.1


@dataclasses.dataclass(frozen=True)
class RetrainSetup:
    """What every retraining shares: the network's recipe, the data as the model takes it, and the seed.

    Attributes:
        network: the network's record (model, recipe).
        settings: the run settings (quick, epochs, seed, device).
        config: the model config the checkpoint was trained with.
        train: the training pool, shaped as the model takes it.
        test: the test split, shaped as the model takes it.
        image_shape: (C, H, W) of one image, however the model takes it.
    """

    network: Network
    settings: RunSettings
    config: Any
    train: TensorSplit
    test: TensorSplit
    image_shape: tuple[int, int, int]

    def retrained_accuracy(self, train: TensorSplit, test: TensorSplit) -> float:
        """Test accuracy of a fresh model trained on ``train`` (validation cut from it, seeded)."""
        _, _, train_config = configure(self.network, self.settings)
        model = build_model(self.network, self.config, self.settings)
        fitted, validation = split_train_validation(train, CLASSIFIER_VALIDATION_FRACTION, self.settings.seed)
        fit(model, fitted, validation, train_config)
        return accuracy_of(model, test, train_config)


def setup_for(network: Network, settings: RunSettings, config: Any, data: ImageDataset) -> RetrainSetup:
    """The shared setup for ``network`` trained on ``data`` (the quick subset under ``settings.quick``)."""
    test = data.test.map_inputs(lambda inputs: inputs.flatten(1)) if network.flatten else data.test
    return RetrainSetup(network, settings, config, training_pool(network, data, settings), test, data.image_shape)


def pixel_maps(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    method: str,
    image_shape: tuple[int, int, int],
    seed: int,
) -> torch.Tensor:
    """(N, H, W) importance of each pixel by ``method``: the magnitude summed over channels."""
    if method == "random":
        generator = torch.Generator().manual_seed(seed)
        return torch.rand(len(inputs), *image_shape[1:], generator=generator)
    if method in ("smoothgrad_squared", "vargrad"):
        values = _noisy_gradient_statistic(model, inputs, targets, method, seed)
    else:
        from introspect.analyzers._attribution import attribute

        values = attribute(model, inputs, targets, method, seed=seed)
    return values.detach().reshape(len(inputs), *image_shape).abs().sum(dim=1)


def _noisy_gradient_statistic(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, method: str, seed: int
) -> torch.Tensor:
    """SmoothGrad-squared (the mean of squared gradients) or VarGrad (their variance) over noisy copies."""
    generator = torch.Generator().manual_seed(seed)
    scale = NOISE_LEVEL * float(inputs.max() - inputs.min())
    first, second = torch.zeros_like(inputs), torch.zeros_like(inputs)
    for _ in range(NOISE_SAMPLES):
        noisy = (inputs + scale * torch.randn(inputs.shape, generator=generator)).requires_grad_(True)
        score = model(noisy).gather(1, targets[:, None]).sum()
        (gradient,) = torch.autograd.grad(score, noisy)
        first += gradient
        second += gradient**2
    mean_square = second / NOISE_SAMPLES
    if method == "smoothgrad_squared":
        return mean_square
    return mean_square - (first / NOISE_SAMPLES) ** 2


def remove_top(inputs: torch.Tensor, maps: torch.Tensor, fraction: float, fill: torch.Tensor) -> torch.Tensor:
    """``inputs`` (N, C*H*W or N, C, H, W) with each image's top ``fraction`` of pixels set to ``fill`` (C values).

    Ties are broken by position (a stable sort), so the same maps always remove the same pixels.
    """
    count, height, width = maps.shape
    removed = int(round(fraction * height * width))
    images = inputs.reshape(count, -1, height * width).clone()
    order = torch.argsort(maps.reshape(count, -1), dim=1, descending=True, stable=True)[:, :removed]
    mask = torch.zeros(count, height * width, dtype=torch.bool)
    mask.scatter_(1, order, True)
    images = torch.where(mask[:, None, :], fill.reshape(1, -1, 1).to(images.dtype), images)
    return images.reshape(inputs.shape)


def channel_means(inputs: torch.Tensor, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """The per-channel mean of the training images (what Hooker et al. put in place of removed pixels)."""
    return inputs.reshape(len(inputs), image_shape[0], -1).mean(dim=(0, 2))


def maps_for(
    model: nn.Module, split: TensorSplit, method: str, image_shape: tuple[int, int, int], seed: int, batch: int = 256
) -> torch.Tensor:
    """Pixel maps of every input of ``split`` for its true class, in batches (the model in eval mode)."""
    model.eval()
    parts = [
        pixel_maps(
            model,
            split.inputs[start : start + batch],
            split.targets[start : start + batch],
            method,
            image_shape,
            seed + start,
        )
        for start in range(0, len(split), batch)
    ]
    return torch.cat(parts)


@dataclasses.dataclass
class RoarRecord:
    """Accuracies measured so far, by ``"method@fraction"`` (``"clean"`` for no removal); resumable."""

    accuracies: dict[str, float] = dataclasses.field(default_factory=dict)


def roar_curves(
    model: nn.Module,
    setup: RetrainSetup,
    methods: Sequence[str],
    fractions: Sequence[float],
    record: RoarRecord,
    *,
    after_each: Callable[[str, float], None] | None = None,
) -> dict[str, list[float]]:
    """Per method, test accuracy after removing each fraction and retraining; the clean accuracy under ``"clean"``.

    Results already in ``record`` are not measured again; ``after_each(key, accuracy)`` is called
    after each retraining (to save the record and move a progress bar).
    """
    fill = channel_means(setup.train.inputs, setup.image_shape)

    def measured(key: str, train: Callable[[], TensorSplit], test: Callable[[], TensorSplit]) -> float:
        if key not in record.accuracies:
            record.accuracies[key] = setup.retrained_accuracy(train(), test())
            if after_each is not None:
                after_each(key, record.accuracies[key])
        return record.accuracies[key]

    curves = {"clean": [measured("clean", lambda: setup.train, lambda: setup.test)]}
    for method in methods:
        pending = [fraction for fraction in fractions if f"{method}@{fraction:g}" not in record.accuracies]
        degraded = _degrader(model, setup, method, fill) if pending else None
        curves[method] = [
            measured(
                f"{method}@{fraction:g}",
                lambda fraction=fraction, degraded=degraded: degraded(setup.train, "train", fraction),
                lambda fraction=fraction, degraded=degraded: degraded(setup.test, "test", fraction),
            )
            for fraction in fractions
        ]
    return curves


def _degrader(
    model: nn.Module, setup: RetrainSetup, method: str, fill: torch.Tensor
) -> Callable[[TensorSplit, str, float], TensorSplit]:
    """``degraded(split, which, fraction)`` for one method, its maps of both splits computed once."""
    seed = setup.settings.seed
    maps = {
        "train": maps_for(model, setup.train, method, setup.image_shape, seed),
        "test": maps_for(model, setup.test, method, setup.image_shape, seed + 1),
    }

    def degraded(split: TensorSplit, which: str, fraction: float) -> TensorSplit:
        return TensorSplit(remove_top(split.inputs, maps[which], fraction, fill), split.targets)

    return degraded


def spearman_rows(first: torch.Tensor, second: torch.Tensor) -> np.ndarray:
    """Spearman rank correlation between matching maps of two (N, H, W) stacks, one value per map."""
    from scipy.stats import spearmanr

    a = first.reshape(len(first), -1).double().numpy()
    b = second.reshape(len(second), -1).double().numpy()
    return np.array([spearmanr(left, right).statistic for left, right in zip(a, b)])


def permuted_labels(split: TensorSplit, seed: int) -> TensorSplit:
    """The same inputs with their labels shuffled (seeded): nothing left to learn but the inputs' identity."""
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    return TensorSplit(split.inputs, split.targets[order])


def trained_model(setup: RetrainSetup, train: TensorSplit, seed: int) -> nn.Module:
    """A fresh model trained on ``train`` under ``seed``, in eval mode."""
    settings = dataclasses.replace(setup.settings, seed=seed)
    _, _, train_config = configure(setup.network, settings)
    model = build_model(setup.network, setup.config, settings)
    fitted, validation = split_train_validation(train, CLASSIFIER_VALIDATION_FRACTION, seed)
    fit(model, fitted, validation, train_config)
    return model.cpu().eval()


def data_randomization(
    model: nn.Module, setup: RetrainSetup, probe: TensorSplit, method: str = "saliency"
) -> Mapping[str, Any]:
    """Maps of the trained model against a second seed's and a permuted-label twin's, on ``probe``.

    Returns the three map stacks and the per-image Spearman correlations of the trained model's
    maps with each twin's; the test passes when the permuted-label twin correlates less.
    """
    seed = setup.settings.seed
    shape = setup.image_shape
    twins = {
        "second_seed": trained_model(setup, setup.train, seed + 1),
        "random_labels": trained_model(setup, permuted_labels(setup.train, seed), seed),
    }
    trained_maps = maps_for(model, probe, method, shape, seed)
    maps = {name: maps_for(twin, probe, method, shape, seed) for name, twin in twins.items()}
    correlations = {name: spearman_rows(trained_maps, twin_maps) for name, twin_maps in maps.items()}
    return {"trained": trained_maps, **maps, "correlations": correlations}
