"""resnet18: torchvision's network with 10 outputs; ImageNet weights only on request, clear failure."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torchvision
from _network_checks import accuracy, quick_checkpoint, quick_train, reload, tiny_cifar

from trainers.networks import resnet18
from trainers.networks.resnet18 import PretrainedWeightsError, ResNet18Config, load_imagenet_weights, make_resnet18


def test_ten_outputs_and_from_scratch_by_default() -> None:
    model = make_resnet18(ResNet18Config())
    assert model.fc.out_features == 10
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert ResNet18Config().pretrained is False


def test_imagenet_weights_are_copied_except_the_head(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(1)
    imagenet = torchvision.models.resnet18(num_classes=1000).state_dict()
    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", lambda self, *args, **kwargs: imagenet)
    model = make_resnet18(ResNet18Config())
    fresh = load_imagenet_weights(model)
    assert fresh == ["fc.bias", "fc.weight"]
    state = model.state_dict()
    assert all(torch.equal(state[name], imagenet[name]) for name in state if not name.startswith("fc."))
    assert state["fc.weight"].shape == (10, 512)


def test_unreachable_weights_fail_with_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(self, *args, **kwargs):
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    monkeypatch.setattr(resnet18, "load_cifar10", lambda *args, **kwargs: tiny_cifar())
    with pytest.raises(PretrainedWeightsError) as caught:
        quick_checkpoint("resnet18", pretrained="true")
    message = str(caught.value)
    assert "\n" not in message
    assert (
        message.startswith("could not fetch the ImageNet ResNet18 weights") and "Name or service not known" in message
    )


def test_quick_epoch_reloads_to_identical_outputs(tmp_path) -> None:
    data = tiny_cifar()
    checkpoint = quick_train(
        dataclasses.replace(resnet18.NETWORK, load_data=lambda settings, options: data, quick_train_size=100)
    )
    subject, difference = reload(checkpoint, tmp_path / "resnet18.pt")
    assert difference == 0.0
    assert checkpoint["architecture"]["config"] == {"num_classes": 10, "pretrained": False}
    assert accuracy(subject.model, data.test) == pytest.approx(checkpoint["metrics"]["test_accuracy"], abs=1e-12)
