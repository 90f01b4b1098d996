"""ROAR and the data randomization test, on a network whose class is written in one pixel."""

from __future__ import annotations

import dataclasses
import json
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch
from captum.attr import Saliency
from scipy.stats import spearmanr
from torch import nn

from trainers import roar
from trainers.data import ImageDataset
from trainers.loop import TensorSplit, TrainConfig
from trainers.network import Network
from trainers.settings import RunSettings

#: The pixel (row 1, column 2 of 4x4) that holds the class; every other pixel is noise.
CODE_PIXEL = 1 * 4 + 2


@dataclasses.dataclass(frozen=True)
class PixelCodeConfig:
    seed: int = 0


class PixelCode(nn.Module):
    """A linear classifier over the 16 pixels of a 1x4x4 image."""

    def __init__(self, config: PixelCodeConfig) -> None:
        super().__init__()
        torch.manual_seed(config.seed)
        self.linear = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


def split(count: int, seed: int) -> TensorSplit:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (count,), generator=generator)
    images = torch.rand(count, 1, 4, 4, generator=generator)
    images.view(count, -1)[:, CODE_PIXEL] = 2.0 * labels - 1.0  # +1 for class 1, -1 for class 0
    return TensorSplit(images, labels)


def load_data(settings: RunSettings, options: None) -> ImageDataset:
    return ImageDataset(split(400, 1), split(200, 2), ("off", "on"), (1, 4, 4), None, "pixel code")


PIXEL_CODE = Network(
    name="pixel-code",
    summary="A linear classifier of 4x4 images whose class is one pixel's sign.",
    config_class=PixelCodeConfig,
    model=PixelCode,
    load_data=load_data,
    train=TrainConfig(epochs=25, batch_size=32, lr=0.05),
    space={},
    quick_epochs=25,
    quick_train_size=None,
)


@pytest.fixture(scope="module")
def setup() -> roar.RetrainSetup:
    settings = RunSettings(quick=True, device="cpu", seed=0)
    return roar.setup_for(PIXEL_CODE, settings, PixelCodeConfig(), load_data(settings, None))


@pytest.fixture(scope="module")
def trained(setup: roar.RetrainSetup) -> nn.Module:
    return roar.trained_model(setup, setup.train, seed=0)


def test_remove_top_sets_exactly_the_highest_ranked_pixels_to_the_fill() -> None:
    generator = torch.Generator().manual_seed(3)
    inputs, maps = torch.rand(5, 3, 6, 7, generator=generator), torch.rand(5, 6, 7, generator=generator)
    fill = torch.tensor([-1.0, -2.0, -3.0])
    removed = roar.remove_top(inputs, maps, 0.3, fill)
    expected = inputs.numpy().copy()
    for image in range(5):
        top = np.argsort(-maps[image].numpy().ravel(), kind="stable")[: round(0.3 * 42)]
        rows, columns = np.unravel_index(top, (6, 7))
        expected[image][:, rows, columns] = fill.numpy()[:, None]
    np.testing.assert_array_equal(removed.numpy(), expected)
    flat = roar.remove_top(inputs.flatten(1), maps, 0.3, fill)  # a dense network's flattened inputs
    np.testing.assert_array_equal(flat.numpy(), expected.reshape(5, -1))


def test_channel_means_and_the_noise_free_gradient_statistics(trained: nn.Module, monkeypatch) -> None:  # noqa: ANN001
    inputs = torch.rand(10, 3, 4, 4)
    np.testing.assert_allclose(
        roar.channel_means(inputs, (3, 4, 4)).numpy(), inputs.numpy().mean(axis=(0, 2, 3)), rtol=1e-6
    )
    monkeypatch.setattr(roar, "NOISE_LEVEL", 0.0)  # no noise: SmoothGrad-squared is the squared gradient, VarGrad 0
    images, targets = split(8, 5).inputs, split(8, 5).targets
    gradient = Saliency(trained).attribute(images.clone().requires_grad_(True), target=targets, abs=False)
    squared = roar.pixel_maps(trained, images, targets, "smoothgrad_squared", (1, 4, 4), seed=0)
    np.testing.assert_allclose(squared.numpy(), (gradient**2).sum(dim=1).detach().numpy(), rtol=1e-5)
    variance = roar.pixel_maps(trained, images, targets, "vargrad", (1, 4, 4), seed=0)
    assert float(variance.abs().max()) <= 1e-5 * float(squared.max())  # zero up to float32 rounding


def test_saliency_finds_the_code_pixel_so_removing_it_costs_more_accuracy_than_random_removal(
    setup: roar.RetrainSetup, trained: nn.Module
) -> None:
    record = roar.RoarRecord()
    seen: list[str] = []
    curves = roar.roar_curves(
        trained, setup, ["saliency", "random"], [0.1], record, after_each=lambda key, _: seen.append(key)
    )
    assert seen == ["clean", "saliency@0.1", "random@0.1"]
    assert curves["clean"][0] > 0.95  # the code pixel is learned
    assert curves["saliency"][0] < 0.7  # its top 10% (2 pixels) always holds the code pixel: chance is left
    assert curves["random"][0] > curves["saliency"][0] + 0.2
    saliency_maps = roar.maps_for(trained, setup.test, "saliency", (1, 4, 4), seed=1)
    assert (saliency_maps.reshape(len(saliency_maps), -1).argmax(dim=1) == CODE_PIXEL).all()
    # A second call with the record measures nothing again.
    no_training = dataclasses.replace(setup)
    object.__setattr__(no_training, "retrained_accuracy", lambda *_: pytest.fail("retrained again"))
    assert roar.roar_curves(trained, no_training, ["saliency", "random"], [0.1], record) == curves


def test_the_data_randomization_twin_explains_the_probe_differently(
    setup: roar.RetrainSetup, trained: nn.Module
) -> None:
    probe = TensorSplit(setup.test.inputs[:32], setup.test.targets[:32])
    found = roar.data_randomization(trained, setup, probe)
    for twin in ("second_seed", "random_labels"):
        expected = [
            spearmanr(a.ravel(), b.ravel()).statistic for a, b in zip(found["trained"].numpy(), found[twin].numpy())
        ]
        np.testing.assert_allclose(found["correlations"][twin], expected, rtol=1e-12)
    assert found["correlations"]["second_seed"].mean() > found["correlations"]["random_labels"].mean() + 0.2


def write_trust_retrain_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run ``introspect trust --retrain`` on an untrained pixel-code checkpoint; the gallery folder it wrote.

    Shared with the browser test, which opens the same page.
    """
    from introspect import architectures
    from introspect.checkpoint import make_checkpoint, save_checkpoint
    from introspect.cli import main
    from introspect.subject import Task
    from trainers import catalog

    entry = metadata.EntryPoint(
        name="pixel-code", value=f"{__name__}:PIXEL_CODE", group=architectures.ARCHITECTURE_GROUP
    )
    original = architectures.registered_architectures
    monkeypatch.setattr(architectures, "registered_architectures", lambda: {**original(), "pixel-code": entry})
    monkeypatch.setattr(catalog, "get_network", lambda name: PIXEL_CODE)
    probe = split(16, 7)
    task = Task(kind="classification", input_shape=(1, 4, 4), image_shape=(1, 4, 4), class_names=("off", "on"))
    checkpoint = make_checkpoint(
        PixelCode(PixelCodeConfig()), architecture="pixel-code", config={"seed": 0}, task=task.to_dict(),
        probe_inputs=probe.inputs, probe_labels=probe.targets,
    )  # fmt: skip
    path, out_dir = save_checkpoint(tmp_path / "pixel.pt", checkpoint), tmp_path / "trust"
    args = [
        "trust",
        str(path),
        "--retrain",
        "--methods",
        "saliency,random",
        "--fractions",
        "0.1,0.5",
        "-o",
        str(out_dir),
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0
    return out_dir


def test_introspect_trust_retrain_writes_the_roar_and_randomization_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out_dir = write_trust_retrain_page(tmp_path, monkeypatch)
    results = {result["name"]: result for result in json.loads((out_dir / "manifest.json").read_text())["analyzers"]}
    assert [name for name in results] == ["attribution_scorecard", "saliency_sanity", "roar", "data_randomization"]
    assert results["roar"]["status"] == results["data_randomization"]["status"] == "ok"
    curves = results["roar"]["figures"][0]["summary"]["curves"]
    assert set(curves) == {"saliency", "random"} and len(curves["saliency"]) == 2
    assert not (tmp_path / ".trust.introspect-trust.json").exists()  # a record is only kept while unfinished
