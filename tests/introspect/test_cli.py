"""The command line: exit codes, one-line errors, and no torch import for --help and list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from introspect.cli import main


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``introspect`` in a fresh interpreter, as a user would."""
    return subprocess.run(
        [sys.executable, "-c", "from introspect.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def exit_code_of(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(args)
    captured = capsys.readouterr()
    return caught.value.code, captured.out, captured.err


@pytest.mark.parametrize("args", [["--help"], ["list"], ["list", "--json"]])
def test_help_and_list_do_not_import_torch(args: list[str]) -> None:
    probe = (
        f"import sys; from introspect.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    "
        "pass\nprint('TORCH' if 'torch' in sys.modules else 'NO-TORCH')"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().endswith("NO-TORCH"), result.stdout + result.stderr


def test_list_json_has_needs_and_summaries(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = exit_code_of(["list", "--json"], capsys)
    rows = {row["name"]: row for row in json.loads(out)}
    assert code == 0
    assert rows["weight_histograms"]["needs"] == ["weights"]
    assert rows["activations"]["package"] == "introspect"


def test_analyze_writes_gallery_and_exits_zero(
    introspect_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out_dir = tmp_path / "gallery"
    code, out, err = exit_code_of(
        ["analyze", str(introspect_checkpoint), "--all", "-o", str(out_dir), "--device", "cpu"], capsys
    )
    assert code == 0, err
    assert out.strip() == str(out_dir / "index.html")
    assert "[1/" in err and "weight_histograms: ok" in err
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert (
        manifest["checkpoint"]["sha256"]
        and manifest["header"]["parameters"]["total"] == 4 * 8 + 8 + 8 * 6 + 6 + 6 * 3 + 3
    )


def test_analyze_refuses_existing_folder_without_force(
    introspect_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "g").mkdir()
    code, _, err = exit_code_of(["analyze", str(introspect_checkpoint), "--all", "-o", str(tmp_path / "g")], capsys)
    assert (
        code == 2 and err.strip() == f"introspect: error: {tmp_path / 'g'}: already exists; pass --force to replace it"
    )


def test_unreadable_checkpoint_is_one_line_exit_two_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage bytes")
    code, _, err = exit_code_of(["analyze", str(bad), "--all", "-o", str(tmp_path / "g")], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err and str(bad) in err
    assert not (tmp_path / "g").exists()


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"")
    result = run_cli("--debug", "info", str(bad))
    assert result.returncode == 2 and "Traceback" in result.stderr and "the file is empty" in result.stderr


class Broken(torch.nn.Module):
    """A model whose forward always raises."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("forward is broken")


def test_failed_analyzer_gives_exit_one_with_gallery(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "broken.pt"
    torch.save(Broken(), path)
    code, _, err = exit_code_of(
        [
            "analyze",
            str(path),
            "--all",
            "--trust-pickle",
            "--input-shape",
            "3",
            "-o",
            str(tmp_path / "g"),
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert code == 1
    assert "activations failed: RuntimeError: forward is broken" in err
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert {a["name"]: a["status"] for a in manifest["analyzers"]}["weight_histograms"] == "ok"


def test_no_analyzer_selected_is_a_usage_error(introspect_checkpoint: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = exit_code_of(["analyze", str(introspect_checkpoint)], capsys)
    assert code == 2 and "--all or -a NAME" in err


def test_unknown_analyzer_name_is_exit_two_with_suggestion(
    introspect_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code, _, err = exit_code_of(
        ["analyze", str(introspect_checkpoint), "-a", "activation", "-o", str(tmp_path / "g")], capsys
    )
    assert code == 2 and "Did you mean activations" in err


def test_info_json_describes_layers_and_task(introspect_checkpoint: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = exit_code_of(["info", str(introspect_checkpoint), "--json", "--device", "cpu"], capsys)
    description = json.loads(out)
    assert code == 0
    assert description["format"] == "introspect-v1"
    assert description["layers"][0] == {"name": "0.weight", "shape": [8, 4]}
    assert description["task"]["class_names"] == ["a", "b", "c"]
    assert description["probe_size"] == 12 and description["metrics"] == {"test_accuracy": 0.75}


def test_open_flag_hands_the_index_to_the_browser(
    introspect_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import webbrowser

    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    code, _, _ = exit_code_of(
        ["analyze", str(introspect_checkpoint), "-a", "weight_histograms", "-o", str(tmp_path / "g"), "--open"], capsys
    )
    assert code == 0 and opened == [(tmp_path / "g" / "index.html").resolve().as_uri()]


def test_unknown_architecture_gives_weights_only_gallery_and_exit_one(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from introspect.checkpoint import make_checkpoint, save_checkpoint
    from introspect.testing import build_test_network

    model = build_test_network({"sizes": [4, 5, 2]})
    path = save_checkpoint(tmp_path / "alien.pt", make_checkpoint(model, architecture="alien-net", config={}, task={}))
    code, _, err = exit_code_of(["analyze", str(path), "--all", "-o", str(tmp_path / "g"), "--device", "cpu"], capsys)
    assert code == 1
    assert f"introspect: warning: {path}: architecture 'alien-net' is not registered" in err
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert (
        manifest["header"]["warnings"]
        and {a["name"]: a["status"] for a in manifest["analyzers"]}["weight_histograms"] == "ok"
    )
    assert "Warning: " in (tmp_path / "g" / "index.html").read_text()


def test_nan_weights_are_analyzed_and_reported_with_exit_one(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    state = torch.nn.Linear(3, 2).state_dict()
    state["weight"][0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pt")
    code, _, err = exit_code_of(
        ["analyze", str(tmp_path / "nan.pt"), "--all", "-o", str(tmp_path / "g"), "--device", "cpu"], capsys
    )
    assert code == 1
    assert "1 weight tensor(s) hold NaN or Inf values (weight)" in err


def test_several_checkpoints_are_written_page_by_page(
    introspect_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each page is written before the next checkpoint is analyzed, so only one report is held at a time.
    import introspect.api
    from introspect.report import GalleryWriter

    events: list[str] = []
    real_analyze, real_add_page = introspect.api.analyze, GalleryWriter.add_page

    def analyze(target, **kwargs):
        events.append(f"analyze {Path(target).stem}")
        return real_analyze(target, **kwargs)

    def add_page(self, title, *args, **kwargs):
        events.append(f"write {title}")
        return real_add_page(self, title, *args, **kwargs)

    monkeypatch.setattr(introspect.api, "analyze", analyze)
    monkeypatch.setattr(GalleryWriter, "add_page", add_page)
    second = tmp_path / "second.pt"
    second.write_bytes(introspect_checkpoint.read_bytes())
    out_dir = tmp_path / "gallery"
    args = ["analyze", str(introspect_checkpoint), str(second), "-a", "weight_histograms", "-o", str(out_dir)]
    code, out, err = exit_code_of(args, capsys)
    first = introspect_checkpoint.stem
    assert code == 0, err
    assert events == [f"analyze {first}", f"write {first}", "analyze second", "write second"]
    index = json.loads((out_dir / "manifest.json").read_text())
    assert [page["title"] for page in index["pages"]] == [first, "second"]
    assert (out_dir / "second" / "index.html").is_file()
