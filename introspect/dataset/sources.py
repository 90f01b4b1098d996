"""Where a dataset pass reads its inputs: a torchvision dataset by name, streamed in index order.

``mnist``, ``fashion-mnist`` and ``cifar10`` are read from a data folder in torchvision's own
layout (``--data-dir``, else ``$INTROSPECT_DATA``), never downloaded; ``NAME:train`` or
``NAME:test`` picks the split (the test split by default). Batches carry each input's index in
the dataset, which is how the reducers break ties and sample the same way for any split of work.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from introspect._lazy import lazy_import
from introspect.errors import IntrospectError

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")

#: Dataset name → (torchvision class, folder it reads under the data folder).
TORCHVISION_DATASETS = {
    "mnist": ("MNIST", "MNIST"),
    "fashion-mnist": ("FashionMNIST", "FashionMNIST"),
    "cifar10": ("CIFAR10", "cifar-10-batches-py"),
}
SPLITS = ("train", "test")


class DataError(IntrospectError):
    """A dataset that cannot be opened or read: one sentence, exit 2."""


@dataclasses.dataclass(frozen=True)
class Batch:
    """Inputs as the model takes them, their labels, and their indices in the dataset."""

    inputs: torch.Tensor
    labels: torch.Tensor | None
    indices: torch.Tensor


@dataclasses.dataclass(frozen=True)
class DataSource:
    """An opened dataset: what it is called, its class names, and the dataset itself."""

    name: str
    split: str
    dataset: Any
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.dataset)


def parse_name(source: str) -> tuple[str, str]:
    """``"mnist:train"`` → ``("mnist", "train")``; the split defaults to ``test``."""
    name, _, split = source.strip().lower().partition(":")
    split = split or "test"
    if name not in TORCHVISION_DATASETS:
        known = ", ".join(TORCHVISION_DATASETS)
        raise DataError(f"unknown dataset {source!r}: use one of {known} (NAME or NAME:split)")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} in {source!r}: use {' or '.join(SPLITS)}")
    return name, split


def data_folder(data_dir: str | os.PathLike[str] | None) -> Path:
    """The folder datasets are read from: ``data_dir``, else ``$INTROSPECT_DATA``."""
    folder = data_dir or os.environ.get("INTROSPECT_DATA")
    if not folder:
        raise DataError("no data folder: pass --data-dir DIRECTORY or set INTROSPECT_DATA")
    return Path(folder)


def open_torchvision(source: str, data_dir: str | os.PathLike[str] | None = None) -> DataSource:
    """Open a torchvision dataset by name from the data folder, without downloading.

    Raises:
        DataError: an unknown name or split, or the files are not in the folder.
    """
    import torchvision

    name, split = parse_name(source)
    folder = data_folder(data_dir)
    class_name, subfolder = TORCHVISION_DATASETS[name]
    dataset_class = getattr(torchvision.datasets, class_name)
    try:
        dataset = dataset_class(
            str(folder), train=split == "train", download=False, transform=torchvision.transforms.ToTensor()
        )
    except RuntimeError as error:  # torchvision says "Dataset not found" with a download hint
        raise DataError(f"{name} ({split}) is not in {folder / subfolder} (it is never downloaded)") from error
    return DataSource(name=name, split=split, dataset=dataset, class_names=tuple(map(str, dataset.classes)))


def batches(source: DataSource, batch_size: int = 256, limit: int | None = None) -> Iterator[Batch]:
    """The dataset in index order, ``batch_size`` inputs at a time, the first ``limit`` inputs at most."""
    count = len(source) if limit is None else min(limit, len(source))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(source.dataset, range(count)), batch_size=batch_size, shuffle=False
    )
    start = 0
    for inputs, labels in loader:
        indices = torch.arange(start, start + len(inputs))
        start += len(inputs)
        yield Batch(inputs=inputs, labels=torch.as_tensor(labels), indices=indices)
