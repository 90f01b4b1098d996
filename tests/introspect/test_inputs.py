"""``--inputs``: the user's own images as the probe, with the checkpoint's preprocessing, checked against PIL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from introspect.api import analyze
from introspect.dataset.sources import DataError
from introspect.inputs import with_inputs
from introspect.subject import Subject, Task

MEAN, STD = 0.5, 0.25


def grey_subject() -> Subject:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(2 * 6 * 6, 3))
    task = Task(kind="classification", input_shape=(1, 8, 8), image_shape=(1, 8, 8), class_names=("cat", "dog", "owl"),
                normalization={"mean": [MEAN], "std": [STD]})  # fmt: skip
    return Subject.from_model(model, torch.zeros(2, 1, 8, 8), task=task)


def write_image(path: Path, seed: int, size: int = 8, mode: str = "L") -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size, size) if mode == "L" else (size, size, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8), mode=mode).save(path)
    return pixels


def test_image_files_become_the_probe_normalized_as_the_checkpoint_says(tmp_path: Path) -> None:
    first, second = write_image(tmp_path / "a.png", 0), write_image(tmp_path / "b.png", 1)
    subject = with_inputs(grey_subject(), [tmp_path / "a.png", tmp_path / "b.png"], max_inputs=16)
    expected = (np.stack([first, second])[:, None] / 255.0 - MEAN) / STD
    np.testing.assert_allclose(subject.probe_inputs.numpy(), expected, atol=1e-6)
    assert subject.probe_labels is None and not subject.probe_is_synthetic
    assert subject.metadata["probe_note"] == "from a.png, b.png via --inputs, without labels"


def test_colour_and_larger_images_are_converted_and_resized_like_torchvision(tmp_path: Path) -> None:
    from torchvision.transforms import functional

    write_image(tmp_path / "big.png", 2, size=32, mode="RGB")
    subject = with_inputs(grey_subject(), [tmp_path / "big.png"], max_inputs=16)
    image = Image.open(tmp_path / "big.png").convert("L")
    expected = (functional.to_tensor(functional.resize(image, [8, 8])) - MEAN) / STD
    torch.testing.assert_close(subject.probe_inputs[0], expected)


def test_an_image_folder_labels_its_inputs_by_the_checkpoints_class_names(tmp_path: Path) -> None:
    write_image(tmp_path / "tree" / "owl" / "1.png", 3)
    write_image(tmp_path / "tree" / "cat" / "2.png", 4)
    subject = with_inputs(grey_subject(), [tmp_path / "tree"], max_inputs=16)
    assert subject.probe_labels.tolist() == [0, 2]  # ImageFolder order (cat, owl) mapped to the model's indices


def test_inputs_are_capped_and_bad_files_are_one_sentence(tmp_path: Path) -> None:
    for index in range(5):
        write_image(tmp_path / "flat" / f"{index}.png", index)
    assert len(with_inputs(grey_subject(), [tmp_path / "flat"], max_inputs=3).probe_inputs) == 3
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"broken.png: not a readable image"):
        with_inputs(grey_subject(), [tmp_path / "broken.png"], max_inputs=3)
    with pytest.raises(DataError, match=r"missing.png: no such file or folder"):
        with_inputs(grey_subject(), [tmp_path / "missing.png"], max_inputs=3)


def test_the_cli_explains_the_given_images(tmp_path: Path) -> None:
    from test_sweeps_on_ray import lenet5_checkpoint

    checkpoint = lenet5_checkpoint(tmp_path / "lenet5.pt", seed=0)
    command = [sys.executable, "-c", "from introspect.cli import main; main()", "analyze", str(checkpoint)]
    pixels = write_image(tmp_path / "digit.png", 0, size=28)
    out = tmp_path / "g"
    ran = subprocess.run([*command, "-a", "input_saliency", "--inputs", str(tmp_path / "digit.png"), "-o", str(out)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["header"]["probe"] == "1 input (from digit.png via --inputs, without labels)"
    assert manifest["analyzers"][0]["status"] == "ok"
    # the same through the API: the probe is the image, normalized with the checkpoint's mean and std
    report = analyze(checkpoint, analyzers=["input_saliency"], input_files=[tmp_path / "digit.png"])
    expected = (pixels / 255.0 - 0.1307) / 0.3081
    np.testing.assert_allclose(report.subject.probe_inputs.numpy().reshape(28, 28), expected, atol=1e-5)
    both = subprocess.run([*command, "-a", "activations", "--inputs", "x.png", "--probe", "p.pt"], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert both.returncode == 2 and "--inputs and --probe both give the probe" in both.stderr
