"""Hostile files, built by the tests themselves: each is a few KB and proves its effect by a file.

A payload that ran would create ``proof`` (a path inside the test's tmp folder); the tests check
that it does not exist afterwards.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import os
import pickle
import sys
import zipfile
from pathlib import Path

import torch

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001


class _RunsCommand:
    """Unpickling this runs ``touch proof``."""

    def __init__(self, proof: Path) -> None:
        self.proof = proof

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.proof}",))


def exported_program(path: Path) -> Path:
    """A real ``torch.export`` archive of a small MLP."""
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()
    torch.export.save(torch.export.export(model, (torch.randn(2, 4),)), path)
    return path


def rewrite_zip(source: Path, target: Path, edit: dict) -> Path:
    """Copy a zip, replacing entries whose name ends with a key of ``edit`` by ``edit[key](bytes)``."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as out:
        for info in original.infolist():
            data = original.read(info.filename)
            for suffix, change in edit.items():
                if info.filename.endswith(suffix):
                    data = change(data)
            out.writestr(info, data)
    return target


def pickled_weight_pt2(tmp_path: Path, proof: Path, name: str = "evil.pt2") -> Path:
    """A ``.pt2`` whose first weight is marked ``use_pickle`` and holds a command-running pickle."""
    good = exported_program(tmp_path / "good-for-pickle.pt2")

    def mark_pickled(data: bytes) -> bytes:
        config = json.loads(data)
        config["config"]["0.weight"]["use_pickle"] = True
        return json.dumps(config).encode()

    return rewrite_zip(
        good,
        tmp_path / name,
        {
            "model_weights_config.json": mark_pickled,
            "data/weights/weight_0": lambda _: pickle.dumps(_RunsCommand(proof)),
        },
    )


def opaque_constant_pt2(tmp_path: Path, proof: Path) -> Path:
    """A ``.pt2`` with an opaque constant, which ``torch.export.load`` would ``pickle.loads``."""
    good = exported_program(tmp_path / "good-for-constant.pt2")

    def add_constant(data: bytes) -> bytes:
        config = json.loads(data)
        config["config"]["evil"] = {
            "path_name": "opaque_obj_0",
            "is_param": False,
            "use_pickle": True,
            "tensor_meta": None,
        }
        return json.dumps(config).encode()

    with zipfile.ZipFile(good) as original:
        root = original.namelist()[0].split("/")[0]
    target = rewrite_zip(good, tmp_path / "opaque.pt2", {"model_constants_config.json": add_constant})
    with zipfile.ZipFile(target, "a") as archive:
        archive.writestr(f"{root}/data/constants/opaque_obj_0", pickle.dumps(_RunsCommand(proof)))
    return target


def graph_calling_pt2(tmp_path: Path, target: str) -> Path:
    """A ``.pt2`` whose graph calls ``target`` instead of its ReLU."""
    good = exported_program(tmp_path / "good-for-graph.pt2")

    def swap_target(data: bytes) -> bytes:
        return data.replace(b"torch.ops.aten.relu.default", target.encode())

    return rewrite_zip(good, tmp_path / "graph.pt2", {"models/model.json": swap_target})


_FILE_WRITING_MODULE = """
import torch

class WritesFiles(torch.nn.Module):
    def __init__(self, proof: str):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.proof = proof

    def forward(self, x):
        written = torch.from_file(self.proof, shared=True, size=8, dtype=torch.uint8)
        written.copy_(torch.full([8], 65, dtype=torch.uint8))
        return self.fc(x) + written[0].float() * 0  # used, so TorchScript keeps the write
"""


def file_writing_torchscript(tmp_path: Path, proof: Path) -> Path:
    """A pure-TorchScript model whose forward overwrites ``proof`` with ``torch.from_file(shared=True)``."""
    source = tmp_path / "writes_files_module.py"
    source.write_text(_FILE_WRITING_MODULE)
    spec = importlib.util.spec_from_file_location("writes_files_module", source)
    module = importlib.util.module_from_spec(spec)
    sys.modules["writes_files_module"] = module
    spec.loader.exec_module(module)
    scripted = torch.jit.script(module.WritesFiles(str(proof)))
    path = tmp_path / "scripted.pt"
    scripted.save(str(path))
    return path


def stride_zero(path: Path, side: int = 100_000) -> Path:
    """A one-element storage posing as a ``side x side`` float tensor (40 GB for the default)."""
    torch.save({"weight": torch.zeros(1).expand(side, side)}, path)
    return path


def deflate_bomb(path: Path, inflated: int = 64 << 20) -> Path:
    """A torch zip whose ``data.pkl`` claims ``inflated`` bytes from a few KB of deflate."""
    torch.save({"weight": torch.randn(3, 3)}, path)
    with zipfile.ZipFile(path) as original:
        entries = [(info, original.read(info.filename)) for info in original.infolist()]
    with zipfile.ZipFile(path, "w") as out:
        for info, data in entries:
            if info.filename.endswith("data.pkl"):
                out.writestr(info.filename, data + b"\0" * inflated, compress_type=zipfile.ZIP_DEFLATED)
            else:
                out.writestr(info, data)
    return path


class _DeclaredStorage:
    pass


class _LegacyPickler(pickle.Pickler):
    def __init__(self, handle, numel: int) -> None:
        super().__init__(handle, protocol=2)
        self.numel = numel

    def persistent_id(self, obj):
        if isinstance(obj, _DeclaredStorage):
            return ("storage", torch.FloatStorage, "0", "cpu", self.numel, None)
        return None


class _LegacyTensor:
    def __init__(self, numel: int) -> None:
        self.numel = numel

    def __reduce__(self) -> tuple:
        return (
            torch._utils._rebuild_tensor_v2,
            (_DeclaredStorage(), 0, (self.numel,), (1,), False, collections.OrderedDict()),
        )


def legacy_huge_storage(path: Path, numel: int = 10**10) -> Path:
    """torch's legacy format declaring a storage of ``numel`` floats, with no bytes behind it."""
    with open(path, "wb") as handle:
        for value in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"protocol_version": LEGACY_PROTOCOL, "little_endian": True}):
            pickle.dump(value, handle, protocol=2)
        _LegacyPickler(handle, numel).dump({"weight": _LegacyTensor(numel)})
        pickle.dump(["0"], handle, protocol=2)
    return path
