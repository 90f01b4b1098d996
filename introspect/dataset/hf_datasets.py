"""``--data FOLDER`` written by Hugging Face ``datasets``' ``save_to_disk``: a Dataset, or a DatasetDict's split.

The folder is recognised by the files ``save_to_disk`` writes, so a missing library gets its own
sentence; the data is memory-mapped from its Arrow files and never downloaded. ``datasets`` is
the optional ``hf-datasets`` extra.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from introspect._lazy import lazy_import
from introspect.dataset.base import DataError, DataSource, image_transform

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")

#: What ``Dataset.save_to_disk`` writes beside its .arrow files; ``DatasetDict.save_to_disk`` writes
#: ``dataset_dict.json`` (the split names) and one such folder per split, named after it.
HF_DATASET_FILES = ("dataset_info.json", "state.json")
HF_DATASET_DICT_FILE = "dataset_dict.json"
#: The split of a DatasetDict read when none is named, in this order (then its only split).
HF_DEFAULT_SPLITS = ("test", "validation")
HF_INSTALL_HINT = "pip install 'introspect[hf-datasets]'"
#: Column names taken as the inputs (when no column is an ``Image`` feature) and as the labels
#: (when no column is a ``ClassLabel``).
HF_IMAGE_COLUMNS = ("image", "img", "pixel_values")
HF_LABEL_COLUMNS = ("label", "labels")


def is_hf_dataset_folder(folder: Path) -> bool:
    """Whether ``folder`` was written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    if (folder / HF_DATASET_DICT_FILE).is_file():
        return True
    return all((folder / name).is_file() for name in HF_DATASET_FILES)


def open_hf_dataset(
    folder: str | os.PathLike[str], image_shape: tuple[int, int, int] | None, split: str | None = None
) -> DataSource:
    """A Hugging Face dataset saved with ``save_to_disk``, memory-mapped and never downloaded.

    The inputs are the first ``Image`` column (converted to the model's channels and resized to its
    size, like an image folder), else a numeric array column (``image``, ``img`` or
    ``pixel_values`` first): uint8 arrays are pixels, other numbers are taken as the model takes
    them. The labels are the first ``ClassLabel`` column, whose names are the class names, else
    an integer ``label`` or ``labels`` column.

    Args:
        split: of a ``DatasetDict`` folder; by default its test split, else validation, else its
            only split.

    Raises:
        DataError: ``datasets`` is not installed, the split is unknown or ambiguous, or no column
            can be the inputs.
    """
    folder = Path(folder)
    if importlib.util.find_spec("datasets") is None:
        raise DataError(
            f"reading the Hugging Face dataset {folder} needs datasets, which is not installed: {HF_INSTALL_HINT}"
        )
    split = _hf_split(folder, split)
    data = _load_hf_split(folder, split)
    inputs, kind, labels = _hf_columns(folder, data.features)
    dataset = HFDataset(folder.absolute(), split, inputs, kind, labels, image_shape, data)
    label_feature = None if labels is None else data.features[labels]
    class_names = tuple(map(str, getattr(label_feature, "names", None) or ()))
    return DataSource(
        name=folder.name,
        split=split or str(data.split or ""),  # a Dataset saved from a split keeps its name
        dataset=dataset,
        class_names=class_names,
        pixels=kind != "values",
        resized_on_read=kind == "image",
    )


def _hf_split(folder: Path, split: str | None) -> str | None:
    """The split of a DatasetDict folder to read (``None`` for a single dataset's folder)."""
    index = folder / HF_DATASET_DICT_FILE
    if not index.is_file():
        if split is not None:
            raise DataError(f"{folder} holds one dataset, not a DatasetDict of splits: drop ':{split}'")
        return None
    try:
        splits = [str(name) for name in json.loads(index.read_text(encoding="utf-8"))["splits"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"{index}: not a readable DatasetDict index ({error})") from None
    if split is not None:
        if split not in splits:
            raise DataError(f"{folder} has no split {split!r}: its splits are {', '.join(splits) or 'none'}")
        return split
    for name in HF_DEFAULT_SPLITS:
        if name in splits:
            return name
    if len(splits) == 1:
        return splits[0]
    listed = ", ".join(splits) or "none"
    raise DataError(f"{folder} has the splits {listed} and none is test or validation: pick one with {folder}:SPLIT")


def _load_hf_split(folder: Path, split: str | None) -> Any:
    """The saved dataset (a DatasetDict's split is the sub-folder of its name), memory-mapped."""
    import datasets

    path = folder if split is None else folder / split
    try:
        # An absolute local path, so that fsspec never reads it as a URL of a remote filesystem;
        # keep_in_memory=False so that $HF_DATASETS_IN_MEMORY_MAX_SIZE cannot load it all into memory.
        return datasets.Dataset.load_from_disk(str(path.absolute()), keep_in_memory=False)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"{path}: not a readable Hugging Face dataset ({error})") from None


def _hf_columns(folder: Path, features: Any) -> tuple[str, str, str | None]:
    """(the input column, ``"image"``, ``"pixels"`` or ``"values"``, the label column or ``None``)."""
    import datasets

    labels = next((name for name, feature in features.items() if isinstance(feature, datasets.ClassLabel)), None)
    if labels is None:
        labels = next((name for name in HF_LABEL_COLUMNS if _is_integer_value(features.get(name))), None)
    candidates = [name for name in features if name != labels]
    images = [name for name in candidates if isinstance(features[name], datasets.Image)]
    if images:
        return images[0], "image", labels
    arrays = {name: dtype for name in candidates if (dtype := _array_dtype(features[name])) is not None}
    named = [name for name in arrays if name in HF_IMAGE_COLUMNS]
    if named or arrays:
        inputs = (named or list(arrays))[0]
        return inputs, "pixels" if arrays[inputs] == "uint8" else "values", labels
    found = ", ".join(f"{name} ({_feature_name(feature)})" for name, feature in features.items()) or "none"
    raise DataError(f"{folder}: no column of images or numeric arrays to read as inputs (its columns: {found})")


def _array_dtype(feature: Any, depth: int = 0) -> str | None:
    """The number type of a column of arrays (nested lists or fixed-shape arrays), ``None`` for anything else."""
    import datasets

    if isinstance(feature, (datasets.Array2D, datasets.Array3D, datasets.Array4D, datasets.Array5D)):
        return feature.dtype if _is_number_type(feature.dtype) else None
    if isinstance(feature, datasets.Value):  # a number is only an input when it is part of an array
        return feature.dtype if depth and _is_number_type(feature.dtype) else None
    if isinstance(feature, list) and len(feature) == 1:  # [Value(...)], the shorthand for a list
        return _array_dtype(feature[0], depth + 1)
    if hasattr(feature, "feature"):  # Sequence, and List and LargeList in newer datasets versions
        return _array_dtype(feature.feature, depth + 1)
    return None


def _is_number_type(dtype: str, kind: type = np.number) -> bool:
    try:
        return bool(np.issubdtype(np.dtype(dtype), kind))
    except TypeError:  # Arrow-only types numpy has no name for: string, timestamp[s], ...
        return False


def _is_integer_value(feature: Any) -> bool:
    import datasets

    return isinstance(feature, datasets.Value) and _is_number_type(feature.dtype, np.integer)


def _feature_name(feature: Any) -> str:
    """``int64``, ``ClassLabel``, ``List``: a column's type in a few characters, for error messages."""
    import datasets

    return str(feature.dtype) if isinstance(feature, datasets.Value) else type(feature).__name__


class HFDataset:
    """Rows of a saved Hugging Face dataset as ``(input, label)`` pairs, labels -1 when absent.

    It pickles as its folder and columns, so a worker process (a Ray actor) re-opens the files
    memory-mapped instead of receiving the table.
    """

    def __init__(
        self,
        folder: Path,
        split: str | None,
        inputs: str,
        kind: str,
        labels: str | None,
        image_shape: tuple[int, int, int] | None,
        data: Any = None,
    ) -> None:
        """``data`` is the split already opened from ``folder``; it is opened again when not given."""
        self.arguments = (folder, split, inputs, kind, labels, image_shape)
        self.inputs, self.kind, self.labels = inputs, kind, labels
        self.transform = image_transform(folder, image_shape, "a dataset of images") if kind == "image" else None
        data = _load_hf_split(folder, split) if data is None else data
        data = data.select_columns([name for name in (inputs, labels) if name])  # the others are never decoded
        # The saved format (torch, pandas, ...) is replaced: images come as PIL images, arrays as numpy.
        self.data = data.with_format(None if kind == "image" else "numpy")

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        row = self.data[int(index)]
        value = row[self.inputs]
        if self.transform is not None:
            values = self.transform(value)
        else:
            array = np.asarray(value, dtype=np.float32)
            values = torch.from_numpy(array / 255.0 if self.kind == "pixels" else array)
        label = None if self.labels is None else row[self.labels]
        return values, -1 if label is None else int(label)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return HFDataset, self.arguments
