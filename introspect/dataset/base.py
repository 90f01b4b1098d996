"""What every dataset source is made of: its error, its batches, the opened source, image conversion.

Kept apart from :mod:`introspect.dataset.sources` so that the modules of single kinds of source
(:mod:`introspect.dataset.hf_datasets`) build on these without importing the dispatcher that
imports them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from introspect.errors import IntrospectError

if TYPE_CHECKING:
    import torch


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
    """An opened dataset: what it is called, its class names, and the data itself.

    Attributes:
        dataset: map-style (``len`` and ``dataset[i] -> (input, label)``), read by a DataLoader
            with worker processes; or any iterable of ``(inputs, labels)`` batches or input
            tensors (a user's own DataLoader), read as it comes.
        pixels: the inputs are pixels in [0, 1] that still need the model's normalization;
            ``False`` when they are already what the model takes.
        resized_on_read: reading resizes each image to the model's size (an image folder, whose
            files can have any size).
    """

    name: str
    split: str
    dataset: Any
    class_names: tuple[str, ...] = ()
    pixels: bool = True
    resized_on_read: bool = False

    @property
    def is_map_style(self) -> bool:
        """Whether the data can be indexed (and so read by worker processes in any order)."""
        return hasattr(self.dataset, "__getitem__") and hasattr(self.dataset, "__len__")

    def __len__(self) -> int:
        return len(self.dataset)

    def describe(self) -> str:
        """``mnist (test split, 1000 inputs)``, for the page and the progress line."""
        size = f", {len(self)} inputs" if hasattr(self.dataset, "__len__") else ""
        split = f"{self.split} split" if self.split else "as given"
        return f"{self.name} ({split}{size})"


def image_transform(folder: Path, image_shape: tuple[int, int, int] | None, what: str) -> Any:
    """PIL image → the model's channels and size, as a [0, 1] tensor; ``what`` names the source in errors."""
    from torchvision import transforms

    if image_shape is None:
        raise DataError(f"{folder}: {what} needs a model that takes images")
    channels, height, width = image_shape
    if channels not in (1, 3):
        raise DataError(f"{folder}: images cannot be converted to {channels} channels")
    convert = ImageMode("L" if channels == 1 else "RGB")
    return transforms.Compose([convert, transforms.Resize((height, width)), transforms.ToTensor()])


@dataclasses.dataclass(frozen=True)
class ImageMode:
    """A picklable transform (DataLoader workers take it) converting a PIL image to ``mode``."""

    mode: str

    def __call__(self, image: Any) -> Any:
        return image.convert(self.mode)
