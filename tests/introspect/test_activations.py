"""Activation capture and the activations analyzer against a manual forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from introspect.analyzers.activations import activations, evenly_spaced
from introspect.capture import capture_activations, recording
from introspect.testing import conv_image_subject, dense_image_subject


def test_capture_equals_manual_layer_by_layer_forward() -> None:
    subject = dense_image_subject()
    model, inputs = subject.model, subject.probe_inputs
    captured = capture_activations(model, inputs)
    expected = inputs
    for name, layer in model.named_children():
        expected = layer(expected)
        assert torch.equal(captured[name], expected.detach()), name


def test_capture_restores_mode_and_removes_hooks() -> None:
    subject = conv_image_subject()
    subject.model.train()
    capture_activations(subject.model, subject.probe_inputs)
    assert subject.model.training and subject.model[1].training
    assert all(not module._forward_hooks for module in subject.model.modules())


def test_recording_removes_hooks_even_when_the_forward_raises() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    with pytest.raises(RuntimeError), recording(model):
        model(torch.ones(1, 5))
    assert not model[0]._forward_hooks


def test_capture_of_named_layers_only() -> None:
    subject = conv_image_subject()
    captured = capture_activations(subject.model, subject.probe_inputs, layers=["2"])
    assert list(captured) == ["2"]
    assert torch.all(captured["2"] >= 0)


def test_analyzer_numbers_equal_manual_forward_and_skip_pass_through_layers() -> None:
    subject = dense_image_subject()
    artifacts = activations(subject)
    names = [artifact.layer for artifact in artifacts]
    assert names == ["1", "2", "3", "4", "5"]  # the Flatten at index 0 says nothing new
    with torch.no_grad():
        hidden = torch.tanh(subject.model[1](subject.probe_inputs))
    tanh_artifact = artifacts[1]
    np.testing.assert_allclose(tanh_artifact.data["output"], hidden.numpy(), rtol=0, atol=0)
    assert tanh_artifact.summary["fraction_positive"] == pytest.approx(float((hidden > 0).double().mean()))


def test_conv_layers_get_channel_summaries_with_exact_means() -> None:
    subject = conv_image_subject()
    artifact = next(a for a in activations(subject) if a.layer == "0")
    output = torch.as_tensor(artifact.data["output"])
    assert artifact.summary["shape"] == [4, 12, 12]
    assert artifact.summary["mean"] == pytest.approx(float(output.double().mean()))


def test_layer_figures_are_capped_with_a_note() -> None:
    subject = conv_image_subject()
    artifacts = activations(subject, max_layers=2)
    assert len(artifacts) == 3 and artifacts[-1].kind == "table"  # two figures, then every layer's numbers
    assert "not drawn" in artifacts[0].caption
    assert len(artifacts[-2].summary["all_layers"]) == 6  # conv, bn, relu, conv, relu, linear
    assert [row["layer"] for row in artifacts[-1].table] == list(artifacts[-2].summary["all_layers"])
    assert "4 of 6 layers are not drawn" in artifacts[0].caption


def test_evenly_spaced_keeps_first_and_last() -> None:
    items = [str(index) for index in range(10)]
    assert evenly_spaced(items, 3) == ["0", "4", "9"] or evenly_spaced(items, 3) == ["0", "5", "9"]
    assert evenly_spaced(items, 20) == items


class ResidualBlock(torch.nn.Module):
    """A linear layer whose output is changed in place twice afterwards, as in ResNet blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)
        self.relu = torch.nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(x)
        out += x  # functional in-place residual add
        return self.relu(out)


def test_capture_is_not_rewritten_by_later_in_place_operations() -> None:
    torch.manual_seed(0)
    block, inputs = ResidualBlock(), torch.randn(16, 4)
    captured = capture_activations(block, inputs)
    with torch.no_grad():
        expected_fc = block.fc(inputs)
    assert torch.equal(captured["fc"], expected_fc)
    assert captured["fc"].min() < 0  # what an in-place ReLU would have erased
    assert torch.equal(captured["relu"], torch.relu(expected_fc + inputs))


def test_capture_copies_only_the_outputs_that_are_modified_later() -> None:
    from introspect.capture import _MODIFIED_LAYERS, recording

    torch.manual_seed(0)
    block, inputs = ResidualBlock(), torch.randn(16, 4)
    first, second = capture_activations(block, inputs), capture_activations(block, inputs)
    # "fc" is rewritten by the residual add and the in-place ReLU; "relu"'s output is the model's own output.
    assert _MODIFIED_LAYERS[block] == {"fc"}
    with recording(block) as reference, torch.no_grad():  # the copy-everything way
        block(inputs)
    for captured in (first, second):
        assert captured.keys() == reference.keys()
        for name in reference:
            assert torch.equal(captured[name], reference[name]), name
    plain = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    outputs = capture_activations(plain, inputs)
    assert plain not in _MODIFIED_LAYERS
    with torch.no_grad():
        np.testing.assert_allclose(outputs["2"].numpy(), plain(inputs).numpy(), rtol=1e-6)


def test_an_output_that_is_the_callers_own_tensor_is_copied() -> None:
    inputs = torch.randn(3, 4)
    outputs = capture_activations(torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(4, 2)), inputs)
    assert torch.equal(outputs["0"], inputs) and outputs["0"].data_ptr() != inputs.data_ptr()


def test_one_outputs_statistics_equal_numpy_and_skip_non_finite_values() -> None:

    from introspect.analyzers.activations import output_statistics

    values = torch.randn(8, 3, 5, 5, generator=torch.Generator().manual_seed(4))
    numbers, array = output_statistics(values), values.double().numpy()
    assert numbers["shape"] == [3, 5, 5]
    for key, expected in (
        ("mean", array.mean()),
        ("std", array.std(ddof=1)),
        ("min", array.min()),
        ("max", array.max()),
    ):
        assert numbers[key] == pytest.approx(expected, rel=1e-9), key
    assert numbers["fraction_positive"] == pytest.approx((array > 0).mean())
    values[0, 0, 0, 0] = float("nan")
    finite = array.ravel()[1:]  # the NaN replaced the first value
    with_nan = output_statistics(values)
    assert with_nan["mean"] == pytest.approx(finite.mean(), rel=1e-6) and with_nan["max"] == pytest.approx(finite.max())


def test_big_outputs_keep_the_first_inputs_whole_in_the_data(monkeypatch: pytest.MonkeyPatch) -> None:
    from introspect.analyzers import activations as module

    subject = conv_image_subject()
    monkeypatch.setattr(module, "MAX_KEPT_VALUES", 2 * 4 * 12 * 12 + 5)  # two inputs' worth of layer "0"
    artifact = next(a for a in activations(subject) if a.layer == "0")
    with torch.no_grad():
        expected = subject.model[0](subject.probe_inputs)
    assert artifact.data["output_inputs"] == 2 and artifact.data["output"].shape == (2, 4, 12, 12)
    np.testing.assert_allclose(artifact.data["output"], expected[:2].numpy(), rtol=1e-6, atol=1e-7)
    assert artifact.summary["mean"] == pytest.approx(float(expected.double().mean()), rel=1e-6)  # all inputs
    assert f"first 2 of the {len(expected)} probe inputs" in artifact.caption


def test_the_analyzer_draws_outputs_as_they_were_before_later_in_place_operations() -> None:
    from introspect.subject import Subject, Task

    torch.manual_seed(0)
    block, inputs = ResidualBlock(), torch.randn(16, 4)
    task = Task(kind="classification", input_shape=(4,), class_names=tuple("abcd"))
    artifacts = {a.layer: a for a in activations(Subject.from_model(block, inputs, task=task)) if a.layer}
    with torch.no_grad():
        expected_fc = block.fc(inputs)
    np.testing.assert_array_equal(artifacts["fc"].data["output"], expected_fc.numpy())
    assert artifacts["fc"].summary["min"] == pytest.approx(float(expected_fc.min()))  # before the ReLU
    np.testing.assert_array_equal(artifacts["relu"].data["output"], torch.relu(expected_fc + inputs).numpy())


def test_chunked_std_mean_equals_numpy_over_many_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    from introspect.analyzers import activations as module

    values = 1000 + torch.randn(7, 3, 5, 5, generator=torch.Generator().manual_seed(1))  # a large mean
    monkeypatch.setattr(module, "CHUNK_VALUES", 2 * 75)  # two inputs per chunk: four chunks
    std, mean = module.chunked_std_mean(values)
    array = values.double().numpy()
    assert mean == pytest.approx(array.mean(), rel=1e-12)
    assert std == pytest.approx(array.std(ddof=1), rel=1e-9)
