"""Linear CKA between the layers of two checkpoints, on the same inputs: where two networks compute alike.

The first checkpoint's probe is the common set of inputs. Another checkpoint sees the same
images as it takes them: reshaped when it takes them flattened (an MLP beside LeNet-5) and
renormalized when its preprocessing differs. Checkpoints that cannot take those inputs, or
have no model to run, are left out of this part of the comparison, and the comparison says so.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from introspect._lazy import lazy_import

if TYPE_CHECKING:
    import torch

    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

#: Layers of each network compared; more make cells too small to read.
MAX_LAYERS = 12
#: Probe inputs used; the Gram matrices are inputs x inputs.
MAX_INPUTS = 256


@dataclasses.dataclass(frozen=True)
class CrossCKA:
    """CKA between every layer of one checkpoint (rows) and every layer of another (columns).

    Attributes:
        titles: the two checkpoints' titles, rows first.
        layers: the compared layers of each, in the order they run.
        cka: (rows, columns) linear CKA over the same ``num_inputs`` inputs.
        num_inputs: how many inputs both networks saw.
        note: how the second checkpoint's inputs were made from the first's (reshaped, renormalized), or "".
    """

    titles: tuple[str, str]
    layers: tuple[tuple[str, ...], tuple[str, ...]]
    cka: np.ndarray
    num_inputs: int
    note: str = ""


def cross_cka(titles: Sequence[str], subjects: Sequence[Subject]) -> tuple[tuple[CrossCKA, ...], tuple[str, ...]]:
    """The first checkpoint against each other one; with why each one left out was left out."""
    first = subjects[0]
    if first.model is None or first.probe_inputs is None or len(first.probe_inputs) < 4:
        return (), (f"{titles[0]}: no model or probe of at least 4 inputs, so representations are not compared",)
    pairs, skipped = [], []
    for title, other in zip(titles[1:], subjects[1:]):
        try:
            pairs.append(_pair((titles[0], first), (title, other)))
        except ValueError as reason:
            skipped.append(f"{title}: {reason}")
    return tuple(pairs), tuple(skipped)


def _pair(first: tuple[str, Subject], second: tuple[str, Subject]) -> CrossCKA:
    from introspect.analyzers._cka import centered_grams
    from introspect.analyzers.representation_similarity import compared_layers
    from introspect.errors import SkipAnalyzer

    (title_a, a), (title_b, b) = first, second
    if b.model is None:
        raise ValueError("no model to run")
    inputs = a.probe_inputs[:MAX_INPUTS]
    their_inputs, note = inputs_for(b, inputs, a.task.normalization)
    try:
        layers_a, layers_b = (tuple(compared_layers(s, None, MAX_LAYERS)) for s in (a, b))
    except SkipAnalyzer as reason:
        raise ValueError(str(reason)) from None
    grams_a = centered_grams(a.model, inputs.to(a.device), layers_a)
    grams_b = centered_grams(b.model, their_inputs.to(b.device), layers_b)
    layers_a = tuple(name for name in layers_a if name in grams_a)
    layers_b = tuple(name for name in layers_b if name in grams_b)
    kernels_a = torch.stack([grams_a[name].reshape(-1) for name in layers_a])
    kernels_b = torch.stack([grams_b[name].reshape(-1) for name in layers_b])
    cross = (kernels_a @ kernels_b.T).numpy()
    scale_a, scale_b = kernels_a.norm(dim=1).numpy(), kernels_b.norm(dim=1).numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        matrix = np.clip(cross / np.outer(scale_a, scale_b), -1.0, 1.0)
    return CrossCKA((title_a, title_b), (layers_a, layers_b), matrix, len(inputs), note)


def inputs_for(subject: Subject, inputs: torch.Tensor, normalization: Mapping[str, Any] | None) -> tuple[Any, str]:
    """``inputs`` (normalized as ``normalization`` says) as ``subject`` takes them; raises ValueError when it cannot."""
    notes = []
    shape = tuple(subject.task.input_shape or ())
    if shape and tuple(inputs.shape[1:]) != shape:
        if math.prod(shape) != math.prod(inputs.shape[1:]):
            raise ValueError(f"it takes inputs of shape {list(shape)}, not {list(inputs.shape[1:])}")
        inputs = inputs.reshape(len(inputs), *shape)
        notes.append(f"reshaped to {list(shape)}")
    theirs = subject.task.normalization
    if (normalization or None) != (theirs or None):
        inputs = _renormalized(inputs, normalization, theirs, subject.task.image_shape)
        notes.append("renormalized with its own mean and std")
    return inputs, ", ".join(notes)


def _renormalized(
    inputs: torch.Tensor, ours: Mapping[str, Any] | None, theirs: Mapping[str, Any] | None, image_shape: Any
) -> Any:
    """Pixels back to [0, 1] with ``ours`` and normalized again with ``theirs`` (either may be absent)."""
    channels = int(image_shape[0]) if image_shape else 1
    images = inputs.reshape(len(inputs), channels, -1).double()

    def stats(normalization: Mapping[str, Any] | None) -> tuple[torch.Tensor, torch.Tensor]:
        if not normalization:
            return torch.zeros(channels, 1, dtype=torch.float64), torch.ones(channels, 1, dtype=torch.float64)
        mean = torch.as_tensor(normalization["mean"], dtype=torch.float64).reshape(-1, 1).expand(channels, 1)
        std = torch.as_tensor(normalization["std"], dtype=torch.float64).reshape(-1, 1).expand(channels, 1)
        return mean, std

    (mean_a, std_a), (mean_b, std_b) = stats(ours), stats(theirs)
    pixels = images * std_a + mean_a
    return ((pixels - mean_b) / std_b).to(inputs.dtype).reshape(inputs.shape)
