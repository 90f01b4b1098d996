"""Statistics of many tensors at once: a few torch calls per chunk of values, not per tensor.

A checkpoint can hold 100,000 tiny tensors; a Python loop making several torch calls for each
costs seconds before any figure is drawn. Here consecutive tensors are flattened into one
float64 vector of at most :data:`CHUNK_VALUES` values and reduced per segment with
``bincount`` and ``scatter_reduce``, so the time grows with the number of values.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")

#: Values reduced in one batch (32 MB as float64); a larger tensor is a batch of its own.
CHUNK_VALUES = 1 << 22
STATISTICS = ("numel", "count", "non_finite", "mean", "std", "min", "max", "fraction_positive")


def tensor_statistics(tensors: Sequence[torch.Tensor], *, ddof: int = 0) -> dict[str, np.ndarray]:
    """Per tensor, over its finite values: count, mean, std, min and max; and numel, non_finite, fraction_positive.

    Args:
        tensors: any shapes, dtypes and devices.
        ddof: delta degrees of freedom of the std (0: population, as numpy; 1: torch's default).

    Returns:
        Statistic name (see :data:`STATISTICS`) → one float64 value per tensor; NaN where a
        tensor has no finite value (std: where it has no more than ``ddof``).
    """
    results = {key: np.full(len(tensors), np.nan) for key in STATISTICS}
    for start, stop in _batches([int(tensor.numel()) for tensor in tensors]):
        for key, values in _batch_statistics(tensors[start:stop], ddof).items():
            results[key][start:stop] = values
    return results


def _batches(sizes: list[int]) -> Iterator[tuple[int, int]]:
    """(start, stop) runs of consecutive tensors holding at most CHUNK_VALUES values (or one tensor)."""
    start, total = 0, 0
    for index, size in enumerate(sizes):
        if index > start and total + size > CHUNK_VALUES:
            yield start, index
            start, total = index, 0
        total += size
    if start < len(sizes):
        yield start, len(sizes)


def _flattened(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    parts = [tensor.detach().reshape(-1) for tensor in tensors]
    if len({part.device for part in parts}) > 1:
        parts = [part.cpu() for part in parts]
    # torch.cat promotes mixed dtypes (bool, int, float) to a common one before the float64 copy.
    return torch.cat(parts).to(device="cpu", dtype=torch.float64)


def _batch_statistics(tensors: Sequence[torch.Tensor], ddof: int) -> dict[str, np.ndarray]:
    flat = _flattened(tensors)
    numel = torch.tensor([tensor.numel() for tensor in tensors], dtype=torch.float64)
    segment = torch.repeat_interleave(torch.arange(len(tensors)), numel.long())
    finite = torch.isfinite(flat)
    clean = torch.where(finite, flat, 0.0)
    count = torch.bincount(segment, weights=finite.double(), minlength=len(tensors))
    mean = torch.bincount(segment, weights=clean, minlength=len(tensors)) / count
    # Two passes (deviations from the mean) keep the std accurate when the mean is large.
    deviation = torch.where(finite, flat - mean[segment], 0.0)
    variance = torch.bincount(segment, weights=deviation * deviation, minlength=len(tensors)) / (count - ddof)
    low = torch.full((len(tensors),), float("inf"), dtype=torch.float64)
    high = torch.full((len(tensors),), float("-inf"), dtype=torch.float64)
    low = low.scatter_reduce(0, segment, torch.where(finite, flat, float("inf")), "amin")
    high = high.scatter_reduce(0, segment, torch.where(finite, flat, float("-inf")), "amax")
    positive = torch.bincount(segment, weights=(flat > 0).double(), minlength=len(tensors))
    empty = count == 0
    return {
        "numel": numel.numpy(),
        "count": count.numpy(),
        "non_finite": (numel - count).numpy(),
        "mean": mean.numpy(),
        "std": torch.where(count > ddof, variance.clamp(min=0).sqrt(), float("nan")).numpy(),
        "min": torch.where(empty, float("nan"), low).numpy(),
        "max": torch.where(empty, float("nan"), high).numpy(),
        "fraction_positive": (positive / numel).numpy(),
    }


def shape_text(shape: Sequence[int]) -> str:
    """``"64x3x3x3"``; ``"scalar"`` for a zero-dimensional tensor."""
    return "x".join(str(int(size)) for size in shape) or "scalar"
