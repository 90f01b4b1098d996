"""``resnet18``: torchvision's ``resnet18`` with a 10-way head, for CIFAR-10.

The record always builds the network from scratch (a checkpoint's weights are loaded into it
afterwards, so rebuilding never touches the network). ``--set pretrained=true`` starts training
from torchvision's ImageNet weights (:func:`load_imagenet_weights`: everything but the 1000-way
``fc``), failing with one clear line when they cannot be fetched. ``--set augment=true`` adds
random horizontal flips and crops; ``--quick`` trains one epoch on a few hundred images
(generated CIFAR-shaped ones when no CIFAR-10 files are present).
"""

from __future__ import annotations

import dataclasses

import torch
import torchvision
from torch import nn

from trainers.augmentation import flip_crop_for
from trainers.data import ImageDataset, load_cifar10
from trainers.loop import TrainConfig
from trainers.network import Network
from trainers.options import AugmentOptions
from trainers.search_space import OPTIMIZER_SPACE
from trainers.settings import RecipeError, RunSettings


class PretrainedWeightsError(RecipeError):
    """The ImageNet weights could not be fetched or read."""


@dataclasses.dataclass(frozen=True)
class ResNet18Config:
    """How to build the ResNet18.

    Attributes:
        num_classes: outputs of the final fully connected layer.
        pretrained: whether training started from ImageNet weights (recorded; building ignores it).
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


def starting_weights(model: nn.Module, config: ResNet18Config, settings: RunSettings) -> None:
    """ImageNet weights when the run asks for ``pretrained=true``; the fresh ones otherwise."""
    if config.pretrained:
        fresh = load_imagenet_weights(model)
        settings.say(f"started from torchvision's ImageNet ResNet18 weights; fresh: {', '.join(fresh)}")


def load_data(settings: RunSettings, options: AugmentOptions) -> ImageDataset:
    """CIFAR-10, or in quick mode a generated stand-in when no files can be had."""
    return load_cifar10(settings.data_dir, quick=settings.quick, seed=settings.seed)


TRAIN = TrainConfig(epochs=15, batch_size=128, optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4, patience=4)

NETWORK = Network(
    name="resnet18",
    summary="torchvision ResNet18 on CIFAR-10, from scratch (--set pretrained=true: ImageNet weights).",
    config_class=ResNet18Config,
    model=make_resnet18,
    load_data=load_data,
    train=TRAIN,
    space=OPTIMIZER_SPACE,
    quick_train_size=600,
    options=AugmentOptions(),
    augment=flip_crop_for,
    starting_weights=starting_weights,
)
