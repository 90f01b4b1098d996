"""Where a dataset pass reads its inputs, streamed in index order.

``--data SOURCE`` is one of:

- a torchvision dataset name (``mnist``, ``fashion-mnist``, ``cifar10``), read from a data folder
  in torchvision's own layout (``--data-dir``, else ``$INTROSPECT_DATA``) and never downloaded;
  ``NAME:train`` or ``NAME:test`` picks the split (the test split by default);
- an ImageFolder tree: one sub-folder of images per class;
- a ``.npy`` array (uint8 pixels, or floats as the model takes them), memory-mapped, with labels
  from ``--data-labels FILE.npy``;
- a ``.pt`` file saved with ``torch.save``: a tensor, or a dict with ``inputs`` and ``labels``,
  read by the checkpoint loader's safe reader within the memory budget;
- a Hugging Face ``datasets`` folder written by ``save_to_disk`` (needs the ``hf-datasets`` extra),
  memory-mapped: a ``Dataset``, or a ``DatasetDict`` whose test split is read (else validation,
  else its only split; ``FOLDER:SPLIT`` picks another).

Batches carry each input's index in the dataset, which is how the reducers break ties and sample
the same way for any split of the work. Pixels come out in [0, 1]; :mod:`introspect.dataset.preprocess`
turns them into what the model takes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from introspect._lazy import lazy_import
from introspect.dataset.base import Batch, DataError, DataSource, image_transform
from introspect.dataset.hf_datasets import is_hf_dataset_folder, open_hf_dataset

if TYPE_CHECKING:
    import torch

    from introspect.budget import Budget
else:
    torch = lazy_import("torch")

#: Dataset name → (torchvision class, folder it reads under the data folder).
TORCHVISION_DATASETS = {
    "mnist": ("MNIST", "MNIST"),
    "fashion-mnist": ("FashionMNIST", "FashionMNIST"),
    "cifar10": ("CIFAR10", "cifar-10-batches-py"),
}
SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def parse_name(source: str) -> tuple[str, str]:
    """``"mnist:train"`` → ``("mnist", "train")``; the split defaults to ``test``."""
    name, _, split = source.strip().lower().partition(":")
    split = split or "test"
    if name not in TORCHVISION_DATASETS:
        known = ", ".join(TORCHVISION_DATASETS)
        raise DataError(
            f"unknown dataset {source!r}: use one of {known} (NAME or NAME:split), an image folder, or a .npy/.pt file"
        )
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} in {source!r}: use {' or '.join(SPLITS)}")
    return name, split


def data_folder(data_dir: str | os.PathLike[str] | None) -> Path:
    """The folder datasets are read from: ``data_dir``, else ``$INTROSPECT_DATA``."""
    folder = data_dir or os.environ.get("INTROSPECT_DATA")
    if not folder:
        raise DataError("no data folder: pass --data-dir DIRECTORY or set INTROSPECT_DATA")
    return Path(folder)


def open_source(
    source: str | os.PathLike[str],
    *,
    image_shape: tuple[int, int, int] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    labels: str | os.PathLike[str] | None = None,
    budget: Budget | None = None,
) -> DataSource:
    """Open ``--data SOURCE``: an existing path by its kind, anything else as a torchvision name.

    Args:
        image_shape: (C, H, W) the model's images have; an image folder's files are converted
            and resized to it.
        labels: a ``.npy`` of labels for a ``.npy`` source.
        budget: the memory budget a ``.pt`` file's tensors are checked against.
    """
    path = Path(source)
    if path.is_dir():
        if is_hf_dataset_folder(path):  # its own files say so; an ImageFolder tree has none of them
            return open_hf_dataset(path, image_shape)
        return open_image_folder(path, image_shape)
    if path.suffix == ".npy":
        return open_array(path, labels)
    if path.suffix in (".pt", ".pth"):
        return open_tensor_file(path, budget)
    if path.exists():
        raise DataError(f"{path}: not a dataset (use an image folder, a .npy or a .pt file, or a dataset name)")
    # FOLDER:SPLIT names a split only where FOLDER is a saved Hugging Face dataset, so that any other
    # path, and a torchvision NAME:SPLIT, means what it did before.
    folder, colon, split = str(source).rpartition(":")
    if colon and folder and split and Path(folder).is_dir() and is_hf_dataset_folder(Path(folder)):
        return open_hf_dataset(Path(folder), image_shape, split)
    return open_torchvision(str(source), data_dir)


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


def open_image_folder(folder: Path, image_shape: tuple[int, int, int] | None) -> DataSource:
    """An ImageFolder tree, each image converted to the model's channels and resized to its size."""
    import torchvision

    transform = image_transform(folder, image_shape, "an image folder")
    try:
        dataset = torchvision.datasets.ImageFolder(str(folder), transform=transform)
    except (FileNotFoundError, RuntimeError) as error:
        raise DataError(f"{folder}: not an image folder (one sub-folder of images per class): {error}") from None
    classes = tuple(dataset.classes)
    return DataSource(name=folder.name, split="", dataset=dataset, class_names=classes, resized_on_read=True)


def open_array(path: Path, labels_path: str | os.PathLike[str] | None) -> DataSource:
    """A ``.npy`` array, memory-mapped so that only the batches being read are in memory."""
    inputs = _load_npy(path)
    if inputs.ndim < 2:
        raise DataError(f"{path}: an array of inputs needs a first (inputs) axis and at least one more")
    labels = None
    if labels_path is not None:
        labels = _load_npy(Path(labels_path))
        if labels.shape != (len(inputs),) or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{labels_path}: labels must be {len(inputs)} integers, one per input of {path.name}")
    pixels = inputs.dtype == np.uint8
    dataset = MappedArrayDataset(inputs, labels, path, None if labels_path is None else Path(labels_path))
    return DataSource(name=path.name, split="", dataset=dataset, pixels=pixels)


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable .npy array ({error})") from None


def open_tensor_file(path: Path, budget: Budget | None) -> DataSource:
    """A tensor (or ``{"inputs", "labels"}``) saved with ``torch.save``, read without unpickling code."""
    from introspect.probes import read_probe

    inputs, labels = read_probe(path, budget)
    pixels = inputs.dtype == torch.uint8
    dataset = ArrayDataset(inputs.numpy(), None if labels is None else labels.numpy())
    return DataSource(name=path.name, split="", dataset=dataset, pixels=pixels)


class ArrayDataset:
    """Rows of an array as ``(input, label)`` pairs: uint8 pixels scaled to [0, 1], labels -1 when absent."""

    def __init__(self, inputs: np.ndarray, labels: np.ndarray | None) -> None:
        self.inputs = inputs
        self.labels = labels

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        row = np.asarray(self.inputs[index])
        values = torch.from_numpy(row.astype(np.float32) / 255.0 if row.dtype == np.uint8 else row.astype(np.float32))
        return values, -1 if self.labels is None else int(self.labels[index])


class MappedArrayDataset(ArrayDataset):
    """An :class:`ArrayDataset` of memory-mapped ``.npy`` files that pickles as its paths, so a worker
    process (a Ray actor) maps the files itself instead of receiving a copy of the whole array."""

    def __init__(self, inputs: np.ndarray, labels: np.ndarray | None, path: Path, labels_path: Path | None) -> None:
        super().__init__(inputs, labels)
        self.paths = (path, labels_path)

    def __reduce__(self) -> tuple[Any, tuple[Path, Path | None]]:
        return _remap, self.paths


def _remap(path: Path, labels_path: Path | None) -> MappedArrayDataset:
    labels = None if labels_path is None else _load_npy(labels_path)
    return MappedArrayDataset(_load_npy(path), labels, path, labels_path)


def from_iterable(data: Iterable[Any], name: str = "data") -> DataSource:
    """A source for the Python API: a Dataset, a DataLoader, or any iterable of batches.

    Inputs from such data are taken as the model takes them (no normalization is added).
    """
    if isinstance(data, DataSource):
        return data
    classes = tuple(map(str, getattr(data, "classes", ()) or ()))
    return DataSource(name=name, split="", dataset=data, class_names=classes, pixels=False)


def batches(
    source: DataSource, batch_size: int = 256, limit: int | None = None, *, workers: int = 0, start: int = 0
) -> Iterator[Batch]:
    """The data in index order, ``batch_size`` inputs at a time, the first ``limit`` inputs at most.

    Map-style data is read by a DataLoader (``workers`` processes) from index ``start`` on; any
    other iterable is read as it comes, each item a batch: ``(inputs, labels)`` or inputs alone.
    """
    if not source.is_map_style:
        if start:
            raise DataError("an iterable source can only be read from its start")
        yield from _iterated_batches(source.dataset, limit)
        return
    count = len(source) if limit is None else min(limit, len(source))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(source.dataset, range(start, count)),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
    )
    for inputs, labels in loader:
        indices = torch.arange(start, start + len(inputs))
        start += len(inputs)
        yield Batch(inputs=inputs, labels=labels_or_none(torch.as_tensor(labels)), indices=indices)


def _iterated_batches(data: Iterable[Any], limit: int | None) -> Iterator[Batch]:
    start = 0
    for item in data:
        inputs, labels = (item[0], item[1]) if isinstance(item, (tuple, list)) else (item, None)
        if not isinstance(inputs, torch.Tensor):
            raise DataError(f"a batch of data must be a tensor or (inputs, labels), not {type(inputs).__name__}")
        if limit is not None and start + len(inputs) > limit:
            inputs, labels = inputs[: limit - start], None if labels is None else labels[: limit - start]
        labels = None if labels is None else labels_or_none(torch.as_tensor(labels))
        yield Batch(inputs=inputs, labels=labels, indices=torch.arange(start, start + len(inputs)))
        start += len(inputs)
        if limit is not None and start >= limit:
            return


def labels_or_none(labels: torch.Tensor) -> torch.Tensor | None:
    """Labels as given, or ``None`` where the source has none (every label -1)."""
    return None if labels.numel() and bool((labels < 0).all()) else labels
