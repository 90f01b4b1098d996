"""Without an optional extra, asking for what needs it gets one line naming the pip command."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

from introspect.cli import main


def exit_code_of(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(args)
    captured = capsys.readouterr()
    return caught.value.code, captured.out, captured.err


def tiny_safetensors(path: Path) -> Path:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    return path


@pytest.mark.parametrize(
    ("missing", "config", "arch", "hint"),
    [
        ("safetensors", None, None, "pip install 'introspect[safetensors]'"),
        ("transformers", {"model_type": "bert", "architectures": ["BertModel"]}, None, "pip install 'introspect[hf]'"),
        ("timm", None, "timm:resnet18", "pip install 'introspect[timm]'"),
    ],
)
def test_a_missing_extra_is_named_in_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    missing: str,
    config: dict | None,
    arch: str | None,
    hint: str,
    capsys,
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import missing` raise ImportError
    tiny_safetensors(tmp_path / "model.safetensors")
    if config is not None:
        (tmp_path / "config.json").write_text(json.dumps(config))
    code, _, err = exit_code_of(["info", str(tmp_path), *(["--arch", arch] if arch else [])], capsys)
    assert code == 2 and hint in err and len(err.strip().splitlines()) == 1, err
