"""--timeout covers every phase and always stops; a file decides neither how long nor how many figures.

Subprocess tests time the process from a timestamp it prints just before the analysis starts,
so that the seconds spent importing torch on a busy machine do not count.
"""

from __future__ import annotations

import collections
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import introspect
from introspect import Artifact, Needs, analyzer
from introspect.artifacts import (
    MAX_FIGURES_PER_ANALYZER,
    MAX_NAME_CHARS,
    MAX_TABLE_ROWS,
)
from introspect.cli import main
from introspect.plotting import (
    MAX_LABEL_CHARS,
    MAX_TEXT_LINE_CHARS,
    new_figure,
    short_label,
)
from introspect.registry import Registry
from introspect.runner import AnalyzerTimeout, PhaseTimeout, run_one, time_limit
from introspect.spec import spec_of
from introspect.subject import Subject, Task

SLACK = 3.0  # seconds for interpreter exit and scheduling on a busy machine


class SwallowingNet(torch.nn.Module):
    """A forward that never ends and swallows every Exception on the way."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        while True:
            try:
                time.sleep(0.01)
            except Exception:  # noqa: BLE001, S110 - the point of the test
                pass


def build_swallowing_net() -> torch.nn.Module:
    """``--arch test_limits:build_swallowing_net`` (pytest puts this folder on ``sys.path``)."""
    return SwallowingNet()


ARCH = "test_limits:build_swallowing_net"


def builtin(name: str):
    return Registry.default(load_plugins=False).get(name)


def exit_code_of(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    with pytest.raises(SystemExit) as caught:
        main(args)
    return caught.value.code, capsys.readouterr().err


# --- timeouts -------------------------------------------------------------------------------------


def test_the_timeout_is_a_base_exception() -> None:
    assert issubclass(AnalyzerTimeout, BaseException) and not issubclass(AnalyzerTimeout, Exception)


def test_a_forward_swallowing_exceptions_in_a_loop_is_still_stopped() -> None:
    start = time.monotonic()
    report = introspect.analyze(SwallowingNet(), torch.randn(4, 2), analyzers=["model_summary"], timeout=1)
    result = report.result("model_summary")
    assert result.status == "failed" and result.reason == "ran past the time limit of 1 s"
    assert report.exit_code == 1 and time.monotonic() - start < 1 + SLACK


def test_an_outer_limit_passes_through_an_analyzer_without_a_limit() -> None:
    outer = object()
    with pytest.raises(AnalyzerTimeout) as caught, time_limit(0.5, limit=outer):
        run_one(Subject.from_model(SwallowingNet(), torch.randn(4, 2)), builtin("model_summary"))
    assert caught.value.limit is outer


def _swallowing_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    checkpoint, probe = tmp_path / "weights.pt", tmp_path / "probe.pt"
    torch.save(SwallowingNet().state_dict(), checkpoint)
    torch.save(torch.randn(4, 2), probe)
    return checkpoint, probe


def test_the_probe_check_is_covered_by_the_timeout(tmp_path: Path) -> None:
    checkpoint, probe = _swallowing_checkpoint(tmp_path)
    start = time.monotonic()
    with pytest.raises(PhaseTimeout, match="did not finish loading within --timeout 1 s"):
        introspect.analyze(checkpoint, analyzers=["weight_histograms"], arch=ARCH, probe=probe, timeout=1)
    assert time.monotonic() - start < 1 + SLACK


def test_loading_past_the_timeout_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    checkpoint, probe = _swallowing_checkpoint(tmp_path)
    args = [
        "analyze",
        str(checkpoint),
        "-a",
        "weight_histograms",
        "--arch",
        ARCH,
        "--probe",
        str(probe),
        "--timeout",
        "1",
        "-o",
        str(tmp_path / "gallery"),
    ]
    code, err = exit_code_of(args, capsys)
    expected = f"introspect: error: {checkpoint}: did not finish loading within --timeout 1 s"
    assert code == 2 and err.strip().splitlines() == [expected]
    assert not (tmp_path / "gallery").exists()


def _endless_savefig(*args: object, **kwargs: object) -> None:
    while True:
        try:
            time.sleep(0.01)
        except Exception:  # noqa: BLE001, S110 - as stubborn as a forward can be
            pass


def test_gallery_writing_past_the_timeout_leaves_no_gallery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    new_figure()  # matplotlib imported before the clock runs: the analyzer itself must fit the limit
    monkeypatch.setattr(FigureCanvasAgg, "draw", _endless_savefig)  # figures are drawn once, then encoded
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with pytest.raises(PhaseTimeout, match="the gallery was not written within --timeout 2 s"):
        introspect.analyze(model, torch.randn(4, 2), analyzers=["weight_histograms"], out_dir=tmp_path / "g", timeout=2)
    assert sorted(os.listdir(tmp_path)) == []  # neither the gallery nor a staging folder nor a lock


def test_gallery_writing_past_the_timeout_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, introspect_checkpoint: Path
) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    new_figure()
    monkeypatch.setattr(FigureCanvasAgg, "draw", _endless_savefig)
    out = tmp_path / "gallery"
    args = ["analyze", str(introspect_checkpoint), "-a", "weight_histograms", "--timeout", "2", "-o", str(out)]
    code, err = exit_code_of(args, capsys)
    assert code == 2 and f"{out}: the gallery was not written within --timeout 2 s" in err
    assert not out.exists() and not [name for name in os.listdir(tmp_path) if name.startswith(".gallery")]


def run_script(body: str, folder: Path, timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``body`` from a file (TorchScript needs the source) in a fresh interpreter.

    Returns the finished process and the seconds it ran after printing ``START``.
    """
    script = folder / "script.py"
    script.write_text(textwrap.dedent(body), encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    started = None
    for line in process.stdout:
        if line.startswith("START"):
            started = time.monotonic()
            break
    out, err = process.communicate(timeout=timeout)
    assert started is not None, err
    return subprocess.CompletedProcess(process.args, process.returncode, out, err), time.monotonic() - started


WATCHDOG_PROLOGUE = """
    import sys, warnings, torch, introspect
    from introspect import watchdog
    watchdog.GRACE_SECONDS, watchdog.BACKSTOP_SECONDS = 1.0, 1.0
    warnings.simplefilter("ignore")
"""


def test_a_scripted_infinite_loop_is_ended_with_exit_code_2(tmp_path: Path) -> None:
    # TorchScript runs the loop in C++: no signal handler runs, but the watchdog thread does.
    process, seconds = run_script(
        WATCHDOG_PROLOGUE
        + """
    class Loop(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            while True:
                x = x * 1.0
            return x
    model = torch.jit.script(Loop())
    print("START", flush=True)
    introspect.analyze(model, torch.randn(4, 2), torch.tensor([0, 1, 0, 1]), analyzers=["confusion_matrix"], timeout=1)
    print("not stopped", flush=True)
    """,
        tmp_path,
    )
    assert process.returncode == 2, process.stderr
    assert seconds < 1 + 1 + SLACK and "not stopped" not in process.stdout
    lines = [line for line in process.stderr.splitlines() if line.startswith("introspect:")]
    expected = (
        "introspect: error: the analyzer confusion_matrix was still running 1 s after --timeout 1 s "
        "(native code that cannot be interrupted); stopped"
    )
    assert lines == [expected]


def test_c_code_holding_the_gil_is_killed_by_the_watchdog_process(tmp_path: Path) -> None:
    # sum() over an endless C iterator holds the GIL and checks no signals: only another process can stop it.
    process, seconds = run_script(
        WATCHDOG_PROLOGUE
        + """
    import itertools
    class Stuck(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2, 2)
        def forward(self, x):
            return sum(itertools.repeat(0))
    print("START", flush=True)
    introspect.analyze(Stuck(), torch.randn(4, 2), analyzers=["model_summary"], timeout=1)
    """,
        tmp_path,
    )
    assert process.returncode == -signal.SIGKILL, process.stderr
    assert seconds < 1 + 1 + 1 + SLACK
    assert "the analyzer model_summary was still running" in process.stderr


@pytest.mark.slow
def test_the_watchdog_removes_the_staging_folder_when_it_ends_the_process(tmp_path: Path) -> None:
    process, _ = run_script(
        WATCHDOG_PROLOGUE
        + f"""
    import itertools
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    def stuck(self, *args, **kwargs):
        sum(itertools.repeat(0))
    FigureCanvasAgg.draw = stuck
    from introspect.plotting import new_figure
    new_figure()
    print("START", flush=True)
    model, inputs, out = torch.nn.Linear(2, 2), torch.randn(4, 2), {str(tmp_path / "g")!r}
    introspect.analyze(model, inputs, analyzers=["weight_histograms"], out_dir=out, timeout=2)
    """,
        tmp_path,
    )
    assert process.returncode == -signal.SIGKILL, process.stderr
    assert "writing the gallery" in process.stderr
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".g.tmp")] and not (tmp_path / "g").exists()
    assert sorted(os.listdir(tmp_path)) == [".g.lock", "script.py"]  # the lock file of a killed run is harmless


# --- files that are not regular files ------------------------------------------------------------


def run_cli(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "introspect", *args],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=False,
    )
    return result, time.monotonic() - start


@pytest.mark.parametrize("command", [["info", "{fifo}"], ["analyze", "{fifo}", "--all", "-o", "{folder}/g"]])
def test_a_fifo_checkpoint_is_refused_promptly(tmp_path: Path, command: list[str]) -> None:
    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)
    result, _ = run_cli(*(part.format(fifo=fifo, folder=tmp_path) for part in command))
    assert result.returncode == 2 and "not a regular file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "g").exists()


@pytest.mark.slow
def test_a_fifo_or_char_device_probe_is_refused_promptly(tmp_path: Path) -> None:
    fifo = tmp_path / "probe.pt"
    os.mkfifo(fifo)
    torch.save(SwallowingNet().state_dict(), tmp_path / "weights.pt")
    for probe in (fifo, Path("/dev/zero")):
        args = ["analyze", str(tmp_path / "weights.pt"), "-a", "weight_histograms", "--probe", str(probe)]
        result, _ = run_cli(*args, "-o", str(tmp_path / "g"))
        assert result.returncode == 2 and "not a regular file" in result.stderr, result.stderr


# --- figure caps ---------------------------------------------------------------------------------


def test_5000_tiny_layers_give_three_pages_and_a_table_of_every_tensor() -> None:
    weights = {f"layer{index}.weight": torch.randn(2, 2) for index in range(5000)}
    result = run_one(Subject(weights=weights), builtin("weight_histograms"))
    figures = [artifact for artifact in result.artifacts if artifact.figure is not None]
    [table] = [artifact for artifact in result.artifacts if artifact.table is not None]
    assert len(figures) == 3 and sum(len(artifact.figure.axes) for artifact in figures) == 36
    assert len(table.table) == MAX_TABLE_ROWS + 1 and table.table[-1]["tensor"] == "and 4,000 more"
    assert [row["tensor"] for row in table.table[:3]] == ["layer0.weight", "layer1.weight", "layer2.weight"]
    row = table.table[7]
    assert row["shape"] == "2x2" and row["mean"] == pytest.approx(float(weights["layer7.weight"].double().mean()))
    assert row["std"] == pytest.approx(float(weights["layer7.weight"].double().std(unbiased=False)))


def test_the_table_lists_every_layer_when_it_fits() -> None:
    weights = {f"block{index}.conv.weight": torch.randn(3, 3) for index in range(50)}
    weights["block3.conv.weight"][0, 0] = float("nan")
    result = run_one(Subject(weights=weights), builtin("weight_histograms"))
    [table] = [artifact.table for artifact in result.artifacts if artifact.table is not None]
    assert [row["tensor"] for row in table] == list(weights)
    assert table[3]["non_finite"] == 1
    assert table[3]["max"] == pytest.approx(float(np.nanmax(weights["block3.conv.weight"])))


def test_forward_analyzers_on_300_dense_layers_are_capped() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(300)])
    subject = Subject.from_model(model, torch.randn(8, 2))
    activations = run_one(subject, builtin("activations"))
    figures = [artifact for artifact in activations.artifacts if artifact.figure is not None]
    assert sum(len(artifact.figure.axes) for artifact in figures) <= 48 and len(figures) == 12
    assert [row["layer"] for row in activations.artifacts[-1].table] == [str(index) for index in range(300)]
    health = run_one(subject, builtin("activation_health"))
    assert len(health.artifacts) == 4 and len(health.artifacts[-1].table) == 300  # bars, 2 pages, the table


@analyzer(needs=Needs.WEIGHTS)
def prolific(subject, /):
    """A plugin that draws far too much."""
    return [Artifact(name=f"f{index}", caption="x", figure=new_figure(1, 1)) for index in range(100)] + [
        Artifact(name="rows", caption="x", table=[{"n": index} for index in range(5000)])
    ]


def test_the_runner_caps_what_any_analyzer_returns() -> None:
    result = run_one(Subject(weights={"w": torch.ones(1)}), spec_of(prolific))
    figures = [artifact for artifact in result.artifacts if artifact.figure is not None]
    assert len(figures) == MAX_FIGURES_PER_ANALYZER and "52 more figures were left out" in figures[-1].caption
    table = result.artifacts[-1].table
    assert len(table) == MAX_TABLE_ROWS + 1 and table[-1]["n"] == "and 4,000 more"


# --- text in figures -----------------------------------------------------------------------------

HUGE = "x" * 1_000_000


def _all_text(figure) -> list[str]:
    from matplotlib.text import Text

    figure.canvas.draw()  # tick labels exist only once drawn
    return [text.get_text() for text in figure.findobj(Text)]


def test_a_huge_layer_name_is_cut_in_every_figure_and_bounded_in_the_manifest() -> None:
    # Layer and class names come from the file, as long as it likes; an unknown activation class
    # makes activation_health draw every layer with its class name.
    huge_class = type("C" * 100_000, (torch.nn.ReLU,), {})
    model = torch.nn.Sequential(collections.OrderedDict([(HUGE, torch.nn.Linear(2, 2)), ("act", huge_class())]))
    labels = torch.tensor([0, 1, 0, 1])
    task = Task(kind="classification", input_shape=(2,), class_names=(HUGE, "b"))
    subject = Subject.from_model(model, torch.randn(4, 2), labels, task=task)
    for name in ("weight_histograms", "activations", "activation_health", "confusion_matrix", "input_saliency"):
        result = run_one(subject, builtin(name))
        assert result.status == "ok", result.reason
        texts = []
        for artifact in result.artifacts:
            assert len(artifact.caption) <= 4000 and (artifact.layer is None or len(artifact.layer) <= MAX_NAME_CHARS)
            if artifact.figure is not None:
                start = time.monotonic()
                texts += _all_text(artifact.figure)
                assert time.monotonic() - start < 10, name
        assert max(len(line) for text in texts for line in text.split("\n")) <= MAX_TEXT_LINE_CHARS, name
        named = [text for text in texts if "xxx" in text or "CCC" in text]
        assert named, name
        assert all(text.count("x") <= MAX_LABEL_CHARS and text.count("C") <= MAX_LABEL_CHARS for text in named), name


def test_short_label_keeps_short_names_and_cuts_long_ones_on_one_line() -> None:
    assert short_label("fc1.weight") == "fc1.weight"
    assert short_label("a" * 100) == "a" * (MAX_LABEL_CHARS - 1) + "\u2026"
    assert short_label("two\nlines") == "two lines"


# --- warnings ------------------------------------------------------------------------------------


@analyzer(needs=Needs.WEIGHTS)
def noisy(subject, /):
    """Warns the way numpy and torch do."""
    np.log(np.zeros(1))
    warnings.warn("a torch-style notice", UserWarning)  # noqa: B028 - warned twice from two places, as torch does
    warnings.warn("a torch-style notice", UserWarning)  # noqa: B028
    return []


def test_warnings_are_recorded_per_analyzer_not_printed(capsys: pytest.CaptureFixture) -> None:
    result = run_one(Subject(weights={"w": torch.ones(1)}), spec_of(noisy))
    assert result.status == "ok"
    assert result.warnings == ("RuntimeWarning: divide by zero encountered in log", "UserWarning: a torch-style notice")
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_the_time_of_a_100k_tensor_analysis_grows_with_the_data() -> None:
    weights = {f"t{index}.weight": torch.randn(2) for index in range(100_000)}
    start = time.monotonic()
    result = run_one(Subject(weights=weights), builtin("weight_histograms"))
    assert result.status == "ok" and len(result.artifacts) == 4
    assert time.monotonic() - start < 30  # was minutes, then a MemoryError
    buffer = io.BytesIO()
    result.artifacts[0].figure.savefig(buffer, format="png")
    assert buffer.tell() > 0
