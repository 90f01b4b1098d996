"""The one training loop every network in ``trainers`` shares.

Data sets that fit in memory are held as tensors (:class:`TensorSplit`) and batches are sliced
from them with a seeded permutation, so the loop runs at the speed of the model rather than of
a ``DataLoader``. :func:`fit` records a per-epoch history, keeps the state of the best epoch
(:func:`introspect.history.best_epoch`: the lowest validation loss) beside the final one, stops
early when the validation loss stops improving, and never hands frozen parameters
(``requires_grad=False``) to the optimizer, so they stay bit-identical.

Example::

    train, val = split_train_validation(data, validation_fraction=0.1, seed=0)
    result = fit(model, train, val, TrainConfig(epochs=5, lr=1e-3))
    model.load_state_dict(result.best_state_dict)
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from introspect.history import best_epoch

#: ``progress(epoch, num_epochs, metrics)``: called after every epoch with that epoch's numbers.
ProgressFn = Callable[[int, int, Mapping[str, float]], None]
#: ``on_epoch(epoch, model)``: called once before training (epoch 0) and after every epoch.
EpochFn = Callable[[int, nn.Module], None]
#: ``augment(inputs) -> inputs``: applied to every training batch (never to validation data).
AugmentFn = Callable[[torch.Tensor], torch.Tensor]

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "step", "cosine")
LOSSES = ("cross_entropy", "mse")


@dataclasses.dataclass(frozen=True)
class TensorSplit:
    """Inputs and targets of one split, held in memory as tensors.

    Attributes:
        inputs: ``[N, ...]`` model inputs (already normalized, shaped as the model takes them).
        targets: ``[N]`` integer class labels, or ``[N, ...]`` float regression targets.
    """

    inputs: torch.Tensor
    targets: torch.Tensor

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.targets):
            raise ValueError(f"{len(self.inputs)} inputs but {len(self.targets)} targets")

    def __len__(self) -> int:
        return len(self.inputs)

    def take(self, indices: torch.Tensor) -> TensorSplit:
        """The rows at ``indices``, as a new split."""
        return TensorSplit(self.inputs[indices], self.targets[indices])

    def head(self, count: int) -> TensorSplit:
        """The first ``count`` rows (all of them when ``count`` is larger)."""
        return TensorSplit(self.inputs[:count], self.targets[:count])

    def to(self, device: str | torch.device) -> TensorSplit:
        """Both tensors moved to ``device``."""
        return TensorSplit(self.inputs.to(device), self.targets.to(device))

    def map_inputs(self, function: Callable[[torch.Tensor], torch.Tensor]) -> TensorSplit:
        """The same targets with ``function`` applied to the inputs (e.g. ``lambda x: x.flatten(1)``)."""
        return TensorSplit(function(self.inputs), self.targets)


def split_train_validation(
    data: TensorSplit, validation_fraction: float = 0.1, seed: int = 0
) -> tuple[TensorSplit, TensorSplit]:
    """Shuffle ``data`` with ``seed`` and cut off ``validation_fraction`` of it for validation.

    The same data and seed always give the same two splits. At least one sample lands in each.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must lie strictly between 0 and 1, not {validation_fraction}")
    if len(data) < 2:
        raise ValueError("need at least two samples to split off a validation set")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=generator)
    num_val = min(len(data) - 1, max(1, round(len(data) * validation_fraction)))
    return data.take(order[num_val:]), data.take(order[:num_val])


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train: every field has a default, and ``--set key=value`` can change each.

    Attributes:
        epochs: the most epochs to run (early stopping may end sooner).
        batch_size: training batch size; evaluation uses batches of ``eval_batch_size``.
        optimizer: ``adam``, ``adamw`` or ``sgd``.
        lr: learning rate.
        weight_decay: L2 penalty (decoupled for ``adamw``).
        momentum: momentum for ``sgd`` (ignored by the others).
        scheduler: ``none``, ``step`` (multiply lr by ``gamma`` every ``step_size`` epochs) or
            ``cosine`` (anneal to zero over ``epochs``).
        step_size: epochs between decays for the ``step`` scheduler.
        gamma: decay factor for the ``step`` scheduler.
        patience: stop after this many epochs without a better validation loss; 0 turns early
            stopping off.
        loss: ``cross_entropy`` (classification, accuracy is recorded) or ``mse``.
        seed: seeds batch order, dropout and augmentation.
        device: ``cpu``, ``cuda`` or ``auto``.
        eval_batch_size: batch size for evaluation passes.
    """

    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    scheduler: str = "none"
    step_size: int = 10
    gamma: float = 0.1
    patience: int = 0
    loss: str = "cross_entropy"
    seed: int = 0
    device: str = "cpu"
    eval_batch_size: int = 1024

    def __post_init__(self) -> None:
        for field, allowed in (("optimizer", OPTIMIZERS), ("scheduler", SCHEDULERS), ("loss", LOSSES)):
            if getattr(self, field) not in allowed:
                raise ValueError(f"{field} must be one of {', '.join(allowed)}, not {getattr(self, field)!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        if self.patience < 0:
            raise ValueError("patience must be 0 (off) or positive")

    @property
    def is_classification(self) -> bool:
        """Whether accuracy is recorded (cross-entropy loss)."""
        return self.loss == "cross_entropy"


@dataclasses.dataclass
class TrainResult:
    """What :func:`fit` returns; the model itself is left with its final weights.

    Attributes:
        history: per-epoch lists (``epoch``, ``train_loss``, ``val_loss``, ``train_accuracy``,
            ``val_accuracy`` for classification, ``seconds_per_batch``, ``seconds_per_epoch``,
            ``lr``) plus ``best_epoch``, the checkpoint's history dict as it is.
        best_state_dict: CPU copy of the weights at the epoch with the lowest validation loss
            (the lowest training loss when there is no validation split).
        best_epoch: that epoch, counted from 1.
        stopped_early: whether early stopping ended training before ``epochs``.
    """

    history: dict[str, Any]
    best_state_dict: dict[str, torch.Tensor]
    best_epoch: int
    stopped_early: bool

    @property
    def epochs_run(self) -> int:
        """How many epochs actually ran."""
        return len(self.history["epoch"])

    def best(self, key: str) -> float:
        """The history value ``key`` at the best epoch (e.g. ``best("val_loss")``)."""
        return float(self.history[key][self.best_epoch - 1])


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when available, else ``cpu``; other names pass through."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def make_optimizer(parameters: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named in ``config`` over ``parameters`` (only trainable ones are passed)."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The per-epoch learning-rate schedule named in ``config``, or ``None``."""
    if config.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    return None


def _loss_function(config: TrainConfig) -> nn.Module:
    return nn.CrossEntropyLoss() if config.is_classification else nn.MSELoss()


@torch.no_grad()
def evaluate(model: nn.Module, data: TensorSplit, config: TrainConfig) -> dict[str, float]:
    """Mean loss (and accuracy for classification) of ``model`` on ``data``, in eval mode.

    The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    loss_function = _loss_function(config)
    total_loss, correct = 0.0, 0
    try:
        for start in range(0, len(data), config.eval_batch_size):
            inputs = data.inputs[start : start + config.eval_batch_size]
            targets = data.targets[start : start + config.eval_batch_size]
            outputs = model(inputs)
            total_loss += float(loss_function(outputs, targets)) * len(inputs)
            if config.is_classification:
                correct += int((outputs.argmax(dim=1) == targets).sum())
    finally:
        model.train(was_training)
    metrics = {"loss": total_loss / max(1, len(data))}
    if config.is_classification:
        metrics["accuracy"] = correct / max(1, len(data))
    return metrics


def _train_epoch(
    model: nn.Module,
    data: TensorSplit,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    generator: torch.Generator,
    augment: AugmentFn | None,
) -> dict[str, float]:
    model.train()
    loss_function = _loss_function(config)
    order = torch.randperm(len(data), generator=generator).to(data.inputs.device)
    total_loss, correct, num_batches = 0.0, 0, 0
    for start in range(0, len(data), config.batch_size):
        indices = order[start : start + config.batch_size]
        inputs, targets = data.inputs[indices], data.targets[indices]
        if augment is not None:
            inputs = augment(inputs)
        optimizer.zero_grad(set_to_none=True)
        outputs = model(inputs)
        loss = loss_function(outputs, targets)
        loss.backward()
        optimizer.step()
        # .item()-style syncs per batch would stall a GPU; accumulate on-device instead.
        total_loss = total_loss + loss.detach() * len(indices)
        if config.is_classification:
            correct = correct + (outputs.detach().argmax(dim=1) == targets).sum()
        num_batches += 1
    metrics = {"loss": float(total_loss) / len(data), "num_batches": num_batches}
    if config.is_classification:
        metrics["accuracy"] = float(correct) / len(data)
    return metrics


def _empty_history(classification: bool) -> dict[str, Any]:
    keys = ["epoch", "train_loss", "val_loss", "seconds_per_batch", "seconds_per_epoch", "lr"]
    if classification:
        keys[3:3] = ["train_accuracy", "val_accuracy"]
    return {key: [] for key in keys}


def fit(
    model: nn.Module,
    train: TensorSplit,
    validation: TensorSplit | None,
    config: TrainConfig,
    *,
    progress: ProgressFn | None = None,
    on_epoch: EpochFn | None = None,
    augment: AugmentFn | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``train``, watching ``validation``.

    Args:
        model: the network, moved to ``config.device``; frozen parameters stay bit-identical.
        train: training split.
        validation: validation split, or ``None`` (``val_*`` entries are then NaN and the best
            epoch is the lowest training loss).
        config: optimizer, schedule, loss, early stopping, seed, device.
        progress: ``progress(epoch, num_epochs, metrics)`` after each epoch.
        on_epoch: ``on_epoch(epoch, model)`` before training (epoch 0) and after each epoch,
            with the model in eval mode; used for regression snapshots.
        augment: applied to each training batch.

    Returns:
        The history, the best epoch's weights and whether training stopped early. The model
        keeps its final weights; load ``result.best_state_dict`` for the best ones.
    """
    device, train, validation, optimizer, scheduler = _start(model, train, validation, config)
    generator = torch.Generator().manual_seed(config.seed)
    history = _empty_history(config.is_classification)
    best, best_state, stopped_early = 0, None, False
    _notify(on_epoch, 0, model)
    for epoch in range(1, config.epochs + 1):
        row = {**_run_epoch(model, train, validation, optimizer, config, generator, augment, device), "epoch": epoch}
        for key in history:
            history[key].append(row[key])
        _step(scheduler)
        # introspect's one definition of "best"; a new epoch is the best or leaves it where it was.
        if best_epoch(history) == epoch or best_state is None:
            best = epoch
            best_state = {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}
        _notify(on_epoch, epoch, model)
        if progress is not None:
            progress(epoch, config.epochs, {k: row[k] for k in history if k != "epoch"})
        if config.patience and epoch - best >= config.patience:
            stopped_early = epoch < config.epochs
            break
    history["best_epoch"] = best
    return TrainResult(history=history, best_state_dict=best_state or {}, best_epoch=best, stopped_early=stopped_early)


def _step(scheduler: torch.optim.lr_scheduler.LRScheduler | None) -> None:
    if scheduler is not None:
        scheduler.step()


def _start(
    model: nn.Module, train: TensorSplit, validation: TensorSplit | None, config: TrainConfig
) -> tuple[str, TensorSplit, TensorSplit | None, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """Seed, move model and data to the device, and build the optimizer over the trainable parameters."""
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)  # dropout and torch-RNG augmentations follow the seed
    model.to(device)
    validation = validation.to(device) if validation is not None and len(validation) else None
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    if not trainable:
        raise ValueError("the model has no trainable parameters (all have requires_grad=False)")
    optimizer = make_optimizer(trainable, config)
    return device, train.to(device), validation, optimizer, make_scheduler(optimizer, config)


def _run_epoch(
    model: nn.Module,
    train: TensorSplit,
    validation: TensorSplit | None,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    generator: torch.Generator,
    augment: AugmentFn | None,
    device: str,
) -> dict[str, Any]:
    """One epoch of training plus validation, as one history row (without ``epoch``)."""
    lr = float(optimizer.param_groups[0]["lr"])
    started = time.perf_counter()
    trained = _train_epoch(model, train, optimizer, config, generator, augment)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    train_seconds = time.perf_counter() - started
    validated = (
        evaluate(model, validation, config) if validation is not None else {"loss": math.nan, "accuracy": math.nan}
    )
    row = {
        "train_loss": trained["loss"],
        "val_loss": validated["loss"],
        "seconds_per_batch": train_seconds / trained["num_batches"],
        "seconds_per_epoch": time.perf_counter() - started,
        "lr": lr,
    }
    if config.is_classification:
        row["train_accuracy"] = trained["accuracy"]
        row["val_accuracy"] = validated["accuracy"]
    return row


def _notify(on_epoch: EpochFn | None, epoch: int, model: nn.Module) -> None:
    if on_epoch is None:
        return
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            on_epoch(epoch, model)
    finally:
        model.train(was_training)
