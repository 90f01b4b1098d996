"""Comparisons across checkpoints: table numbers, shared layers, drift, the page and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from introspect.cli import main
from introspect.compare import compare_subjects, shared_parameters
from introspect.report import comparison_figures, rerender, write_comparison
from introspect.subject import Subject, Task

HOSTILE = "<img src=x onerror=alert(1)>"


class TinyNet(torch.nn.Module):
    """conv1 (4x1x5x5), optionally conv2, then a dense layer: the shape of NetA1 / NetA2 in miniature."""

    def __init__(self, second_conv: bool) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 4, 5, stride=2)
        self.conv2 = torch.nn.Conv2d(4, 6, 3, stride=2) if second_conv else None
        self.fc = torch.nn.Linear(6 * 1 * 1 if second_conv else 4 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        if self.conv2 is not None:
            x = torch.relu(self.conv2(x))
        return self.fc(x.flatten(1))


def tiny_subject(
    seed: int, *, second_conv: bool = False, freeze: bool = False, history: dict | None = None, initial: bool = True
) -> Subject:
    """A TinyNet on 1x12x12 inputs whose weights moved from a recorded start by a seeded step."""
    torch.manual_seed(seed)
    model = TinyNet(second_conv)
    start = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if not (freeze and name.startswith("conv1")):
                parameter.add_(0.05 * torch.randn_like(parameter))
    if freeze:
        model.conv1.requires_grad_(False)
    task = Task(kind="classification", input_shape=(1, 12, 12), image_shape=(1, 12, 12), class_names=("a", "b", "c"))
    return Subject.from_model(
        model,
        torch.rand(6, 1, 12, 12),
        torch.arange(6) % 3,
        task=task,
        history=history,
        initial_weights=start if initial else {},
        metadata={"architecture": "tiny", "metrics": {"test_accuracy": 0.5 + seed / 100}},
    )


HISTORIES = [
    {
        "epoch": [1, 2, 3],
        "train_loss": [1.0, 0.8, 0.7],
        "val_loss": [1.1, 0.9, 0.95],
        "train_accuracy": [0.3, 0.5, 0.6],
        "val_accuracy": [0.35, 0.58, 0.61],
        "seconds_per_batch": [0.01, 0.02, 0.03],
        "best_epoch": 2,
    },
    {
        "epoch": [1, 2],
        "train_loss": [1.2, 0.6],
        "val_loss": [1.3, 0.75],
        "train_accuracy": [0.2, 0.7],
        "val_accuracy": [0.25, 0.66],
        "seconds_per_batch": [0.004, 0.006],
        "best_epoch": 2,
    },
]


def test_table_numbers_equal_the_histories() -> None:
    subjects = [
        tiny_subject(0, freeze=True, history=HISTORIES[0]),
        tiny_subject(1, second_conv=True, history=HISTORIES[1]),
    ]
    comparison = compare_subjects([("hf", subjects[0]), ("deeper", subjects[1])])
    for row, history, subject in zip(comparison.rows, HISTORIES, subjects):
        best = int(np.argmin(history["val_loss"]))  # the best epoch is the lowest validation loss
        assert row["best_val_accuracy"] == history["val_accuracy"][best]
        assert row["best_val_epoch"] == history["epoch"][best]
        assert row["final_train_loss"] == history["train_loss"][-1] and row["final_val_loss"] == history["val_loss"][-1]
        assert row["seconds_per_batch"] == pytest.approx(np.mean(history["seconds_per_batch"]))
        assert row["epochs"] == len(history["epoch"])
        assert (row["test_metric"], row["test_value"]) == (
            "test_accuracy",
            subject.metadata["metrics"]["test_accuracy"],
        )
        assert row["trainable"] == sum(p.numel() for p in subject.model.parameters() if p.requires_grad)
        assert row["frozen"] == sum(p.numel() for p in subject.model.parameters() if not p.requires_grad)
    assert comparison.rows[0]["frozen"] == 4 * 25 + 4 and comparison.rows[1]["frozen"] == 0
    curves = comparison_figures(comparison)[0]
    assert (
        curves.name == "training_curves"
        and curves.data["curves"]["deeper"]["val_accuracy"] == HISTORIES[1]["val_accuracy"]
    )


def test_missing_history_gives_empty_cells_and_no_curves() -> None:
    comparison = compare_subjects([("a", tiny_subject(0)), ("a", tiny_subject(1))])
    assert comparison.titles == ("a", "a (2)")
    assert comparison.rows[0]["best_val_accuracy"] is None and comparison.rows[0]["final_val_loss"] is None
    # The layers' figures, then the representations of the two networks (CKA on the probe).
    assert [figure.name for figure in comparison_figures(comparison)] == [
        "conv1.weight",
        "fc.weight",
        "representations-1",
    ]


def test_shared_layers_are_exactly_those_with_equal_name_and_shape() -> None:
    shallow, deep = tiny_subject(0), tiny_subject(1, second_conv=True)
    shared, unshared = shared_parameters([shallow, deep])
    assert shared == ["conv1.weight", "conv1.bias", "fc.bias"]
    assert {entry["name"]: entry["shapes"] for entry in unshared} == {
        "fc.weight": [[3, 64], [3, 6]],
        "conv2.weight": [None, [6, 4, 3, 3]],
        "conv2.bias": [None, [6]],
    }
    comparison = compare_subjects([("shallow", shallow), ("deep", deep)])
    assert [layer.name for layer in comparison.shared] == shared
    assert [layer.name for layer in comparison.layers] == ["conv1.weight"]  # biases get numbers, not figures
    assert [figure.layer for figure in comparison_figures(comparison) if figure.layer] == ["conv1.weight"]


def test_drift_norms_equal_numpy_norms() -> None:
    subjects = [tiny_subject(0, freeze=True), tiny_subject(1), tiny_subject(2, initial=False)]
    comparison = compare_subjects(list(zip("abc", subjects)))
    for layer in comparison.shared:
        for subject, drift, relative in zip(subjects[:2], layer.drift, layer.relative_drift):
            final, start = (
                subject.weights[layer.name].double().numpy(),
                subject.initial_weights[layer.name].double().numpy(),
            )
            assert drift == pytest.approx(np.linalg.norm(final - start), rel=1e-12)
            assert relative == pytest.approx(np.linalg.norm(final - start) / np.linalg.norm(start), rel=1e-12)
        assert layer.drift[2] is None and layer.relative_drift[2] is None
    conv = next(layer for layer in comparison.shared if layer.name == "conv1.weight")
    assert conv.drift[0] == 0.0 and conv.drift[1] > 0
    figures = comparison_figures(comparison)
    assert next(f for f in figures if f.layer == "conv1.weight").summary["drift"] == list(conv.drift)


def test_fewer_than_two_checkpoints_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        compare_subjects([("only", tiny_subject(0))])


def test_page_escapes_hostile_names_and_rerenders_from_its_manifest(tmp_path: Path) -> None:
    evil = tiny_subject(0, history=HISTORIES[0])
    weights = {f"{HOSTILE}.weight": torch.ones(2, 1, 3, 3), "fc.bias": torch.zeros(3)}
    plain = Subject(
        weights=weights, initial_weights={f"{HOSTILE}.weight": torch.zeros(2, 1, 3, 3)}, history=HISTORIES[1]
    )
    hostile = Subject(weights=dict(weights), history=HISTORIES[0])
    comparison = compare_subjects([("<script>alert('t')</script> $x^$", plain), (HOSTILE, hostile), ("tiny", evil)])
    index = write_comparison(comparison, tmp_path / "cmp", title=f"<b>{HOSTILE}</b>", description=HOSTILE)
    html = index.read_text()
    assert "<script>alert(" not in html and "<img src=x" not in html and "<b>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&lt;script&gt;" in html
    manifest = json.loads((tmp_path / "cmp" / "manifest.json").read_text())
    assert [layer["name"] for layer in manifest["shared_layers"]] == ["fc.bias"]
    assert manifest["table"][0]["best_val_accuracy"] == max(HISTORIES[1]["val_accuracy"])
    assert all((tmp_path / "cmp" / figure["file"]).stat().st_size > 0 for figure in manifest["figures"])
    (tmp_path / "cmp" / "index.html").unlink()
    assert rerender(tmp_path / "cmp").read_text() == html
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_two_hostile_layer_names_draw_side_by_side(tmp_path: Path) -> None:
    weights = {f"{HOSTILE}.weight": torch.randn(3, 3, 3, 3)}
    subjects = [Subject(weights=weights), Subject(weights={k: v * 2 for k, v in weights.items()})]
    comparison = compare_subjects([("a", subjects[0]), ("b", subjects[1])])
    figure = comparison_figures(comparison)[0]
    assert figure.layer == f"{HOSTILE}.weight" and figure.data["mode"] == "rgb"
    assert figure.data["limit"] == pytest.approx(2 * float(weights[f"{HOSTILE}.weight"].abs().max()))


def exit_code_of(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(args)
    captured = capsys.readouterr()
    return caught.value.code, captured.out, captured.err


def test_cli_compares_two_checkpoints(
    introspect_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    other = shutil.copy(introspect_checkpoint, tmp_path / "other.pt")
    code, out, err = exit_code_of(
        ["compare", str(introspect_checkpoint), str(other), "-o", str(tmp_path / "c"), "--device", "cpu"], capsys
    )
    assert code == 0, err
    assert out.strip() == str(tmp_path / "c" / "index.html")
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert [row["title"] for row in manifest["table"]] == ["toy", "other"]
    assert [row["final_val_loss"] for row in manifest["table"]] == [0.7, 0.7]
    assert manifest["table"][0]["test_value"] == 0.75 and len(manifest["shared_layers"]) == 6


def test_cli_one_checkpoint_is_a_usage_error(
    introspect_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code, _, err = exit_code_of(["compare", str(introspect_checkpoint), "-o", str(tmp_path / "c")], capsys)
    assert code == 2 and "at least 2 checkpoints" in err and err.count("\n") == 1 and "introspect compare --help" in err
    assert not (tmp_path / "c").exists()


def test_cli_bad_checkpoint_is_one_line_exit_two(
    introspect_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    code, out, err = exit_code_of(["compare", str(introspect_checkpoint), str(bad), "-o", str(tmp_path / "c")], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("introspect: error:") and str(bad) in err
    assert not (tmp_path / "c").exists()


def test_collection_index_links_comparison_pages_escaped(tmp_path: Path) -> None:
    from introspect.api import analyze
    from introspect.report import write_collection

    reports = [
        (title, analyze(tiny_subject(seed), analyzers=["weight_histograms"])) for seed, title in enumerate(("a", "b"))
    ]
    links = [{"title": HOSTILE, "href": "comparisons/ab/index.html", "description": "a against b"}]
    html = write_collection(reports, tmp_path / "site", extra_links=links).read_text()
    assert '<a href="comparisons/ab/index.html">&lt;img src=x onerror=alert(1)&gt;</a>: a against b' in html
    assert json.loads((tmp_path / "site" / "manifest.json").read_text())["links"] == links
