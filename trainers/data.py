"""Data for the course's networks, held in memory as tensors.

- :func:`regression_data`: the synthetic 1-D regression task of the homework.
- :func:`load_digits`: scikit-learn's bundled 8x8 digits (no download ever).
- :func:`load_mnist` / :func:`load_fashion_mnist`: from a folder in torchvision's layout;
  downloaded only when the files are missing, with one clear line when they cannot be had.
- :func:`load_cifar10`: CIFAR-10, or in quick mode generated CIFAR-shaped data when no files
  are present (the caller is told so through ``ImageDataset.note``).
- :func:`balanced_probe`: a small fixed batch balanced over classes, for the checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import torch

from introspect.errors import IntrospectError
from trainers.loop import TensorSplit

DATA_ENV = "INTROSPECT_DATA"
MNIST_NORMALIZATION = {"mean": [0.1307], "std": [0.3081]}
FASHION_NORMALIZATION = {"mean": [0.2860], "std": [0.3530]}
CIFAR_NORMALIZATION = {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2470, 0.2435, 0.2616]}
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DIGIT_CLASSES = tuple(str(digit) for digit in range(10))


class DataUnavailableError(IntrospectError):
    """A dataset is neither on disk nor downloadable; the message says where to put the files."""


@dataclasses.dataclass(frozen=True)
class ImageDataset:
    """An image classification dataset in memory.

    Attributes:
        train: ``[N, C, H, W]`` float images (normalized when ``normalization`` is set) and labels.
        test: the same for the test split.
        class_names: one name per class.
        image_shape: ``(C, H, W)``.
        normalization: the ``mean``/``std`` applied to ``[0, 1]`` pixels, or ``None``.
        name: the dataset name shown in galleries (``MNIST``, ``FashionMNIST``...).
        note: how the data was obtained when it is not the real thing (e.g. generated).
    """

    train: TensorSplit
    test: TensorSplit
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]
    normalization: dict[str, list[float]] | None
    name: str
    note: str = ""


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """``data_dir``, else ``$INTROSPECT_DATA``, else ``~/.cache/introspect/data``."""
    if data_dir:
        return Path(data_dir).expanduser()
    from_env = os.environ.get(DATA_ENV)
    if from_env:
        return Path(from_env).expanduser()
    return Path.home() / ".cache" / "introspect" / "data"


# --- the 1-D regression task ---------------------------------------------------------------------

REGRESSION_DOMAIN = (-5.0, 5.0)
REGRESSION_GAPS = ((-2.4, -1.6), (1.6, 2.4))
TRAIN_NOISE_STD = 0.4
TEST_NOISE_STD = 0.3


def true_function(x: torch.Tensor) -> torch.Tensor:
    """The generating function f(x) = 0.5 x - 1 + 3 exp(-(x+2)^2 / 2) + 5 exp(-(x-2)^2 / 2).

    A gentle slope with two Gaussian bumps (standard deviation 1) centred on x = -2 (height 3)
    and x = 2 (height 5), the places where the training data has its gaps. The gaps are
    narrower than the bumps, so the flanks of each bump are seen and its top must be inferred.
    """
    return 0.5 * x - 1.0 + 3.0 * torch.exp(-((x + 2.0) ** 2) / 2.0) + 5.0 * torch.exp(-((x - 2.0) ** 2) / 2.0)


@dataclasses.dataclass(frozen=True)
class RegressionData:
    """The 1-D regression task: noisy training points with gaps, less noisy uniform test points.

    Attributes:
        train: ``[N, 1]`` inputs and ``[N, 1]`` targets, no x inside :data:`REGRESSION_GAPS`.
        test: ``[M, 1]`` evenly spread inputs over the domain and their targets.
        true_inputs: ``[K]`` dense grid over the domain.
        true_outputs: ``[K]`` the noise-free function on that grid.
        train_noise_std: standard deviation of the noise added to training targets.
        test_noise_std: standard deviation of the noise added to test targets.
    """

    train: TensorSplit
    test: TensorSplit
    true_inputs: torch.Tensor
    true_outputs: torch.Tensor
    train_noise_std: float = TRAIN_NOISE_STD
    test_noise_std: float = TEST_NOISE_STD

    @property
    def test_noise_variance(self) -> float:
        """The variance of the test noise: the MSE a perfect model would score."""
        return self.test_noise_std**2


def regression_data(
    seed: int = 0,
    num_train: int = 100,
    num_test: int = 100,
    train_noise_std: float = TRAIN_NOISE_STD,
    test_noise_std: float = TEST_NOISE_STD,
) -> RegressionData:
    """The homework's regression task, generated reproducibly from ``seed``.

    Training x are drawn uniformly from [-5, 5] minus the gaps [-2.4, -1.6] and [1.6, 2.4] (where
    :func:`true_function` has its bumps), targets get Gaussian noise of std 0.4. Test x are
    evenly spaced over the whole of [-5, 5] (gaps included), with noise of std 0.3 (variance
    0.09), so the test set measures how well the network fills the gaps.
    """
    generator = torch.Generator().manual_seed(seed)
    low, high = REGRESSION_DOMAIN
    candidates = low + (high - low) * torch.rand(num_train * 3, generator=generator)
    outside = torch.ones_like(candidates, dtype=torch.bool)
    for gap_low, gap_high in REGRESSION_GAPS:
        outside &= (candidates < gap_low) | (candidates > gap_high)
    train_x = candidates[outside][:num_train].sort().values
    train_y = true_function(train_x) + train_noise_std * torch.randn(len(train_x), generator=generator)
    test_x = torch.linspace(low, high, num_test)
    test_y = true_function(test_x) + test_noise_std * torch.randn(num_test, generator=generator)
    grid = torch.linspace(low, high, 401)
    return RegressionData(
        train=TensorSplit(train_x[:, None], train_y[:, None]),
        test=TensorSplit(test_x[:, None], test_y[:, None]),
        true_inputs=grid,
        true_outputs=true_function(grid),
        train_noise_std=train_noise_std,
        test_noise_std=test_noise_std,
    )


# --- image datasets ------------------------------------------------------------------------------


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> ImageDataset:
    """scikit-learn's 8x8 digits (1797 images), pixels scaled to [0, 1], split with ``seed``."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0
    labels = torch.tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    num_test = round(len(labels) * test_fraction)
    test, train = order[:num_test], order[num_test:]
    return ImageDataset(
        train=TensorSplit(images[train], labels[train]),
        test=TensorSplit(images[test], labels[test]),
        class_names=DIGIT_CLASSES,
        image_shape=(1, 8, 8),
        normalization=None,
        name="digits (scikit-learn 8x8)",
    )


def load_mnist(data_dir: str | os.PathLike[str] | None = None, *, normalize: bool = True) -> ImageDataset:
    """MNIST from ``data_dir`` (torchvision's layout: ``<dir>/MNIST/raw/*-ubyte``)."""
    return _load_torchvision_mnist("MNIST", data_dir, DIGIT_CLASSES, MNIST_NORMALIZATION if normalize else None)


def load_fashion_mnist(data_dir: str | os.PathLike[str] | None = None, *, normalize: bool = True) -> ImageDataset:
    """FashionMNIST from ``data_dir`` (torchvision's layout: ``<dir>/FashionMNIST/raw/*-ubyte``)."""
    return _load_torchvision_mnist(
        "FashionMNIST", data_dir, FASHION_CLASSES, FASHION_NORMALIZATION if normalize else None
    )


def _load_torchvision_mnist(
    name: str,
    data_dir: str | os.PathLike[str] | None,
    class_names: tuple[str, ...],
    normalization: dict[str, list[float]] | None,
) -> ImageDataset:
    import torchvision

    root = resolve_data_dir(data_dir)
    dataset_class = getattr(torchvision.datasets, name)
    splits = [
        _open_torchvision(dataset_class, root, train=train, name=name, folder=f"{name}/raw", files="IDX files")
        for train in (True, False)
    ]
    train, test = (_mnist_tensors(split, normalization) for split in splits)
    return ImageDataset(
        train=train, test=test, class_names=class_names, image_shape=(1, 28, 28), normalization=normalization, name=name
    )


def _open_torchvision(dataset_class: Any, root: Path, *, train: bool, name: str, folder: str, files: str) -> Any:
    """Open from disk; download only when the files are missing; one clear line on failure.

    ``folder`` (under ``root``) and ``files`` tell the user where to put what.
    """
    try:
        return dataset_class(str(root), train=train, download=False)
    except RuntimeError:
        pass  # not on disk: try to fetch it
    try:
        return dataset_class(str(root), train=train, download=True)
    except Exception as error:
        raise DataUnavailableError(
            f"{name} is not in {root / folder} and could not be downloaded "
            f"({type(error).__name__}); put the {files} there or pass --data-dir / set {DATA_ENV}"
        ) from None


def _mnist_tensors(dataset: Any, normalization: dict[str, list[float]] | None) -> TensorSplit:
    # Converted once, here: the loop then slices batches straight out of these tensors.
    images = dataset.data.to(torch.float32)[:, None] / 255.0
    if normalization is not None:
        images = (images - normalization["mean"][0]) / normalization["std"][0]
    return TensorSplit(images.contiguous(), dataset.targets.to(torch.long).clone())


def load_cifar10(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    quick: bool = False,
    seed: int = 0,
    num_fake: tuple[int, int] = (2000, 500),
) -> ImageDataset:
    """CIFAR-10 from ``data_dir`` (``<dir>/cifar-10-batches-py``), downloaded when missing.

    In quick mode, when the files cannot be had, generated CIFAR-shaped data stands in
    (``num_fake`` train/test images, seeded) and ``note`` says so; otherwise one clear error.
    """
    import torchvision

    root = resolve_data_dir(data_dir)
    try:
        splits = [
            _open_torchvision(
                torchvision.datasets.CIFAR10,
                root,
                train=train,
                name="CIFAR-10",
                folder="cifar-10-batches-py",
                files="python batches",
            )
            for train in (True, False)
        ]
    except DataUnavailableError:
        if not quick:
            raise
        return _fake_cifar(seed, num_fake)
    train, test = (_cifar_tensors(split) for split in splits)
    return ImageDataset(
        train=train,
        test=test,
        class_names=CIFAR_CLASSES,
        image_shape=(3, 32, 32),
        normalization=CIFAR_NORMALIZATION,
        name="CIFAR-10",
    )


def _cifar_tensors(dataset: Any) -> TensorSplit:
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).to(torch.float32) / 255.0
    mean = torch.tensor(CIFAR_NORMALIZATION["mean"])[:, None, None]
    std = torch.tensor(CIFAR_NORMALIZATION["std"])[:, None, None]
    return TensorSplit(((images - mean) / std).contiguous(), torch.tensor(dataset.targets, dtype=torch.long))


def _fake_cifar(seed: int, sizes: tuple[int, int]) -> ImageDataset:
    """Seeded CIFAR-shaped data whose classes differ in mean colour, so there is something to learn."""
    generator = torch.Generator().manual_seed(seed)
    class_colours = torch.randn(10, 3, 1, 1, generator=generator)
    splits = []
    for size in sizes:
        labels = torch.arange(size) % 10
        labels = labels[torch.randperm(size, generator=generator)]
        images = torch.randn(size, 3, 32, 32, generator=generator) + class_colours[labels]
        splits.append(TensorSplit(images, labels))
    return ImageDataset(
        train=splits[0],
        test=splits[1],
        class_names=CIFAR_CLASSES,
        image_shape=(3, 32, 32),
        normalization=None,
        name="CIFAR-10 (generated stand-in)",
        note="no CIFAR-10 files found and none could be downloaded: quick mode trains on generated CIFAR-shaped data",
    )


# --- subsets and probes --------------------------------------------------------------------------


def balanced_indices(labels: torch.Tensor, count: int, seed: int = 0) -> torch.Tensor:
    """``count`` indices spread as evenly as possible over the classes in ``labels``, sorted by class.

    Classes take turns (each in a seeded random order), so 64 over 10 classes gives 7 of the
    first four classes and 6 of the rest; a class with too few samples gives what it has.
    """
    generator = torch.Generator().manual_seed(seed)
    per_class = [
        indices[torch.randperm(len(indices), generator=generator)]
        for indices in (torch.nonzero(labels == value).flatten() for value in labels.unique(sorted=True))
    ]
    chosen: list[list[int]] = [[] for _ in per_class]
    turn = 0
    longest = max((len(indices) for indices in per_class), default=0)
    while sum(map(len, chosen)) < min(count, len(labels)) and turn < longest:
        for slot, indices in enumerate(per_class):
            if turn < len(indices) and sum(map(len, chosen)) < count:
                chosen[slot].append(int(indices[turn]))
        turn += 1
    return torch.tensor([index for group in chosen for index in group], dtype=torch.long)


def balanced_probe(split: TensorSplit, count: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed probe batch of ``count`` samples from ``split`` balanced over classes: (inputs, labels)."""
    indices = balanced_indices(split.targets, count, seed)
    return split.inputs[indices].clone(), split.targets[indices].clone()


def random_subset(split: TensorSplit, count: int, seed: int = 0) -> TensorSplit:
    """``count`` samples drawn without replacement with ``seed`` (all of them if fewer)."""
    if count >= len(split):
        return split
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    return split.take(order[:count])


def fraction_in_gaps(x: torch.Tensor) -> float:
    """Share of ``x`` that lies inside the regression task's gaps (0 for training inputs)."""
    flat = x.flatten()
    inside = torch.zeros_like(flat, dtype=torch.bool)
    for gap_low, gap_high in REGRESSION_GAPS:
        inside |= (flat >= gap_low) & (flat <= gap_high)
    return float(inside.float().mean()) if len(flat) else math.nan
