"""safetensors files, single and sharded: read exactly, and every forged header refused in one line."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch

pytest.importorskip("safetensors")
from safetensors.torch import save_file  # noqa: E402

from introspect.cli import main  # noqa: E402
from introspect.loading import load_checkpoint  # noqa: E402
from introspect.needs import Needs  # noqa: E402


def exit_code_of(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(args)
    captured = capsys.readouterr()
    return caught.value.code, captured.out, captured.err


def small_state() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "conv.weight": torch.randn(4, 3, 3, 3, generator=generator),
        "conv.bias": torch.randn(4, generator=generator),
        "fc.weight": torch.randn(2, 4, generator=generator).to(torch.float16),
        "steps": torch.tensor([7], dtype=torch.int64),
    }


def forged(path: Path, header: dict, data: bytes, declared_length: int | None = None) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if declared_length is None else declared_length) + raw + data)
    return path


def test_single_file_gives_every_tensor_bit_for_bit_and_only_the_weight_analyzers(tmp_path: Path) -> None:
    state = small_state()
    path = tmp_path / "weights.bin"  # a misleading name: the kind comes from the content
    save_file(state, str(path), metadata={"note": "hello"})
    subject = load_checkpoint(path, device="cpu")
    assert subject.metadata["format"] == "safetensors"
    assert subject.metadata["details"] == {"file_metadata": {"note": "hello"}, "tensors": 4}
    assert set(subject.weights) == {"conv.weight", "conv.bias", "fc.weight"}  # floating point only
    for name, tensor in subject.weights.items():
        assert tensor.dtype == state[name].dtype and torch.equal(tensor, state[name])
    assert subject.model is None and "--arch" in subject.missing_reason(Needs.FORWARD)


def test_sharded_checkpoint_loads_whole_from_index_shard_or_folder(tmp_path: Path) -> None:
    state = small_state()
    save_file({k: state[k] for k in ("conv.weight", "conv.bias")}, str(tmp_path / "m-1.safetensors"))
    save_file({k: state[k] for k in ("fc.weight", "steps")}, str(tmp_path / "m-2.safetensors"))
    weight_map = {"conv.weight": "m-1.safetensors", "conv.bias": "m-1.safetensors"}
    weight_map |= {"fc.weight": "m-2.safetensors", "steps": "m-2.safetensors"}
    index = tmp_path / "m.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    for given in (index, tmp_path / "m-2.safetensors", tmp_path):
        subject = load_checkpoint(given, device="cpu")
        assert subject.metadata["format"] == "safetensors-sharded", given
        assert subject.metadata["details"]["shards"] == 2
        assert {name: t.tolist() for name, t in subject.weights.items()} == {
            name: state[name].tolist() for name in ("conv.weight", "conv.bias", "fc.weight")
        }


def _header(dtype: str = "F32", shape: list[int] | None = None, offsets: list[int] | None = None) -> dict:
    return {"w": {"dtype": dtype, "shape": shape or [2, 2], "data_offsets": offsets or [0, 16]}}


@pytest.mark.parametrize(
    ("header", "data", "declared", "words"),
    [
        (_header(offsets=[0, 16_000_000]), bytes(16), None, "spans"),
        (_header(shape=[1000, 1000], offsets=[0, 4_000_000]), bytes(16), None, "past the end"),
        (_header(), bytes(16), 10**6, "larger than the file"),
        (_header(), bytes(16), 1 << 40, "more than the"),
        (_header(dtype="F4X"), bytes(16), None, "does not know"),
        (
            {
                "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]},
            },
            bytes(16),
            None,
            "overlaps",
        ),
        (_header(shape=[-2, 2]), bytes(16), None, "malformed shape"),
    ],
    ids=[
        "wrong-span",
        "offsets-past-end",
        "header-larger-than-file",
        "absurd-header",
        "unknown-dtype",
        "overlap",
        "shape",
    ],
)
def test_forged_header_is_refused_in_one_line_and_nothing_is_written(
    tmp_path: Path, header: dict, data: bytes, declared: int | None, words: str, capsys: pytest.CaptureFixture
) -> None:
    path = forged(tmp_path / "evil.safetensors", header, data, declared)
    out_dir = tmp_path / "gallery"
    code, _, err = exit_code_of(["analyze", str(path), "--all", "-o", str(out_dir), "--device", "cpu"], capsys)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not out_dir.exists()


def test_index_naming_a_file_outside_its_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    save_file(small_state(), str(tmp_path / "real.safetensors"))
    folder = tmp_path / "model"
    folder.mkdir()
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"conv.weight": "../real.safetensors"}}))
    code, _, err = exit_code_of(["info", str(index)], capsys)
    assert code == 2 and "not a file name in the index's own folder" in err


def test_tensors_over_the_memory_budget_are_refused_before_reading(tmp_path: Path, capsys) -> None:
    path = tmp_path / "big.safetensors"
    save_file({"w": torch.zeros(64, 1024)}, str(path))  # 256 KiB
    code, _, err = exit_code_of(["info", str(path), "--max-memory", "64K"], capsys)
    assert code == 2 and "memory budget" in err


def test_arch_rebuilds_the_model_from_a_safetensors_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    path = tmp_path / "linear.safetensors"
    save_file(model.state_dict(), str(path))
    subject = load_checkpoint(
        path, device="cpu", arch="torch.nn:Linear", arch_kwargs={"in_features": 4, "out_features": 3}
    )
    inputs = torch.randn(5, 4)
    assert torch.allclose(subject.model(inputs), model(inputs))
    assert subject.task.input_shape == (4,) and Needs.GRADIENTS in subject.available()


def test_folder_without_weights_or_config_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = exit_code_of(["info", str(tmp_path)], capsys)
    assert code == 2 and "is a folder without a config.json or safetensors files" in err
