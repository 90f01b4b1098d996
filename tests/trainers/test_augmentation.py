"""Batch augmentations: vertical flip + rotation (FashionMNIST), horizontal flip + padded crop (CIFAR)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainers.augmentation import background_value, flip_crop, flip_rotate


def test_flip_rotate_without_rotation_is_identity_or_an_exact_vertical_flip() -> None:
    torch.manual_seed(0)
    images = torch.rand(4, 1, 28, 28)
    augment = flip_rotate(degrees=0.0)
    outcomes = []
    for _ in range(40):
        out = augment(images)
        outcomes.append(
            "same" if torch.equal(out, images) else "flipped" if torch.equal(out, images.flip(2)) else "other"
        )
    assert set(outcomes) == {"same", "flipped"}
    assert 8 <= outcomes.count("flipped") <= 32  # p = 0.5 over 40 draws


def test_flat_inputs_are_augmented_as_images_and_keep_their_shape() -> None:
    torch.manual_seed(3)
    flat = torch.rand(5, 784)
    out = flip_rotate(degrees=30.0, fill=-1.0)(flat)
    assert out.shape == (5, 784)
    assert not torch.equal(out, flat)
    assert (out == -1.0).any()  # corners brought in by the rotation take the fill value


def test_background_value_is_a_black_pixel_after_normalization() -> None:
    assert background_value({"mean": [0.5], "std": [0.25]}) == -2.0
    assert background_value(None) == 0.0


def test_flip_crop_takes_a_32_pixel_window_of_the_padded_image() -> None:
    torch.manual_seed(0)
    images = torch.rand(2, 3, 32, 32)
    padded = F.pad(images, (4, 4, 4, 4))
    for _ in range(10):
        out = flip_crop(padding=4)(images)
        assert out.shape == images.shape
        windows = [padded[..., top : top + 32, left : left + 32] for top in range(9) for left in range(9)]
        assert any(torch.equal(out, window) or torch.equal(out, window.flip(3)) for window in windows)
