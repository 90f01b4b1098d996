"""The shared training loop: splits, history, best state, early stopping, frozen layers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from introspect.history import best_epoch
from trainers.loop import TensorSplit, TrainConfig, evaluate, fit, split_train_validation


def _blobs(num: int = 240, seed: int = 0) -> TensorSplit:
    """Three separable Gaussian blobs in 2-D: an easy classification problem."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(num) % 3
    centres = torch.tensor([[2.0, 0.0], [-2.0, 2.0], [0.0, -2.5]])
    return TensorSplit(centres[labels] + 0.5 * torch.randn(num, 2, generator=generator), labels)


def _classifier(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))


def test_split_is_reproducible_disjoint_and_complete() -> None:
    data = _blobs(100)
    first = split_train_validation(data, 0.2, seed=7)
    again = split_train_validation(data, 0.2, seed=7)
    other = split_train_validation(data, 0.2, seed=8)
    assert (len(first[0]), len(first[1])) == (80, 20)
    assert torch.equal(first[0].inputs, again[0].inputs) and torch.equal(first[1].targets, again[1].targets)
    assert not torch.equal(first[1].inputs, other[1].inputs)
    rows = torch.cat([first[0].inputs, first[1].inputs])
    assert torch.equal(rows[torch.argsort(rows[:, 0])], data.inputs[torch.argsort(data.inputs[:, 0])])


def test_split_rejects_fraction_outside_unit_interval() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_train_validation(_blobs(10), 1.0)


def test_history_has_one_entry_per_epoch_and_loss_decreases() -> None:
    train, validation = split_train_validation(_blobs(), 0.25, seed=0)
    result = fit(_classifier(), train, validation, TrainConfig(epochs=6, batch_size=32, lr=0.01))
    history = result.history
    for key in (
        "epoch",
        "train_loss",
        "val_loss",
        "train_accuracy",
        "val_accuracy",
        "seconds_per_batch",
        "seconds_per_epoch",
        "lr",
    ):
        assert len(history[key]) == 6, key
    assert history["epoch"] == [1, 2, 3, 4, 5, 6]
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    assert history["val_accuracy"][-1] >= 0.95
    assert all(
        0 < per_batch <= per_epoch
        for per_batch, per_epoch in zip(history["seconds_per_batch"], history["seconds_per_epoch"])
    )
    assert isinstance(history["best_epoch"], int)


def test_best_state_is_the_lowest_validation_loss_epoch() -> None:
    train, validation = split_train_validation(_blobs(), 0.25, seed=0)
    model = _classifier()
    # A large learning rate makes the validation loss jump around, so best != last.
    config = TrainConfig(epochs=12, batch_size=16, lr=0.5, optimizer="sgd", momentum=0.9)
    result = fit(model, train, validation, config)
    val_losses = result.history["val_loss"]
    assert result.best_epoch == 1 + min(range(len(val_losses)), key=val_losses.__getitem__)
    assert result.best_epoch == best_epoch(result.history) == result.history["best_epoch"]
    model.load_state_dict(result.best_state_dict)
    assert evaluate(model, validation, config)["loss"] == pytest.approx(min(val_losses), rel=1e-6)


def test_without_validation_the_best_epoch_is_the_lowest_training_loss_as_introspect_defines_it() -> None:
    model = _classifier()
    config = TrainConfig(epochs=8, batch_size=16, lr=0.5, optimizer="sgd", momentum=0.9)
    result = fit(model, _blobs(), None, config)
    train_losses = result.history["train_loss"]
    assert all(math.isnan(loss) for loss in result.history["val_loss"])
    assert result.best_epoch == best_epoch(result.history) == 1 + train_losses.index(min(train_losses))


def test_early_stopping_stops_patience_epochs_after_the_best() -> None:
    train, validation = split_train_validation(_blobs(), 0.25, seed=0)
    # lr = 0 keeps the weights fixed, so the validation loss never improves after epoch 1.
    result = fit(_classifier(), train, validation, TrainConfig(epochs=50, lr=0.0, patience=3))
    assert result.stopped_early
    assert result.best_epoch == 1
    assert result.epochs_run == 4
    assert len(result.history["val_loss"]) == 4


def test_no_early_stopping_when_patience_is_zero() -> None:
    train, validation = split_train_validation(_blobs(), 0.25, seed=0)
    result = fit(_classifier(), train, validation, TrainConfig(epochs=5, lr=0.0, patience=0))
    assert (result.epochs_run, result.stopped_early) == (5, False)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_frozen_parameters_stay_bit_identical(optimizer: str) -> None:
    model = _classifier()
    model[0].weight.requires_grad_(False)
    frozen_before = model[0].weight.detach().clone()
    trained_before = model[2].weight.detach().clone()
    train, validation = split_train_validation(_blobs(), 0.25, seed=0)
    fit(model, train, validation, TrainConfig(epochs=3, optimizer=optimizer, lr=0.05, weight_decay=0.1))
    assert torch.equal(model[0].weight, frozen_before)
    assert (model[2].weight - trained_before).abs().max().item() > 0


def test_same_seed_gives_identical_training() -> None:
    train, validation = split_train_validation(_blobs(), 0.25, seed=0)
    config = TrainConfig(epochs=3, batch_size=16, seed=5)
    first, second = _classifier(), _classifier()
    fit(first, train, validation, config)
    fit(second, train, validation, config)
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b)


def test_on_epoch_sees_epoch_zero_then_every_epoch_and_augment_sees_every_batch() -> None:
    train = _blobs(100)
    seen_epochs: list[int] = []
    batch_sizes: list[int] = []

    def augment(inputs: torch.Tensor) -> torch.Tensor:
        batch_sizes.append(len(inputs))
        return inputs + 0.01

    fit(
        _classifier(),
        train,
        None,
        TrainConfig(epochs=2, batch_size=32),
        on_epoch=lambda epoch, _: seen_epochs.append(epoch),
        augment=augment,
    )
    assert seen_epochs == [0, 1, 2]
    assert batch_sizes == [32, 32, 32, 4] * 2


def test_progress_receives_epoch_count_and_metrics() -> None:
    calls = []
    fit(_classifier(), _blobs(60), None, TrainConfig(epochs=2), progress=lambda e, n, m: calls.append((e, n, dict(m))))
    assert [(epoch, total) for epoch, total, _ in calls] == [(1, 2), (2, 2)]
    assert math.isnan(calls[0][2]["val_loss"]) and calls[0][2]["train_loss"] > 0


def test_mse_loss_records_no_accuracy_and_regression_fits() -> None:
    x = torch.linspace(-1, 1, 64)[:, None]
    data = TensorSplit(x, 3 * x + 1)
    torch.manual_seed(0)
    model = nn.Linear(1, 1)
    result = fit(model, data, data, TrainConfig(epochs=200, batch_size=64, lr=0.05, loss="mse"))
    assert "train_accuracy" not in result.history
    assert result.history["val_loss"][-1] < 1e-3


def test_schedulers_change_the_learning_rate() -> None:
    data = _blobs(40)
    step = fit(_classifier(), data, None, TrainConfig(epochs=4, lr=0.1, scheduler="step", step_size=2, gamma=0.5))
    cosine = fit(_classifier(), data, None, TrainConfig(epochs=4, lr=0.1, scheduler="cosine"))
    assert step.history["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.05])
    assert cosine.history["lr"][0] == pytest.approx(0.1) and cosine.history["lr"][-1] < 0.02


def test_train_config_rejects_unknown_choices() -> None:
    with pytest.raises(ValueError, match="optimizer must be one of adam, adamw, sgd"):
        TrainConfig(optimizer="rmsprop")
