"""ResNet18 for CIFAR-10: torchvision's ``resnet18`` with a 10-way head.

``build`` always makes the network from scratch (a checkpoint's weights are loaded into it
afterwards, so rebuilding never touches the network). ``load_imagenet_weights`` is what the
recipe calls when the user asks for ``pretrained=true``: it fetches torchvision's ImageNet
weights through the weights API, keeps everything but the 1000-way ``fc``, and fails with one
clear line when they cannot be fetched. ``--set augment=true`` adds random horizontal flips and
crops; ``--quick`` trains one epoch on a few hundred images (generated CIFAR-shaped ones when no
CIFAR-10 files are present).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torchvision
from torch import nn

from trainers.augmentation import flip_crop
from trainers.catalog import RecipeError, RunSettings, register
from trainers.data import ImageDataset, load_cifar10
from trainers.layers import config_from_dict, seeded
from trainers.loop import AugmentFn, TrainConfig
from trainers.options import AugmentOptions, as_plain, configs_with_options
from trainers.runs import train_classifier
from trainers.search_space import OPTIMIZER_SPACE, SearchProblem, classifier_problem, searchable

TRAIN = TrainConfig(epochs=15, batch_size=128, optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4, patience=4)
QUICK_TRAIN_SIZE = 600


class PretrainedWeightsError(RecipeError):
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
    return make_resnet18(config_from_dict(ResNet18Config, config))


def _prepare(settings: RunSettings) -> tuple[AugmentOptions, ResNet18Config, TrainConfig]:
    options, config, train_config = configs_with_options(settings, AugmentOptions(), ResNet18Config(), TRAIN)
    return options, config, train_config


def _load_data(settings: RunSettings, options: AugmentOptions) -> tuple[ImageDataset, AugmentFn | None]:
    data = load_cifar10(settings.data_dir, quick=settings.quick, seed=settings.seed)
    return data, (flip_crop(data.image_shape) if options.augment else None)


def _make_model(config: ResNet18Config, settings: RunSettings) -> nn.Module:
    with seeded(settings.seed):
        model = make_resnet18(config)
    if config.pretrained:
        fresh = load_imagenet_weights(model)
        settings.say(f"started from torchvision's ImageNet ResNet18 weights; fresh: {', '.join(fresh)}")
    return model


@register("resnet18", architecture="resnet18")
def train_resnet18(settings: RunSettings) -> dict[str, Any]:
    """torchvision ResNet18 on CIFAR-10, from scratch (--set pretrained=true: ImageNet weights)."""
    options, config, train_config = _prepare(settings)
    model = _make_model(config, settings)  # before the data, so missing weights fail fast
    data, augment = _load_data(settings, options)
    return train_classifier(
        model, "resnet18", config, train_config, data, settings,
        quick_train_size=QUICK_TRAIN_SIZE, augment=augment, extras={"options": as_plain(options)},
    )


@searchable("resnet18", space=OPTIMIZER_SPACE)
def resnet18_problem(settings: RunSettings) -> SearchProblem:
    """Cross-validation problem of ``resnet18`` for :mod:`trainers.search`."""
    options, config, train_config = _prepare(settings)
    data, augment = _load_data(settings, options)
    if data.note:
        settings.say(data.note)
    return classifier_problem(
        data, settings, lambda: _make_model(config, settings), train_config,
        quick_train_size=QUICK_TRAIN_SIZE, augment=augment,
    )
