"""Sequence models (LSTM, Conv1d): their layers' tuple outputs, the shapes guessed for them, their attributions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from captum.attr import Saliency
from torch import nn

import introspect
from introspect.loading import load_checkpoint
from introspect.probes import SEQUENCE_LENGTH, input_shape_guess

STEPS, FEATURES, HIDDEN = 32, 5, 6


class LSTMClassifier(nn.Module):
    """Its head is defined before its LSTM, so the first weight in the state_dict is the head's."""

    def __init__(self, steps: int | None = None) -> None:
        super().__init__()
        self.steps = steps
        width = HIDDEN * steps if steps else HIDDEN
        self.head = nn.Linear(width, 3)
        self.lstm = nn.LSTM(FEATURES, HIDDEN, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sequence, _ = self.lstm(x)
        features = sequence.flatten(1) if self.steps else sequence[:, -1]
        return self.head(features)


def saturating_lstm() -> LSTMClassifier:
    """Unit 0's cell adds 1 at every step and forgets nothing, so its output tanh(t) is within 0.01 of 1 from t = 3."""
    torch.manual_seed(0)
    model = LSTMClassifier().eval()
    with torch.no_grad():
        bias = model.lstm.bias_ih_l0.view(4, HIDDEN)  # gates i, f, g, o
        for gate in range(4):
            bias[gate, 0] = 30.0
            model.lstm.weight_ih_l0.view(4, HIDDEN, FEATURES)[gate, 0] = 0.0
            model.lstm.weight_hh_l0.view(4, HIDDEN, HIDDEN)[gate, 0] = 0.0
    return model


def sequences(count: int = 8) -> torch.Tensor:
    return torch.randn(count, STEPS, FEATURES, generator=torch.Generator().manual_seed(1))


def figure_artifacts(result: introspect.AnalyzerResult) -> dict[str, introspect.Artifact]:
    return {artifact.layer: artifact for artifact in result.artifacts if artifact.layer}


def test_an_lstm_layer_is_shown_by_its_output_at_every_step_and_says_so() -> None:
    model, inputs = saturating_lstm(), sequences()
    report = introspect.analyze(model, inputs, analyzers=["activations", "activation_health"], load_plugins=False)
    assert all(result.ok for result in report.results), [result.reason for result in report.results]
    expected = model.lstm(inputs)[0].detach().double().numpy()  # (N, T, H), batch first
    lstm = figure_artifacts(report.result("activations"))["lstm"]
    assert lstm.summary["shape"] == [STEPS, HIDDEN]
    assert lstm.summary["mean"] == pytest.approx(expected.mean(), rel=1e-6)
    assert lstm.summary["max"] == pytest.approx(expected.max(), rel=1e-6)
    assert lstm.summary["tuple_output"] == f"(8x{STEPS}x{HIDDEN}, (1x8x{HIDDEN}, 1x8x{HIDDEN}))"
    assert "(h_n, c_n)" in lstm.caption

    row = report.result("activation_health").artifacts[0].summary["layers"]["lstm"]
    near = (np.abs(expected - 1) <= 0.01) | (np.abs(expected + 1) <= 0.01)
    saturated = near.mean(axis=(0, 1)) >= 0.9  # per hidden unit, over inputs and steps
    assert row["kind"] == "bounded" and row["num_units"] == HIDDEN
    assert row["num_saturated"] == int(saturated.sum()) == 1  # unit 0, by construction


def test_a_time_first_lstm_is_read_batch_first() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.LSTM(FEATURES, HIDDEN))  # batch_first=False: it takes (T, N, F)
    inputs = sequences(4).transpose(0, 1).contiguous()  # (T, N, F)
    report = introspect.analyze(model, inputs, analyzers=["activations"], load_plugins=False)
    artifact = figure_artifacts(report.result("activations"))["0"]
    # Recorded as (N, T, H), the 4 sequences first; as the layer returns it, (T, N, H), it would read [4, HIDDEN].
    assert artifact.summary["shape"] == [STEPS, HIDDEN]
    assert "read batch first" in artifact.caption


def test_model_summary_puts_the_batch_where_an_lstm_puts_it() -> None:
    report = introspect.analyze(saturating_lstm(), sequences(), analyzers=["model_summary"], load_plugins=False)
    rows = report.result("model_summary").artifacts[0].table
    lstm = next(row for row in rows if row["layer"] == "lstm")
    # (output, (h_n, c_n)): the output batch first, the states (layers x directions, batch, hidden).
    assert lstm["output shape"] == f"[-1, {STEPS}, {HIDDEN}], ([1, -1, {HIDDEN}], [1, -1, {HIDDEN}])"
    assert lstm["trainable params"] == sum(parameter.numel() for parameter in saturating_lstm().lstm.parameters())


def test_saliency_on_a_sequence_equals_captum_and_is_drawn_steps_along_the_columns() -> None:
    model, inputs = saturating_lstm(), sequences(4)
    report = introspect.analyze(model, inputs, analyzers=["input_saliency"], load_plugins=False)
    result = report.result("input_saliency")
    assert result.ok, result.reason
    artifact = result.artifacts[0]
    targets, shown = torch.as_tensor(artifact.data["targets"]), inputs[torch.as_tensor(artifact.data["indices"])]
    expected = Saliency(model).attribute(shown.requires_grad_(True), target=targets, abs=True)
    np.testing.assert_allclose(artifact.data["attributions"], expected.detach().numpy(), rtol=1e-5, atol=1e-7)
    assert "its features (rows) at each time step" in artifact.caption


def test_a_zero_initialized_head_is_named_as_the_reason_the_maps_are_empty() -> None:
    model = saturating_lstm()
    with torch.no_grad():
        model.head.weight.zero_()
    report = introspect.analyze(model, sequences(4), analyzers=["input_saliency"], load_plugins=False)
    artifact = report.result("input_saliency").artifacts[0]
    assert artifact.summary["num_zero_maps"] == artifact.summary["num_images"] > 0
    assert "every weight of head, the final layer, is zero" in artifact.caption


def test_the_shape_is_guessed_from_the_lstm_not_from_a_head_defined_first() -> None:
    model = LSTMClassifier()
    guess = input_shape_guess(model.state_dict(), model)
    assert (guess.shape, guess.weight) == ((SEQUENCE_LENGTH, FEATURES), "lstm.weight_ih_l0")
    named_only = input_shape_guess(model.state_dict())  # no modules: read from names and ranks
    assert (named_only.shape, named_only.weight) == ((SEQUENCE_LENGTH, FEATURES), "lstm.weight_ih_l0")
    conv = nn.Sequential(nn.Conv1d(3, 4, 25), nn.Flatten())
    assert input_shape_guess(conv.state_dict(), conv).shape == (3, 100)  # four kernel widths when above 64


def test_a_forward_failing_on_a_guessed_shape_names_the_guess_and_input_shape(tmp_path: Path) -> None:
    path = tmp_path / "lstm.pt"
    torch.jit.save(torch.jit.script(LSTMClassifier(steps=12)), str(path))  # takes exactly 12 steps
    subject = load_checkpoint(path, device="cpu", trust_code=True)
    assert subject.probe_inputs.shape[1:] == (SEQUENCE_LENGTH, FEATURES)
    assert "lstm.weight_ih_l0" in subject.metadata["input_shape_guess"]
    report = introspect.analyze(subject, analyzers=["input_saliency"], load_plugins=False)
    result = report.result("input_saliency")
    assert result.status == "failed"
    assert "guessed from lstm.weight_ih_l0" in result.reason and "pass --input-shape" in result.reason


class Conv1dClassifier(nn.Module):
    """Two Conv1d layers over a 3-channel signal of any length, averaged over positions."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv1d(3, 8, 5, padding=2), nn.ReLU(), nn.Conv1d(8, 8, 5), nn.ReLU())
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=2))


@pytest.mark.parametrize(
    ("architecture", "expected_shape"),
    [("LSTMClassifier", [SEQUENCE_LENGTH, FEATURES]), ("Conv1dClassifier", [3, 64])],
)
def test_a_sequence_classifier_given_through_arch_runs_every_analyzer(
    architecture: str, expected_shape: list[int], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import json

    from introspect.cli import main

    torch.manual_seed(0)
    path, out_dir = tmp_path / "weights.pt", tmp_path / "gallery"
    torch.save(globals()[architecture]().state_dict(), path)
    with pytest.raises(SystemExit) as exit_info:
        main(["analyze", str(path), "--arch", f"{__name__}:{architecture}", "--all", "-o", str(out_dir)])
    manifest = json.loads((out_dir / "manifest.json").read_text())
    results = {result["name"]: result for result in manifest["analyzers"]}
    failed = {name: result["reason"] for name, result in results.items() if result["status"] == "failed"}
    assert exit_info.value.code == (1 if failed else 0) and not failed, failed
    for name in ("activations", "activation_health", "model_summary", "input_saliency", "weight_histograms"):
        assert results[name]["status"] == "ok", (name, results[name].get("reason"))
    assert manifest["header"]["input_shape"] == expected_shape  # guessed from weight_ih_l0 / the first Conv1d
