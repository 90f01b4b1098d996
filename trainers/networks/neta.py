"""``neta1`` and ``neta2``: the frozen-kernel experiments on 28x28 grayscale images.

NetA1: conv 1->4 (kernel 5, stride 2) -> ReLU -> flatten (4*12*12 = 576) -> linear 576->10.
NetA2: the same conv, then conv 4->12 (kernel 3, stride 2) -> ReLU -> flatten (12*5*5 = 300)
-> linear 300->10. Both return logits (train them with cross-entropy).

Each is trained in three schemes, its variants (``neta1-hf``, ``neta1-ht``, ``neta1-dt``, ...):

- ``hf``: the first conv starts from four hand-made 0/1 kernels and stays frozen;
- ``ht``: the first conv starts from the hand kernels and is trained;
- ``dt``: every layer starts from PyTorch's default initialization and is trained.

Every layer draws its default initialization from its own generator, seeded from ``seed`` and the
layer's name. So layers that two models share (``linear1`` across the schemes of one architecture,
``conv1`` of ``dt`` across NetA1 and NetA2, ``conv2`` across NetA2's schemes) start from
bit-identical weights, whatever else the model holds. That sharing is why both architectures
live in this one file, as two records over one class.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from typing import Any

import torch
from torch import nn

from trainers.data import ImageDataset, load_fashion_mnist, load_mnist
from trainers.loop import TrainConfig
from trainers.network import Network, Variant
from trainers.options import DatasetOptions
from trainers.search_space import OPTIMIZER_SPACE
from trainers.settings import RunSettings

ARCHITECTURES = ("neta1", "neta2")
SCHEMES = ("hf", "ht", "dt")
HAND_SCHEMES = ("hf", "ht")
FROZEN_LAYER = "conv1"

# One 5x5 pattern of 0s and 1s per output channel of the first conv (copied column by column from the issue).
HAND_PATTERNS = (
    ("10001", "01010", "00100", "01010", "10001"),
    ("00100", "11011", "00100", "11011", "00100"),
    ("01110", "11011", "10001", "11011", "01110"),
    ("11011", "01010", "00100", "11011", "11011"),
)


def hand_kernels() -> torch.Tensor:
    """The four hand-made kernels as a conv weight of shape (4, 1, 5, 5), values 0.0 and 1.0."""
    rows = [[[float(bit) for bit in row] for row in pattern] for pattern in HAND_PATTERNS]
    return torch.tensor(rows, dtype=torch.float32).unsqueeze(1)


@dataclasses.dataclass(frozen=True)
class NetAConfig:
    """How to build NetA1 or NetA2.

    Attributes:
        architecture: ``"neta1"`` (one conv) or ``"neta2"`` (two convs).
        scheme: ``"hf"``, ``"ht"`` or ``"dt"`` (see the module docstring).
        seed: seeds the default initialization of every layer.
        num_classes: outputs of the final linear layer.
        image_size: side of the square grayscale input.
    """

    architecture: str = "neta1"
    scheme: str = "dt"
    seed: int = 0
    num_classes: int = 10
    image_size: int = 28

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, not {self.architecture!r}")
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, not {self.scheme!r}")

    @property
    def frozen_layers(self) -> tuple[str, ...]:
        """Names of the layers that training must leave untouched."""
        return (FROZEN_LAYER,) if self.scheme == "hf" else ()


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


def layer_generator(seed: int, layer: str) -> torch.Generator:
    """A generator private to one layer: same ``seed`` and name, same numbers, in any model."""
    return torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(layer.encode()))


def default_init_(layer: nn.Conv2d | nn.Linear, generator: torch.Generator) -> None:
    """PyTorch's default ``reset_parameters`` (Kaiming-uniform weight, uniform bias), seeded."""
    with torch.no_grad():
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
        fan_in = layer.weight[0].numel()
        bound = 1.0 / math.sqrt(fan_in)
        layer.bias.uniform_(-bound, bound, generator=generator)


class NetA(nn.Module):
    """NetA1 or NetA2, chosen by ``config.architecture``; returns logits."""

    def __init__(self, config: NetAConfig) -> None:
        super().__init__()
        self.config = config
        self.conv1 = nn.Conv2d(1, 4, kernel_size=5, stride=2)
        side = _conv_out(config.image_size, 5, 2)
        self.conv2: nn.Conv2d | None = None
        if config.architecture == "neta2":
            self.conv2 = nn.Conv2d(4, 12, kernel_size=3, stride=2)
            side = _conv_out(side, 3, 2)
        channels = 12 if self.conv2 is not None else 4
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()
        self.linear1 = nn.Linear(channels * side * side, config.num_classes)
        self._initialize()

    def _initialize(self) -> None:
        for name, layer in (("conv1", self.conv1), ("conv2", self.conv2), ("linear1", self.linear1)):
            if layer is not None:
                default_init_(layer, layer_generator(self.config.seed, name))
        if self.config.scheme in HAND_SCHEMES:
            with torch.no_grad():
                self.conv1.weight.copy_(hand_kernels())
                self.conv1.bias.zero_()
        for parameter in self.conv1.parameters():
            parameter.requires_grad_(self.config.scheme != "hf")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of shape (N, 1, H, W)."""
        x = self.conv1(x)
        if self.conv2 is not None:
            x = self.conv2(self.relu(x))  # NetA2's first conv also feeds a ReLU
        return self.linear1(self.flatten(self.relu(x)))


def load_data(settings: RunSettings, options: DatasetOptions) -> ImageDataset:
    """FashionMNIST, or MNIST with ``--set dataset=mnist``."""
    load = load_fashion_mnist if options.dataset == "fashion" else load_mnist
    return load(settings.data_dir)


def extras(config: NetAConfig) -> dict[str, Any]:
    """The scheme and the frozen layers, for the comparison pages.

    The hand kernels need no extra: every initial parameter is stored, ``conv1.weight`` among them.
    """
    return {"scheme": config.scheme, "frozen_layers": list(config.frozen_layers)}


TRAIN = TrainConfig(epochs=30, batch_size=128, optimizer="adam", lr=1e-3, patience=5)

_SCHEME_WORDS = {
    "hf": "hand-made first conv, frozen",
    "ht": "hand-made first conv, trained",
    "dt": "default init, all trained",
}


def _record(architecture: str) -> Network:
    title = architecture.replace("neta", "NetA")
    variants = tuple(
        Variant(scheme, f"{title} on FashionMNIST ({_SCHEME_WORDS[scheme]}; --set dataset=mnist)", {"scheme": scheme})
        for scheme in SCHEMES
    )
    return Network(
        name=architecture,
        summary=f"{title}: the frozen-kernel experiment on FashionMNIST, in schemes {', '.join(SCHEMES)}.",
        config_class=NetAConfig,
        model=NetA,
        load_data=load_data,
        train=TRAIN,
        space=OPTIMIZER_SPACE,
        quick_epochs=4,  # enough points for the comparison pages' curves to show a trend
        quick_train_size=1000,
        options=DatasetOptions(),
        fixed_config={"architecture": architecture},  # the key decides, whatever a stored config says
        variants=variants,
        extras=extras,
    )


NETA1 = _record("neta1")
NETA2 = _record("neta2")
