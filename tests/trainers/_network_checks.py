"""Helpers shared by the network tests: run a recipe quickly, save, reload, compare; small data."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from introspect.architectures import build_registered
from introspect.checkpoint import save_checkpoint
from introspect.loading import load_checkpoint
from introspect.subject import Subject
from trainers.catalog import get_recipe
from trainers.data import ImageDataset
from trainers.loop import TensorSplit
from trainers.network import Network, Variant
from trainers.settings import RunSettings
from trainers.training import train


def quick_settings(seed: int = 0, **overrides: str) -> RunSettings:
    """One quick epoch on the offline data, on the CPU."""
    return RunSettings(
        quick=True, epochs=1, device="cpu", seed=seed, data_dir=os.environ["INTROSPECT_DATA"], overrides=overrides
    )


def quick_checkpoint(name: str, **overrides: str) -> dict[str, Any]:
    """Train recipe ``name`` for one quick epoch on the offline data."""
    return get_recipe(name).run(quick_settings(**overrides))


def quick_train(network: Network, variant: Variant | None = None, **overrides: str) -> dict[str, Any]:
    """Train a network record (a test's copy, e.g. with smaller data) for one quick epoch."""
    return train(network, quick_settings(**overrides), variant)


def reload(checkpoint: dict[str, Any], path: Path) -> tuple[Subject, float]:
    """Save and reload through ``introspect``; the largest output difference to a direct rebuild."""
    save_checkpoint(path, checkpoint)
    subject = load_checkpoint(path, device="cpu")
    direct = build_registered(checkpoint["architecture"]["key"], checkpoint["architecture"]["config"])
    direct.load_state_dict(checkpoint["state_dict"])
    direct.eval()
    subject.model.eval()
    with torch.no_grad():
        difference = (subject.model(subject.probe_inputs) - direct(checkpoint["probe"]["inputs"])).abs().max()
    return subject, float(difference)


@torch.no_grad()
def accuracy(model: torch.nn.Module, split: TensorSplit) -> float:
    """Share of ``split`` that ``model`` (in eval mode) classifies correctly."""
    model.eval()
    return int((model(split.inputs).argmax(1) == split.targets).sum()) / len(split)


def state_equal(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    """Same keys and bit-identical tensors."""
    return first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)


def tiny_cifar(num_train: int = 120, num_test: int = 40, seed: int = 0) -> ImageDataset:
    """Generated CIFAR-shaped data (classes differ in mean colour), small enough for a unit test."""
    generator = torch.Generator().manual_seed(seed)
    colours = torch.randn(10, 3, 1, 1, generator=generator)
    splits = []
    for size in (num_train, num_test):
        labels = torch.arange(size) % 10
        images = torch.randn(size, 3, 32, 32, generator=generator) + colours[labels]
        splits.append(TensorSplit(images, labels))
    return ImageDataset(
        train=splits[0], test=splits[1], class_names=tuple(str(i) for i in range(10)),
        image_shape=(3, 32, 32), normalization=None, name="tiny generated CIFAR", note="generated",
    )  # fmt: skip


def with_small_data(network: Network, num_train: int = 120, num_test: int = 40) -> Network:
    """``network`` whose image data is cut to its first ``num_train`` / ``num_test`` images.

    Whatever the network trains on, so the common checks stay quick for every network; a
    regression task is small already and passes through.
    """
    load = network.load_data

    def load_small(settings: RunSettings, options: Any) -> Any:
        data = load(settings, options)
        if not isinstance(data, ImageDataset):
            return data
        return dataclasses.replace(data, train=data.train.head(num_train), test=data.test.head(num_test))

    return dataclasses.replace(network, load_data=load_small)
