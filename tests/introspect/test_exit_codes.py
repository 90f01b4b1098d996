"""Exit codes: usage errors are one line and exit 2; exit 3 is only for bugs, with --debug anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

import introspect.cli as cli_module
from introspect.cli import main


def exit_code_of(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    with pytest.raises(SystemExit) as caught:
        main(args)
    return caught.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["info"], "Missing argument 'CHECKPOINT'"),
        (["analyze", "x.pt"], "choose analyzers with --all"),
        (["analyze", "x.pt", "--all", "--bogus"], "No such option '--bogus'"),
        (["info", "x.pt", "--max-probe", "0"], "--max-probe"),
        (["info", "x.pt", "--max-memory", "lots"], "is not a size"),
        (["nonsense"], "No such command 'nonsense'"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    code, err = exit_code_of(args, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("introspect: error: ") and message in err


def test_debug_is_accepted_after_the_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = exit_code_of(["info", str(tmp_path / "missing.pt"), "--debug"], capsys)
    assert code == 2
    assert "Traceback" in err and err.strip().endswith("no such file")


def test_a_bug_is_exit_3_and_debug_shows_its_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("introspect.loading.load_checkpoint", broken)
    code, err = exit_code_of(["info", str(tmp_path / "x.pt")], capsys)
    assert code == cli_module.EXIT_BUG == 3
    assert err.count("\n") == 1 and "internal error: ZeroDivisionError: a bug" in err
    code, err = exit_code_of(["info", str(tmp_path / "x.pt"), "--debug"], capsys)
    assert code == 3 and "Traceback" in err and "ZeroDivisionError" in err
