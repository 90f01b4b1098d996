"""ResNet18 for CIFAR-10: torchvision's ``resnet18`` with a 10-way head.

``build`` always makes the network from scratch (a checkpoint's weights are loaded into it
afterwards, so rebuilding never touches the network). ``load_imagenet_weights`` is what the
recipe calls when the user asks for ``pretrained=true``: it fetches torchvision's ImageNet
weights through the weights API, keeps everything but the 1000-way ``fc``, and fails with one
clear line when they cannot be fetched.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torchvision
from torch import nn


class PretrainedWeightsError(RuntimeError):
    """The ImageNet weights could not be fetched or read."""


@dataclasses.dataclass(frozen=True)
class ResNet18Config:
    """How to build the ResNet18.

    Attributes:
        num_classes: outputs of the final fully connected layer.
        pretrained: whether training started from ImageNet weights (recorded; ``build`` ignores it).
    """

    num_classes: int = 10
    pretrained: bool = False


def make_resnet18(config: ResNet18Config) -> nn.Module:
    """torchvision's ResNet18 with ``config.num_classes`` outputs, randomly initialized."""
    return torchvision.models.resnet18(weights=None, num_classes=config.num_classes)


def load_imagenet_weights(model: nn.Module, progress: bool = False) -> list[str]:
    """Copy torchvision's ImageNet ResNet18 weights into ``model``, all but the ``fc`` head.

    Returns:
        The names of the tensors left at their fresh initialization (the head).

    Raises:
        PretrainedWeightsError: the weights could not be downloaded or read (one line).
    """
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    try:
        state = weights.get_state_dict(progress=progress)
    except Exception as error:  # URLError, OSError, hash mismatch: all mean "not available"
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PretrainedWeightsError(
            f"could not fetch the ImageNet ResNet18 weights ({weights.url}): {reason}; "
            "train from scratch (drop pretrained=true) or put the file in torch's hub cache "
            f"({torch.hub.get_dir()}/checkpoints)"
        ) from error
    own = model.state_dict()
    fitting = {name: tensor for name, tensor in state.items() if name in own and own[name].shape == tensor.shape}
    model.load_state_dict(fitting, strict=False)
    return sorted(set(own) - set(fitting))


def build(config: dict[str, Any]) -> nn.Module:
    """Entry point for ``introspect.architectures``: a fresh ResNet18 from its stored config."""
    known = {field.name for field in dataclasses.fields(ResNet18Config)}
    return make_resnet18(ResNet18Config(**{key: value for key, value in config.items() if key in known}))
