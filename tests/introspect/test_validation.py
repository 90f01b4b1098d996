"""Every field a checkpoint file can set is validated where it enters.

Bad input ends in exit code 2 and one line ``introspect: error: ...`` naming the field, never an
internal error (exit 3), a traceback or an allocation the file asked for. The memory cases run
the CLI in a subprocess under an address-space limit far below what the file asks for.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from introspect import validate, validate_config
from introspect.architectures import build_registered
from introspect.budget import Budget, BudgetError
from introspect.checkpoint import make_checkpoint, save_checkpoint
from introspect.cli import main
from introspect.errors import CheckpointError
from introspect.loading import load_checkpoint
from introspect.subject import Task
from introspect.testing import build_test_network

#: Deeper than MAX_NESTING but shallow enough for the file reader, so the field check answers.
DEEP = 40
#: What an ordinary ``introspect info`` maps (about 3.7 GB of virtual memory with torch's
#: libraries) plus room: a rebuilt model of 6 GB or more cannot fit under it.
ADDRESS_SPACE_LIMIT = 6 << 30
PER_EPOCH = "must be a list of numbers (one per epoch)"
HUGE_SHAPE = "100000,100000,100000"


def nested(depth: int, leaf: Any = 1) -> Any:
    """``leaf`` inside ``depth`` lists."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def payload_for(key: str = "mnist-mlp", *, probe_size: int = 0, **changes: Any) -> dict[str, Any]:
    """An introspect checkpoint dict of a registered architecture, with fields replaced.

    ``changes`` keys are fields, or ``section__field`` for a field inside a section
    (``task__image_shape``, ``architecture__config``).
    """
    model = build_registered(key, {})
    input_shape = [1, 28, 28] if key == "lenet5" else [784]
    payload = make_checkpoint(
        model,
        architecture=key,
        config={},
        task=Task(kind="classification", input_shape=tuple(input_shape), class_names=tuple("0123456789")).to_dict(),
        probe_inputs=torch.randn(probe_size, *input_shape) if probe_size else None,
        probe_labels=torch.arange(probe_size) % 10 if probe_size else None,
        history={"epoch": [1, 2], "train_loss": [1.0, 0.5], "best_epoch": 2},
        metrics={"test_accuracy": 0.9},
    )
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            payload[section][field] = value
        else:
            payload[section] = value
    return payload


def saved(tmp_path: Path, payload: dict[str, Any], name: str = "case.pt") -> Path:
    """``payload`` written with a raw ``torch.save`` (so any field can hold anything)."""
    path = tmp_path / name
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 50_000))  # the pickler recurses into deeply nested lists
    try:
        torch.save(payload, path)
    finally:
        sys.setrecursionlimit(limit)
    return path


def cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(args)
    captured = capsys.readouterr()
    return caught.value.code, captured.out, captured.err


def refused(path: Path, capsys: pytest.CaptureFixture, *options: str) -> str:
    """Run ``introspect info``; assert exit 2 with one error line, and return that line."""
    code, _, err = cli(["info", str(path), "--device", "cpu", *options], capsys)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("introspect: error: "), err
    assert "internal error" not in err and "Traceback" not in err
    return lines[0]


# --- architecture configs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("architecture", "config", "expected"),
    [
        ("lenet5", {"channels": "abc"}, "architecture 'lenet5': config field 'channels' must be a list of 2 integers"),
        ("lenet5", {"channels": [6, 16.5]}, "config field 'channels' must be a list of 2 integers"),
        ("lenet5", {"dropout": 7}, "architecture 'lenet5' cannot be built from its config: dropout must lie in [0, 1)"),
        ("lenet5", {"dropout": "high"}, "config field 'dropout' must be a finite number, not 'high'"),
        ("lenet5", {"dropout": float("nan")}, "config field 'dropout' must be a finite number"),
        ("lenet5", {"seed": True}, "config field 'seed' must be an integer, not True"),
        ("lenet5", {"nope": 1}, "architecture 'lenet5': config has unknown field(s) 'nope'"),
        ("lenet5", {"activation": "swish"}, "activation must be one of"),
        ("lenet5", "abc", "architecture.config must be a dict, not 'abc'"),
        ("lenet5", [1, 2], "architecture.config must be a dict"),
        ("mnist-mlp", {"hidden1": "abc"}, "config field 'hidden1' must be an integer, not 'abc'"),
        ("mnist-mlp", {"hidden1": -5}, "hidden widths must be positive"),
        ("mnist-mlp", {"hidden1": 50}, "the weights do not fit the architecture: "),
        ("mnist-mlp", {"hidden1": nested(DEEP)}, "architecture.config is nested more than 32 levels deep"),
    ],
)
def test_bad_registered_configs_are_refused_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture, architecture: str, config: Any, expected: str
) -> None:
    line = refused(saved(tmp_path, payload_for(architecture, architecture__config=config)), capsys)
    assert expected in line


def test_a_factory_without_a_config_dataclass_still_fails_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture, registered_test_architecture: str
) -> None:
    model = build_test_network({"sizes": [4, 8, 3]})
    payload = make_checkpoint(
        model, architecture=registered_test_architecture, config={"sizes": "abc"}, task={"input_shape": [4]}
    )
    line = refused(saved(tmp_path, payload), capsys)
    assert f"architecture {registered_test_architecture!r} cannot be built from its config: TypeError" in line


def test_the_config_dataclass_is_found_through_the_factorys_type_hints() -> None:
    from trainers.networks.lenet5 import NETWORK, LeNet5Config

    assert validate_config.config_class_of(NETWORK) is LeNet5Config  # the record names it: config_class
    assert validate_config.config_class_of(build_test_network) is None


def test_build_registered_keeps_its_old_signature() -> None:
    model = build_registered("mnist-mlp", {"hidden1": 8, "hidden2": 4})
    assert isinstance(model, torch.nn.Module) and model.fc1.weight.shape == (8, 784)
    assert model.fc1.weight.device.type == "cpu"


def test_a_config_too_big_for_the_budget_is_refused_before_it_is_built() -> None:
    # 4000 x 4000 floats is 61 MiB: small enough to be harmless should the check ever regress.
    with pytest.raises(BudgetError, match="rebuilding architecture 'fashion-mlp' from its config needs [0-9.]+ MiB"):
        build_registered("fashion-mlp", {"hidden": [4000, 4000]}, Budget(max_memory=1 << 20))


def test_weights_that_do_not_fit_are_refused_before_the_model_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    built_on: list[str] = []
    original = torch.nn.Linear.__init__

    def recording(self: torch.nn.Linear, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        built_on.append(self.weight.device.type)

    monkeypatch.setattr(torch.nn.Linear, "__init__", recording)
    small = build_registered("fashion-mlp", {"hidden": [8, 4]}).state_dict()
    built_on.clear()
    with pytest.raises(CheckpointError, match="do not fit the architecture"):
        build_registered("fashion-mlp", {"hidden": [4000, 4000]}, Budget(max_memory=1 << 30), state_dict=small)
    assert built_on and set(built_on) == {"meta"}


def test_an_arch_factory_that_returns_no_module_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    line = refused(saved(tmp_path, payload_for()), capsys, "--arch", "builtins:dict")
    assert "--arch 'builtins:dict' returned a dict, not a torch.nn.Module" in line


# --- sections and the task ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"task": "abc"}, "task must be a dict, not 'abc'"),
        ({"task": [1, 2]}, "task must be a dict"),
        ({"probe": "abc"}, "probe must be a dict, not 'abc'"),
        ({"probe": 7}, "probe must be a dict, not 7"),
        ({"architecture": "abc"}, "architecture must be a dict, not 'abc'"),
        ({"architecture": [1]}, "architecture must be a dict"),
        ({"architecture__key": ["mnist-mlp"]}, "architecture.key must be a string"),
        ({"state_dict": {"fc1.weight": "abc"}}, "state_dict['fc1.weight'] must be a tensor, not 'abc'"),
        ({"task__image_shape": [1, 28]}, "task.image_shape must be 3 positive integers, not [1, 28]"),
        ({"task__image_shape": [0, 28, 28]}, "task.image_shape must be 3 positive integers"),
        ({"task__image_shape": "1x28x28"}, "task.image_shape must be 3 positive integers"),
        ({"task__domain": [1.0, 0.0]}, "task.domain must have low < high"),
        ({"task__domain": [0.0, float("inf")]}, "task.domain must be two finite numbers"),
        ({"task__domain": "wide"}, "task.domain must be two finite numbers"),
        ({"task__input_shape": [-784]}, "task.input_shape must be 1 to 8 positive integers"),
        ({"task__input_shape": [0]}, "task.input_shape must be 1 to 8 positive integers"),
        ({"task__input_shape": [784.5]}, "task.input_shape must be 1 to 8 positive integers"),
        ({"task__input_shape": "784"}, "task.input_shape must be 1 to 8 positive integers"),
        ({"task__kind": "bogus"}, "task.kind must be one of classification, regression, unknown, not 'bogus'"),
        ({"task__kind": 3}, "task.kind must be one of"),
        ({"task__class_names": [1, 2]}, "task.class_names must be a list of strings, but holds 1"),
        ({"task__class_names": "cats"}, "task.class_names must be a list of strings"),
        ({"task__class_names": [str(i) for i in range(10_001)]}, "task.class_names has 10,001 names, more than 10,000"),
        ({"task__class_names": ["x" * 201]}, "task.class_names holds a name of 201 characters"),
        ({"task__class_names": nested(DEEP, "a")}, "task.class_names must be a list of strings"),
        ({"task__normalization": "imagenet"}, "task.normalization must be a dict"),
        ({"task__normalization": {"mean": ["a"], "std": [1.0]}}, "task.normalization['mean'] must be a list of finite"),
        ({"task__normalization": {"mean": [0.5]}}, "task.normalization must have exactly the keys 'mean' and 'std'"),
        ({"task__dataset": ["mnist"]}, "task.dataset must be a string"),
    ],
)
def test_bad_sections_and_task_fields_are_refused_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture, changes: dict[str, Any], expected: str
) -> None:
    assert expected in refused(saved(tmp_path, payload_for(**changes)), capsys)


def test_a_good_task_still_loads() -> None:
    normalization = {"mean": [0.5], "std": [0.25]}
    task = Task.from_dict({"kind": "regression", "input_shape": [1], "domain": [-5, 5], "normalization": normalization})
    assert task.domain == (-5.0, 5.0) and task.input_shape == (1,) and task.normalization == normalization
    assert Task.from_dict({}) == Task() and Task.from_dict(None) == Task()


# --- metrics, history, hyperparameters, extras ----------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"metrics": {"curve": nested(DEEP)}}, "metrics is nested more than 32 levels deep"),
        ({"metrics": "abc"}, "metrics must be a dict, not 'abc'"),
        ({"metrics": {"big": list(range(1_000_001))}}, "metrics holds more than 1,000,000 values"),
        ({"hyperparameters": {"model": nested(DEEP)}}, "hyperparameters is nested more than 32 levels deep"),
        ({"hyperparameters": [1, 2]}, "hyperparameters must be a dict"),
        ({"history": {"train_loss": nested(DEEP)}}, f"history['train_loss'] {PER_EPOCH}, but holds"),
        ({"history": {"train_loss": ["low", "high"]}}, f"history['train_loss'] {PER_EPOCH}, but holds 'low'"),
        ({"history": {"train_loss": "falling"}}, f"history['train_loss'] {PER_EPOCH}, not 'falling'"),
        ({"history": "abc"}, "history must be a dict, not 'abc'"),
    ],
)
def test_bad_records_are_refused_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture, changes: dict[str, Any], expected: str
) -> None:
    assert expected in refused(saved(tmp_path, payload_for(**changes)), capsys)


@pytest.mark.parametrize("field", ["metrics", "history", "hyperparameters", "extras", "task__class_names"])
def test_a_list_nested_10000_deep_is_refused_without_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture, field: str
) -> None:
    value = nested(10_000) if field == "task__class_names" else {"deep": nested(10_000)}
    refused(saved(tmp_path, payload_for(**{field: value})), capsys)


@pytest.mark.parametrize(
    ("check", "value", "expected"),
    [
        (functools.partial(validate.check_plain, field="metrics"), {"deep": nested(10_000)}, "metrics is nested more"),
        (validate.history_of, {"train_loss": nested(10_000)}, "history['train_loss'] must be a list of numbers"),
        (validate.class_names, nested(10_000, "a"), "task.class_names must be a list of strings"),
        (functools.partial(validate.checked_plain_mapping, field="hyperparameters"), {"a": nested(10_000)}, "hyperp"),
    ],
)
def test_the_checks_themselves_stop_at_the_depth_limit(check: Any, value: Any, expected: str) -> None:
    with pytest.raises(validate.FieldError, match=expected.replace("[", r"\[").replace("(", r"\(")):
        check(value)


def test_malformed_extras_snapshots_and_best_state_are_left_out_with_a_warning(tmp_path: Path) -> None:
    payload = payload_for(
        extras={"deep": nested(DEEP), "kept": {"train_inputs": torch.zeros(3)}},
        snapshots="every epoch",
        best_state_dict={"fc1.weight": "abc"},
        created=["yesterday"],
    )
    subject = load_checkpoint(saved(tmp_path, payload), device="cpu")
    assert set(subject.metadata["extras"]) == {"kept"}
    assert subject.snapshots is None and subject.metadata["best_state_dict"] is None
    assert subject.metadata["created"] is None
    warnings = "\n".join(subject.metadata["warnings"])
    for field in ("extras['deep'] is nested more than", "snapshots must be a dict", "created must be"):
        assert field in warnings
    assert "best_state_dict['fc1.weight'] must be a tensor" in warnings


def test_a_good_checkpoint_loads_every_field(tmp_path: Path) -> None:
    extras = {"regression": {"train_inputs": torch.zeros(3)}}
    payload = payload_for(probe_size=4, extras=extras, hyperparameters={"model": {"hidden": [1, 2]}})
    subject = load_checkpoint(save_checkpoint(tmp_path / "good.pt", payload), device="cpu")
    assert subject.metadata["warnings"] == [] and subject.history["best_epoch"] == 2
    assert subject.metadata["hyperparameters"] == {"model": {"hidden": [1, 2]}}
    assert "regression" in subject.metadata["extras"]


# --- probes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        ({"inputs": "abc", "labels": None}, "the stored probe: a probe must be a batch tensor"),
        ({"inputs": torch.ones(4, 784, dtype=torch.int64), "labels": None}, "probe inputs must be floating point"),
        ({"inputs": torch.randn(4, 784), "labels": torch.arange(3)}, "probe labels must be a tensor with one entry"),
        ({"inputs": torch.randn(4, 784), "labels": "cats"}, "probe labels must be a tensor with one entry per input"),
        ({"inputs": torch.randn(0, 784), "labels": None}, "the probe holds no inputs"),
    ],
)
def test_a_bad_stored_probe_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture, probe: dict[str, Any], expected: str
) -> None:
    assert expected in refused(saved(tmp_path, payload_for(probe=probe)), capsys)


def test_a_bad_probe_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    probe = tmp_path / "probe.pt"
    torch.save({"inputs": torch.randn(4, 784), "labels": torch.arange(2)}, probe)
    line = refused(saved(tmp_path, payload_for()), capsys, "--probe", str(probe))
    assert "probe labels must be a tensor with one entry per input" in line


def test_a_large_stored_probe_is_cut_and_the_page_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = saved(tmp_path, payload_for(probe_size=300))
    subject = load_checkpoint(path, device="cpu")
    assert subject.probe_inputs.shape == (256, 784) and subject.probe_labels.shape == (256,)
    assert subject.metadata["probe_note"] == "probe cut from 300 to 256 inputs (--max-probe)"
    code, out, _ = cli(["info", str(path), "--device", "cpu", "--json"], capsys)
    assert code == 0 and json.loads(out)["probe"] == "256 inputs (probe cut from 300 to 256 inputs (--max-probe))"


def test_a_probe_file_is_cut_to_max_probe(tmp_path: Path) -> None:
    probe = tmp_path / "probe.pt"
    torch.save({"inputs": torch.randn(50, 784), "labels": torch.arange(50) % 10}, probe)
    subject = load_checkpoint(saved(tmp_path, payload_for()), probe=str(probe), max_probe=10, device="cpu")
    assert subject.probe_inputs.shape == (10, 784) and subject.probe_labels.shape == (10,)
    assert subject.metadata["probe_note"] == "probe cut from 50 to 10 inputs (--max-probe)"


def test_a_synthetic_probe_is_no_larger_than_max_probe(tmp_path: Path) -> None:
    subject = load_checkpoint(saved(tmp_path, payload_for()), max_probe=4, device="cpu")
    assert subject.probe_is_synthetic and subject.probe_inputs.shape == (4, 784)


def test_a_huge_input_shape_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    line = refused(saved(tmp_path, payload_for()), capsys, "--input-shape", HUGE_SHAPE)
    assert "--input-shape [100000, 100000, 100000] has 1,000,000,000,000,000 elements per input" in line


# --- memory: a subprocess under an address-space limit --------------------------------------------

_DRIVER = """
import contextlib, io, json, sys, time
from introspect.cli import main
results = []
for args in json.loads(sys.argv[1]):
    err, start = io.StringIO(), time.monotonic()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main(args)
            code = 0
        except SystemExit as stop:
            code = stop.code
    results.append({"code": code, "err": err.getvalue(), "seconds": time.monotonic() - start})
print(json.dumps(results))
"""


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


def test_files_asking_for_gigabytes_are_refused_under_a_memory_limit(tmp_path: Path) -> None:
    hidden = lambda widths: payload_for("fashion-mlp", architecture__config={"hidden": widths})  # noqa: E731
    files = {
        "ordinary": saved(tmp_path, payload_for("fashion-mlp"), "ordinary.pt"),
        "6.6GB": saved(tmp_path, hidden([40000, 40000]), "wide.pt"),
        "40GB": saved(tmp_path, hidden([100000, 100000]), "wider.pt"),
        "big-input": saved(tmp_path, payload_for(task__input_shape=[3, 6000, 6000]), "big-input.pt"),
    }
    runs = [
        ["info", str(files["ordinary"]), "--device", "cpu"],
        ["info", str(files["6.6GB"]), "--device", "cpu"],
        ["info", str(files["40GB"]), "--device", "cpu"],
        # A budget that lets the size through: the weights are checked against the meta-device model first.
        ["info", str(files["6.6GB"]), "--device", "cpu", "--max-memory", "64G"],
        ["info", str(files["40GB"]), "--device", "cpu", "--max-memory", "64G"],
        ["info", str(files["big-input"]), "--device", "cpu", "--max-memory", "64G"],
        ["info", str(files["ordinary"]), "--device", "cpu", "--max-memory", "64G", "--input-shape", HUGE_SHAPE],
    ]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER, json.dumps(runs)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        preexec_fn=_limit_address_space,
    )
    assert done.returncode == 0, done.stderr[-2000:]  # not killed, no MemoryError escaping
    ordinary, *attacks = json.loads(done.stdout.strip().splitlines()[-1])
    assert ordinary["code"] == 0, ordinary["err"]  # the limit leaves room for an ordinary run
    expected = ["architecture 'fashion-mlp'"] * 2 + ["do not fit"] * 2
    expected += ["task.input_shape [3, 6000, 6000]", "--input-shape [100000, 100000, 100000]"]
    for result, wanted in zip(attacks, expected):
        lines = result["err"].strip().splitlines()
        assert result["code"] == 2 and len(lines) == 1 and wanted in lines[0], result
        assert result["seconds"] < 60, result
    for result in attacks[:2]:  # without --max-memory: refused by the budget, or by the shape check on a big machine
        assert "more than the memory budget" in result["err"] or "do not fit" in result["err"]
