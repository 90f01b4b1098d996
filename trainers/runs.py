"""What every recipe does around the loop: settings → configs, split, fit, test, checkpoint.

A classification recipe is then a few lines::

    @register("lenet5")
    def train_lenet5(settings: RunSettings) -> dict:
        \"\"\"LeNet-5 on MNIST with dropout and Kaiming initialization.\"\"\"
        config, train_config = configs_for(settings, LeNet5Config(), TRAIN, quick_epochs=1)
        data = load_mnist(settings.data_dir)
        return train_classifier(LeNet5(config), "lenet5", config, train_config, data, settings,
                                quick_train_size=1000)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from introspect.checkpoint import make_checkpoint
from introspect.subject import Task
from trainers.catalog import RunSettings, apply_overrides
from trainers.data import ImageDataset, balanced_probe, random_subset
from trainers.loop import AugmentFn, EpochFn, TensorSplit, TrainConfig, TrainResult, evaluate, fit, split_train_validation

PROBE_SIZE = 64


def configs_for(settings: RunSettings, model_config: Any, train_config: TrainConfig, *, quick_epochs: int = 1) -> tuple[Any, TrainConfig]:
    """The network's config and the TrainConfig after ``--epochs``, ``--quick``, ``--seed``,
    ``--device`` and ``--set`` overrides (in that order, so ``--set`` wins).

    ``model_config`` gets the run's seed when it has a ``seed`` field.
    """
    epochs = settings.epochs or (quick_epochs if settings.quick else train_config.epochs)
    train_config = dataclasses.replace(train_config, epochs=epochs, seed=settings.seed, device=settings.device)
    if any(field.name == "seed" for field in dataclasses.fields(model_config)):
        model_config = dataclasses.replace(model_config, seed=settings.seed)
    model_config, train_config = apply_overrides(settings.overrides, model=model_config, train=train_config)
    return model_config, train_config


def hyperparameters_of(model_config: Any, train_config: TrainConfig, settings: RunSettings, **more: Any) -> dict[str, Any]:
    """Plain-valued record of how the network was trained, for the checkpoint."""
    return {
        "model": _plain(dataclasses.asdict(model_config)),
        "train": _plain(dataclasses.asdict(train_config)),
        "quick": settings.quick,
        "overrides": dict(settings.overrides),
        **more,
    }


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value for key, value in values.items()}


def initial_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """CPU copies of every parameter before training (stored for drift figures)."""
    return {name: parameter.detach().cpu().clone() for name, parameter in model.named_parameters()}


@torch.no_grad()
def accuracy_of(model: nn.Module, data: TensorSplit, train_config: TrainConfig, state: Mapping[str, torch.Tensor] | None = None) -> float:
    """Accuracy of ``model`` (optionally with ``state`` loaded temporarily) on ``data``."""
    if state is None:
        return evaluate(model, data.to(_device_of(model)), train_config)["accuracy"]
    current = {name: value.detach().clone() for name, value in model.state_dict().items()}
    model.load_state_dict(state)
    try:
        return evaluate(model, data.to(_device_of(model)), train_config)["accuracy"]
    finally:
        model.load_state_dict(current)


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def train_classifier(
    model: nn.Module,
    architecture: str,
    model_config: Any,
    train_config: TrainConfig,
    data: ImageDataset,
    settings: RunSettings,
    *,
    flatten: bool = False,
    quick_train_size: int = 1000,
    validation_fraction: float = 0.1,
    augment: AugmentFn | None = None,
    extras: Mapping[str, Any] | None = None,
    initial_weights: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Train a classifier on ``data`` and return its introspect checkpoint dict.

    The training split is cut (seeded) into train and validation; in quick mode only
    ``quick_train_size`` training images are used. Dense networks pass ``flatten=True`` so
    inputs are ``[N, C*H*W]`` while the task still shows them as images. The checkpoint holds the
    final weights, the best-validation weights, history, test accuracy of both, a probe of
    64 test images balanced over classes, and the initial parameters.
    """
    if data.note:
        settings.say(data.note)
    reshape: Callable[[torch.Tensor], torch.Tensor] = (lambda x: x.flatten(1)) if flatten else (lambda x: x)
    pool = random_subset(data.train, quick_train_size, settings.seed) if settings.quick else data.train
    train, validation = split_train_validation(pool.map_inputs(reshape), validation_fraction, settings.seed)
    test = data.test.map_inputs(reshape)
    initial = dict(initial_weights) if initial_weights is not None else initial_parameters(model)
    result = fit(model, train, validation, train_config, progress=settings.progress, augment=augment)
    metrics = {
        "test_accuracy": accuracy_of(model, test, train_config),
        "best_test_accuracy": accuracy_of(model, test, train_config, result.best_state_dict),
        "best_val_accuracy": result.best("val_accuracy"),
        "best_val_loss": result.best("val_loss"),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "num_train": len(train),
        "num_validation": len(validation),
        "num_test": len(test),
    }
    probe_inputs, probe_labels = balanced_probe(test, PROBE_SIZE, seed=settings.seed)
    task = Task(
        kind="classification",
        input_shape=tuple(test.inputs.shape[1:]),
        image_shape=data.image_shape,
        class_names=data.class_names,
        normalization=data.normalization,
        dataset=data.name,
    )
    return make_checkpoint(
        model.cpu(),
        architecture=architecture,
        config=_plain(dataclasses.asdict(model_config)),
        task=task.to_dict(),
        probe_inputs=probe_inputs,
        probe_labels=probe_labels,
        history=result.history,
        hyperparameters=hyperparameters_of(model_config, train_config, settings, data_note=data.note),
        metrics=metrics,
        initial_weights=initial,
        best_state_dict=result.best_state_dict,
        extras=dict(extras or {}),
    )


def fit_with(
    model: nn.Module,
    train: TensorSplit,
    validation: TensorSplit | None,
    train_config: TrainConfig,
    settings: RunSettings,
    on_epoch: EpochFn | None = None,
) -> TrainResult:
    """:func:`~trainers.loop.fit` with the run's progress callback (for custom recipes)."""
    return fit(model, train, validation, train_config, progress=settings.progress, on_epoch=on_epoch)
