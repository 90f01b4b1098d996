"""The checkpoint's own preprocessing, applied to every batch of a dataset pass.

Sources give pixels in [0, 1] (or inputs already as the model takes them). A model states what it
takes in its :class:`~introspect.subject.Task`: the image shape, the normalization (mean and std
per channel) and the input shape, which for a dense network on images is the flattened image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from introspect._lazy import lazy_import
from introspect.dataset.sources import Batch, DataError, DataSource

if TYPE_CHECKING:
    import torch

    from introspect.subject import Task
else:
    torch = lazy_import("torch")


class Preprocessing:
    """Pixels → model inputs: resize to the model's image size, normalize, reshape to its input shape."""

    def __init__(self, task: Task, source: DataSource) -> None:
        self.task = task
        self.source = source
        self.normalize = source.pixels and bool(task.normalization)

    def describe(self) -> str:
        """What is done to each input, for the page's caption."""
        steps = []
        if self.task.image_shape is not None:
            height, width = self.task.image_shape[1:]
            size = self._source_size()
            if self.source.resized_on_read:
                steps.append(f"resized to {height}x{width}")
            elif size is not None and size != (height, width):
                steps.append(f"resized from {size[0]}x{size[1]} to {height}x{width}")
        if self.normalize:
            steps.append("normalized with the checkpoint's mean and std")
        elif not self.source.pixels:
            steps.append("taken as the model takes them")
        if self.task.input_shape is not None and self.task.image_shape is not None:
            if tuple(self.task.input_shape) != tuple(self.task.image_shape):
                steps.append(f"reshaped to {tuple(self.task.input_shape)}")
        return ", ".join(steps)

    def _source_size(self) -> tuple[int, int] | None:
        """(H, W) of the source's images as read (the first input's), ``None`` when that is not known."""
        if not (self.source.pixels and self.source.is_map_style and len(self.source)):
            return None
        first = torch.as_tensor(self.source.dataset[0][0])
        return tuple(int(side) for side in first.shape[-2:]) if first.dim() >= 3 else None

    def __call__(self, batch: Batch) -> Batch:
        inputs = batch.inputs
        if inputs.is_floating_point():
            inputs = inputs.float()
            if self.source.pixels and self.task.image_shape is not None:
                inputs = self._as_images(inputs)
            if self.normalize:
                inputs = self._normalized(inputs)
        inputs = self._reshaped(inputs)
        return Batch(inputs=inputs, labels=batch.labels, indices=batch.indices)

    def _as_images(self, inputs: torch.Tensor) -> torch.Tensor:
        channels, height, width = self.task.image_shape  # type: ignore[misc]
        if inputs.dim() == 3:  # (N, H, W) greyscale
            inputs = inputs.unsqueeze(1)
        if inputs.dim() == 4 and inputs.shape[-1] in (1, 3) and inputs.shape[1] not in (1, 3):
            inputs = inputs.permute(0, 3, 1, 2)  # (N, H, W, C) arrays
        if inputs.dim() != 4:
            return inputs  # flat rows: only a reshape can make them images
        if inputs.shape[1] != channels:
            if inputs.shape[1] == 1 and channels == 3:
                inputs = inputs.expand(-1, 3, -1, -1)
            else:
                raise DataError(
                    f"{self.source.name} has {inputs.shape[1]}-channel images; the model takes {channels} channels"
                )
        if tuple(inputs.shape[2:]) != (height, width):
            inputs = torch.nn.functional.interpolate(inputs, size=(height, width), mode="bilinear", antialias=True)
        return inputs

    def _normalized(self, inputs: torch.Tensor) -> torch.Tensor:
        normalization = self.task.normalization or {}
        mean = torch.as_tensor(normalization["mean"], dtype=inputs.dtype)
        std = torch.as_tensor(normalization["std"], dtype=inputs.dtype)
        if inputs.dim() == 4:
            shape = (1, -1, 1, 1)
            if len(mean) not in (1, inputs.shape[1]):
                channels = inputs.shape[1]
                raise DataError(f"the checkpoint's normalization has {len(mean)} channels, the images {channels}")
            return (inputs - mean.reshape(shape)) / std.reshape(shape)
        return (inputs - mean.mean()) / std.mean()

    def _reshaped(self, inputs: torch.Tensor) -> torch.Tensor:
        shape = self.task.input_shape
        if shape is None or tuple(inputs.shape[1:]) == tuple(shape):
            return inputs
        size = 1
        for dimension in shape:
            size *= int(dimension)
        if inputs[0].numel() != size:
            raise DataError(
                f"{self.source.name} inputs have shape {tuple(inputs.shape[1:])}; the model takes {tuple(shape)}"
            )
        return inputs.reshape(len(inputs), *shape)
