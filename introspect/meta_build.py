"""Building a network on the ``meta`` device (shapes only, no memory) without its initializers' cost."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

#: Tensor methods whose meta implementation goes through ``torch._refs``, whose first use imports
#: ``torch._dynamo`` (1.1 s on a 2-core machine, more than loading LeNet-5 and running it).
_REFS_RANDOM_FILLS = (
    torch.Tensor.normal_,
    torch.Tensor.exponential_,
    torch.Tensor.log_normal_,
    torch.Tensor.cauchy_,
    torch.Tensor.geometric_,
)


def _initializers() -> frozenset[Any]:
    """``torch.nn.init``'s in-place initializers (``normal_``, ``kaiming_normal_``...) and the fills above."""
    init = torch.nn.init
    public = (getattr(init, name) for name in dir(init) if name.endswith("_") and not name.startswith("_"))
    return frozenset((*filter(callable, public), *_REFS_RANDOM_FILLS))


class _SkippedInitialization(TorchFunctionMode):
    """Make in-place initialization of a meta tensor a no-op: a meta tensor holds no values to fill."""

    def __init__(self) -> None:
        super().__init__()
        self.initializers = _initializers()

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - torch's protocol
        kwargs = kwargs or {}
        if func in self.initializers:
            target = args[0] if args else kwargs.get("tensor")
            if isinstance(target, torch.Tensor) and target.is_meta:
                return target
        return func(*args, **kwargs)


@contextlib.contextmanager
def on_meta_device() -> Iterator[None]:
    """Build modules on the ``meta`` device for the block, skipping their (meaningless) random initialization."""
    with torch.device("meta"), _SkippedInitialization():
        yield
