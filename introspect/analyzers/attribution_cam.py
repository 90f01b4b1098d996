"""Grad-CAM: class-discriminative maps from the output of one layer, weighted by its gradients.

The layer is chosen the way pytorch-grad-cam and TorchCAM do it, by what runs rather than by
what is defined: one forward pass is recorded with a hook on every module, and the layer is the
last one whose output is a 4-D (N, C, H, W) tensor larger than 1x1. Forward hooks fire when a
module finishes, so of the modules that hand on the same tensor (a ReLU, its residual block,
the ``layer4`` stage holding the block) the outermost one, finishing last, is the one chosen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from introspect._lazy import lazy_import
from introspect.analyzers._attribution import (
    choose_probe,
    flat_map_counts,
    flat_map_note,
    in_eval_mode,
    strip_figure,
    tiles_for,
)
from introspect.analyzers._shared import display_images
from introspect.artifacts import Artifact
from introspect.capture import check_hookable
from introspect.errors import SkipAnalyzer
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
    1x1 (a ResNet's last stage with more than one pixel left), unless ``layer`` names one. The
    coarse map is upsampled bilinearly to the input size and laid over the image. Grad-CAM is
    coarse by design: it shows where, not which pixels.
    """
    from captum.attr import LayerAttribution, LayerGradCam

    check_hookable(subject.model)
    probe = choose_probe(subject, max_per_class, max_images, forward_passes=3)
    layer_name, chosen_by = cam_layer(subject.model, probe.inputs[:1], layer)
    module = dict(subject.model.named_modules())[layer_name]
    inputs = probe.inputs.detach().clone().requires_grad_(True)
    cam = LayerGradCam(subject.model, module).attribute(inputs, target=probe.targets, relu_attributions=True)
    cam = cam.detach()
    height, width = subject.task.image_shape[1:]
    upsampled = LayerAttribution.interpolate(cam, (height, width), interpolate_mode="bilinear")
    maps = upsampled[:, 0].cpu().double().numpy()
    size = f"{cam.shape[2]}x{cam.shape[3]}"
    heading = f"Grad-CAM on {short_label(layer_name)} ({size}, upsampled to {height}x{width})"
    figure = strip_figure(tiles_for(display_images(subject, probe.inputs), maps, signed=False), probe.titles, heading)
    raw = cam[:, 0].cpu().double().numpy()
    num_zero, num_constant = flat_map_counts(raw)
    caption = (
        f"Grad-CAM on the output of {layer_name} ({chosen_by}; map {size}, upsampled to {height}x{width}) "
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
    return [Artifact(name="grad-cam", caption=caption, layer=layer_name, figure=figure, data=data, summary=summary)]


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

    def hook_for(name: str):  # noqa: ANN202 - a closure per module name
        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            if isinstance(output, torch.Tensor):
                finished.pop(name, None)
                finished[name] = tuple(output.shape)

        return hook

    handles = [module.register_forward_hook(hook_for(name)) for name, module in model.named_modules() if name]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return list(finished.items())


def _names_hint(model: nn.Module, spatial: list[str] | None = None) -> str:
    """A few valid layer names, the last ones with a 4-D output when they are known."""
    names = spatial if spatial else [name for name, _ in model.named_modules() if name]
    listed = names[-NUM_NAMES_LISTED:]
    more = f" (and {len(names) - len(listed)} more)" if len(names) > len(listed) else ""
    return f"layers with a 4-D output include {', '.join(listed)}{more}" if spatial else f"layers: {', '.join(listed)}"
