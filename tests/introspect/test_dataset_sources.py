"""Dataset sources read the offline subsets in index order, never download, and fail in one sentence."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from introspect.dataset.sources import DataError, batches, open_torchvision, parse_name

DATA = Path(os.environ["INTROSPECT_DATA"])


def test_names_and_splits_are_parsed_with_the_test_split_by_default() -> None:
    assert parse_name("MNIST") == ("mnist", "test")
    assert parse_name("fashion-mnist:train") == ("fashion-mnist", "train")
    with pytest.raises(DataError, match="unknown dataset 'imagenet'.*mnist, fashion-mnist, cifar10"):
        parse_name("imagenet")
    with pytest.raises(DataError, match="unknown split 'valid'"):
        parse_name("mnist:valid")


def test_mnist_test_split_streams_every_input_once_in_index_order() -> None:
    source = open_torchvision("mnist", DATA)
    direct = torchvision.datasets.MNIST(str(DATA), train=False, download=False)
    assert len(source) == len(direct) == 1000
    assert source.class_names[0].startswith("0")
    seen = list(batches(source, batch_size=300))
    assert [len(batch.indices) for batch in seen] == [300, 300, 300, 100]
    indices = torch.cat([batch.indices for batch in seen])
    labels = torch.cat([batch.labels for batch in seen])
    assert torch.equal(indices, torch.arange(1000))
    assert torch.equal(labels, direct.targets)
    first = seen[0].inputs[0, 0].numpy()
    np.testing.assert_allclose(first, direct.data[0].numpy() / 255.0, atol=1e-7)


def test_limit_reads_only_the_first_inputs() -> None:
    source = open_torchvision("fashion-mnist:train", DATA)
    seen = list(batches(source, batch_size=64, limit=100))
    assert sum(len(batch.inputs) for batch in seen) == 100
    assert seen[-1].indices[-1].item() == 99


def test_a_missing_dataset_is_one_sentence_and_nothing_is_downloaded(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cifar10 \(test\) is not in .*never downloaded"):
        open_torchvision("cifar10", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_no_data_folder_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTROSPECT_DATA")
    with pytest.raises(DataError, match="--data-dir"):
        open_torchvision("mnist")
