"""No file runs code, touches files, or decides how much memory is spent, unless the user says so.

Every payload is built here (see ``payloads.py``); a payload that ran would create its proof file.
The memory cases run the CLI in a subprocess under an address-space limit, so a regression
fails loudly instead of swapping the machine.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from introspect.cli import main
from tests.introspect import payloads

#: torch with its libraries maps about 4 GiB of address space before doing anything; every
#: attack below asks for 10 GiB or more.
ADDRESS_SPACE_LIMIT = 7 << 30


def exit_code_of(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(args)
    captured = capsys.readouterr()
    return caught.value.code, captured.out, captured.err


def run_limited(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The CLI in a fresh interpreter under :data:`ADDRESS_SPACE_LIMIT`."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))

    return subprocess.run(
        [sys.executable, "-c", "from introspect.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


@pytest.mark.parametrize("name", ["evil.pt2", "evil-renamed.pt"])
def test_pickled_export_weight_is_refused_by_name_and_never_runs(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture
) -> None:
    proof = tmp_path / "PWNED"
    path = payloads.pickled_weight_pt2(tmp_path, proof, name)
    code, out, _ = exit_code_of(["info", str(path)], capsys)
    assert code == 0 and "'0.weight' is stored as a pickle" in out
    code, _, err = exit_code_of(["analyze", str(path), "--all", "-o", str(tmp_path / "g"), "--device", "cpu"], capsys)
    assert code == 1 and "--trust-code" in err
    assert not proof.exists()
    assert (tmp_path / "g" / "index.html").exists()  # the weights that are plain tensors were analyzed


def test_opaque_export_constant_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    proof = tmp_path / "PWNED"
    path = payloads.opaque_constant_pt2(tmp_path, proof)
    code, out, _ = exit_code_of(["info", str(path)], capsys)
    assert code == 0 and "'evil' is stored as a pickle" in out and "weights" in out
    assert not proof.exists()


@pytest.mark.parametrize("target", ["torch.ops.aten.from_file.default", "torch.load", "builtins.exec"])
def test_export_graph_outside_the_allow_list_is_not_run(tmp_path: Path, target: str) -> None:
    from introspect.loading import load_checkpoint
    from introspect.needs import Needs

    subject = load_checkpoint(payloads.graph_calling_pt2(tmp_path, target), device="cpu")
    assert subject.model is None and "outside the allow-list" in subject.model_note and target in subject.model_note
    assert Needs.FORWARD not in subject.available()
    assert set(subject.weights) == {"0.weight", "0.bias", "2.weight", "2.bias"}


def test_clean_export_program_runs_without_trust(tmp_path: Path) -> None:
    from introspect.loading import load_checkpoint

    path = payloads.exported_program(tmp_path / "ok.pt2")
    subject = load_checkpoint(path, device="cpu")
    reference = torch.export.load(str(path)).module()
    assert subject.model is not None
    assert torch.allclose(subject.model(subject.probe_inputs), reference(subject.probe_inputs))


def test_torchscript_is_not_run_without_trust_code(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    proof = tmp_path / "users-file"
    proof.write_bytes(b"untouched")
    path = payloads.file_writing_torchscript(tmp_path, proof)
    code, out, _ = exit_code_of(["info", str(path)], capsys)
    assert code == 0 and "--trust-code" in out
    code, _, err = exit_code_of(["analyze", str(path), "--all", "-o", str(tmp_path / "g"), "--device", "cpu"], capsys)
    assert code == 0, err
    assert proof.read_bytes() == b"untouched"
    manifest = (tmp_path / "g" / "manifest.json").read_text()
    assert "fc.weight" in manifest and "--trust-code" in manifest


def test_torchscript_weights_match_what_torch_jit_load_reads(tmp_path: Path) -> None:
    from introspect.budget import Budget
    from introspect.readers.torchscript import read_scripted_weights

    model = torch.jit.script(
        torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8, 3))
    )
    model.save(str(tmp_path / "s.pt"))
    read = read_scripted_weights(tmp_path / "s.pt", Budget())
    expected = dict(torch.jit.load(str(tmp_path / "s.pt")).state_dict())
    assert read.keys() == expected.keys()
    assert all(torch.equal(read[name], expected[name]) for name in expected)


def test_trust_code_runs_torchscript(tmp_path: Path) -> None:
    from introspect.loading import load_checkpoint

    proof = tmp_path / "users-file"
    proof.write_bytes(b"untouched")
    subject = load_checkpoint(
        payloads.file_writing_torchscript(tmp_path, proof), trust_code=True, input_shape=(4,), device="cpu"
    )
    subject.model(subject.probe_inputs)
    assert proof.read_bytes() == b"A" * 8 + b"d"  # the flag unlocks exactly this


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (payloads.stride_zero, "memory budget"),
        (payloads.legacy_huge_storage, "declares more storage bytes than the file holds"),
        (payloads.deflate_bomb, "decompression bomb"),
    ],
)
def test_files_that_declare_huge_sizes_are_refused_before_allocating(tmp_path: Path, build, message: str) -> None:
    path = build(tmp_path / "attack.pt")
    assert path.stat().st_size < 10 << 20
    for command in (["info", str(path)], ["analyze", str(path), "--all", "-o", str(tmp_path / "g")]):
        result = run_limited(*command)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "g").exists()


def test_entries_beyond_max_memory_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "big.pt"
    torch.save({"weight": torch.zeros(1 << 19)}, path)  # 2 MiB
    code, _, err = exit_code_of(["info", str(path), "--max-memory", "1M"], capsys)
    assert code == 2 and "memory budget of 1.0 MiB" in err
    code, _, _ = exit_code_of(["info", str(path), "--max-memory", "8M"], capsys)
    assert code == 0


@pytest.mark.parametrize(
    ("weight", "message"),
    [
        (lambda: torch.empty(3, 3, device="meta"), "meta device"),
        (lambda: torch.randn(3, 3).to_sparse(), "sparse"),
        (lambda: torch.randn(3, 3, dtype=torch.complex64), "complex64"),
    ],
)
def test_weights_that_cannot_be_analyzed_are_named(
    tmp_path: Path, weight, message: str, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "odd.pt"
    torch.save({"layer.weight": weight()}, path)
    code, _, err = exit_code_of(["info", str(path)], capsys)
    assert code == 2 and message in err and "layer.weight" in err


def test_float8_weights_are_widened(tmp_path: Path) -> None:
    from introspect.loading import load_checkpoint

    weight = torch.randn(4, 3).to(torch.float8_e4m3fn)
    torch.save({"layer.weight": weight}, tmp_path / "f8.pt")
    subject = load_checkpoint(tmp_path / "f8.pt", device="cpu")
    assert subject.weights["layer.weight"].dtype == torch.float32
    assert torch.equal(subject.weights["layer.weight"], weight.float())


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)
    result = run_limited("info", str(fifo), timeout=60)
    assert result.returncode == 2 and "not a regular file" in result.stderr


def test_a_format_is_decided_from_the_content_not_the_name(tmp_path: Path) -> None:
    from introspect.checkpoint import sniff_format

    export = payloads.exported_program(tmp_path / "program.pt")
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(tmp_path / "script.pt2"))
    torch.save({"w": torch.ones(1)}, tmp_path / "weights.pt2")
    assert sniff_format(export) == "export"
    assert sniff_format(tmp_path / "script.pt2") == "torchscript"
    assert sniff_format(tmp_path / "weights.pt2") == "torch-zip"


def test_info_lists_a_bounded_number_of_layers_with_short_names(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from introspect.describe import MAX_LISTED_LAYERS

    state = {f"layer{index}.weight": torch.ones(2, 2) for index in range(MAX_LISTED_LAYERS + 50)}
    state["x" * 100_000] = torch.ones(2, 2)
    torch.save(state, tmp_path / "many.pt")
    code, out, _ = exit_code_of(["info", str(tmp_path / "many.pt")], capsys)
    layer_lines = out.split("layers:\n")[1].splitlines()
    assert code == 0 and len(layer_lines) == MAX_LISTED_LAYERS + 1
    assert layer_lines[-1].strip().startswith("... and 51 more") and max(len(line) for line in out.splitlines()) < 400
