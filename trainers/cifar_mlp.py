"""CifarMLP: the "old-style" fully connected CIFAR-10 network of the course.

3072 -> 4096 -> sigmoid -> 4096 -> sigmoid -> 10 logits, exactly as in the homework. Inputs are
(N, 3, 32, 32) images or flat (N, 3072) vectors.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn


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
    known = {field.name for field in dataclasses.fields(CifarMLPConfig)}
    return CifarMLP(CifarMLPConfig(**{key: value for key, value in config.items() if key in known}))
