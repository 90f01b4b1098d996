"""Forward hooks that live exactly as long as a ``with`` block, and activation capture."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from introspect._lazy import lazy_import
from introspect.errors import SkipAnalyzer

if TYPE_CHECKING:
    import torch
    from torch import nn
else:
    torch = lazy_import("torch")


def leaf_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules without children, by qualified name, in definition order."""
    return [(name, module) for name, module in model.named_modules() if name and not any(module.children())]


def check_hookable(model: nn.Module) -> None:
    """Raise :class:`SkipAnalyzer` for models whose layers cannot carry Python forward hooks."""
    if isinstance(model, torch.jit.ScriptModule):
        raise SkipAnalyzer("TorchScript modules do not run Python forward hooks, so layer outputs cannot be captured")
    if isinstance(model, torch.fx.GraphModule):
        raise SkipAnalyzer(
            "an exported graph runs its operations directly, not through layer modules, so layer outputs cannot be "
            "hooked"
        )


@contextlib.contextmanager
def recording(
    model: nn.Module, layers: Iterable[str] | None = None, *, to_cpu: bool = True
) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of ``layers`` (default: every leaf layer) during the block.

    The yielded dict fills in as the model runs; a layer called more than once keeps its last
    output. Hooks are removed on exit, even when the block raises.
    """
    check_hookable(model)
    modules = dict(model.named_modules())
    names = [name for name, _ in leaf_layers(model)] if layers is None else list(layers)
    unknown = [name for name in names if name not in modules]
    if unknown:
        raise KeyError(f"no layer named {unknown[0]!r} in the model")
    outputs: dict[str, torch.Tensor] = {}

    def hook_for(name: str):  # noqa: ANN202 - a closure per layer name
        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            if isinstance(output, torch.Tensor):
                # A copy, not a view: later in-place operations (ReLU(inplace=True), a residual
                # "out += identity") would otherwise rewrite what was recorded. Copying costs
                # little beside keeping every output alive, which capture does anyway.
                value = output.detach()
                moves = to_cpu and value.device.type != "cpu"
                outputs[name] = value.cpu() if moves else value.clone()

        return hook

    handles = [modules[name].register_forward_hook(hook_for(name)) for name in names]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode for the block and restore each one's own flag after."""
    flags = {module: module.training for module in model.modules()}
    try:
        model.eval()
    except NotImplementedError:  # torch.export's modules refuse eval(); their flags can still be set
        for module in flags:
            module.training = False
    try:
        yield model
    finally:
        for module, flag in flags.items():
            module.training = flag


def capture_activations(
    model: nn.Module, inputs: torch.Tensor, layers: Iterable[str] | None = None
) -> dict[str, torch.Tensor]:
    """Run ``model`` on ``inputs`` in eval mode and return each layer's output (on the CPU).

    Args:
        model: any module; it is left in the mode it was in, with no hooks added.
        inputs: a batch of inputs on the model's device.
        layers: qualified layer names; default every leaf layer.

    Returns:
        Layer name → detached output tensor, in the order the layers ran.
    """
    with evaluation_mode(model), recording(model, layers) as outputs, torch.no_grad():
        model(inputs)
    return dict(outputs)
