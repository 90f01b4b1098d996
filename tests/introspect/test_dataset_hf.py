"""Hugging Face ``datasets`` folders as ``--data``: pixels, labels and class names as saved, splits, pickling, the CLI.

Each dataset is built here from PIL images of known pixels and written with ``save_to_disk``; the
expected values come from those images with numpy and PIL, not from introspect or ``datasets``.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import re
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import confusion_matrix

from introspect.checkpoint import make_checkpoint, save_checkpoint
from introspect.cli import main
from introspect.dataset.sources import DataError, batches, open_source
from introspect.report import files
from introspect.subject import Task
from introspect.testing import build_test_network

NAMES = ["cat", "dog", "fox"]
SIZE = 4  # each image is SIZE x SIZE RGB


@pytest.fixture
def hf_datasets() -> ModuleType:
    return pytest.importorskip("datasets")


def random_images(count: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """``count`` RGB images (N, SIZE, SIZE, 3) of random uint8 pixels, and a label per image."""
    generator = np.random.default_rng(seed)
    pixels = generator.integers(0, 256, size=(count, SIZE, SIZE, 3), dtype=np.uint8)
    return pixels, [int(label) for label in generator.integers(0, len(NAMES), size=count)]


def image_dataset(hf_datasets: ModuleType, pixels: np.ndarray, labels: list[int]):  # noqa: ANN201
    features = hf_datasets.Features({"image": hf_datasets.Image(), "label": hf_datasets.ClassLabel(names=NAMES)})
    images = [Image.fromarray(array) for array in pixels]
    return hf_datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)


def test_a_saved_dataset_gives_its_pixels_labels_and_class_names(hf_datasets: ModuleType, tmp_path: Path) -> None:
    pixels, labels = random_images(10, seed=0)
    image_dataset(hf_datasets, pixels, labels).save_to_disk(str(tmp_path / "pets"))
    source = open_source(tmp_path / "pets", image_shape=(3, SIZE, SIZE))
    assert (source.name, source.split, len(source), source.class_names) == ("pets", "", 10, tuple(NAMES))
    assert source.pixels and source.resized_on_read and source.is_map_style
    (batch,) = batches(source, batch_size=16)
    expected = pixels.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(batch.inputs.numpy(), expected)
    assert batch.labels.tolist() == labels and batch.indices.tolist() == list(range(10))
    # the model's channels and size: greyscale 2x2, as PIL converts and resizes the same image
    grey = open_source(tmp_path / "pets", image_shape=(1, 2, 2)).dataset[3][0]
    small = Image.fromarray(pixels[3]).convert("L").resize((2, 2), Image.Resampling.BILINEAR)
    np.testing.assert_array_equal(grey.numpy(), np.asarray(small, dtype=np.float32)[None] / np.float32(255))
    with pytest.raises(DataError, match=r"holds one dataset, not a DatasetDict of splits: drop ':train'$"):
        open_source(f"{tmp_path / 'pets'}:train", image_shape=(3, SIZE, SIZE))


def test_a_dataset_dict_reads_the_test_split_or_the_one_named(hf_datasets: ModuleType, tmp_path: Path) -> None:
    train, test = random_images(6, seed=1), random_images(4, seed=2)
    splits = {"train": image_dataset(hf_datasets, *train), "test": image_dataset(hf_datasets, *test)}
    hf_datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "pets"))
    source = open_source(tmp_path / "pets", image_shape=(3, SIZE, SIZE))
    assert (source.split, len(source), source.describe()) == ("test", 4, "pets (test split, 4 inputs)")
    first, label = source.dataset[0]
    np.testing.assert_array_equal(first.numpy(), test[0][0].transpose(2, 0, 1) / np.float32(255))
    assert label == test[1][0]
    chosen = open_source(f"{tmp_path / 'pets'}:train", image_shape=(3, SIZE, SIZE))
    assert (chosen.split, len(chosen), [chosen.dataset[i][1] for i in range(6)]) == ("train", 6, train[1])
    with pytest.raises(DataError, match=r"has no split 'valid': its splits are train, test$"):
        open_source(f"{tmp_path / 'pets'}:valid", image_shape=(3, SIZE, SIZE))
    two = {"train": splits["train"], "extra": splits["test"]}
    hf_datasets.DatasetDict(two).save_to_disk(str(tmp_path / "two"))
    with pytest.raises(DataError, match=r"has the splits train, extra and none is test or validation: pick one"):
        open_source(tmp_path / "two", image_shape=(3, SIZE, SIZE))


def test_it_pickles_as_its_folder_and_reopens_with_equal_items(hf_datasets: ModuleType, tmp_path: Path) -> None:
    image_dataset(hf_datasets, *random_images(5, seed=3)).save_to_disk(str(tmp_path / "pets"))
    dataset = open_source(tmp_path / "pets", image_shape=(3, SIZE, SIZE)).dataset
    payload = pickle.dumps(dataset)
    # the folder, split and column names (a few hundred bytes), not the dataset object and its table's state
    assert len(payload) < 500
    again = pickle.loads(payload)
    assert len(again) == len(dataset) == 5
    for index in range(5):
        (inputs, label), (reopened, label_again) = dataset[index], again[index]
        assert torch.equal(inputs, reopened) and label == label_again


def test_numeric_array_columns_are_inputs_as_the_model_takes_them(hf_datasets: ModuleType, tmp_path: Path) -> None:
    values = np.random.default_rng(4).normal(size=(6, 5)).astype(np.float32)
    features = hf_datasets.Features(
        {"id": hf_datasets.Value("string"), "x": hf_datasets.Sequence(hf_datasets.Value("float32")),
         "labels": hf_datasets.Value("int64")}
    )  # fmt: skip
    data = {"id": list("abcdef"), "x": values.tolist(), "labels": [0, 1, 1, 0, 1, 0]}
    hf_datasets.Dataset.from_dict(data, features=features).save_to_disk(str(tmp_path / "rows"))
    source = open_source(tmp_path / "rows")
    assert not source.pixels and source.class_names == ()
    (batch,) = batches(source)
    np.testing.assert_array_equal(batch.inputs.numpy(), values)
    assert batch.labels.tolist() == data["labels"]


def test_a_folder_without_inputs_names_its_columns(hf_datasets: ModuleType, tmp_path: Path) -> None:
    features = hf_datasets.Features({"text": hf_datasets.Value("string"), "label": hf_datasets.ClassLabel(names=NAMES)})
    hf_datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, 2]}, features=features).save_to_disk(
        str(tmp_path / "text")
    )
    found = r"its columns: text \(string\), label \(ClassLabel\)\)$"
    with pytest.raises(DataError, match=rf"no column of images or numeric arrays to read as inputs \({found}"):
        open_source(tmp_path / "text")
    image_dataset(hf_datasets, *random_images(2, seed=5)).save_to_disk(str(tmp_path / "pets"))
    with pytest.raises(DataError, match="a dataset of images needs a model that takes images"):
        open_source(tmp_path / "pets")


def test_without_the_library_a_saved_dataset_is_one_sentence_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, introspect_checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "saved"
    folder.mkdir()
    for name in ("dataset_info.json", "state.json"):  # what save_to_disk writes, which is how it is recognised
        (folder / name).write_text("{}")
    find_spec = importlib.util.find_spec
    missing = lambda name, *args: None if name == "datasets" else find_spec(name, *args)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", missing)
    monkeypatch.setitem(sys.modules, "datasets", None)  # an import would fail too
    message = re.escape(f"reading the Hugging Face dataset {folder} needs datasets, which is not installed: ")
    with pytest.raises(DataError, match=rf"^{message}pip install 'introspect\[hf-datasets\]'$"):
        open_source(folder, image_shape=(3, SIZE, SIZE))
    with pytest.raises(SystemExit) as caught:
        main(["analyze", str(introspect_checkpoint), "-a", "dataset_confusion", "--data", str(folder),
              "-o", str(tmp_path / "g"), "--device", "cpu"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert caught.value.code == 2 and not (tmp_path / "g").exists()
    assert err.startswith("introspect: error: reading the Hugging Face dataset") and len(err.splitlines()) == 1


def test_the_cli_confusion_counts_equal_sklearn_over_a_direct_forward(
    hf_datasets: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, registered_test_architecture: str
) -> None:
    pixels, labels = random_images(40, seed=6)
    image_dataset(hf_datasets, pixels, labels).save_to_disk(str(tmp_path / "pets"))
    config = {"sizes": [3 * SIZE * SIZE, 8, len(NAMES)], "activation": "tanh"}
    torch.manual_seed(0)
    model = build_test_network(config).eval()
    task = Task(kind="classification", input_shape=(3 * SIZE * SIZE,), image_shape=(3, SIZE, SIZE),
                class_names=tuple(NAMES), dataset="pets")  # fmt: skip
    probe = torch.rand(4, 3 * SIZE * SIZE, generator=torch.Generator().manual_seed(7))
    checkpoint = make_checkpoint(model, architecture=registered_test_architecture, config=config,
                                 task=task.to_dict(), probe_inputs=probe, probe_labels=torch.arange(4) % 3)  # fmt: skip
    path = save_checkpoint(tmp_path / "pets.pt", checkpoint)
    written = {}
    write_artifacts = files.write_artifacts

    def keep_results(result, folder):  # noqa: ANN001, ANN202
        written[result.name] = result
        return write_artifacts(result, folder)

    monkeypatch.setattr(files, "write_artifacts", keep_results)
    out = tmp_path / "gallery"
    with pytest.raises(SystemExit) as caught:
        main(["analyze", str(path), "-a", "dataset_confusion", "--data", str(tmp_path / "pets"), "-o", str(out),
              "--device", "cpu"])  # fmt: skip
    assert caught.value.code == 0
    inputs = torch.from_numpy(pixels.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)).reshape(40, -1)
    with torch.no_grad():
        predicted = model(inputs).argmax(dim=1).numpy()
    counts = written["dataset_confusion"].artifacts[0].data["counts"]
    assert len(set(predicted.tolist())) > 1  # more than one column of the matrix is filled
    np.testing.assert_array_equal(counts, confusion_matrix(labels, predicted, labels=range(len(NAMES))))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["analyzers"][0]["status"] == "ok"
    assert "40 inputs" in manifest["analyzers"][0]["figures"][0]["caption"]
