"""What analyzers see of a model's output: always a tensor, the logits.

The rule: a tensor is taken as it is; a dict or a ``ModelOutput`` dataclass (transformers) gives
its ``logits`` entry, an object its ``logits`` attribute; otherwise the first tensor of the tuple,
list or dict is taken. Models that introspect rebuilds carry a forward hook applying the rule, so
that every analyzer, and every hook an analyzer adds to a layer, sees plain tensors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from introspect._lazy import lazy_import

if TYPE_CHECKING:
    import torch
    from torch import nn
else:
    torch = lazy_import("torch")

_MARK = "_introspect_returns_logits"


def logits_of(output: Any) -> torch.Tensor:
    """The logits of a model's output: itself, its ``logits`` entry or attribute, else its first tensor.

    Raises:
        TypeError: the output holds no tensor at all.
    """
    if isinstance(output, torch.Tensor):
        return output
    logits = output.get("logits") if isinstance(output, Mapping) else getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    values = output.values() if isinstance(output, Mapping) else output if isinstance(output, (tuple, list)) else ()
    for value in values:
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"the model returned a {type(output).__name__} that holds no tensor, so it has no logits")


def _logits_hook(module: nn.Module, inputs: Any, output: Any) -> torch.Tensor | None:
    return None if isinstance(output, torch.Tensor) else logits_of(output)


def returning_logits(model: nn.Module) -> nn.Module:
    """Make ``model`` return :func:`logits_of` its output (once; TorchScript is left as it is).

    A forward hook, not a wrapper, so that layer names, the model's class and its state_dict stay
    as they were. It changes ``model``: introspect applies it to models it built itself.
    """
    if isinstance(model, torch.jit.ScriptModule) or getattr(model, _MARK, False):
        return model
    model.register_forward_hook(_logits_hook)
    object.__setattr__(model, _MARK, True)
    return model
