"""Sizes for the full and quick runs, and the networks, inputs and checkpoints the rows use.

Every input is random but seeded: the rows measure speed, which does not depend on what the
pixels show. Only the gallery row uses a trained checkpoint (in the full run), so that the
training-history analyzers have something to draw, as they would for a user. The dataset rows
read the MNIST test split from ``$INTROSPECT_DATA`` (its offline subset has 1000 images), or
generated MNIST-shaped images where it is not there.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from introspect.dataset.sources import DataSource
    from introspect.subject import Subject

MNIST_SHAPE = (1, 28, 28)
MNIST_CLASSES = tuple(str(digit) for digit in range(10))


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big and how often; :func:`full_sizes` and :func:`quick_sizes` are the two presets.

    Attributes:
        quick: the tiny smoke run (numbers are not meaningful).
        repeats: repetitions of in-process rows that take seconds.
        cheap_repeats: repetitions of in-process rows that take well under a second.
        process_repeats: repetitions of whole ``introspect`` processes on LeNet-5 and ``--help``.
        scale_repeats: repetitions of the ResNet50 / ResNet18 ``--all`` pair.
        warmup: untimed runs of each side before the timed ones.
        capture_batch: ResNet18 batch for the capture rows (3x32x32 inputs).
        saliency_batch: LeNet-5 batch for the saliency row.
        max_kernel_layers: conv layers drawn in the kernel-grid row (``None``: all of them).
        gif_frames: frames of the activation GIF.
        train_samples: in-memory training set size for the training row.
        train_epochs: epochs per training repetition.
        big_model: ``(torchvision factory, input shape)`` for the numerator of the scale row.
        small_model: the same for its denominator.
        analyzers: ``()`` for ``--all``, else the analyzers the process rows run.
        trained_lenet5: train LeNet-5 (quick recipe) for the gallery row instead of using random weights.
        dataset_limit: inputs of MNIST the dataset rows read (``None``: the whole split).
        dataset_batch: batch size of the dataset pass and of its references.
        memory_counts: inputs of the small and the large pass of the dataset memory row.
        ray_repeats: repetitions of the Ray / local pair (``0``: the row is left out, each Ray pass
            starting a cluster for about 25 s).
        many_tensors: tensors in the state_dict of the ``many_tensors`` row.
    """

    quick: bool
    repeats: int
    cheap_repeats: int
    process_repeats: int
    scale_repeats: int
    warmup: int
    capture_batch: int
    saliency_batch: int
    max_kernel_layers: int | None
    gif_frames: int
    train_samples: int
    train_epochs: int
    big_model: tuple[str, tuple[int, int, int]]
    small_model: tuple[str, tuple[int, int, int]]
    analyzers: tuple[str, ...]
    trained_lenet5: bool
    dataset_limit: int | None
    dataset_batch: int
    memory_counts: tuple[int, int]
    ray_repeats: int
    many_tensors: int


def full_sizes(repeats: int = 5) -> Sizes:
    """The sizes the targets are stated for."""
    return Sizes(
        quick=False,
        repeats=repeats,
        cheap_repeats=4 * repeats + 1,
        process_repeats=max(3, repeats - 2),
        scale_repeats=3,
        warmup=1,
        capture_batch=64,
        saliency_batch=64,
        max_kernel_layers=None,
        gif_frames=120,
        train_samples=2048,
        train_epochs=2,
        big_model=("resnet50", (3, 224, 224)),
        small_model=("resnet18", (3, 32, 32)),
        analyzers=(),
        trained_lenet5=True,
        dataset_limit=None,
        dataset_batch=256,  # the CLI's --batch-size default
        memory_counts=(1000, 10000),
        ray_repeats=3,
        many_tensors=100_000,
    )


def quick_sizes() -> Sizes:
    """A smoke run of every row in well under a minute: tiny sizes, one repetition, one cheap analyzer."""
    return Sizes(
        quick=True,
        repeats=1,
        cheap_repeats=1,
        process_repeats=1,
        scale_repeats=1,
        warmup=0,
        capture_batch=4,
        saliency_batch=8,
        max_kernel_layers=1,
        gif_frames=8,
        train_samples=128,
        train_epochs=1,
        big_model=("resnet18", (3, 48, 48)),
        small_model=("resnet18", (3, 32, 32)),
        analyzers=("model_summary",),
        trained_lenet5=False,
        dataset_limit=96,
        dataset_batch=32,
        memory_counts=(64, 256),
        ray_repeats=0,
        many_tensors=2_000,
    )


def generator(seed: int = 0) -> torch.Generator:
    """A seeded CPU generator."""
    import torch

    return torch.Generator().manual_seed(seed)


def resnet(name: str) -> nn.Module:
    """A torchvision ResNet with random (seeded) weights, in eval mode."""
    import torch
    import torchvision

    torch.manual_seed(0)
    return getattr(torchvision.models, name)().eval()


def lenet5() -> nn.Module:
    """The course's LeNet-5 with its seeded initial weights, in eval mode."""
    from trainers.networks.lenet5 import LeNet5, LeNet5Config

    return LeNet5(LeNet5Config()).eval()


def images(count: int, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """``count`` random inputs of ``shape``."""
    import torch

    return torch.randn((count, *shape), generator=generator(seed))


def regression_subject() -> Subject:
    """The regression MLP (random weights) with the homework data as probe, without snapshots."""
    from introspect.subject import Subject, Task
    from trainers.data import REGRESSION_DOMAIN, regression_data
    from trainers.networks.regression_mlp import RegressionMLP, RegressionMLPConfig

    data = regression_data(seed=0)
    task = Task(kind="regression", input_shape=(1,), domain=tuple(REGRESSION_DOMAIN), dataset="regression")
    return Subject.from_model(
        RegressionMLP(RegressionMLPConfig()).eval(), data.train.inputs, data.train.targets, task=task
    )


def lenet5_checkpoint(folder: Path, trained: bool) -> tuple[Path, str]:
    """A LeNet-5 introspect checkpoint in ``folder`` and how it was made.

    ``trained`` runs the quick recipe (MNIST, 1000 images, 2 epochs); when MNIST cannot be had,
    or when not ``trained``, random weights with a random labelled probe of 64 images stand in.
    """
    from introspect.checkpoint import save_checkpoint

    path = folder / "lenet5.pt"
    if trained:
        try:
            from trainers.catalog import RunSettings, train

            return train(
                "lenet5", RunSettings(quick=True), path
            ), "trained with the quick recipe (MNIST, 1000 images, 2 epochs)"
        except Exception as error:  # noqa: BLE001 - no MNIST on disk and no network: fall back to random weights
            note = f"random weights (training failed: {type(error).__name__})"
    else:
        note = "random weights, random probe of 64 images"
    return save_checkpoint(path, _untrained_lenet5_checkpoint()), note


def _untrained_lenet5_checkpoint() -> dict[str, Any]:
    import torch

    from introspect.checkpoint import make_checkpoint
    from introspect.subject import Task

    model = lenet5()
    labels = torch.arange(64) % 10
    task = Task(
        kind="classification",
        input_shape=(1, 28, 28),
        image_shape=(1, 28, 28),
        class_names=tuple(str(d) for d in range(10)),
    )
    history = {
        "epoch": [1, 2],
        "train_loss": [2.3, 2.2],
        "val_loss": [2.3, 2.25],
        "train_accuracy": [0.1, 0.2],
        "val_accuracy": [0.1, 0.15],
        "best_epoch": 2,
    }
    return make_checkpoint(
        model,
        architecture="lenet5",
        config=dataclasses.asdict(model.config),
        task=task.to_dict(),
        probe_inputs=images(64, (1, 28, 28)),
        probe_labels=labels,
        history=history,
    )


def resnet_state_dict(folder: Path, name: str) -> Path:
    """A plain state_dict of torchvision's ``name`` (random weights), as users save one."""
    import torch

    path = folder / f"{name}.pt"
    if not path.exists():
        torch.save(resnet(name).state_dict(), path)
    return path


def many_tensors_state_dict(folder: Path, count: int) -> Path:
    """A state_dict of ``count`` small tensors (seeded): ``count // 2`` linear blocks of a 4x4 weight and a bias.

    What a checkpoint of a model with very many small layers looks like; the row's time should
    grow with the data (1.6 million numbers here), not with the number of tensors.
    """
    import torch

    path = folder / f"many-tensors-{count}.pt"
    if not path.exists():
        values = torch.randn(count // 2, 20, generator=generator())
        state = {}
        for index, row in enumerate(values):
            state[f"blocks.{index}.linear.weight"] = row[:16].reshape(4, 4).clone()
            state[f"blocks.{index}.linear.bias"] = row[16:].clone()
        torch.save(state, path)
    return path


def mnist_like_arrays(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random uint8 images of 28x28 (as MNIST's files hold them) and random labels 0 to 9."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 28, 28), dtype=np.uint8), rng.integers(0, 10, count, dtype=np.int64)


def mnist_like_npy(folder: Path, count: int) -> tuple[Path, Path]:
    """:func:`mnist_like_arrays` saved as ``.npy`` images and labels in ``folder`` (what ``--data x.npy`` reads)."""
    import numpy as np

    images, labels = mnist_like_arrays(count)
    paths = folder / f"mnist-like-{count}.npy", folder / f"mnist-like-{count}-labels.npy"
    np.save(paths[0], images)
    np.save(paths[1], labels)
    return paths


def mnist_source() -> tuple[DataSource, str]:
    """The MNIST test split from ``$INTROSPECT_DATA`` and what it is; 1000 generated images when it is not there."""
    from introspect.dataset.sources import ArrayDataset, DataError, DataSource, open_torchvision

    try:
        source = open_torchvision("mnist")
        return source, f"the MNIST test split from $INTROSPECT_DATA ({len(source)} images)"
    except DataError as error:
        images, labels = mnist_like_arrays(1000)
        dataset = ArrayDataset(images, labels)
        source = DataSource(name="generated", split="", dataset=dataset, class_names=MNIST_CLASSES)
        return source, f"1000 generated MNIST-shaped images ({error})"


def lenet5_on_data(source: DataSource, *, limit: int | None, batch_size: int) -> Subject:
    """LeNet-5 (seeded weights) with MNIST's task and normalization, reading ``source`` in its dataset pass.

    The probe is the source's first 8 inputs, preprocessed as the pass preprocesses them: the
    confusion reducer runs one of them to learn the output width, as it does for a checkpoint.
    """
    import torch

    from introspect.dataset.plan import DatasetPlan
    from introspect.dataset.preprocess import Preprocessing
    from introspect.dataset.sources import Batch
    from introspect.subject import Subject, Task
    from trainers.data import MNIST_NORMALIZATION

    task = Task(
        kind="classification",
        input_shape=MNIST_SHAPE,
        image_shape=MNIST_SHAPE,
        class_names=MNIST_CLASSES,
        normalization=MNIST_NORMALIZATION,
        dataset="mnist",
    )
    items = [source.dataset[index] for index in range(8)]
    raw = torch.stack([torch.as_tensor(image) for image, _ in items])
    labels = torch.as_tensor([label for _, label in items])
    probe = Preprocessing(task, source)(Batch(inputs=raw, labels=labels, indices=torch.arange(8))).inputs
    subject = Subject.from_model(lenet5(), probe, labels, task=task)
    plan = DatasetPlan(source, limit=limit, batch_size=batch_size)
    return dataclasses.replace(subject, data=plan)
