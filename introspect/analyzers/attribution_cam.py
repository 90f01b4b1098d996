"""Grad-CAM: class-discriminative maps from the output of one layer, weighted by its gradients.

The layer is chosen the way pytorch-grad-cam and TorchCAM do it, by what runs rather than by
what is defined: one forward pass is recorded with a hook on every module, and the layer is the
last one whose output is a 4-D (N, C, H, W) tensor larger than 1x1. Forward hooks fire when a
module finishes, so of the modules that hand on the same tensor (a ReLU, its residual block,
the ``layer4`` stage holding the block) the outermost one, finishing last, is the one chosen.

A vision transformer has no such map: its layers give tokens, (N, prefix + H*W, C). For a model
with attention layers (see :mod:`introspect.attention`) the layer is the last token output that
the last attention layer reads, the norm in front of it (``blocks[-1].norm1`` in timm, as in
pytorch-grad-cam's ViT example). The last block's own output would not do: a head that reads the
class token gives its patch tokens no gradient at all. The class, distillation and register
tokens are dropped and the patch tokens laid out on the patch grid, which makes them a map.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from introspect._lazy import lazy_import
from introspect.analyzers._attribution import ProbeSelection, choose_probe, in_eval_mode
from introspect.analyzers._attribution_maps import flat_map_counts, flat_map_note, strip_figure, tiles_for
from introspect.analyzers._shared import display_images
from introspect.artifacts import Artifact
from introspect.attention import TokenLayout, attention_layer_names, token_layout
from introspect.capture import check_hookable, each_output
from introspect.errors import SkipAnalyzer
from introspect.model_output import logits_of
from introspect.needs import Needs
from introspect.plotting import short_label
from introspect.spec import analyzer

#: Right after ``input_saliency`` and before ``occlusion``: the same place as ``attribution`` in the gallery.
POSITION = 9

if TYPE_CHECKING:
    import torch
    from torch import nn

    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

#: Layer names listed when a name given by hand is not in the model.
NUM_NAMES_LISTED = 6


@analyzer(needs=Needs.FORWARD | Needs.GRADIENTS | Needs.IMAGE_INPUT)
@in_eval_mode
def grad_cam(
    subject: Subject, /, *, layer: str | None = None, max_per_class: int = 2, max_images: int = 8
) -> list[Artifact]:
    """Grad-CAM: which regions of the image the class score relies on, seen from one layer's output.

    The layer's channels are weighted by the mean gradient of the target score (the probe label,
    else the predicted class) and summed; negative values are cut at zero (Selvaraju et al.
    2017). The layer is the last module, in execution order, whose output is 4-D and larger than
    1x1 (a ResNet's last stage with more than one pixel left), unless ``layer`` names one. For a
    vision transformer it is the token output the last attention layer reads (timm's
    ``blocks[-1].norm1``), with the class, distillation and register tokens dropped and the patch
    tokens laid on the patch grid. The coarse map is upsampled bilinearly to the input size and
    laid over the image. Grad-CAM is coarse by design: it shows where, not which pixels.
    """
    from captum.attr import LayerAttribution

    check_hookable(subject.model)
    probe = choose_probe(subject, max_per_class, max_images, forward_passes=3)
    height, width = subject.task.image_shape[1:]
    cam, layer_name, what, layout = _cam_maps(subject, probe, layer)
    upsampled = LayerAttribution.interpolate(cam, (height, width), interpolate_mode="bilinear")
    maps = upsampled[:, 0].cpu().double().numpy()
    size = f"{cam.shape[2]}x{cam.shape[3]}"
    heading = f"Grad-CAM on {short_label(layer_name)} ({size}, upsampled to {height}x{width})"
    figure = strip_figure(tiles_for(display_images(subject, probe.inputs), maps, signed=False), probe.titles, heading)
    raw = cam[:, 0].cpu().double().numpy()
    num_zero, num_constant = flat_map_counts(raw)
    caption = (
        f"Grad-CAM on {what}; map {size}, upsampled to {height}x{width}) "
        f"for {len(probe.indices)} probe images{probe.note}; each map is scaled to its own maximum."
        + flat_map_note(raw)
    )
    if num_zero or num_constant:
        caption += (
            " Another layer can be chosen with --option grad_cam.layer=NAME"
            " (in Python, options={'grad_cam': {'layer': NAME}}); 'introspect info' lists the layers."
        )
    data = {"cam": cam.cpu().double().numpy(), "upsampled": maps, "indices": probe.indices}
    data["targets"] = probe.target_array()
    summary = {
        "layer": layer_name,
        "cam_shape": list(cam.shape[2:]),
        "num_images": len(probe.indices),
        "fraction_zero": float((cam <= 0).double().mean()),
        "num_zero_maps": num_zero,
        "num_constant_maps": num_constant,
    }
    if layout is not None:
        summary["num_prefix_tokens_dropped"] = layout.num_prefix
    return [Artifact(name="grad-cam", caption=caption, layer=layer_name, figure=figure, data=data, summary=summary)]


def _cam_maps(
    subject: Subject, probe: ProbeSelection, layer: str | None
) -> tuple[torch.Tensor, str, str, TokenLayout | None]:
    """Grad-CAM maps (N, 1, h, w), the layer, a caption phrase (its parenthesis left open) and the token layout.

    The layout is ``None`` for a convolutional map, which captum's LayerGradCam computes as before.
    """
    from captum.attr import LayerGradCam

    model = subject.model
    tokens = token_cam_layer(model, probe.inputs[:1], subject.task.image_shape, layer)
    if tokens is not None:
        layer_name, chosen_by, layout = tokens
        cam = token_grad_cam(model, dict(model.named_modules())[layer_name], probe, layout)
        return cam, layer_name, f"the patch tokens of {layer_name} ({chosen_by}; {_dropped_tokens(layout)}", layout
    layer_name, chosen_by = cam_layer(model, probe.inputs[:1], layer)
    inputs = probe.inputs.detach().clone().requires_grad_(True)
    module = dict(model.named_modules())[layer_name]
    cam = LayerGradCam(model, module).attribute(inputs, target=probe.targets, relu_attributions=True)
    return cam.detach(), layer_name, f"the output of {layer_name} ({chosen_by}", None


def token_cam_layer(
    model: nn.Module, example: torch.Tensor, image_shape: tuple[int, int, int], layer: str | None = None
) -> tuple[str, str, TokenLayout] | None:
    """The token layer Grad-CAM hooks in a vision transformer, how it was chosen, and where its patches sit.

    ``None`` when the model is not one (no attention layers, or no token output that is a class
    token and a patch grid), and when ``layer`` names a layer whose output is not tokens: those
    go to :func:`cam_layer` as before.
    """
    attention = attention_layer_names(model)
    if not attention or (layer is not None and layer not in dict(model.named_modules())):
        return None
    finished, last_start = _token_run(model, example, attention)
    if layer is not None:
        shape = dict(finished).get(layer)
        layout = _tokens_of(model, shape, image_shape)
        return (layer, "chosen by hand", layout) if layout is not None else None
    before_last = [(name, shape) for index, (name, shape) in enumerate(finished) if index < last_start]
    for name, shape in reversed(before_last):
        layout = _tokens_of(model, shape, image_shape)
        if layout is not None:
            return name, "the token output the last attention layer reads", layout
    return None


def _tokens_of(
    model: nn.Module, shape: tuple[int, ...] | None, image_shape: tuple[int, int, int]
) -> TokenLayout | None:
    """The token layout of a (N, T, C) output, or ``None`` for any other shape."""
    if shape is None or len(shape) != 3:
        return None
    return token_layout(model, shape[1], image_shape)


def _token_run(model: nn.Module, example: torch.Tensor, attention: list[str]) -> tuple[list[tuple[str, tuple]], int]:
    """Every module's output shape in the order the modules finish, and where in it the last attention layer starts.

    Unlike :func:`output_shapes` a module run twice is listed twice: "before the last attention
    layer starts" is a place in the run, not in the model.
    """
    finished: list[tuple[str, tuple[int, ...]]] = []
    starts: list[int] = []

    def ended(name: str, module: nn.Module, output: object) -> None:
        if isinstance(output, torch.Tensor):
            finished.append((name, tuple(output.shape)))

    modules = dict(model.named_modules())
    handles = [modules[name].register_forward_pre_hook(lambda *_: starts.append(len(finished))) for name in attention]
    try:
        with each_output(model, [name for name in modules if name], ended), torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return finished, starts[-1] if starts else len(finished)


def token_grad_cam(model: nn.Module, module: nn.Module, probe: ProbeSelection, layout: TokenLayout) -> torch.Tensor:
    """Grad-CAM on a token output: (N, 1, rows, columns), ReLU(sum_c mean(grad_c) * A_c) over the patch grid.

    The gradient is taken with respect to the layer's output only (``torch.autograd.grad``), so
    no parameter gets a ``.grad``.
    """
    recorded: dict[str, torch.Tensor] = {}

    def keep(hooked: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        recorded["tokens"] = output

    handle = module.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            outputs = logits_of(model(probe.inputs.detach().clone().requires_grad_(True)))
            (gradients,) = torch.autograd.grad(probe.select(outputs).sum(), recorded["tokens"])
    finally:
        handle.remove()
    activations = patch_grid(recorded["tokens"].detach(), layout)
    weights = patch_grid(gradients, layout).mean(dim=(2, 3), keepdim=True)
    return torch.relu((weights * activations).sum(dim=1, keepdim=True))


def patch_grid(tokens: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """(N, prefix + rows*columns, C) tokens → (N, C, rows, columns): the prefix dropped, the patches laid out."""
    patches = tokens[:, layout.num_prefix :]
    return patches.reshape(len(tokens), *layout.grid, tokens.shape[-1]).permute(0, 3, 1, 2)


def _dropped_tokens(layout: TokenLayout) -> str:
    """What was left out of the tokens, as a phrase: ``class token dropped``, ``3 tokens dropped``..."""
    if layout.num_prefix == 0:
        return "no class token to drop"
    if layout.num_prefix == 1 and layout.has_class_token:
        return "class token dropped"
    return f"{layout.num_prefix} class/distillation/register tokens dropped"


def cam_layer(model: nn.Module, example: torch.Tensor, layer: str | None = None) -> tuple[str, str]:
    """The layer Grad-CAM hooks, and how it was chosen, as a phrase for the caption.

    Args:
        model: the network, hookable.
        example: one input, run once to see which modules produce which outputs.
        layer: a name from ``model.named_modules()`` chosen by hand; ``None`` picks the last
            module whose output is 4-D and larger than 1x1, in execution order.

    Raises:
        SkipAnalyzer: no module gives a 4-D output, or ``layer`` is not one that does.
    """
    shapes = output_shapes(model, example)
    spatial = [name for name, shape in shapes if len(shape) == 4]
    if layer is not None:
        if layer not in dict(model.named_modules()) or not layer:
            raise SkipAnalyzer(f"the model has no layer named {layer!r}; {_names_hint(model, spatial)}")
        shape = dict(shapes).get(layer)
        if shape is None or len(shape) != 4:
            raise SkipAnalyzer(
                f"layer {layer!r} gives {'no tensor' if shape is None else f'an output of shape {list(shape)}'}, "
                f"not a 4-D (N, C, H, W) map; {_names_hint(model, spatial)}"
            )
        return layer, "chosen by hand"
    if not spatial:
        raise SkipAnalyzer("the model has no layer with a 4-D (N, C, H, W) output, such as a Conv2d")
    larger = [name for name, shape in shapes if len(shape) == 4 and shape[2] * shape[3] > 1]
    if not larger:
        return spatial[-1], "the last layer with a 4-D output; every such output is 1x1"
    return larger[-1], "the last layer, in execution order, with a 4-D output larger than 1x1"


def output_shapes(model: nn.Module, example: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    """(name, output shape) of every module but the model itself, in the order the modules finish.

    A module run more than once is listed at its last finish. Outputs that are not tensors
    (tuples of an LSTM) are left out.
    """
    finished: dict[str, tuple[int, ...]] = {}

    def ended(name: str, module: nn.Module, output: object) -> None:
        if isinstance(output, torch.Tensor):
            finished.pop(name, None)
            finished[name] = tuple(output.shape)

    with each_output(model, [name for name, _ in model.named_modules() if name], ended), torch.no_grad():
        model(example)
    return list(finished.items())


def _names_hint(model: nn.Module, spatial: list[str] | None = None) -> str:
    """A few valid layer names, the last ones with a 4-D output when they are known."""
    names = spatial if spatial else [name for name, _ in model.named_modules() if name]
    listed = names[-NUM_NAMES_LISTED:]
    more = f" (and {len(names) - len(listed)} more)" if len(names) > len(listed) else ""
    return f"layers with a 4-D output include {', '.join(listed)}{more}" if spatial else f"layers: {', '.join(listed)}"
