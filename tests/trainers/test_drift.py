"""DriftRecorder: weight change and CKA to the final model, checked against numpy on saved weights and outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trainers.drift import MAX_PROBE, DriftRecorder, chained, drift_probe, snapshot_epochs
from trainers.loop import TensorSplit, TrainConfig, fit

LAYERS = ("0", "2", "4")


def _data(num: int = 200, seed: int = 0) -> TensorSplit:
    generator = torch.Generator().manual_seed(seed)
    return TensorSplit(torch.randn(num, 6, generator=generator), torch.randint(0, 3, (num,), generator=generator))


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3))


class Saver:
    """What the test itself keeps every epoch: each layer's parameters and its output on the probe."""

    def __init__(self, probe: torch.Tensor) -> None:
        self.probe = probe
        self.weights: list[dict[str, list[np.ndarray]]] = []
        self.outputs: list[dict[str, np.ndarray]] = []

    def __call__(self, epoch: int, model: nn.Module) -> None:
        modules = dict(model.named_modules())
        self.weights.append(
            {name: [p.detach().double().numpy().copy() for p in modules[name].parameters()] for name in LAYERS}
        )
        seen = {}
        handles = [modules[name].register_forward_hook(lambda m, i, o, n=name: seen.update({n: o})) for name in LAYERS]
        with torch.no_grad():
            model(self.probe)
        for handle in handles:
            handle.remove()
        self.outputs.append({name: seen[name].double().numpy() for name in LAYERS})


def linear_cka(first: np.ndarray, second: np.ndarray) -> float:
    """Kornblith et al.'s feature form: ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F), columns centred."""
    x, y = first - first.mean(axis=0), second - second.mean(axis=0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def relative_change(current: list[np.ndarray], initial: list[np.ndarray]) -> float:
    moved = np.sqrt(sum(((now - start) ** 2).sum() for now, start in zip(current, initial)))
    return float(moved / np.sqrt(sum((start**2).sum() for start in initial)))


@pytest.fixture(scope="module")
def recorded() -> tuple[dict, Saver]:
    train = _data()
    probe = drift_probe(train.inputs, seed=0)
    recorder, saver = DriftRecorder(probe, num_epochs=3), Saver(probe)
    model = _mlp()
    fit(model, train, None, TrainConfig(epochs=3, batch_size=32, lr=0.01), on_epoch=chained(recorder, saver))
    return recorder.drift(model), saver


def test_recorded_weight_change_equals_numpy_on_saved_weights(recorded) -> None:
    drift, saver = recorded
    assert drift["epochs"] == [0, 1, 2, 3] and drift["layers"] == list(LAYERS)
    expected = [[relative_change(epoch[name], saver.weights[0][name]) for name in LAYERS] for epoch in saver.weights]
    np.testing.assert_allclose(drift["relative_change"].numpy(), expected, rtol=1e-5)
    assert (drift["relative_change"][0] == 0).all() and (drift["relative_change"][1:] > 0).all()


def test_recorded_cka_to_final_equals_numpy_on_saved_outputs(recorded) -> None:
    drift, saver = recorded
    final = saver.outputs[-1]
    expected = [[linear_cka(epoch[name], final[name]) for name in LAYERS] for epoch in saver.outputs]
    np.testing.assert_allclose(drift["cka_to_final"].numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(drift["cka_to_final"][-1].numpy(), 1.0, rtol=1e-6)
    assert drift["cka_to_final"].dtype == torch.float32 and drift["cka_to_final"].shape == (4, 3)


def test_snapshot_epochs_are_all_or_twenty_evenly_spaced() -> None:
    assert snapshot_epochs(3) == [0, 1, 2, 3]
    assert snapshot_epochs(19) == list(range(20))
    many = snapshot_epochs(100)
    assert len(many) == 20 and many[0] == 0 and many[-1] == 100
    np.testing.assert_array_equal(many, np.round(np.linspace(0, 100, 20)).astype(int))


def test_probe_is_a_seeded_subset_of_at_most_128_training_inputs() -> None:
    inputs = torch.arange(1000.0)[:, None]
    probe = drift_probe(inputs, seed=4)
    assert probe.shape == (MAX_PROBE, 1) and len(set(probe[:, 0].tolist())) == MAX_PROBE
    assert torch.equal(probe, drift_probe(inputs, seed=4)) and not torch.equal(probe, drift_probe(inputs, seed=5))


def test_early_stop_records_the_final_model_and_stays_within_twenty() -> None:
    train = _data()
    recorder, model = DriftRecorder(drift_probe(train.inputs), num_epochs=40), _mlp()
    # patience 1 on the validation loss of random labels: training stops within a few epochs.
    result = fit(model, train, _data(seed=1), TrainConfig(epochs=40, lr=0.05, patience=1), on_epoch=recorder)
    drift = recorder.drift(model)
    assert result.stopped_early and drift["epochs"][-1] == result.epochs_run
    assert len(drift["epochs"]) <= 20
    np.testing.assert_allclose(drift["cka_to_final"][-1].numpy(), 1.0, rtol=1e-6)


def test_recording_restores_train_mode_and_leaves_no_gradients_or_hooks() -> None:
    model = _mlp()
    model.train()
    recorder = DriftRecorder(drift_probe(_data().inputs), num_epochs=1)
    recorder(0, model)
    assert model.training and all(parameter.grad is None for parameter in model.parameters())
    assert all(not module._forward_hooks for module in model.modules())


def test_a_trained_checkpoint_carries_drift_that_introspect_reads_back(tmp_path) -> None:
    from trainers.testing import check_recipe

    report = check_recipe("digits-mlp", tmp_path, epochs=3)
    drift = report.checkpoint["drift"]
    assert drift["epochs"] == [0, 1, 2, 3]
    holders = [name for name, module in report.subject.model.named_modules() if list(module.parameters(False))]
    assert drift["layers"] == holders
    np.testing.assert_array_equal(report.subject.drift["cka_to_final"], drift["cka_to_final"].double().numpy())
    np.testing.assert_allclose(drift["cka_to_final"][-1].numpy(), 1.0, rtol=1e-6)
    assert (drift["relative_change"][0] == 0).all() and (drift["relative_change"][-1] > 0).all()
