"""The quality script: bars judged on stub results, the data folder described, Markdown, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from scripts import quality
from scripts.quality import BARS, DataSource, Outcome, inspect_data_dir, judge, markdown_report, passes
from tests.conftest import SHARED_DATASETS

SUBSETS = {"MNIST": DataSource("MNIST", 4000, 1000), "FashionMNIST": DataSource("FashionMNIST", 3443, 1000)}


def _classifier_metrics(accuracy: float, **more: object) -> dict[str, object]:
    return {
        "test_accuracy": accuracy,
        "best_test_accuracy": accuracy + 0.002,
        "epochs_run": 12,
        "stopped_early": True,
        "num_train": 3600,
        "num_validation": 400,
        "num_test": 1000,
        **more,
    }


def _regression_metrics(mse: float) -> dict[str, object]:
    return {"test_mse": mse, "noise_variance": 0.09, "true_function_test_mse": 0.098, "epochs_run": 1500}


@pytest.mark.parametrize(
    ("network", "value", "expected"),
    [
        ("lenet5", 0.96, True),  # the bar itself passes
        ("lenet5", 0.9599, False),
        ("mnist-mlp", 0.921, True),
        ("mnist-mlp", 0.919, False),
        ("fashion-cnn", 0.78, True),
        ("fashion-cnn", 0.77, False),
        ("fashion-mlp", 0.75, True),
        ("fashion-mlp", 0.749, False),
    ],
)
def test_accuracy_bars(network: str, value: float, expected: bool) -> None:
    assert passes(BARS[network], _classifier_metrics(value)) is expected


@pytest.mark.parametrize(("mse", "expected"), [(0.09, True), (0.18, True), (0.1801, False), (1.0, False)])
def test_regression_bar_is_twice_the_noise_variance(mse: float, expected: bool) -> None:
    assert passes(BARS["regression-mlp"], _regression_metrics(mse)) is expected


def test_missing_metrics_fail() -> None:
    assert not passes(BARS["lenet5"], {})
    assert not passes(BARS["regression-mlp"], {"test_mse": 0.1})


def test_every_network_has_a_bar_and_the_homework_figures() -> None:
    assert set(BARS) == {"lenet5", "mnist-mlp", "fashion-cnn", "fashion-mlp", "regression-mlp"}
    assert [BARS[name].homework.split()[0] for name in ("lenet5", "mnist-mlp", "fashion-cnn", "fashion-mlp")] == [
        "99.1%",
        "97.1%",
        "89.3%",
        "88.1%",
    ]
    assert BARS["regression-mlp"].homework is None


def test_rows_say_pass_fail_shortfall_and_data() -> None:
    good = judge(Outcome("lenet5", _classifier_metrics(0.975), 120.0), SUBSETS)
    bad = judge(Outcome("fashion-mlp", _classifier_metrics(0.735), 60.0), SUBSETS)
    regression = judge(Outcome("regression-mlp", _regression_metrics(0.108), 90.0), SUBSETS)
    assert (good.passed, good.ours, good.bar) == (True, "97.5%", ">= 96.0%")
    assert good.data == "MNIST 4000 train (3600 fit + 400 val) / 1000 test (offline subset)"
    assert "99.1%" in good.homework
    assert not bad.passed and bad.details.startswith("1.5 points short")
    assert regression.passed and regression.ours == "MSE 0.108 (1.20x noise var 0.09)"
    assert regression.homework == "none" and "synthetic" in regression.data


def test_an_error_is_a_failed_row() -> None:
    row = judge(Outcome("mnist-mlp", {}, 1.0, error="DataUnavailableError: no MNIST"), SUBSETS)
    assert not row.passed and row.ours == "error" and "no MNIST" in row.details


def test_markdown_holds_the_table_and_the_data_used(tmp_path: Path) -> None:
    rows = [
        judge(Outcome("lenet5", _classifier_metrics(0.975), 120.0), SUBSETS),
        judge(Outcome("fashion-cnn", _classifier_metrics(0.70), 300.0), SUBSETS),
    ]
    text = markdown_report(rows, SUBSETS, tmp_path, "default settings, CPU, seed 0")
    lines = text.splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert table[0].startswith("| network | ours | bar | result |")
    assert len(table) == 4 and all(line.count("|") == table[0].count("|") for line in table)
    assert "| lenet5 | 97.5% | >= 96.0% | pass | 120 s |" in text
    assert "| fashion-cnn | 70.0% | >= 78.0% | FAIL | 300 s |" in text
    assert "MNIST: 4000 train / 1000 test (offline subset)" in text
    assert "1 of 2 bars met; missed: fashion-cnn" in text


def test_data_folder_is_named_subset_or_full(tmp_path: Path) -> None:
    assert inspect_data_dir(SHARED_DATASETS) == SUBSETS
    for name, (train, test) in {"MNIST": (60000, 10000), "FashionMNIST": (60000, 10000)}.items():
        raw = tmp_path / name / "raw"
        raw.mkdir(parents=True)
        for file, count in zip(quality.IDX_LABEL_FILES, (train, test)):
            (raw / file).write_bytes(b"\x00\x00\x08\x01" + count.to_bytes(4, "big"))
    assert {source.label for source in inspect_data_dir(tmp_path).values()} == {"full dataset"}
    assert {source.label for source in inspect_data_dir(tmp_path / "nothing").values()} == {"missing"}


def test_main_exit_code_follows_the_bars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = {"lenet5": _classifier_metrics(0.97), "regression-mlp": _regression_metrics(0.12)}

    def fake_train(network: str, *args: object, **kwargs: object) -> Outcome:
        return Outcome(network, results[network], 1.0)

    monkeypatch.setattr(quality, "train_one", fake_train)
    markdown = tmp_path / "quality.md"
    passed = CliRunner().invoke(
        quality.main, ["lenet5", "regression-mlp", "--data-dir", str(SHARED_DATASETS), "--markdown", str(markdown)]
    )
    assert passed.exit_code == 0, passed.output
    assert "2 of 2 bars met" in markdown.read_text()
    results["lenet5"] = _classifier_metrics(0.95)
    missed = CliRunner().invoke(quality.main, ["lenet5", "--data-dir", str(SHARED_DATASETS)])
    assert missed.exit_code == 1 and "0 of 1 bars met; missed: lenet5" in missed.stdout
    assert CliRunner().invoke(quality.main, ["lenet6"]).exit_code == 2  # not a network with a bar


@pytest.mark.slow
def test_real_entry_point_quick(tmp_path: Path) -> None:
    # Two epochs keep it to seconds; the bar is certainly missed then, so the exit code is 1.
    markdown = tmp_path / "quality.md"
    arguments = [
        "regression-mlp",
        "--quick",
        "--epochs",
        "2",
        "--out-dir",
        str(tmp_path / "runs"),
        "--markdown",
        str(markdown),
    ]
    result = CliRunner().invoke(quality.main, arguments)
    assert result.exit_code == 1, result.output
    assert (tmp_path / "runs" / "regression-mlp.pt").is_file()
    text = markdown.read_text()
    assert "| regression-mlp | MSE " in text and "| FAIL |" in text and "QUICK mode" in text
    assert "regression-mlp" in result.stdout and "quality: training regression-mlp" in result.stderr
