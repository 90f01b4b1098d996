"""Attention weights of transformer layers, recorded for one batch: one function per model family.

Three families are read, each the way it computes its weights:

- **timm** (``Attention`` in ViT, DeiT, and the variants built like it): the fused
  ``scaled_dot_product_attention`` never materializes the weights, so for the length of the
  capture each attention module runs its own unfused path (``fused_attn = False``) and the
  softmax is recorded where it enters ``attn_drop``. These are the weights the model multiplies
  its values by, not a re-computation.
- **transformers** (``ViTForImageClassification``, ``BertForSequenceClassification``, ...): the
  model returns ``attentions`` when asked (``output_attentions=True``), but only with its
  "eager" attention; SDPA returns none. The implementation is switched for the one forward pass
  and put back after.
- **torch** (``nn.MultiheadAttention``): each call is asked for its per-head weights
  (``need_weights=True, average_attn_weights=False``) by a pre-hook, and a hook records them.

Every hook and switch lives inside a ``with`` block and is undone when it ends, also on errors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from introspect._lazy import lazy_import
from introspect.capture import check_hookable
from introspect.errors import SkipAnalyzer

if TYPE_CHECKING:
    import torch
    from torch import nn
else:
    torch = lazy_import("torch")

#: Most class, distillation or register tokens looked for before the patches when the model does not say.
MAX_PREFIX_TOKENS = 16
#: How far a row of recorded weights may sum from 1 and still be taken for a softmax.
ROW_SUM_TOLERANCE = 1e-3
NO_ATTENTION = (
    "the model has no attention layer whose weights can be recorded (nn.MultiheadAttention, timm's Attention "
    "or a transformers model)"
)

#: nn.MultiheadAttention.forward's parameters in order, so positional arguments can be passed by name.
_MHA_PARAMETERS = (
    "query", "key", "value", "key_padding_mask", "need_weights", "attn_mask", "average_attn_weights", "is_causal",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class AttentionCapture:
    """The attention weights of a model's self-attention layers for one batch.

    Attributes:
        layers: the attention modules' qualified names, in the order they ran.
        weights: per layer, (N, heads, T, T) float32 tensors on the CPU; row ``i`` of a head is
            how query token ``i`` spreads its attention over the key tokens (each row sums to 1).
        family: ``"timm"``, ``"transformers"`` or ``"torch"``, which says how they were read.
    """

    layers: tuple[str, ...]
    weights: tuple[torch.Tensor, ...]
    family: str

    @property
    def num_tokens(self) -> int:
        """Tokens per input (T)."""
        return int(self.weights[0].shape[-1])


@dataclasses.dataclass(frozen=True)
class TokenLayout:
    """Where the image patches sit among a vision transformer's tokens.

    Attributes:
        num_prefix: class, distillation and register tokens before the patches.
        grid: patch rows and columns; the patches follow the prefix row by row.
        has_class_token: token 0 is a class token (the model has a ``cls_token`` or ``class_token``).
    """

    num_prefix: int
    grid: tuple[int, int]
    has_class_token: bool

    @property
    def num_patches(self) -> int:
        """Patch tokens (rows x columns)."""
        return self.grid[0] * self.grid[1]


def capture_attention(model: nn.Module, inputs: torch.Tensor, keep: Sequence[str] | None = None) -> AttentionCapture:
    """Run ``model`` once on ``inputs`` (without gradients) and return its attention weights.

    Args:
        model: a timm or transformers model, or any model with ``nn.MultiheadAttention``; the
            caller sets its mode (eval for weights without dropout).
        inputs: a batch as the model takes it (images, or token ids for a text model).
        keep: the layers to keep, by name (see :func:`attention_layer_names`); ``None`` keeps
            all. Weights are large (heads x T x T per input), so callers keep what they draw.

    Raises:
        SkipAnalyzer: the model has no attention layer, or none gave weights to record.
    """
    check_hookable(model)
    transformers = sys.modules.get("transformers")
    if transformers is not None and isinstance(model, transformers.PreTrainedModel):
        capture = _capture_transformers(model, inputs)
    else:
        capture = _capture_hooked(model, inputs)
    if keep is not None:
        wanted = set(keep)
        pairs = [(name, weights) for name, weights in zip(capture.layers, capture.weights) if name in wanted]
        capture = AttentionCapture(tuple(n for n, _ in pairs), tuple(w for _, w in pairs), capture.family)
    if not capture.layers:
        raise SkipAnalyzer("none of the chosen attention layers gave weights (self-attention over one sequence)")
    return capture


def attention_layer_names(model: nn.Module) -> list[str]:
    """The names of the model's attention modules in definition order, found without running it."""
    classes = _transformers_attention_classes(model)
    if classes:
        return [name for name, module in model.named_modules() if isinstance(module, classes)]
    return [name for name, module in model.named_modules() if _attention_kind(module) is not None]


def token_layout(model: nn.Module, num_tokens: int, image_shape: tuple[int, int, int] | None) -> TokenLayout | None:
    """Where the patches sit among ``num_tokens`` tokens of a vision transformer; ``None`` when they do not.

    The patch grid is the one the model states (timm's ``patch_embed.grid_size``, a transformers
    config's ``patch_size``), else the one its patchifying convolution (kernel = stride) cuts, and
    the tokens before the patches are the rest; timm's ``num_prefix_tokens`` must agree. A model
    without either gets the fewest leading tokens that leave a whole grid of square patches.
    """
    if image_shape is None:
        return None
    height, width = image_shape[1:]
    leaf_names = {name.rsplit(".", 1)[-1] for name, _ in model.named_parameters()}
    has_class_token = bool(leaf_names & {"cls_token", "class_token"})
    grid = _stated_grid(model, height, width)
    if grid is None:
        return _searched_layout(num_tokens, height, width, has_class_token)
    prefix = num_tokens - grid[0] * grid[1]
    stated = getattr(model, "num_prefix_tokens", None)
    if not 0 <= prefix <= MAX_PREFIX_TOKENS or (isinstance(stated, int) and stated != prefix):
        return None
    return TokenLayout(num_prefix=prefix, grid=grid, has_class_token=has_class_token and prefix > 0)


def _stated_grid(model: nn.Module, height: int, width: int) -> tuple[int, int] | None:
    """The patch grid the model says it cuts an image into, or ``None`` when it does not say."""
    grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
    if isinstance(grid, (tuple, list)) and len(grid) == 2:
        return int(grid[0]), int(grid[1])
    side = getattr(getattr(model, "config", None), "patch_size", None)
    if isinstance(side, int) and side > 0:
        return height // side, width // side
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d) and module.kernel_size == module.stride and module.stride[0] > 1:
            return height // module.stride[0], width // module.stride[1]
    return None


def _searched_layout(num_tokens: int, height: int, width: int, has_class_token: bool) -> TokenLayout | None:
    """The fewest leading tokens that leave ``(H/s) x (W/s)`` patches for a patch side ``s`` dividing the image."""
    for prefix in range(min(MAX_PREFIX_TOKENS, num_tokens - 1) + 1):
        patches = num_tokens - prefix
        for side in range(1, min(height, width) + 1):
            if height % side == 0 and width % side == 0 and (height // side) * (width // side) == patches:
                return TokenLayout(prefix, (height // side, width // side), has_class_token and prefix > 0)
    return None


def rollout(weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """Attention rollout (Abnar and Zuidema 2020): how much each token's output draws on each input token.

    Per layer the heads are averaged, the identity added for the residual connection and the
    rows renormalized; the layers are then multiplied through, the last on the left:
    ``R = Â_L ... Â_2 Â_1``.

    Args:
        weights: per layer, (N, heads, T, T) attention weights in the order the layers run.

    Returns:
        (N, T, T) float64: row ``i`` is how token ``i`` at the last layer is made of the input tokens.
    """
    result = None
    for layer in weights:
        mixed = layer.double().mean(dim=1) + torch.eye(layer.shape[-1], dtype=torch.float64)
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        result = mixed if result is None else mixed @ result
    if result is None:
        raise ValueError("rollout needs at least one layer of attention weights")
    return result


def _capture_transformers(model: nn.Module, inputs: torch.Tensor) -> AttentionCapture:
    """A transformers model's own ``attentions`` output, with eager attention for the one pass."""
    with eager_attention(model), torch.no_grad():
        # forward(), not __call__: the hook introspect adds to rebuilt models would keep only the logits.
        output = model.forward(inputs, output_attentions=True)
    attentions = [item for item in (getattr(output, "attentions", None) or ()) if item is not None]
    if not attentions:
        implementation = getattr(getattr(model, "config", None), "_attn_implementation", "unknown")
        raise SkipAnalyzer(
            "the transformers model returned no attention weights (its attention implementation is "
            f"{implementation!r}, and switching it to 'eager' did not give them)"
        )
    names = attention_layer_names(model)
    if len(names) != len(attentions):
        names = [f"layer {index}" for index in range(len(attentions))]
    weights = [item.detach().float().cpu() for item in attentions]
    return _self_attention_only(names, weights, "transformers")


@contextlib.contextmanager
def eager_attention(model: nn.Module) -> Iterator[None]:
    """A transformers model with its "eager" attention (the one that returns weights) for the block."""
    config = getattr(model, "config", None)
    original = getattr(config, "_attn_implementation", None)
    switch = original not in (None, "eager") and hasattr(model, "set_attn_implementation")
    if switch:
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(original)


def _transformers_attention_classes(model: nn.Module) -> tuple[type, ...]:
    """The module classes a transformers model records its ``attentions`` from, or ``()``."""
    recorded = getattr(model, "_can_record_outputs", None)
    if not isinstance(recorded, dict) or "attentions" not in recorded:
        return ()
    targets = recorded["attentions"]
    targets = targets if isinstance(targets, (list, tuple)) else [targets]
    classes = [getattr(target, "target_class", target) for target in targets]
    return tuple(item for item in classes if isinstance(item, type))


def _attention_kind(module: nn.Module) -> str | None:
    """``"torch"`` for nn.MultiheadAttention, ``"timm"`` for a timm-style attention module, else ``None``.

    timm's attention modules are known by what their unfused path uses: a ``fused_attn`` switch
    and an ``attn_drop`` dropout that the softmax passes through.
    """
    if isinstance(module, torch.nn.MultiheadAttention):
        return "torch"
    if isinstance(getattr(module, "fused_attn", None), bool) and isinstance(
        getattr(module, "attn_drop", None), torch.nn.Module
    ):
        return "timm"
    return None


def _capture_hooked(model: nn.Module, inputs: torch.Tensor) -> AttentionCapture:
    """timm and nn.MultiheadAttention weights, recorded by hooks during one forward pass."""
    kinds = {name: kind for name, module in model.named_modules() if (kind := _attention_kind(module)) is not None}
    if not kinds:
        raise SkipAnalyzer(NO_ATTENTION)
    with recording_attention(model, kinds) as recorded, torch.no_grad():
        model(inputs)
    if not recorded:
        raise SkipAnalyzer(
            "the model's attention layers did not run during the forward pass, so no weights were recorded"
        )
    family = "timm" if "timm" in kinds.values() else "torch"
    return _self_attention_only(list(recorded), list(recorded.values()), family)


@contextlib.contextmanager
def recording_attention(model: nn.Module, kinds: dict[str, str]) -> Iterator[dict[str, torch.Tensor]]:
    """Record each named attention module's weights during the block; every change is undone after.

    Args:
        model: the network.
        kinds: attention module name → ``"timm"`` or ``"torch"`` (see :func:`_attention_kind`).

    Yields:
        Name → (N, heads, T, S) float32 weights on the CPU, filled in as the modules run (a
        module run twice keeps its last call).
    """
    modules = dict(model.named_modules())
    recorded: dict[str, torch.Tensor] = {}
    handles = []
    unfused = []
    try:
        for name, kind in kinds.items():
            module = modules[name]
            if kind == "timm":
                unfused.append((module, module.fused_attn))
                module.fused_attn = False
                handles.append(module.attn_drop.register_forward_hook(_softmax_recorder(recorded, name)))
            else:
                handles.append(module.register_forward_pre_hook(_asking_for_weights, with_kwargs=True))
                handles.append(module.register_forward_hook(_weights_recorder(recorded, name)))
        yield recorded
    finally:
        for handle in handles:
            handle.remove()
        for module, fused in unfused:
            module.fused_attn = fused


def _softmax_recorder(recorded: dict[str, torch.Tensor], name: str):  # noqa: ANN202 - a closure per layer
    def hook(module: nn.Module, inputs: tuple, output: object) -> None:
        # The input, not the output: in training mode the dropout would have zeroed some weights.
        recorded[name] = inputs[0].detach().float().cpu()

    return hook


def _asking_for_weights(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Call nn.MultiheadAttention for its per-head weights, whatever the caller asked for."""
    named = {**dict(zip(_MHA_PARAMETERS, args)), **kwargs}
    named.update(need_weights=True, average_attn_weights=False)
    return (), named


def _weights_recorder(recorded: dict[str, torch.Tensor], name: str):  # noqa: ANN202 - a closure per layer
    def hook(module: nn.Module, inputs: tuple, output: object) -> None:
        if isinstance(output, tuple) and len(output) > 1 and isinstance(output[1], torch.Tensor):
            weights = output[1].detach().float().cpu()
            recorded[name] = weights if weights.dim() == 4 else weights.unsqueeze(0)  # an unbatched call

    return hook


def _self_attention_only(names: Sequence[str], weights: Sequence[torch.Tensor], family: str) -> AttentionCapture:
    """Keep the layers whose weights are self-attention over one sequence: (N, heads, T, T), rows summing to 1.

    Cross-attention (T queries over S keys) has no token-to-token map or rollout, and a module
    that only looks like timm's might pass something else through ``attn_drop``.
    """
    kept = [
        (name, value)
        for name, value in zip(names, weights)
        if value.dim() == 4 and value.shape[-1] == value.shape[-2] and _rows_sum_to_one(value)
    ]
    if kept and len({tuple(value.shape) for _, value in kept}) > 1:
        # Token counts that change between layers (pooling transformers) have no common rollout: keep the first run.
        first = kept[0][1].shape
        kept = [(name, value) for name, value in kept if value.shape == first]
    if not kept:
        raise SkipAnalyzer("no attention layer gave self-attention weights over one sequence of tokens")
    return AttentionCapture(tuple(name for name, _ in kept), tuple(value for _, value in kept), family)


def _rows_sum_to_one(weights: torch.Tensor) -> bool:
    sums = weights.double().sum(dim=-1)
    return bool(torch.isfinite(sums).all()) and bool(((sums - 1).abs() <= ROW_SUM_TOLERANCE).all())
