"""Small pieces the network modules share: activations, weight initialization, seeded building."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

import torch
from torch import nn

from introspect.validate import ConfigError
from introspect.validate_config import check_config_fields

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
}
INITS = ("default", "xavier", "kaiming", "normal")

ConfigT = TypeVar("ConfigT")


def activation(name: str) -> nn.Module:
    """A fresh activation module by name (``sigmoid``, ``tanh``, ``relu``, ``gelu``, ``leaky_relu``)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, not {name!r}")
    return ACTIVATIONS[name]()


def check_choice(field: str, value: str, allowed: tuple[str, ...] | Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the allowed values when ``value`` is not one of them."""
    if value not in allowed:
        raise ValueError(f"{field} must be one of {', '.join(allowed)}, not {value!r}")


def initialize(model: nn.Module, scheme: str, nonlinearity: str = "relu") -> None:
    """Re-initialize every Linear and Conv layer of ``model`` in place.

    ``default`` keeps PyTorch's initialization; ``xavier`` (Glorot uniform), ``kaiming`` (He
    normal, fan-in) and ``normal`` (std 0.05) set the weights and zero the biases.
    """
    check_choice("init", scheme, INITS)
    if scheme == "default":
        return
    gain_name = nonlinearity if nonlinearity in ("sigmoid", "tanh", "relu") else "relu"
    for module in model.modules():
        if not isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            continue
        if scheme == "xavier":
            nn.init.xavier_uniform_(module.weight, gain=nn.init.calculate_gain(gain_name))
        elif scheme == "kaiming":
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu" if gain_name != "tanh" else "tanh")
        else:
            nn.init.normal_(module.weight, std=0.05)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def dense_stack(widths: tuple[int, ...], activation_name: str, dropout: float) -> nn.Sequential:
    """Linear layers between consecutive ``widths``, each followed by its activation and dropout."""
    layers: list[nn.Module] = []
    for width_in, width_out in zip(widths, widths[1:]):
        layers += [nn.Linear(width_in, width_out), activation(activation_name), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class DenseClassifier(nn.Module):
    """``input_size`` → hidden widths → ``num_classes`` logits; each hidden layer is linear,
    activation, dropout. The dense networks that differ only in their sizes share it.

    ``config`` needs ``hidden``, ``activation``, ``dropout``, ``init`` and ``seed`` (see
    :func:`check_dense_config`).
    """

    def __init__(self, input_size: int, config: Any, num_classes: int = 10) -> None:
        super().__init__()
        self.config = config
        widths = (input_size, *config.hidden)
        with seeded(config.seed):
            self.hidden = dense_stack(widths, config.activation, config.dropout)
            self.classifier = nn.Linear(widths[-1], num_classes)
            initialize(self, config.init, config.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, input_size]`` inputs to ``[N, num_classes]`` logits."""
        return self.classifier(self.hidden(x))


def check_dense_config(config: Any) -> None:
    """Validate a dense classifier's config: known activation and init, widths, dropout range."""
    check_choice("activation", config.activation, ACTIVATIONS)
    check_choice("init", config.init, INITS)
    if not config.hidden or min(config.hidden) < 1 or not 0.0 <= config.dropout < 1.0:
        raise ValueError("hidden needs at least one positive width, and dropout lies in [0, 1)")


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's CPU generator seeded, restoring the caller's RNG state after.

    Building a network inside ``with seeded(config.seed)`` gives the same initial weights for the
    same seed without changing the random state anyone else sees.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def config_from_dict(config_class: type[ConfigT], values: Mapping[str, Any]) -> ConfigT:
    """Rebuild a config dataclass from a checkpoint's plain dict (lists become tuples).

    Every architecture factory goes through here, so the fields are checked against the
    dataclass's field types (int, float, str, bool, tuples) before the dataclass is built.

    Raises:
        ValueError: a key that the config does not have, or a value of the wrong type (an
            ``introspect.validate.ConfigError`` naming the field).
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"{config_class.__name__} needs a dict of field values, not {type(values).__name__}")
    check_config_fields(config_class, values, f"{config_class.__name__} config")  # type: ignore[arg-type]
    return config_class(**{key: tuple(value) if isinstance(value, list) else value for key, value in values.items()})
