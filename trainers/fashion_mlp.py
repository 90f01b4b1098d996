"""FashionMLP: the dense FashionMNIST classifier of the course, whose only parameter is dropout.

784 -> 256 -> ReLU -> dropout -> 128 -> ReLU -> dropout -> 10 logits. The shape is fixed, as in
the homework; the dropout probability is the one knob (the hyperparameter search also tunes the
optimizer around it). Inputs are (N, 1, 28, 28) images or flat (N, 784) vectors.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class FashionMLPConfig:
    """How to build a FashionMLP.

    Attributes:
        dropout: probability of zeroing a hidden unit during training.
        num_inputs: pixels per image.
        hidden: widths of the two hidden layers (fixed by the homework; kept for the search).
        num_classes: outputs.
    """

    dropout: float = 0.2
    num_inputs: int = 784
    hidden: tuple[int, int] = (256, 128)
    num_classes: int = 10


class FashionMLP(nn.Module):
    """Dense layers, ReLU activations and dropout; returns logits."""

    def __init__(self, config: FashionMLPConfig) -> None:
        super().__init__()
        self.config = config
        first, second = config.hidden
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(config.num_inputs, first)
        self.fc2 = nn.Linear(first, second)
        self.fc3 = nn.Linear(second, config.num_classes)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images or flat vectors."""
        x = self.drop(self.act(self.fc1(self.flatten(x))))
        x = self.drop(self.act(self.fc2(x)))
        return self.fc3(x)


def build(config: dict[str, Any]) -> FashionMLP:
    """Entry point for ``introspect.architectures``: a FashionMLP from its stored config."""
    values = {key: value for key, value in config.items() if key in {f.name for f in dataclasses.fields(FashionMLPConfig)}}
    if "hidden" in values:
        values["hidden"] = tuple(int(width) for width in values["hidden"])
    return FashionMLP(FashionMLPConfig(**values))
