"""The fast path for ``torch.save`` zips: tensors built from the checked stub tree match ``torch.load``'s."""

from __future__ import annotations

import collections
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch

from introspect.budget import Budget
from introspect.loading import non_finite_warnings
from introspect.readers.rebuild import UNSUPPORTED, rebuild_payload
from introspect.readers.tensors import dtype_named
from introspect.readers.torchfile import check_zip_pickle, read_torch_bytes, read_torch_file

DTYPES = [
    torch.float32,
    torch.float64,
    torch.float16,
    torch.bfloat16,
    torch.int8,
    torch.uint8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.bool,
    torch.complex64,
]


def _varied_payload() -> dict[str, Any]:
    """Every dtype, a shared storage, non-contiguous and offset views, empty tensors, nested containers."""
    generator = torch.Generator().manual_seed(3)
    base = torch.randn(6, 5, generator=generator)
    state: dict[str, Any] = {
        f"by_dtype.{str(dtype).split('.')[1]}": (torch.randn(3, 4, generator=generator) * 50).to(dtype)
        for dtype in DTYPES
    }
    state.update(
        {
            "shared.whole": base,
            "shared.transposed": base.t(),
            "shared.row": base[2],
            "shared.column_every_other": base[1::2, 3],
            "shared.same_object": base,
            "empty.vector": torch.empty(0),
            "empty.matrix": torch.zeros(3, 0, dtype=torch.int32),
            "scalar": torch.tensor(2.5),
            "expanded": torch.ones(1).expand(4, 3),
            "special": torch.tensor([float("nan"), float("inf"), -0.0, 1e-45]),
        }
    )
    ordered = collections.OrderedDict(layer=torch.arange(6).reshape(2, 3))
    ordered._metadata = collections.OrderedDict({"": {"version": 1}})  # type: ignore[attr-defined]
    return {"state_dict": state, "ordered": ordered, "plain": [1, 2.0, "three", None, True, (4, "5")]}


def _assert_same(built: Any, loaded: Any) -> None:
    """Same types, containers, dtypes, shapes, strides, offsets and bytes, all the way down."""
    assert type(built) is type(loaded)
    if isinstance(loaded, torch.Tensor):
        assert (built.dtype, built.shape, built.stride()) == (loaded.dtype, loaded.shape, loaded.stride())
        assert built.storage_offset() == loaded.storage_offset()
        assert built.untyped_storage().nbytes() == loaded.untyped_storage().nbytes()
        assert bytes(built.untyped_storage()) == bytes(loaded.untyped_storage())
        assert built.requires_grad == loaded.requires_grad
        assert type(built._backward_hooks) is type(loaded._backward_hooks)
    elif isinstance(loaded, dict):
        assert list(built) == list(loaded)
        assert getattr(built, "__dict__", {}) == getattr(loaded, "__dict__", {})
        for key in loaded:
            _assert_same(built[key], loaded[key])
    elif isinstance(loaded, (list, tuple)):
        assert len(built) == len(loaded)
        for mine, theirs in zip(built, loaded):
            _assert_same(mine, theirs)
    else:
        assert built == loaded


def _storages_shared(state: dict[str, torch.Tensor]) -> dict[str, int]:
    """For each tensor, the index of the first tensor whose storage it shares."""
    pointers = [tensor.untyped_storage().data_ptr() for tensor in state.values()]
    return {name: pointers.index(pointer) for name, pointer in zip(state, pointers) if pointer}


def _save(tmp_path: Path, payload: Any, name: str = "varied.pt") -> Path:
    path = tmp_path / name
    torch.save(payload, path)
    return path


def test_fast_path_builds_what_torch_load_builds(tmp_path: Path) -> None:
    path = _save(tmp_path, _varied_payload())
    built = rebuild_payload(*check_zip_pickle(path, Budget()))
    assert built is not UNSUPPORTED
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    _assert_same(built, loaded)
    assert _storages_shared(built["state_dict"]) == _storages_shared(loaded["state_dict"])
    assert built["state_dict"]["shared.same_object"] is built["state_dict"]["shared.whole"]
    assert built["state_dict"]["shared.row"].untyped_storage().data_ptr() == (
        built["state_dict"]["shared.whole"].untyped_storage().data_ptr()
    )


def test_fast_path_tensors_own_their_memory(tmp_path: Path) -> None:
    path = _save(tmp_path, {"weight": torch.arange(8.0)})
    built = read_torch_file(path, "torch-zip", Budget())
    path.unlink()  # the file is mapped while reading: the tensors must not point into it
    built["weight"] += 1
    assert torch.equal(built["weight"], torch.arange(8.0) + 1)


def test_nested_zip_bytes_take_the_fast_path_too(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    torch.save({"inputs": torch.randn(2, 3), "labels": torch.tensor([1, 0])}, buffer)
    built = read_torch_bytes(buffer.getvalue(), Budget(), "sample_inputs.pt")
    _assert_same(built, torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))


@pytest.mark.parametrize(
    "payload",
    [
        {"device": torch.device("cpu")},  # a global the fast path does not build
        {"parameter": torch.nn.Parameter(torch.ones(2))},  # another rebuild function
        {"counter": collections.Counter(a=1)},
        {"weight": torch.ones(2), "raw": b"bytes"},  # protocol 2 pickles bytes through _codecs.encode
    ],
    ids=["device", "parameter", "counter", "bytes"],
)
def test_anything_else_goes_to_torch_load(tmp_path: Path, payload: dict[str, Any]) -> None:
    path = _save(tmp_path, payload)
    assert rebuild_payload(*check_zip_pickle(path, Budget())) is UNSUPPORTED
    _assert_same(read_torch_file(path, "torch-zip", Budget()), torch.load(path, weights_only=True))


def _rewrite(path: Path, target: Path, change: dict[str, bytes]) -> Path:
    """A copy of the zip at ``path`` with some records' bytes replaced (compressed, so not read in place)."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as copy:
        for info in source.infolist():
            inner = info.filename.split("/", 1)[1]
            copy.writestr(info.filename, change.get(inner, source.read(info)))
    return target


def test_big_endian_or_compressed_files_go_to_torch_load(tmp_path: Path) -> None:
    path = _save(tmp_path, {"weight": torch.arange(4.0)})
    compressed = _rewrite(path, tmp_path / "deflated.pt", {})
    assert rebuild_payload(*check_zip_pickle(compressed, Budget())) is UNSUPPORTED
    big_endian = _rewrite(path, tmp_path / "big.pt", {"byteorder": b"big"})
    assert rebuild_payload(*check_zip_pickle(big_endian, Budget())) is UNSUPPORTED
    _assert_same(read_torch_file(big_endian, "torch-zip", Budget()), torch.load(big_endian, weights_only=True))


def test_dtype_table_names_storages_and_dtypes() -> None:
    assert dtype_named("torch.FloatStorage", "f") is torch.float32
    assert dtype_named("torch.BFloat16Storage", "f") is torch.bfloat16
    assert dtype_named("torch.UntypedStorage", "f") is torch.uint8
    assert dtype_named("torch.float8_e4m3fn", "f") is torch.float8_e4m3fn
    with pytest.raises(Exception, match="unknown type"):
        dtype_named("os.system", "f")


def test_non_finite_warnings_find_each_broken_tensor_among_many() -> None:
    weights = {f"w{index}": torch.ones(3, dtype=torch.float16 if index % 2 else torch.float32) for index in range(500)}
    weights["big"] = torch.zeros(1 << 21)
    weights["ints"] = torch.arange(4)
    assert non_finite_warnings(Path("m.pt"), weights) == []
    weights["w7"][1] = float("nan")
    weights["w400"][0] = float("-inf")
    weights["big"][-1] = float("inf")
    [warning] = non_finite_warnings(Path("m.pt"), weights)
    assert "3 weight tensor(s)" in warning and "(w7, w400, big)" in warning
