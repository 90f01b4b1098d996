"""load_checkpoint on every kind of file a user may hand in, good and bad."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from introspect.checkpoint import FORMAT_KEY, make_checkpoint, save_checkpoint
from introspect.errors import CheckpointError
from introspect.loading import load_checkpoint, read_probe
from introspect.subject import Task


def outputs_equal(first: torch.nn.Module, second: torch.nn.Module, inputs: torch.Tensor) -> bool:
    with torch.no_grad():
        return torch.equal(first.eval()(inputs), second.eval()(inputs))


def test_introspect_checkpoint_rebuilds_the_model_with_identical_outputs(
    introspect_checkpoint: Path, test_model: torch.nn.Module
) -> None:
    subject = load_checkpoint(introspect_checkpoint, device="cpu")
    assert subject.metadata["format"] == "introspect-v1"
    assert subject.model is not None
    assert outputs_equal(subject.model, test_model, subject.probe_inputs)
    assert subject.task.class_names == ("a", "b", "c")
    assert subject.history["best_epoch"] == 2
    assert subject.metadata["metrics"] == {"test_accuracy": 0.75}
    assert len(subject.metadata["sha256"]) == 64


def test_bare_state_dict_gives_weights_only_with_reason(tmp_path: Path, test_model: torch.nn.Module) -> None:
    path = tmp_path / "bare.pt"
    torch.save(test_model.state_dict(), path)
    subject = load_checkpoint(path, device="cpu")
    assert subject.model is None
    assert set(subject.weights) == set(test_model.state_dict())
    assert "--arch" in subject.missing_reason(subject.available().__class__.FORWARD)


@pytest.mark.parametrize("wrapper", ["state_dict", "model_state_dict", "model"])
def test_wrapped_state_dicts_are_unwrapped(tmp_path: Path, test_model: torch.nn.Module, wrapper: str) -> None:
    path = tmp_path / "wrapped.pt"
    torch.save({wrapper: test_model.state_dict(), "epoch": 7, "optimizer": {"lr": 0.1}}, path)
    subject = load_checkpoint(path, device="cpu")
    assert torch.equal(subject.weights["0.weight"], test_model.state_dict()["0.weight"])
    assert subject.metadata["wrapper"]["epoch"] == 7


def test_dataparallel_prefix_is_stripped_and_arch_rebuilds(tmp_path: Path, test_model: torch.nn.Module) -> None:
    path = tmp_path / "dp.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in test_model.state_dict().items()}}, path)
    subject = load_checkpoint(
        path,
        arch="introspect.testing:build_test_network",
        arch_kwargs={"config": {"sizes": [4, 8, 6, 3]}},
        input_shape=(4,),
        device="cpu",
    )
    assert outputs_equal(subject.model, test_model, torch.ones(2, 4))
    assert subject.probe_is_synthetic and subject.probe_inputs.shape == (16, 4)


def test_lightning_prefix_is_stripped_when_the_architecture_needs_it(
    tmp_path: Path, test_model: torch.nn.Module
) -> None:
    path = tmp_path / "lightning.ckpt"
    state = {f"model.{k}": v for k, v in test_model.state_dict().items()}
    torch.save({"state_dict": state, "pytorch-lightning_version": "2.4.0", "hyper_parameters": {"lr": 0.01}}, path)
    subject = load_checkpoint(
        path,
        arch="introspect.testing:build_test_network",
        arch_kwargs={"config": {"sizes": [4, 8, 6, 3]}},
        device="cpu",
    )
    assert outputs_equal(subject.model, test_model, torch.ones(3, 4))


def test_torchscript_archive_yields_weights_only_without_trust_code(
    tmp_path: Path, test_model: torch.nn.Module
) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(test_model), str(path))
    subject = load_checkpoint(path, device="cpu")
    assert subject.model is None and "--trust-code" in subject.model_note
    assert all(torch.equal(subject.weights[name], value) for name, value in test_model.state_dict().items())


def test_torchscript_archive_loads_with_a_working_forward_with_trust_code(
    tmp_path: Path, test_model: torch.nn.Module
) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(test_model), str(path))
    subject = load_checkpoint(path, device="cpu", trust_code=True)
    assert subject.metadata["format"] == "torchscript"
    assert torch.allclose(subject.model(torch.ones(2, 4)), test_model(torch.ones(2, 4)))
    assert subject.probe_inputs.shape == (16, 4)


def test_exported_program_loads_with_its_example_inputs_as_probe(tmp_path: Path, test_model: torch.nn.Module) -> None:
    path = tmp_path / "program.pt2"
    example = torch.randn(5, 4)
    torch.export.save(torch.export.export(test_model, (example,)), str(path))
    subject = load_checkpoint(path, device="cpu")
    assert subject.metadata["format"] == "torch.export"
    assert torch.equal(subject.probe_inputs, example)
    assert torch.allclose(subject.model(example), test_model(example), atol=1e-6)


class _Payload:
    """Unpickling this calls ``Path.touch`` on the marker: a stand-in for running a command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.marker,))


def test_malicious_pickle_runs_nothing_without_trust(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="--trust-code") as caught:
        load_checkpoint(path, device="cpu")
    assert not marker.exists()
    assert str(path) in str(caught.value)


def test_legacy_pickle_protocol_file_is_also_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil-legacy.pt"
    path.write_bytes(pickle.dumps(_Payload(marker), protocol=2))
    with pytest.raises(CheckpointError):
        load_checkpoint(path, device="cpu")
    assert not marker.exists()


def test_pickled_module_loads_only_with_trust(tmp_path: Path, test_model: torch.nn.Module) -> None:
    path = tmp_path / "module.pt"
    torch.save(test_model, path)
    with pytest.raises(CheckpointError, match="Sequential"):
        load_checkpoint(path, device="cpu")
    subject = load_checkpoint(path, trust_pickle=True, device="cpu")
    assert outputs_equal(subject.model, test_model, torch.ones(2, 4))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "PNG"),
        (bytes(range(256)) * 4, "not a PyTorch checkpoint"),
        (b"hello world, not a model", "not a PyTorch checkpoint"),
    ],
)
def test_non_checkpoints_give_one_clear_sentence(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as caught:
        load_checkpoint(path, device="cpu")
    assert "\n" not in str(caught.value)


def test_zip_that_is_not_a_checkpoint_is_named_as_such(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "hello")
    path = tmp_path / "renamed.pt"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointError, match="zip archive but not a PyTorch checkpoint"):
        load_checkpoint(path, device="cpu")


def test_truncated_checkpoint_is_reported_as_truncated(introspect_checkpoint: Path, tmp_path: Path) -> None:
    data = introspect_checkpoint.read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(path, device="cpu")


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "absent.pt", device="cpu")


def test_newer_format_version_asks_for_an_upgrade(
    tmp_path: Path, test_model: torch.nn.Module, registered_test_architecture: str
) -> None:
    checkpoint = make_checkpoint(test_model, architecture=registered_test_architecture, config={}, task={})
    checkpoint[FORMAT_KEY] = 99
    path = save_checkpoint(tmp_path / "future.pt", checkpoint)
    with pytest.raises(CheckpointError, match="format 99.*upgrade"):
        load_checkpoint(path, device="cpu")


def test_shape_mismatch_names_the_layer(tmp_path: Path, registered_test_architecture: str) -> None:
    torch.manual_seed(0)
    from introspect.testing import build_test_network

    wrong = build_test_network({"sizes": [4, 9, 6, 3]})
    checkpoint = make_checkpoint(
        wrong, architecture=registered_test_architecture, config={"sizes": [4, 8, 6, 3]}, task={}
    )
    path = save_checkpoint(tmp_path / "mismatch.pt", checkpoint)
    with pytest.raises(CheckpointError, match=r"0\.weight is \(9, 4\) but the model wants \(8, 4\)"):
        load_checkpoint(path, device="cpu")


def test_unknown_architecture_key_falls_back_to_weights(tmp_path: Path, test_model: torch.nn.Module) -> None:
    checkpoint = make_checkpoint(
        test_model, architecture="no-such-network", config={}, task=Task(input_shape=(4,)).to_dict()
    )
    path = save_checkpoint(tmp_path / "unknown.pt", checkpoint)
    subject = load_checkpoint(path, device="cpu")
    assert subject.model is None
    assert "'no-such-network' is not registered" in subject.model_note


def test_probe_file_with_wrong_shape_is_refused(introspect_checkpoint: Path, tmp_path: Path) -> None:
    probe = tmp_path / "probe.pt"
    torch.save(torch.randn(3, 7), probe)
    with pytest.raises(CheckpointError, match=r"probe inputs of shape \(3, 7\) do not fit the model"):
        load_checkpoint(introspect_checkpoint, probe=str(probe), device="cpu")


def test_probe_file_with_integer_dtype_is_refused(tmp_path: Path) -> None:
    probe = tmp_path / "probe.pt"
    torch.save(torch.ones(3, 4, dtype=torch.int64), probe)
    with pytest.raises(CheckpointError, match="floating point"):
        read_probe(str(probe))


def test_probe_file_with_labels_replaces_the_stored_probe(introspect_checkpoint: Path, tmp_path: Path) -> None:
    probe = tmp_path / "probe.pt"
    inputs, labels = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    torch.save({"inputs": inputs, "labels": labels}, probe)
    subject = load_checkpoint(introspect_checkpoint, probe=str(probe), device="cpu")
    assert torch.equal(subject.probe_inputs, inputs) and torch.equal(subject.probe_labels, labels)


def test_rebuilt_model_is_handed_out_in_eval_mode(introspect_checkpoint: Path) -> None:
    subject = load_checkpoint(introspect_checkpoint, device="cpu")
    assert not any(module.training for module in subject.model.modules())
