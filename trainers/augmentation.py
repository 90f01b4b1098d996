"""Training-time augmentations as batch functions for :func:`trainers.loop.fit`.

Each is a ``torchvision.transforms.v2`` pipeline applied to a whole batch tensor at once: v2
treats the leading dimension as a batch and draws one set of random parameters per call, so
every image of a batch gets the same flip and angle while successive batches differ. That keeps
the loop at tensor speed (no per-image Python) and is seeded by ``fit`` through torch's RNG.
Flat inputs (an MLP's ``[N, 784]``) are viewed as images for the transform and flattened back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torchvision.transforms import v2

if TYPE_CHECKING:
    from trainers.data import ImageDataset
    from trainers.options import AugmentOptions

AugmentFn = Callable[[torch.Tensor], torch.Tensor]


def background_value(normalization: dict[str, Sequence[float]] | None) -> float:
    """What a black pixel becomes after normalization (the fill for rotated-in corners)."""
    if not normalization:
        return 0.0
    return -float(normalization["mean"][0]) / float(normalization["std"][0])


def _on_images(transform: v2.Transform, image_shape: tuple[int, int, int]) -> AugmentFn:
    def augment(inputs: torch.Tensor) -> torch.Tensor:
        images = inputs.reshape(len(inputs), *image_shape)
        return transform(images).reshape(inputs.shape)

    return augment


def flip_rotate(image_shape: tuple[int, int, int] = (1, 28, 28), degrees: float = 15.0, fill: float = 0.0) -> AugmentFn:
    """Random vertical flip (p=0.5) and random rotation in [-degrees, degrees] (FashionMNIST).

    Args:
        image_shape: (C, H, W) of one input, used to view flat inputs as images.
        degrees: largest rotation angle.
        fill: value for the pixels a rotation brings in (the normalized background).
    """
    transform = v2.Compose([v2.RandomVerticalFlip(p=0.5), v2.RandomRotation(degrees=degrees, fill=fill)])
    return _on_images(transform, image_shape)


def flip_crop(image_shape: tuple[int, int, int] = (3, 32, 32), padding: int = 4) -> AugmentFn:
    """Random horizontal flip (p=0.5) and a random crop after zero padding (CIFAR-10)."""
    _, height, width = image_shape
    transform = v2.Compose([v2.RandomHorizontalFlip(p=0.5), v2.RandomCrop((height, width), padding=padding)])
    return _on_images(transform, image_shape)


# --- as a network's record names them: (options, data) -> augmentation or None ---------------------


def flip_rotate_for(options: AugmentOptions, data: ImageDataset) -> AugmentFn | None:
    """:func:`flip_rotate` when ``options.augment`` asks for it (FashionMNIST networks), else ``None``.

    Rotated-in corners take the normalized background value, so they look like the image's own black.
    """
    if not options.augment:
        return None
    return flip_rotate(data.image_shape, options.rotation, background_value(data.normalization))


def flip_crop_for(options: AugmentOptions, data: ImageDataset) -> AugmentFn | None:
    """:func:`flip_crop` when ``options.augment`` asks for it (CIFAR-10 networks), else ``None``."""
    return flip_crop(data.image_shape) if options.augment else None
