"""The one way a network is trained: settings → configs, data, model, fit, checkpoint.

:func:`train` takes a network's record (:class:`~trainers.network.Network`) and the run's
settings, and returns the introspect checkpoint dict. A classification data set
(``ImageDataset``) is split into train and validation, fitted and scored on its test split; a
regression task (``RegressionData``) also records the network's output curve over epochs::

    checkpoint = train(get_network("lenet5"), RunSettings(quick=True))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from introspect.checkpoint import make_checkpoint
from introspect.subject import Task
from trainers.data import REGRESSION_DOMAIN, ImageDataset, RegressionData, balanced_probe, random_subset, true_function
from trainers.drift import DriftRecorder, chained, drift_probe
from trainers.layers import seeded
from trainers.loop import AugmentFn, TensorSplit, TrainConfig, TrainResult, evaluate, fit, split_train_validation
from trainers.network import Network, Variant
from trainers.options import as_plain
from trainers.settings import RunSettings, configs_for, configs_with_options

PROBE_SIZE = 64
NUM_SNAPSHOTS = 60
GRID_SIZE = 201
CLASSIFIER_VALIDATION_FRACTION = 0.1
REGRESSION_VALIDATION_FRACTION = 0.2


@dataclasses.dataclass(frozen=True)
class Prepared:
    """What a run of one network starts from, after the settings are applied.

    Attributes:
        options: the parsed run options, or ``None`` when the network has none.
        config: the network's config dataclass.
        train_config: the loop's settings.
        data: an ``ImageDataset`` (classification) or ``RegressionData``.
        augment: the training-batch augmentation, if the options ask for one.
    """

    options: Any
    config: Any
    train_config: TrainConfig
    data: Any
    augment: AugmentFn | None = None


def configure(network: Network, settings: RunSettings, variant: Variant | None = None) -> tuple[Any, Any, TrainConfig]:
    """``(options, config, train_config)`` for a run: defaults, then the settings, then ``--set``.

    The fields that the network and ``variant`` fix are applied last, so ``--set`` cannot change them.
    """
    fixed = network.fixed_fields(variant)
    start = network.default_config(variant)
    if network.options is None:
        options = None
        config, train_config = configs_for(settings, start, network.train, quick_epochs=network.quick_epochs)
    else:
        options, config, train_config = configs_with_options(
            settings, network.options, start, network.train, quick_epochs=network.quick_epochs
        )
    return options, dataclasses.replace(config, **fixed) if fixed else config, train_config


def prepare(network: Network, settings: RunSettings, variant: Variant | None = None) -> Prepared:
    """:func:`configure`, then the network's data and augmentation."""
    return _with_data(network, settings, *configure(network, settings, variant))


def _with_data(
    network: Network, settings: RunSettings, options: Any, config: Any, train_config: TrainConfig
) -> Prepared:
    data = network.load_data(settings, options)
    augment = network.augment(options, data) if network.augment is not None else None
    return Prepared(options, config, train_config, data, augment)


def build_model(network: Network, config: Any, settings: RunSettings) -> nn.Module:
    """A fresh network under the run's seed, with its starting weights when it has any.

    Networks that seed themselves from ``config.seed`` are unaffected by the outer seed; the
    caller's random state is restored either way.
    """
    with seeded(settings.seed):
        model = network.model(config)
    if network.starting_weights is not None:
        network.starting_weights(model, config, settings)
    return model


def train(network: Network, settings: RunSettings, variant: Variant | None = None) -> dict[str, Any]:
    """Train ``network`` (as ``variant``) as ``settings`` say; the introspect checkpoint dict."""
    options, config, train_config = configure(network, settings, variant)
    model = build_model(network, config, settings)  # before the data, so missing weights fail fast
    run = _with_data(network, settings, options, config, train_config)
    initial = initial_parameters(model, network.max_initial_elements)
    if isinstance(run.data, RegressionData):
        return train_regressor(model, network.name, run, settings, initial)
    extras = dict(network.extras(config)) if network.extras is not None else {}
    if options is not None:
        extras["options"] = as_plain(options)
    return train_classifier(model, network, run, settings, initial, extras)


def training_pool(network: Network, data: ImageDataset, settings: RunSettings) -> TensorSplit:
    """The training images a run uses (a seeded subset under ``--quick``), shaped as the model takes them."""
    pool = data.train
    if settings.quick and network.quick_train_size is not None:
        pool = random_subset(pool, network.quick_train_size, settings.seed)
    return pool.map_inputs(_flattened) if network.flatten else pool


def _flattened(inputs: torch.Tensor) -> torch.Tensor:
    return inputs.flatten(1)


# --- classification -----------------------------------------------------------------------------


def train_classifier(
    model: nn.Module,
    network: Network,
    run: Prepared,
    settings: RunSettings,
    initial: Mapping[str, torch.Tensor],
    extras: Mapping[str, Any],
) -> dict[str, Any]:
    """Fit a classifier on ``run.data`` and return its checkpoint dict.

    The training pool is cut (seeded) into train and validation. Dense networks see
    ``[N, C*H*W]`` inputs while the task still shows them as images. The checkpoint holds the
    final and the best-validation weights, the history, test accuracy of both, a probe of 64
    test images balanced over classes, and the initial parameters.
    """
    data: ImageDataset = run.data
    if data.note:
        settings.say(data.note)
    pool = training_pool(network, data, settings)
    train_split, validation = split_train_validation(pool, CLASSIFIER_VALIDATION_FRACTION, settings.seed)
    test = data.test.map_inputs(_flattened) if network.flatten else data.test
    drift = DriftRecorder(drift_probe(train_split.inputs, seed=settings.seed), run.train_config.epochs)
    result = fit(
        model,
        train_split,
        validation,
        run.train_config,
        progress=settings.progress,
        augment=run.augment,
        on_epoch=drift,
    )
    metrics = _classifier_metrics(model, result, run.train_config, (train_split, validation, test))
    probe_inputs, probe_labels = balanced_probe(test, PROBE_SIZE, seed=settings.seed)
    task = Task(
        kind="classification",
        input_shape=tuple(test.inputs.shape[1:]),
        image_shape=data.image_shape,
        class_names=data.class_names,
        normalization=data.normalization,
        dataset=data.name,
    )
    checkpoint = make_checkpoint(
        model.cpu(),
        architecture=network.name,
        config=_plain(dataclasses.asdict(run.config)),
        task=task.to_dict(),
        probe_inputs=probe_inputs,
        probe_labels=probe_labels,
        history=result.history,
        hyperparameters=hyperparameters_of(run.config, run.train_config, settings, data_note=data.note),
        metrics=metrics,
        initial_weights=dict(initial),
        best_state_dict=result.best_state_dict,
        extras=dict(extras),
    )
    return with_drift(checkpoint, drift, model)


def _classifier_metrics(
    model: nn.Module,
    result: TrainResult,
    train_config: TrainConfig,
    splits: tuple[TensorSplit, TensorSplit, TensorSplit],
) -> dict[str, Any]:
    train_split, validation, test = splits
    return {
        "test_accuracy": accuracy_of(model, test, train_config),
        "best_test_accuracy": accuracy_of(model, test, train_config, result.best_state_dict),
        "best_val_accuracy": result.best("val_accuracy"),
        "best_val_loss": result.best("val_loss"),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "num_train": len(train_split),
        "num_validation": len(validation),
        "num_test": len(test),
    }


@torch.no_grad()
def accuracy_of(
    model: nn.Module, data: TensorSplit, train_config: TrainConfig, state: Mapping[str, torch.Tensor] | None = None
) -> float:
    """Accuracy of ``model`` (optionally with ``state`` loaded temporarily) on ``data``."""
    device = next(model.parameters()).device
    if state is None:
        return evaluate(model, data.to(device), train_config)["accuracy"]
    current = {name: value.detach().clone() for name, value in model.state_dict().items()}
    model.load_state_dict(state)
    try:
        return evaluate(model, data.to(device), train_config)["accuracy"]
    finally:
        model.load_state_dict(current)


# --- regression ---------------------------------------------------------------------------------


def train_regressor(
    model: nn.Module, architecture: str, run: Prepared, settings: RunSettings, initial: Mapping[str, torch.Tensor]
) -> dict[str, Any]:
    """Fit a scalar regressor on ``run.data`` (a ``RegressionData``) and return its checkpoint dict.

    A fifth of the training points is held out for validation (the best-validation weights are
    kept); the test MSE is measured on the final weights and compared with the test noise variance.
    """
    data: RegressionData = run.data
    train_split, validation = split_train_validation(data.train, REGRESSION_VALIDATION_FRACTION, settings.seed)
    recorder = SnapshotRecorder(every=max(1, run.train_config.epochs // NUM_SNAPSHOTS))
    drift = DriftRecorder(drift_probe(train_split.inputs, seed=settings.seed), run.train_config.epochs)
    result = fit(
        model, train_split, validation, run.train_config, progress=settings.progress, on_epoch=chained(recorder, drift)
    )
    model.cpu()
    grid = recorder.grid
    task = Task(kind="regression", input_shape=(1,), dataset="synthetic 1-D regression", domain=REGRESSION_DOMAIN)
    checkpoint = make_checkpoint(
        model,
        architecture=architecture,
        config=dataclasses.asdict(run.config),
        task=task.to_dict(),
        probe_inputs=grid[:, None],
        probe_labels=true_function(grid)[:, None],
        history=result.history,
        hyperparameters=hyperparameters_of(run.config, run.train_config, settings),
        metrics=_regression_metrics(model, result, run.train_config, data),
        snapshots=recorder.snapshots(),
        initial_weights=dict(initial),
        best_state_dict=result.best_state_dict,
        extras={"regression": _regression_extras(data)},
    )
    return with_drift(checkpoint, drift, model)


def with_drift(checkpoint: dict[str, Any], recorder: DriftRecorder, model: nn.Module) -> dict[str, Any]:
    """``checkpoint`` with the layers' drift over training under ``"drift"``, when any was recorded."""
    drift = recorder.drift(model)
    return {**checkpoint, "drift": drift} if drift is not None else checkpoint


def _regression_metrics(
    model: nn.Module, result: TrainResult, train_config: TrainConfig, data: RegressionData
) -> dict[str, Any]:
    return {
        "test_mse": evaluate(model, data.test, train_config)["loss"],
        "train_mse": evaluate(model, data.train, train_config)["loss"],
        "noise_variance": data.test_noise_variance,
        # What the noise-free function itself scores on this particular noisy test set.
        "true_function_test_mse": float(((true_function(data.test.inputs) - data.test.targets) ** 2).mean()),
        "train_noise_variance": data.train_noise_std**2,
        "best_val_mse": result.best("val_loss"),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
    }


class SnapshotRecorder:
    """An ``on_epoch`` callback recording the network's output on a grid of x every few epochs."""

    def __init__(self, every: int, grid_size: int = GRID_SIZE) -> None:
        self.every = every
        self.grid = torch.linspace(*REGRESSION_DOMAIN, grid_size)
        self.epochs: list[int] = []
        self.outputs: list[torch.Tensor] = []

    def __call__(self, epoch: int, model: nn.Module) -> None:
        if epoch % self.every == 0:
            device = next(model.parameters()).device
            self.epochs.append(epoch)
            self.outputs.append(model(self.grid[:, None].to(device)).flatten().cpu())

    def snapshots(self) -> dict[str, Any]:
        """``{"epochs": [E], "inputs": [N], "outputs": [E, N]}`` as the checkpoint stores them."""
        return {"epochs": list(self.epochs), "inputs": self.grid.clone(), "outputs": torch.stack(self.outputs)}


def _regression_extras(data: RegressionData) -> dict[str, torch.Tensor]:
    return {
        "train_inputs": data.train.inputs.flatten(),
        "train_targets": data.train.targets.flatten(),
        "test_inputs": data.test.inputs.flatten(),
        "test_targets": data.test.targets.flatten(),
        "true_inputs": data.true_inputs,
        "true_outputs": data.true_outputs,
    }


# --- records ------------------------------------------------------------------------------------


def hyperparameters_of(
    model_config: Any, train_config: TrainConfig, settings: RunSettings, **more: Any
) -> dict[str, Any]:
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


def initial_parameters(model: nn.Module, max_elements: int | None = None) -> dict[str, torch.Tensor]:
    """CPU copies of the parameters before training (for drift figures), none above ``max_elements``.

    Large networks set ``max_elements``: copies of their 4096-wide layers would add tens of
    megabytes to every checkpoint for a figure nobody draws for them.
    """
    return {
        name: parameter.detach().cpu().clone()
        for name, parameter in model.named_parameters()
        if max_elements is None or parameter.numel() <= max_elements
    }
