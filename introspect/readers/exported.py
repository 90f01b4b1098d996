"""``torch.export`` archives (``.pt2``) read without running anything from them.

``torch.export.load`` is not safe on a file from elsewhere: weights marked ``use_pickle`` go
through ``torch.load(weights_only=False)``, opaque constants through ``pickle.loads``, sample
inputs fall back to full unpickling, symbolic shapes through ``sympy.sympify`` (``eval``), and
guard code through ``exec``. Here every part is read by introspect itself: raw weights from
their bytes, sample inputs through the safe torch reader, and the graph is only deserialized
when it holds nothing but ops from :data:`ALLOWED_OPS` and no symbolic or guard code.

An exported program is specialized to the shapes of its example inputs, its batch size
included; :func:`accept_any_batch_size` lets the module it yields take any batch.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from introspect._lazy import lazy_import
from introspect.budget import Budget
from introspect.errors import CheckpointError
from introspect.readers.archive import EXPORT, Archive, open_archive
from introspect.readers.tensors import flat_tensor, strided_view
from introspect.readers.torchfile import read_torch_bytes

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")

#: aten ops that compute on tensors and nothing else: no files, no I/O, no Python. Ops tagged
#: ``core`` or ``pointwise`` by torch are allowed as well.
ALLOWED_OPS = frozenset(
    """
    conv1d conv2d conv3d conv_transpose1d conv_transpose2d conv_transpose3d convolution _convolution
    linear addmm mm bmm matmul baddbmm einsum batch_norm _native_batch_norm_legit_no_training
    _native_batch_norm_legit_functional native_batch_norm layer_norm native_layer_norm group_norm
    native_group_norm instance_norm dropout feature_dropout alpha_dropout max_pool1d max_pool2d
    max_pool3d max_pool2d_with_indices avg_pool1d avg_pool2d avg_pool3d adaptive_avg_pool1d
    adaptive_avg_pool2d adaptive_avg_pool3d _adaptive_avg_pool2d adaptive_max_pool1d
    adaptive_max_pool2d flatten unflatten view reshape _unsafe_view permute transpose t contiguous
    clone expand expand_as squeeze unsqueeze cat stack split split_with_sizes chunk slice select
    index_select narrow mean sum amax amin max min argmax argmin softmax log_softmax _softmax
    _log_softmax relu relu_ hardtanh hardtanh_ leaky_relu leaky_relu_ elu elu_ silu silu_ gelu
    sigmoid tanh hardswish hardswish_ hardsigmoid softplus mish add add_ sub mul mul_ div neg pow
    sqrt rsqrt exp log abs clamp clamp_min clamp_max where embedding scaled_dot_product_attention
    pad constant_pad_nd upsample_nearest2d upsample_bilinear2d alias detach _to_copy to type_as
    zeros_like ones_like full full_like zeros ones arange sym_size sym_numel sym_stride
    """.split()
)
_ALLOWED_PYTHON_TARGETS = frozenset({"_operator.getitem"})
_ATEN_PREFIX = "torch.ops.aten."


@dataclasses.dataclass
class ExportedParts:
    """What a ``.pt2`` gave without running anything.

    Attributes:
        state_dict: the weights that could be read from raw bytes.
        example_inputs: ``(args, kwargs)`` stored with the program, if any.
        program: the deserialized ``ExportedProgram`` when its graph is safe to run, else ``None``.
        refused: one sentence per thing left unread or unrun, with the reason.
    """

    state_dict: dict[str, torch.Tensor]
    example_inputs: Any = None
    program: Any = None
    refused: list[str] = dataclasses.field(default_factory=list)


def read_exported(path: Path, budget: Budget) -> ExportedParts:
    """Weights, sample inputs and (when its graph is safe) the program of a ``.pt2`` archive."""
    archive = open_archive(path, budget)
    if archive.kind != EXPORT or archive.read("archive_format").strip() != b"pt2":
        raise CheckpointError(f"{path}: is not a torch.export archive (no 'pt2' archive_format)")
    name = _model_name(archive)
    state_dict, refused = _read_payloads(archive, f"data/weights/{name}_weights_config.json", "data/weights/")
    constants, refused_constants = _read_payloads(
        archive, f"data/constants/{name}_constants_config.json", "data/constants/"
    )
    parts = ExportedParts(state_dict=state_dict, refused=refused + refused_constants)
    inputs_entry = f"data/sample_inputs/{name}.pt"
    if archive.has(inputs_entry):
        parts.example_inputs = read_torch_bytes(archive.read(inputs_entry), budget, f"{path}:{inputs_entry}")
    graph = _read_json(archive, f"models/{name}.json")
    unsafe = unsafe_graph_parts(graph)
    parts.refused.extend(unsafe)
    if not parts.refused:
        parts.program = _deserialize(archive, graph, state_dict, constants, parts.example_inputs)
    return parts


def _model_name(archive: Archive) -> str:
    names = sorted(
        entry[len("models/") : -len(".json")]
        for entry in archive.sizes
        if entry.startswith("models/") and entry.endswith(".json")
    )
    if not names:
        raise CheckpointError(f"{archive.path}: a torch.export archive without a program (models/*.json)")
    return names[0]


def _read_json(archive: Archive, entry: str) -> Any:
    try:
        return json.loads(archive.read(entry))
    except (ValueError, RecursionError):
        raise CheckpointError(f"{archive.path}: {entry} is not valid JSON") from None


def _read_payloads(archive: Archive, config_entry: str, folder: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Tensors described by a weights or constants config, read from raw bytes; pickled ones refused."""
    if not archive.has(config_entry):
        return {}, []
    config = _read_json(archive, config_entry)
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise CheckpointError(f"{archive.path}: {config_entry} has no 'config' table")
    tensors: dict[str, torch.Tensor] = {}
    refused: list[str] = []
    flats: dict[str, torch.Tensor] = {}
    for fqn, meta in entries.items():
        if not isinstance(meta, dict) or not isinstance(meta.get("path_name"), str):
            raise CheckpointError(f"{archive.path}: {config_entry} describes {str(fqn)[:80]!r} without a path")
        if meta.get("use_pickle") or not meta.get("tensor_meta"):
            refused.append(f"{str(fqn)[:80]!r} is stored as a pickle (or an opaque object), which could run code")
            continue
        tensor = _raw_tensor(archive, folder + meta["path_name"], meta["tensor_meta"], flats)
        if meta.get("is_param"):  # the program's signature expects parameters where they were
            tensor = torch.nn.Parameter(
                tensor, requires_grad=bool(meta["tensor_meta"].get("requires_grad")) and tensor.is_floating_point()
            )
        tensors[str(fqn)] = tensor
    return tensors, refused


def _raw_tensor(archive: Archive, entry: str, meta: Any, flats: dict[str, torch.Tensor]) -> torch.Tensor:
    what = f"{archive.path}:{entry}"
    try:
        dtype = _dtype(meta["dtype"])
        size = tuple(_int(item) for item in meta["sizes"])
        stride = tuple(_int(item) for item in meta["strides"])
        offset = _int(meta.get("storage_offset", {"as_int": 0}))
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{what}: malformed tensor description ({error})") from None
    if entry not in flats:
        flats[entry] = flat_tensor(archive.read(entry), dtype, what)
    if flats[entry].dtype != dtype:
        raise CheckpointError(f"{what}: is read as two different dtypes")
    return strided_view(flats[entry], size, stride, offset, what)


def _int(value: Any) -> int:
    """A size, stride or offset: only concrete integers (``as_int``) are read, never expressions."""
    if not (isinstance(value, dict) and set(value) == {"as_int"} and isinstance(value["as_int"], int)):
        raise ValueError("only concrete integer sizes are read")
    return value["as_int"]


def _dtype(code: Any) -> torch.dtype:
    from torch._export.serde.schema import ScalarType
    from torch._export.serde.serialize import _SERIALIZE_TO_TORCH_DTYPE

    return _SERIALIZE_TO_TORCH_DTYPE[ScalarType(int(code))]


def unsafe_graph_parts(graph: Any) -> list[str]:
    """Why the serialized program may not run without --trust-code (empty when it may)."""
    reasons = []
    module = graph.get("graph_module") if isinstance(graph, dict) else None
    if not isinstance(module, dict):
        return ["the program has no graph"]
    outside = sorted({target for target in _targets(module) if not is_allowed_target(target)})
    if outside:
        reasons.append(
            f"its graph calls {', '.join(t[:60] for t in outside[:3])}, outside the allow-list of pure tensor ops"
        )
    if graph.get("guards_code"):
        reasons.append("it carries guard code, which torch would run as Python")
    if graph.get("range_constraints") or _contains_key(graph, "as_expr"):
        reasons.append("it has symbolic shapes, whose expressions torch would evaluate as Python")
    if _has_custom_objects(module):
        reasons.append("it uses custom objects")
    return reasons


def is_allowed_target(target: str) -> bool:
    """Whether a node target is a pure tensor op (``torch.ops.aten.relu.default``) or ``getitem``."""
    if target in _ALLOWED_PYTHON_TARGETS:
        return True
    if not target.startswith(_ATEN_PREFIX):
        return False
    parts = target[len(_ATEN_PREFIX) :].split(".")
    if len(parts) != 2 or not all(part.isidentifier() for part in parts):
        return False
    if parts[0] in ALLOWED_OPS:
        return True
    packet = getattr(torch.ops.aten, parts[0], None)
    overload = getattr(packet, parts[1], None) if packet is not None else None
    tags = set(getattr(overload, "tags", ()))
    return bool(tags & {torch.Tag.core, torch.Tag.pointwise})


def _targets(value: Any) -> Iterator[str]:
    """Every node target in a serialized graph, nested graphs included."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("target"), str) and "inputs" in item:
                yield item["target"]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _contains_key(value: Any, key: str) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if key in item:
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _has_custom_objects(module: dict[str, Any]) -> bool:
    graph = module.get("graph") or {}
    return bool(graph.get("custom_obj_values")) or _contains_key(module, "as_custom_obj")


def _deserialize(archive: Archive, graph: Any, state_dict: dict, constants: dict, example_inputs: Any) -> Any:
    """The ExportedProgram from its JSON, with the weights introspect read itself."""
    from torch._export.serde.schema import ExportedProgram as SerializedProgram
    from torch._export.serde.serialize import ExportedProgramDeserializer, _dict_to_dataclass

    try:
        serialized = _dict_to_dataclass(SerializedProgram, graph)
        return ExportedProgramDeserializer().deserialize(serialized, state_dict, constants, example_inputs or ((), {}))
    except Exception as error:  # torch's deserializer raises many types for graphs it cannot rebuild
        raise CheckpointError(
            f"{archive.path}: the exported program cannot be rebuilt ({type(error).__name__}: {str(error)[:160]})"
        ) from None


def accept_any_batch_size(module: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Let an exported module take batches of any size and be put in eval mode; changes ``module`` in place.

    A program exported with a static batch size refuses any other (``Guard failed: x.size()[0] == 4``),
    yet analyzers cut the probe and re-batch it. Each call is split into chunks of the exported
    size, the last one padded with copies of its last row, and the padding rows are dropped from
    the output: in an inference graph rows do not interact, so the kept rows are what the model
    gives for them alone. Deep copies (taken by analyzers that randomize weights) keep this.
    """
    # torch.export's modules refuse train() and eval(): the graph was fixed at export time and
    # ignores the flags. Analyzers set eval mode and restore the flags after; here they are only
    # bookkeeping, so nn.Module's own methods are put back.
    for name in ("train", "eval"):
        module.__dict__.pop(name, None)
    batch_size = exported_batch_size(module)
    if batch_size is None or "forward" in module.__dict__:  # batch size not fixed, or already done
        return module
    module.forward = functools.partial(_forward_in_batches, module.forward, batch_size)
    if not hasattr(module, "_guards_fn"):
        # Without the guard submodule torch checks shapes in a pre-hook on the whole call, before it is split;
        # every chunk then goes in at the exported shape.
        module.validate_inputs = False
    register = getattr(module, "_register_deepcopy_hook", None)
    if register is not None and accept_any_batch_size not in getattr(module, "_deepcopy_hooks", ()):
        register(accept_any_batch_size)  # GraphModule.__deepcopy__ rebuilds the module from its graph alone
    return module


def exported_batch_size(module: torch.fx.GraphModule) -> int | None:
    """The batch size a module is fixed to: the first size of its one input, when that is a number, not a symbol."""
    placeholders = [node for node in module.graph.nodes if node.op == "placeholder"]
    if len(placeholders) != 1:
        return None
    shape = getattr(placeholders[0].meta.get("val"), "shape", None)
    if not shape or not isinstance(shape[0], int):
        return None
    return int(shape[0])


def _forward_in_batches(forward: Callable[..., Any], batch_size: int, inputs: Any, *rest: Any, **kwargs: Any) -> Any:
    """``forward`` on ``inputs`` in chunks of exactly ``batch_size`` rows, the outputs joined without the padding."""
    if rest or kwargs or not isinstance(inputs, torch.Tensor) or inputs.dim() == 0 or len(inputs) in (0, batch_size):
        return forward(inputs, *rest, **kwargs)
    chunks = inputs.split(batch_size)
    outputs = [forward(_padded(chunk, batch_size)) for chunk in chunks]
    return _joined(outputs, [len(chunk) for chunk in chunks], batch_size)


def _padded(chunk: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``chunk`` with copies of its last row appended up to ``batch_size`` rows (real values, not zeros)."""
    missing = batch_size - len(chunk)
    if missing == 0:
        return chunk
    return torch.cat([chunk, chunk[-1:].expand(missing, *chunk.shape[1:])])


def _joined(outputs: list[Any], counts: list[int], batch_size: int) -> Any:
    """One output from per-chunk outputs: batch-sized tensors cut to their real rows and concatenated.

    Outputs are taken apart with torch's pytree, which knows the containers an exported program
    returns (tuples, dicts, and the ModelOutput classes transformers registers); anything that is
    not a tensor with a batch dimension is taken from the first chunk.
    """
    from torch.utils import _pytree as pytree

    flattened = [pytree.tree_flatten(output)[0] for output in outputs]
    structure = pytree.tree_flatten(outputs[0])[1]
    leaves = []
    for position, first in enumerate(flattened[0]):
        if isinstance(first, torch.Tensor) and first.dim() > 0 and len(first) == batch_size:
            leaves.append(
                torch.cat([leaves_of_chunk[position][:count] for leaves_of_chunk, count in zip(flattened, counts)])
            )
        else:
            leaves.append(first)
    return pytree.tree_unflatten(leaves, structure)
