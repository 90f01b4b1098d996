"""Linear CKA (Kornblith et al. 2019): how alike two layers' representations of the same inputs are.

Centered kernel alignment compares the inputs' similarity structure in two layers, so layers of
any widths (and of different networks) can be compared. With linear kernels ``K = X Xᵀ`` and
``L = Y Yᵀ`` over n inputs, ``CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))``: 1 for the same
representation up to an orthogonal transform and an isotropic scaling, near 0 for unrelated ones.

Two estimators are used:
- on the probe, the biased HSIC of Kornblith et al. on the centered Gram matrices (``tr(K H L H)``);
- over a dataset, minibatch CKA (Nguyen et al. 2021): the unbiased HSIC of Song et al. (2012) is
  averaged over batches, and CKA is taken from the averages. Its state is one number per pair
  of layers, so a split of any size takes the same memory and shards merge by addition.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import
from introspect.dataset.base import DataError

if TYPE_CHECKING:
    import torch

    from introspect.dataset.sources import Batch
else:
    torch = lazy_import("torch")

#: The unbiased HSIC divides by n (n - 3): a smaller batch says nothing and is left out.
MIN_BATCH = 4


def gram(features: torch.Tensor) -> torch.Tensor:
    """The linear kernel ``X Xᵀ`` of (n, ...) features, each input flattened to one vector, in float64."""
    flat = features.detach().reshape(len(features), -1).double()
    return flat @ flat.T


def centered(kernel: torch.Tensor) -> torch.Tensor:
    """``H K H`` with ``H = I - 11ᵀ/n``: the kernel of the features with their mean over inputs removed."""
    kernel = kernel - kernel.mean(dim=0, keepdim=True)
    return kernel - kernel.mean(dim=1, keepdim=True)


def cka_matrix(features: Sequence[torch.Tensor]) -> np.ndarray:
    """Linear CKA between every pair of (n, ...) feature tensors over the same n inputs (biased HSIC)."""
    return cka_from_kernels([centered(gram(item)) for item in features])


def cka_from_kernels(kernels: Sequence[torch.Tensor]) -> np.ndarray:
    """Linear CKA between every pair of centered n x n kernels (:func:`centered` of :func:`gram`)."""
    flat = torch.stack([kernel.reshape(-1) for kernel in kernels])
    hsic = (flat @ flat.T).numpy()  # tr(K̃ L̃) = sum of their products, K̃ and L̃ symmetric
    return _normalized(hsic)


def centered_grams(model: torch.nn.Module, inputs: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Each layer's centered Gram matrix over ``inputs``, made as the layer runs (in eval mode, no gradients).

    Only the n x n matrices are kept, never the outputs, so comparing the layers of a deep
    network takes the memory of one layer's output at a time.
    """
    from introspect.capture import batch_first, each_output, evaluation_mode, first_tensor

    kernels: dict[str, torch.Tensor] = {}

    def reduced(name: str, module: torch.nn.Module, output: object) -> None:
        tensor = first_tensor(output)
        if tensor is not None:
            kernels.pop(name, None)  # a layer called twice is its last call, in its last place
            kernels[name] = centered(gram(batch_first(module, tensor.detach()).cpu()))

    with each_output(model, layers, reduced), evaluation_mode(model), torch.no_grad():
        model(inputs)
    return kernels


def cka(first: torch.Tensor, second: torch.Tensor) -> float:
    """Linear CKA of two (n, ...) feature tensors over the same n inputs."""
    return float(cka_matrix([first, second])[0, 1])


def unbiased_hsic(first: torch.Tensor, second: torch.Tensor) -> float:
    """The unbiased HSIC estimator of Song et al. (2012) for two n x n kernels (n >= 4)."""
    n = len(first)
    k = first.clone().fill_diagonal_(0.0)
    l = second.clone().fill_diagonal_(0.0)  # noqa: E741 - the paper's name for the second kernel
    trace = float((k * l).sum())
    sums = float(k.sum()) * float(l.sum()) / ((n - 1) * (n - 2))
    cross = 2.0 * float(k.sum(dim=0) @ l.sum(dim=1)) / (n - 2)
    return (trace + sums - cross) / (n * (n - 3))


def _normalized(hsic: np.ndarray) -> np.ndarray:
    """HSIC between every pair → CKA; a layer with zero self-HSIC (a constant output) gets NaN."""
    scale = np.sqrt(np.clip(np.diag(hsic), 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        values = hsic / np.outer(scale, scale)
    values[~np.isfinite(values)] = np.nan
    return np.clip(values, -1.0, 1.0)


@dataclasses.dataclass
class MinibatchCKAReducer:
    """Minibatch linear CKA between every pair of ``layers`` over a dataset pass.

    Attributes:
        layers: the layers compared, in order.
        hsic: the sum over batches of each pair's unbiased HSIC (layers x layers).
        batches: how many batches were summed; ``skipped`` how many had fewer than MIN_BATCH inputs.
    """

    layers: Sequence[str]

    def __post_init__(self) -> None:
        self.layers = list(self.layers)
        self.hsic = np.zeros((len(self.layers), len(self.layers)))
        self.batches = 0
        self.skipped = 0

    def feed(self, batch: Batch, logits: torch.Tensor, outputs: dict[str, torch.Tensor]) -> None:
        """Add each pair's unbiased HSIC on this batch; a layer missing from the batch stops the pass."""
        if len(batch.indices) < MIN_BATCH:
            self.skipped += 1
            return
        missing = [name for name in self.layers if name not in outputs]
        if missing:
            raise DataError(
                f"layer {missing[0]!r} gave no tensor output on a batch of the dataset, so it cannot be compared"
            )
        kernels = [gram(outputs[name]) for name in self.layers]
        for row, first in enumerate(kernels):
            for column in range(row, len(kernels)):
                value = unbiased_hsic(first, kernels[column])
                self.hsic[row, column] += value
                if column != row:
                    self.hsic[column, row] += value
        self.batches += 1

    def merge(self, other: MinibatchCKAReducer) -> MinibatchCKAReducer:
        """Fold a reducer of another shard into this one (the sums add); returns ``self``."""
        self.hsic += other.hsic
        self.batches += other.batches
        self.skipped += other.skipped
        return self

    def cka(self) -> np.ndarray:
        """CKA between every pair of layers from the averaged HSICs (NaN before any batch)."""
        if not self.batches:
            return np.full(self.hsic.shape, np.nan)
        return _normalized(self.hsic / self.batches)
