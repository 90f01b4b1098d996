"""Forward hooks that live exactly as long as a ``with`` block, and activation capture."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Container, Iterable, Iterator
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
    model: nn.Module,
    layers: Iterable[str] | None = None,
    *,
    to_cpu: bool = True,
    copied: Container[str] | None = None,
) -> Iterator[RecordedOutputs]:
    """Record the outputs of ``layers`` (default: every leaf layer) during the block.

    The yielded dict fills in as the model runs; a layer called more than once keeps its last
    output. Hooks are removed on exit, even when the block raises.

    Args:
        copied: the layers whose outputs are copied when recorded; ``None`` copies every output.
            A copy is what keeps an output safe from later in-place operations (ReLU(inplace=True),
            a residual ``out += identity``); :func:`capture_activations` copies only the layers it
            has seen modified, and checks the others with :func:`modified_since_recorded`.
    """
    check_hookable(model)
    modules = dict(model.named_modules())
    if layers is None:
        names = [name for name, module in modules.items() if name and not any(module.children())]
    else:
        names = list(layers)
    unknown = [name for name in names if name not in modules]
    if unknown:
        raise KeyError(f"no layer named {unknown[0]!r} in the model")
    outputs = RecordedOutputs()

    def hook_for(name: str):  # noqa: ANN202 - a closure per layer name
        copy = copied is None or name in copied
        time_first = _time_first(modules[name])  # decided once, not at every call

        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            _record(outputs, name, inputs, output, copy=copy, to_cpu=to_cpu, time_first=time_first)

        return hook

    handles = [modules[name].register_forward_hook(hook_for(name)) for name in names]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def each_output(
    model: nn.Module, layers: Iterable[str], callback: Callable[[str, nn.Module, object], None]
) -> Iterator[None]:
    """Call ``callback(name, module, output)`` as each of ``layers`` produces an output during the block.

    For callers that reduce an output on the spot instead of keeping it; hooks are removed on
    exit, even when the block raises.
    """
    check_hookable(model)
    modules = dict(model.named_modules())
    names = list(layers)
    unknown = [name for name in names if name not in modules]
    if unknown:
        raise KeyError(f"no layer named {unknown[0]!r} in the model")
    handles = [
        modules[name].register_forward_hook(lambda module, _inputs, output, name=name: callback(name, module, output))
        for name in names
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _record(
    outputs: RecordedOutputs, name: str, inputs: tuple, output: object, *, copy: bool, to_cpu: bool, time_first: bool
) -> None:
    """Keep one layer's output (its first tensor, batch first), copied when asked or when it must be."""
    tensor = output if type(output) is torch.Tensor else first_tensor(output)
    if tensor is None:
        return
    if tensor is not output:
        outputs.tuple_shapes[name] = structure_text(output)
    value = tensor.detach()
    if time_first and value.dim() == 3:
        value = value.transpose(0, 1)
    if to_cpu and value.device.type != "cpu":
        outputs[name] = value.cpu()
    elif copy or _must_copy(value, tensor, inputs):
        outputs[name] = value.clone()
    else:
        outputs[name] = value
        outputs.versions[name] = value._version
        return
    outputs.versions.pop(name, None)


class RecordedOutputs(dict):
    """Layer name → recorded output.

    Attributes:
        versions: the version counter of each output kept uncopied.
        tuple_shapes: the layers whose output is a tuple (``nn.LSTM``'s ``(output, (h_n, c_n))``, an
            attention block's ``(output, weights)``), recorded by its first tensor, each with the
            tuple's shapes as text (:func:`structure_text`), for captions that say so.
    """

    def __init__(self) -> None:
        super().__init__()
        self.versions: dict[str, int] = {}
        self.tuple_shapes: dict[str, str] = {}


def first_tensor(output: object) -> torch.Tensor | None:
    """``output`` itself when it is a tensor, else the first tensor in a (nested) tuple or list; or ``None``."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output:
        return first_tensor(output[0])
    return None


def structure_text(output: object) -> str:
    """The shapes in a (nested) tuple of tensors as text, e.g. ``(16x12x6, (1x16x6, 1x16x6))``."""
    if isinstance(output, torch.Tensor):
        return "x".join(map(str, output.shape)) or "scalar"
    if isinstance(output, (tuple, list)):
        return "(" + ", ".join(structure_text(item) for item in output) + ")"
    return type(output).__name__


def is_recurrent(module: nn.Module) -> bool:
    """Whether ``module`` is one of torch's recurrent layers (RNN, LSTM, GRU), whose outputs run over time."""
    return isinstance(module, torch.nn.RNNBase)


def units_last(module: nn.Module) -> bool:
    """Whether ``module``'s units (features) are the last dimension of its output, not dimension 1.

    Recurrent, dense, normalizing-over-features and embedding layers act on the last dimension,
    so a 3-D output of theirs is (N, T, units); a convolution's or a BatchNorm's is (N, units, L).
    """
    kinds = (torch.nn.RNNBase, torch.nn.Linear, torch.nn.LayerNorm, torch.nn.Embedding, torch.nn.MultiheadAttention)
    return isinstance(module, kinds)


def batch_first(module: nn.Module, output: torch.Tensor) -> torch.Tensor:
    """A recurrent layer's batched (T, N, H) sequence output as (N, T, H); any other output as it is.

    Layers built with ``batch_first=False`` (the default) put time first; every figure and count
    reads dimension 0 as the batch, so their outputs are recorded batch first.
    """
    if _time_first(module) and output.dim() == 3:
        return output.transpose(0, 1)
    return output


def _time_first(module: nn.Module) -> bool:
    """Whether ``module`` is a recurrent layer whose sequence outputs put time first."""
    return is_recurrent(module) and not module.batch_first


#: Per model, the layers whose outputs were seen modified in place after their hook: copied from then on.
_MODIFIED_LAYERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _must_copy(value: torch.Tensor, output: torch.Tensor, inputs: tuple) -> bool:
    """Whether an output must be copied whatever the model does later.

    An output that is one of the layer's inputs (Identity, Dropout in eval) may be the caller's
    own tensor; an inference tensor has no version counter to check.
    """
    return value.is_inference() or any(output is item for item in inputs)


def modified_since_recorded(outputs: RecordedOutputs) -> set[str]:
    """The outputs kept uncopied that an in-place operation changed after they were recorded."""
    return {name for name, version in outputs.versions.items() if outputs[name]._version != version}


@contextlib.contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode for the block and restore each one's own flag after.

    A model already wholly in eval mode is not put in it again, and only the flags that differ
    afterwards are set back: setting a module attribute goes through ``nn.Module.__setattr__``,
    which on ResNet18 made a blanket eval-and-restore 0.3 ms of a 14 ms attribution call.
    """
    flags = {module: module.training for module in model.modules()}
    if any(flags.values()):
        try:
            model.eval()
        except NotImplementedError:  # torch.export's modules refuse eval(); their flags can still be set
            for module in flags:
                module.training = False
    try:
        yield model
    finally:
        for module, flag in flags.items():
            if module.training != flag:
                module.training = flag


def capture_activations(model: nn.Module, inputs: torch.Tensor, layers: Iterable[str] | None = None) -> RecordedOutputs:
    """Run ``model`` on ``inputs`` in eval mode and return each layer's output (on the CPU).

    A layer whose output is a tuple is recorded by its first tensor, and named with the tuple's
    shapes in ``tuple_shapes`` of the result; a recurrent layer's sequence output is batch first.

    Args:
        model: any module; it is left in the mode it was in, with no hooks added.
        inputs: a batch of inputs on the model's device.
        layers: qualified layer names; default every leaf layer.

    Returns:
        Layer name → detached output tensor, in the order the layers ran (a dict).
    """
    # Copying every output costs a memory pass per layer. A tensor's version counter moves with every
    # in-place operation, so outputs are kept uncopied and checked after the forward; when some were
    # modified (an in-place ReLU, a residual add), the forward runs again with those copied, and the
    # model remembers them so the next capture copies them at once.
    known = _MODIFIED_LAYERS.get(model, frozenset())
    with evaluation_mode(model), torch.no_grad():
        with recording(model, layers, copied=known) as outputs:
            model(inputs)
        modified = modified_since_recorded(outputs)
        if modified:
            known = _MODIFIED_LAYERS[model] = frozenset(known | modified)
            with recording(model, layers, copied=known) as outputs:
                model(inputs)
    outputs.versions.clear()  # only meaningful while the forward ran
    return outputs
