"""CifarMLP: the "old-style" fully connected CIFAR-10 network of the course.

3072 -> 4096 -> sigmoid -> 4096 -> sigmoid -> 10 logits, exactly as in the homework. Inputs are
(N, 3, 32, 32) images or flat (N, 3072) vectors. ``--quick`` keeps the full widths and trains one
epoch on a few hundred images (generated CIFAR-shaped ones when no CIFAR-10 files are present).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from trainers.catalog import RunSettings, register
from trainers.data import ImageDataset, load_cifar10
from trainers.layers import config_from_dict, seeded
from trainers.loop import TrainConfig
from trainers.runs import configs_for, train_classifier
from trainers.search_space import OPTIMIZER_SPACE, SearchProblem, classifier_problem, searchable

TRAIN = TrainConfig(epochs=20, batch_size=128, optimizer="sgd", lr=0.01, momentum=0.9, patience=4)
QUICK_TRAIN_SIZE = 600
# Initial copies of the 4096-wide layers would add tens of megabytes to every checkpoint for a
# drift figure nobody draws for them; smaller tensors (the conv kernels) are kept.
MAX_INITIAL_ELEMENTS = 1_000_000


@dataclasses.dataclass(frozen=True)
class CifarMLPConfig:
    """How to build a CifarMLP.

    Attributes:
        num_inputs: values per image (3 * 32 * 32).
        hidden: width of both hidden layers.
        num_classes: outputs.
    """

    num_inputs: int = 3 * 32 * 32
    hidden: int = 4096
    num_classes: int = 10


class CifarMLP(nn.Module):
    """Two sigmoid hidden layers; returns logits."""

    def __init__(self, config: CifarMLPConfig) -> None:
        super().__init__()
        self.config = config
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(config.num_inputs, config.hidden)
        self.fc2 = nn.Linear(config.hidden, config.hidden)
        self.fc3 = nn.Linear(config.hidden, config.num_classes)
        self.act = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images or flat vectors."""
        x = self.act(self.fc1(self.flatten(x)))
        x = self.act(self.fc2(x))
        return self.fc3(x)


def build(config: dict[str, Any]) -> CifarMLP:
    """Entry point for ``introspect.architectures``: a CifarMLP from its stored config."""
    return CifarMLP(config_from_dict(CifarMLPConfig, config))


def _prepare(settings: RunSettings) -> tuple[CifarMLPConfig, TrainConfig, ImageDataset]:
    config, train_config = configs_for(settings, CifarMLPConfig(), TRAIN)
    return config, train_config, load_cifar10(settings.data_dir, quick=settings.quick, seed=settings.seed)


@register("cifar-mlp", architecture="cifar-mlp")
def train_cifar_mlp(settings: RunSettings) -> dict[str, Any]:
    """CIFAR-10 MLP 3072-4096-4096-10 with sigmoid activations."""
    config, train_config, data = _prepare(settings)
    with seeded(settings.seed):
        model = CifarMLP(config)
    initial = {name: p.detach().clone() for name, p in model.named_parameters() if p.numel() <= MAX_INITIAL_ELEMENTS}
    return train_classifier(
        model, "cifar-mlp", config, train_config, data, settings,
        flatten=True, quick_train_size=QUICK_TRAIN_SIZE, initial_weights=initial,
    )


@searchable("cifar-mlp", space=OPTIMIZER_SPACE)
def cifar_mlp_problem(settings: RunSettings) -> SearchProblem:
    """Cross-validation problem of ``cifar-mlp`` for :mod:`trainers.search`."""
    config, train_config, data = _prepare(settings)
    if data.note:
        settings.say(data.note)
    return classifier_problem(
        data, settings, lambda: CifarMLP(config), train_config, quick_train_size=QUICK_TRAIN_SIZE, flatten=True
    )
