"""A structural fuzzer: valid checkpoints of every format, their structure mutated.

Where ``test_reliability`` flips bytes, this changes what a crafted file would change: value
types, nesting depth, tensor shapes and dtypes, declared sizes and strides, zip entries, and the
JSON configs of ``torch.export`` archives. Whatever the mutation, ``introspect info`` ends with
exit 0, 1 or 2 and at most one line on stderr: exit 3 ("internal error") is never reached.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from introspect.checkpoint import make_checkpoint
from introspect.cli import main
from introspect.subject import Task
from tests.introspect import payloads

_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def odd_values() -> st.SearchStrategy[Any]:
    """Values of the wrong type, size or depth for any field."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True),
        st.text(max_size=300),
        st.binary(max_size=64),
    )
    tensors = st.builds(
        lambda shape, dtype: torch.zeros(shape, dtype=dtype),
        st.lists(st.integers(0, 5), max_size=4).map(tuple),
        st.sampled_from([torch.float32, torch.int64, torch.bool, torch.float16, torch.uint8]),
    )
    deep = st.integers(1, 400).map(_nested_list)
    return st.one_of(
        scalars,
        tensors,
        deep,
        st.recursive(
            scalars,
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
            max_leaves=12,
        ),
    )


def _nested_list(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def _valid_introspect_checkpoint(registered: str) -> dict[str, Any]:
    from introspect.testing import build_test_network

    config = {"sizes": [4, 8, 3], "activation": "tanh"}
    return make_checkpoint(
        build_test_network(config),
        architecture=registered,
        config=config,
        task=Task(kind="classification", input_shape=(4,), class_names=("a", "b", "c")).to_dict(),
        probe_inputs=torch.randn(6, 4),
        probe_labels=torch.arange(6) % 3,
        history={"epoch": [1, 2], "train_loss": [1.0, 0.5]},
        metrics={"test_accuracy": 0.5},
    )


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into nested dicts (the places a mutation can land)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(_paths(child, (*prefix, key)))
    return found


def _set(root: dict, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        root = root[key]
    root[path[-1]] = value


def assert_clean_exit(
    path: Path, capsys: pytest.CaptureFixture, *extra: str, command: tuple[str, ...] = ("info",)
) -> int:
    """Run the CLI on ``path``; exit 0, 1 or 2, and at most one error line (progress lines aside)."""
    with pytest.raises(SystemExit) as caught:
        main([*command, str(path), "--device", "cpu", *extra])
    err = capsys.readouterr().err
    problems = [line for line in err.splitlines() if not line.startswith(("[", "introspect: warning:"))]
    assert caught.value.code in (0, 1, 2), err
    assert "internal error" not in err and len(problems) <= 1, err
    return caught.value.code


@_SETTINGS
@given(data=st.data())
def test_mutated_introspect_checkpoints_never_reach_exit_3(
    tmp_path: Path, registered_test_architecture: str, capsys: pytest.CaptureFixture, data: st.DataObject
) -> None:
    checkpoint = _valid_introspect_checkpoint(registered_test_architecture)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from([p for p in _paths(checkpoint) if p]))
        _set(checkpoint, path, data.draw(odd_values()))
    target = tmp_path / "mutated.pt"
    torch.save(checkpoint, target)
    if assert_clean_exit(target, capsys) != 2:
        # What loads must also reach the page: the manifest and HTML take every field a file can set.
        out = ("-o", str(tmp_path / "gallery"), "--force")
        assert_clean_exit(target, capsys, "-a", "model_summary", "-a", "training_curves", *out, command=("analyze",))


@_SETTINGS
@given(data=st.data())
def test_mutated_state_dicts_never_reach_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture, data: st.DataObject
) -> None:
    shapes = data.draw(st.lists(st.lists(st.integers(0, 6), max_size=5).map(tuple), min_size=1, max_size=6))
    state = {f"layer{index}.weight": torch.randn(shape) for index, shape in enumerate(shapes)}
    if data.draw(st.booleans()):
        state = {
            data.draw(st.sampled_from(["state_dict", "model", "weights", "other"])): state,
            "epoch": data.draw(odd_values()),
        }
    target = tmp_path / "state.pt"
    torch.save(state, target, _use_new_zipfile_serialization=data.draw(st.booleans()))
    assert_clean_exit(target, capsys)


def _mutate_json_numbers(value: Any, data: st.DataObject) -> Any:
    """Replace some numbers, strings and booleans of a JSON document with odd ones."""
    if isinstance(value, dict):
        return {key: _mutate_json_numbers(child, data) for key, child in value.items()}
    if isinstance(value, list):
        return [_mutate_json_numbers(child, data) for child in value]
    if data.draw(st.integers(0, 9)) == 0:
        return data.draw(
            st.one_of(st.integers(-(2**40), 2**40), st.booleans(), st.text(max_size=12), st.none(), st.just([]))
        )
    return value


def _mutate_entries(source: Path, target: Path, data: st.DataObject) -> Path:
    """Drop, duplicate, cut or rewrite the entries of a zip archive."""
    with zipfile.ZipFile(source) as original:
        entries = [(info.filename, original.read(info.filename)) for info in original.infolist()]
    with zipfile.ZipFile(target, "w") as out:
        for name, content in entries:
            action = data.draw(st.sampled_from(["keep"] * 6 + ["drop", "cut", "json", "random", "deflate"]))
            if action == "drop":
                continue
            if action == "cut":
                content = content[: data.draw(st.integers(0, max(len(content) - 1, 0)))]
            elif action == "json" and name.endswith(".json"):
                try:
                    content = json.dumps(_mutate_json_numbers(json.loads(content), data)).encode()
                except ValueError:
                    pass
            elif action == "random":
                content = data.draw(st.binary(max_size=256))
            out.writestr(
                name, content, compress_type=zipfile.ZIP_DEFLATED if action == "deflate" else zipfile.ZIP_STORED
            )
    return target


@_SETTINGS
@given(data=st.data())
def test_mutated_archives_of_every_kind_never_reach_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture, data: st.DataObject
) -> None:
    kind = data.draw(st.sampled_from(["export", "torchscript", "torch-zip"]))
    source = tmp_path / f"source-{kind}.pt"
    if not source.exists():
        if kind == "export":
            payloads.exported_program(source)
        elif kind == "torchscript":
            torch.jit.script(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())).save(str(source))
        else:
            torch.save({"0.weight": torch.randn(3, 4), "0.bias": torch.randn(3)}, source)
    target = _mutate_entries(source, tmp_path / "mutated.pt", data)
    assert_clean_exit(target, capsys)
    assert_clean_exit(target, capsys, "--max-memory", "64K")
