"""NetA1/NetA2 initialization: hand kernels, identical shared layers, frozen first conv."""

from __future__ import annotations

import itertools

import pytest
import torch

from trainers.networks.neta import HAND_PATTERNS, NetA, NetAConfig, hand_kernels


def _net(architecture: str, scheme: str, seed: int = 0) -> NetA:
    return NetA(NetAConfig(architecture=architecture, scheme=scheme, seed=seed))


def test_hand_kernels_are_the_four_patterns_of_the_issue() -> None:
    kernels = hand_kernels()
    assert kernels.shape == (4, 1, 5, 5)
    assert set(kernels.unique().tolist()) == {0.0, 1.0}
    assert kernels.sum(dim=(1, 2, 3)).tolist() == [9.0, 11.0, 16.0, 15.0]
    issue_rows = [
        "10001 00100 01110 11011",
        "01010 11011 11011 01010",
        "00100 00100 10001 00100",
        "01010 11011 11011 11011",
        "10001 00100 01110 11011",
    ]
    for row, text in enumerate(issue_rows):
        for channel, bits in enumerate(text.split()):
            assert kernels[channel, 0, row].tolist() == [float(bit) for bit in bits]
    assert len({tuple(pattern) for pattern in HAND_PATTERNS}) == 4


@pytest.mark.parametrize("architecture", ["neta1", "neta2"])
def test_shared_layers_start_identical_across_schemes(architecture: str) -> None:
    nets = {scheme: _net(architecture, scheme) for scheme in ("hf", "ht", "dt")}
    layers = ["linear1"] + (["conv2"] if architecture == "neta2" else [])
    for layer, (first, second) in itertools.product(layers, itertools.combinations(nets.values(), 2)):
        for kind in ("weight", "bias"):
            difference = getattr(first, layer).get_parameter(kind) - getattr(second, layer).get_parameter(kind)
            assert torch.linalg.vector_norm(difference).item() == 0.0
    hand_difference = nets["hf"].conv1.weight - nets["ht"].conv1.weight
    assert torch.linalg.vector_norm(hand_difference).item() == 0.0
    assert torch.equal(nets["hf"].conv1.weight, hand_kernels())
    assert torch.linalg.vector_norm(nets["dt"].conv1.weight - hand_kernels()).item() > 1.0


@pytest.mark.parametrize("scheme", ["hf", "ht", "dt"])
def test_first_conv_starts_identical_across_architectures(scheme: str) -> None:
    one, two = _net("neta1", scheme), _net("neta2", scheme)
    assert torch.linalg.vector_norm(one.conv1.weight - two.conv1.weight).item() == 0.0
    assert torch.linalg.vector_norm(one.conv1.bias - two.conv1.bias).item() == 0.0


def test_default_init_follows_the_seed_and_pytorch_bounds() -> None:
    first, again, other = _net("neta1", "dt", 0), _net("neta1", "dt", 0), _net("neta1", "dt", 1)
    assert torch.equal(first.linear1.weight, again.linear1.weight)
    assert not torch.equal(first.linear1.weight, other.linear1.weight)
    assert first.linear1.weight.abs().max().item() <= 1 / 576**0.5  # kaiming_uniform(a=sqrt 5) bound
    assert first.conv1.weight.abs().max().item() <= 1 / 25**0.5


@pytest.mark.parametrize(("architecture", "features"), [("neta1", 576), ("neta2", 300)])
def test_flatten_sizes_and_logits(architecture: str, features: int) -> None:
    net = _net(architecture, "dt")
    assert net.linear1.in_features == features
    out = net(torch.randn(3, 1, 28, 28))
    assert out.shape == (3, 10)
    assert not torch.allclose(out.softmax(1).sum(1), out.sum(1))  # logits, not probabilities


def test_only_hf_freezes_the_first_conv() -> None:
    frozen = {
        scheme: [not p.requires_grad for p in _net("neta2", scheme).conv1.parameters()] for scheme in ("hf", "ht", "dt")
    }
    assert frozen == {"hf": [True, True], "ht": [False, False], "dt": [False, False]}
    assert NetAConfig(scheme="hf").frozen_layers == ("conv1",)
    with pytest.raises(ValueError, match="scheme"):
        NetAConfig(scheme="xx")
