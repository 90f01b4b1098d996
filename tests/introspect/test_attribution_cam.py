"""Grad-CAM: the layer chosen in execution order, numbers equal to pytorch-grad-cam's, flat maps flagged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from introspect.analyzers import _attribution_maps, attribution, attribution_cam
from introspect.runner import run_one
from introspect.spec import spec_of
from introspect.subject import Subject, Task
from introspect.testing import conv_image_subject


def image_subject(model: torch.nn.Module, side: int, num_classes: int = 10, count: int = 4) -> Subject:
    torch.manual_seed(1)
    inputs = torch.randn(count, 3, side, side)
    labels = torch.arange(count) % num_classes
    task = Task(
        kind="classification",
        input_shape=(3, side, side),
        image_shape=(3, side, side),
        class_names=tuple(f"class {index}" for index in range(num_classes)),
        dataset="random",
    )
    return Subject.from_model(model, inputs, labels, task=task)


@pytest.fixture(scope="module")
def resnet_subject() -> Subject:
    from torchvision.models import resnet18

    torch.manual_seed(0)
    return image_subject(resnet18(num_classes=10), side=64)


def test_grad_cam_on_a_resnet_hooks_the_last_stage_and_equals_pytorch_grad_cam(resnet_subject: Subject) -> None:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    artifact = attribution_cam.grad_cam(resnet_subject)[0]
    # At 64x64 layer4 is 2x2: the stage's output, not its last Conv2d (before BN, the residual add and the ReLU).
    assert artifact.layer == "layer4" and artifact.summary["cam_shape"] == [2, 2]
    indices, targets = artifact.data["indices"], artifact.data["targets"]
    model, inputs = resnet_subject.model, resnet_subject.probe_inputs[indices]
    cam = GradCAM(model=model, target_layers=[model.layer4])
    try:
        full = cam(input_tensor=inputs, targets=[ClassifierOutputTarget(int(target)) for target in targets])
        activations = cam.activations_and_grads.activations[0].numpy()
        gradients = cam.activations_and_grads.gradients[0].numpy()
    finally:
        cam.activations_and_grads.release()
    # pytorch-grad-cam's map before its min-max scaling and resizing: ReLU(sum_c mean(grad_c) * A_c).
    raw = np.maximum(cam.get_cam_image(inputs, model.layer4, None, activations, gradients), 0)
    ours = artifact.data["cam"][:, 0]
    assert np.abs(ours).max() > 0
    np.testing.assert_allclose(ours, raw, rtol=1e-4, atol=1e-6 * np.abs(raw).max())
    # And after pytorch-grad-cam's own scaling to [0, 1] and resizing to the input size.
    np.testing.assert_allclose(scale_cam_image(ours, (64, 64)), full, atol=1e-5)


def test_grad_cam_on_the_cifar_resnet18_skips_the_1x1_stage_and_gives_maps_that_vary() -> None:
    from trainers.networks.resnet18 import ResNet18Config, make_resnet18

    torch.manual_seed(0)
    # No labels: each image is explained for its predicted class, for which an untrained net has positive evidence.
    subject = dataclasses.replace(image_subject(make_resnet18(ResNet18Config()), side=32), probe_labels=None)
    artifact = attribution_cam.grad_cam(subject)[0]
    # At 32x32 layer4 is 1x1, where every map is one flat tile; layer3 is 2x2.
    assert artifact.layer == "layer3" and artifact.summary["cam_shape"] == [2, 2]
    upsampled = artifact.data["upsampled"].reshape(len(artifact.data["upsampled"]), -1)
    assert (np.ptp(upsampled, axis=1) > 1e-3 * np.abs(upsampled).max(axis=1)).all()
    assert artifact.summary["num_constant_maps"] == artifact.summary["num_zero_maps"] == 0
    assert "Warning" not in artifact.caption
    flat = attribution_cam.grad_cam(subject, layer="layer4")[0]
    assert flat.summary["num_constant_maps"] == flat.summary["num_images"]
    assert "constant (one value everywhere)" in flat.caption


def test_grad_cam_layer_chosen_by_hand_and_bad_names_are_skipped_with_valid_names(resnet_subject: Subject) -> None:
    artifact = attribution_cam.grad_cam(resnet_subject, layer="layer3")[0]
    assert artifact.layer == "layer3" and artifact.summary["cam_shape"] == [4, 4]
    unknown = run_one(resnet_subject, spec_of(attribution_cam.grad_cam), options={"layer": "layer9"})
    assert unknown.status == "skipped" and "'layer9'" in unknown.reason and "layer4" in unknown.reason
    flat = run_one(resnet_subject, spec_of(attribution_cam.grad_cam), options={"layer": "fc"})
    assert flat.status == "skipped" and "[1, 10]" in flat.reason and "layer4" in flat.reason


def test_execution_order_is_the_order_modules_finish_not_the_order_they_are_defined() -> None:
    class Backwards(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.late = torch.nn.Conv2d(4, 2, 3, padding=1)
            self.early = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.head = torch.nn.Linear(2 * 8 * 8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.late(self.early(x)).flatten(1))

    shapes = attribution_cam.output_shapes(Backwards(), torch.zeros(1, 1, 8, 8))
    assert [name for name, _ in shapes] == ["early", "late", "head"]
    assert attribution_cam.cam_layer(Backwards(), torch.zeros(1, 1, 8, 8))[0] == "late"


def test_a_zero_initialized_head_gives_zero_maps_and_the_captions_say_so() -> None:
    subject = conv_image_subject(channels=3)
    head = subject.model[6]
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    cam = attribution_cam.grad_cam(subject)[0]
    assert cam.summary["num_zero_maps"] == cam.summary["num_images"] > 0
    assert "all 6 maps are zero everywhere" in cam.caption and "grad_cam.layer" in cam.caption
    saliency = attribution.input_saliency(subject, methods=("saliency",))[0]
    assert saliency.summary["num_zero_maps"] == 6 and "zero everywhere" in saliency.caption


def test_flat_map_counts_tell_zero_from_constant_from_varying() -> None:
    maps = np.stack([np.zeros((3, 3)), np.full((3, 3), 2.5), np.arange(9.0).reshape(3, 3), np.zeros((3, 3))])
    assert _attribution_maps.flat_map_counts(maps) == (2, 1)
    note = _attribution_maps.flat_map_note(maps)
    assert "2 of 4 maps are zero everywhere" in note and "1 of 4 maps is constant" in note
    assert _attribution_maps.flat_map_note(maps[2:3]) == ""


@pytest.mark.parametrize(
    ("name", "num_prefix"), [("vit_tiny_patch16_224", 1), ("deit_tiny_distilled_patch16_224", 2)], ids=["vit", "deit"]
)
def test_grad_cam_on_a_vit_uses_the_last_blocks_norm1_tokens_and_equals_pytorch_grad_cam(
    name: str, num_prefix: int
) -> None:
    """pytorch-grad-cam's ViT recipe: ``model.blocks[-1].norm1`` with a reshape_transform dropping the prefix tokens."""
    timm = pytest.importorskip("timm")
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, img_size=32, patch_size=8, depth=2, num_classes=3).eval()
    subject = image_subject(model, side=32, num_classes=3)
    artifact = attribution_cam.grad_cam(subject)[0]
    assert artifact.layer == "blocks.1.norm1" and artifact.summary["cam_shape"] == [4, 4]
    assert artifact.summary["num_prefix_tokens_dropped"] == num_prefix and "dropped" in artifact.caption

    def reshape_transform(tokens: torch.Tensor) -> torch.Tensor:
        return tokens[:, num_prefix:].reshape(len(tokens), 4, 4, tokens.shape[2]).permute(0, 3, 1, 2)

    indices, targets = artifact.data["indices"], artifact.data["targets"]
    inputs = subject.probe_inputs[indices]
    layer = model.blocks[-1].norm1
    cam = GradCAM(model=model, target_layers=[layer], reshape_transform=reshape_transform)
    try:
        full = cam(input_tensor=inputs, targets=[ClassifierOutputTarget(int(target)) for target in targets])
        activations = cam.activations_and_grads.activations[0].numpy()
        gradients = cam.activations_and_grads.gradients[0].numpy()
    finally:
        cam.activations_and_grads.release()
    raw = np.maximum(cam.get_cam_image(inputs, layer, None, activations, gradients), 0)
    ours = artifact.data["cam"][:, 0]
    assert np.abs(ours).max() > 0
    np.testing.assert_allclose(ours, raw, rtol=1e-4, atol=1e-6 * np.abs(raw).max())
    # pytorch-grad-cam scales to [0, 1], resizes, and scales the resized maps again (bilinear 4 -> 32 misses the peak).
    np.testing.assert_allclose(scale_cam_image(scale_cam_image(ours, (32, 32))), full, atol=1e-5)


def test_grad_cam_on_the_last_vit_block_output_is_zero_because_the_head_reads_only_the_class_token() -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2, num_classes=3
    )
    subject = image_subject(model.eval(), side=32, num_classes=3, count=2)
    last = attribution_cam.grad_cam(subject, layer="blocks.1")[0]
    assert last.summary["cam_shape"] == [4, 4] and last.summary["num_zero_maps"] == 2
    patches = attribution_cam.grad_cam(subject, layer="patch_embed.proj")[0]  # a 4-D layer by hand: the CNN path
    assert patches.layer == "patch_embed.proj" and "num_prefix_tokens_dropped" not in patches.summary
