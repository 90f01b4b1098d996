"""Data: the regression task's shape and noise, MNIST from the offline folder, clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from trainers.data import (
    REGRESSION_GAPS,
    DataUnavailableError,
    balanced_indices,
    balanced_probe,
    fraction_in_gaps,
    load_cifar10,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    regression_data,
    resolve_data_dir,
    true_function,
)


def test_regression_data_has_documented_sizes_and_gaps() -> None:
    data = regression_data(seed=0)
    assert data.train.inputs.shape == (100, 1) and data.train.targets.shape == (100, 1)
    assert data.test.inputs.shape == (100, 1)
    assert fraction_in_gaps(data.train.inputs) == 0.0
    assert fraction_in_gaps(data.test.inputs) > 0.1  # test points cover the gaps
    assert data.train.inputs.min() >= -5 and data.train.inputs.max() <= 5
    assert data.test.inputs.min() == -5 and data.test.inputs.max() == 5
    spacing = data.test.inputs.flatten().diff()
    assert torch.allclose(spacing, torch.full_like(spacing, 10 / 99), atol=1e-5)


def test_regression_bumps_sit_in_the_gaps() -> None:
    for (low, high), centre in zip(REGRESSION_GAPS, (-2.0, 2.0)):
        assert low < centre < high
        grid = torch.linspace(centre - 1, centre + 1, 201)
        peak = float(grid[true_function(grid).argmax()])
        assert low < peak < high


def test_regression_noise_levels_match_the_docstring() -> None:
    # Many points from the same generator estimate the noise standard deviations closely.
    data = regression_data(seed=3, num_train=20000, num_test=20000)
    train_noise = data.train.targets.flatten() - true_function(data.train.inputs.flatten())
    test_noise = data.test.targets.flatten() - true_function(data.test.inputs.flatten())
    assert float(train_noise.std()) == pytest.approx(data.train_noise_std, rel=0.03)
    assert float(test_noise.std()) == pytest.approx(data.test_noise_std, rel=0.03)
    assert data.test_noise_std < data.train_noise_std
    assert data.test_noise_variance == pytest.approx(data.test_noise_std**2)


def test_regression_data_is_reproducible_per_seed() -> None:
    first, again, other = regression_data(1), regression_data(1), regression_data(2)
    assert torch.equal(first.train.targets, again.train.targets)
    assert not torch.equal(first.train.inputs, other.train.inputs)


def test_digits_are_scaled_to_unit_interval_with_ten_classes() -> None:
    data = load_digits(seed=0)
    assert len(data.train) + len(data.test) == 1797
    assert data.train.inputs.shape[1:] == (1, 8, 8)
    assert float(data.train.inputs.min()) == 0.0 and float(data.train.inputs.max()) == 1.0
    assert sorted(data.test.targets.unique().tolist()) == list(range(10))


def test_mnist_loads_offline_subset_with_documented_counts() -> None:
    data = load_mnist(os.environ["INTROSPECT_DATA"])
    assert data.train.inputs.shape == (4000, 1, 28, 28) and data.test.inputs.shape == (1000, 1, 28, 28)
    assert data.train.inputs.dtype == torch.float32 and data.train.targets.dtype == torch.long
    # Normalized with MNIST's mean and std: about zero mean and unit spread.
    assert abs(float(data.train.inputs.mean())) < 0.1 and 0.9 < float(data.train.inputs.std()) < 1.1
    counts = torch.bincount(data.test.targets, minlength=10)
    assert int(counts.sum()) == 1000 and int(counts.min()) >= 80  # all ten digits, roughly balanced


def test_fashion_mnist_loads_offline_subset() -> None:
    data = load_fashion_mnist(os.environ["INTROSPECT_DATA"])
    assert (len(data.train), len(data.test)) == (3443, 1000)
    assert data.class_names[9] == "Ankle boot"


def test_missing_mnist_gives_one_line_saying_where_to_put_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision

    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", no_network)
    monkeypatch.setattr(torchvision.datasets.utils, "download_url", no_network)
    with pytest.raises(DataUnavailableError) as caught:
        load_mnist(tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(tmp_path / "MNIST" / "raw") in message and "--data-dir" in message


def test_cifar_falls_back_to_generated_data_only_in_quick_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision

    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", no_network)
    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", no_network, raising=False)
    fake = load_cifar10(tmp_path, quick=True, seed=0, num_fake=(100, 50))
    assert fake.train.inputs.shape == (100, 3, 32, 32) and len(fake.test) == 50
    assert "generated" in fake.note
    with pytest.raises(DataUnavailableError, match="cifar-10-batches-py"):
        load_cifar10(tmp_path, quick=False)


def test_balanced_probe_spreads_64_over_ten_classes() -> None:
    labels = torch.arange(1000) % 10
    indices = balanced_indices(labels, 64, seed=0)
    counts = torch.bincount(labels[indices], minlength=10).tolist()
    assert sum(counts) == 64 and max(counts) - min(counts) <= 1
    assert len(set(indices.tolist())) == 64
    inputs, probe_labels = balanced_probe(type("S", (), {"inputs": torch.arange(1000.0), "targets": labels})(), 64)
    assert torch.equal(probe_labels, labels[indices]) and torch.equal(inputs, indices.float())


def test_data_dir_defaults_to_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INTROSPECT_DATA", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    assert resolve_data_dir("/elsewhere") == Path("/elsewhere")
