"""Linear CKA between layers: the formula in numpy, its invariances, minibatch CKA over shards, the analyzers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from introspect.analyzers import _cka
from introspect.analyzers import representation_similarity as similarity
from introspect.dataset.run import run_pass
from introspect.spec import spec_of
from introspect.testing import conv_image_subject, with_test_data


def numpy_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al. 2019, eq. (5) in feature space: ||Yᵀ X||² / (||Xᵀ X|| ||Yᵀ Y||) on centered features."""
    x = x.reshape(len(x), -1) - x.reshape(len(x), -1).mean(axis=0)
    y = y.reshape(len(y), -1) - y.reshape(len(y), -1).mean(axis=0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def numpy_unbiased_hsic(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741 - the paper's names
    """Song et al. 2012, eq. (5), written out term by term."""
    n = len(k)
    k, l = k.copy(), l.copy()  # noqa: E741
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    ones = np.ones(n)
    first = np.trace(k @ l)
    second = (ones @ k @ ones) * (ones @ l @ ones) / ((n - 1) * (n - 2))
    third = 2.0 / (n - 2) * (ones @ k @ l @ ones)
    return float((first + second - third) / (n * (n - 3)))


def features(seed: int, n: int = 40, width: int = 12) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, width))


def test_linear_cka_equals_the_feature_space_formula_and_a_layer_against_itself_is_one() -> None:
    x = features(0)
    y = np.tanh(x @ np.random.default_rng(1).normal(size=(12, 7))) + 0.3 * features(2, width=7)
    assert _cka.cka(torch.tensor(x), torch.tensor(y)) == pytest.approx(numpy_linear_cka(x, y), rel=1e-10)
    assert _cka.cka(torch.tensor(x), torch.tensor(x)) == pytest.approx(1.0, abs=1e-12)
    unrelated = _cka.cka(torch.tensor(x), torch.tensor(features(3, width=7)))
    assert unrelated == pytest.approx(numpy_linear_cka(x, features(3, width=7)), rel=1e-10) and unrelated < 0.5


def test_linear_cka_does_not_change_under_an_orthogonal_transform_or_an_isotropic_scaling() -> None:
    x, y = features(4), features(5, width=9) + features(4)[:, :9]
    rotation, _ = np.linalg.qr(np.random.default_rng(6).normal(size=(12, 12)))
    base = _cka.cka(torch.tensor(x), torch.tensor(y))
    assert _cka.cka(torch.tensor(x @ rotation), torch.tensor(y)) == pytest.approx(base, rel=1e-10)
    assert _cka.cka(torch.tensor(3.7 * x), torch.tensor(0.01 * y)) == pytest.approx(base, rel=1e-10)
    # Not invariant to any linear map: a non-isotropic scaling changes it.
    stretched = x * np.linspace(0.1, 10.0, 12)
    assert abs(_cka.cka(torch.tensor(stretched), torch.tensor(y)) - base) > 1e-3


def test_unbiased_hsic_equals_the_formula_of_song_et_al() -> None:
    x, y = features(7, n=9), features(8, n=9, width=5)
    k, l = x @ x.T, y @ y.T  # noqa: E741
    assert _cka.unbiased_hsic(torch.tensor(k), torch.tensor(l)) == pytest.approx(numpy_unbiased_hsic(k, l), rel=1e-10)


class _Batch:
    def __init__(self, size: int) -> None:
        self.indices = torch.arange(size)


def test_minibatch_cka_averages_the_unbiased_hsic_over_batches_and_shards_merge_to_one_pass() -> None:
    layers = {"a": features(9, n=30), "b": features(9, n=30)[:, :6] ** 2, "c": features(10, n=30)}
    splits = [(0, 12), (12, 20), (20, 30)]
    whole = _cka.MinibatchCKAReducer(list(layers))
    shards = [_cka.MinibatchCKAReducer(list(layers)) for _ in splits]
    for (start, stop), shard in zip(splits, shards):
        batch = {name: torch.tensor(value[start:stop]) for name, value in layers.items()}
        whole.feed(_Batch(stop - start), torch.zeros(0), batch)
        shard.feed(_Batch(stop - start), torch.zeros(0), batch)
    merged = shards[0].merge(shards[1]).merge(shards[2])
    np.testing.assert_allclose(merged.cka(), whole.cka(), rtol=1e-12)

    def averaged(first: str, second: str) -> float:
        values = []
        for start, stop in splits:
            x, y = layers[first][start:stop], layers[second][start:stop]
            values.append(numpy_unbiased_hsic(x @ x.T, y @ y.T))
        return float(np.mean(values))

    expected = averaged("a", "b") / np.sqrt(averaged("a", "a") * averaged("b", "b"))
    assert whole.cka()[0, 1] == pytest.approx(expected, rel=1e-10)
    assert np.allclose(np.diag(whole.cka()), 1.0)
    tiny = _cka.MinibatchCKAReducer(list(layers))
    tiny.feed(_Batch(3), torch.zeros(0), {name: torch.tensor(value[:3]) for name, value in layers.items()})
    assert tiny.skipped == 1 and tiny.batches == 0 and np.isnan(tiny.cka()).all()


def hooked_outputs(model: torch.nn.Module, inputs: torch.Tensor, names: list[str]) -> dict[str, np.ndarray]:
    """Layer outputs read with plain forward hooks, independently of introspect's capture."""
    modules, outputs = dict(model.named_modules()), {}
    handles = [
        modules[name].register_forward_hook(lambda _m, _i, out, name=name: outputs.__setitem__(name, out.detach()))
        for name in names
    ]
    with torch.no_grad():
        model.eval()(inputs)
    for handle in handles:
        handle.remove()
    return {name: value.double().numpy() for name, value in outputs.items()}


def test_layer_similarity_on_a_cnn_equals_numpy_over_hooked_outputs() -> None:
    subject = conv_image_subject()
    subject = dataclasses.replace(
        subject, probe_inputs=torch.rand(24, 1, 12, 12, generator=torch.Generator().manual_seed(2))
    )
    artifact = similarity.layer_similarity(subject)[0]
    names = list(artifact.summary["layers"])
    assert names == ["2", "4", "6"]  # both ReLUs and the output layer
    outputs = hooked_outputs(subject.model, subject.probe_inputs, names)
    expected = np.array([[numpy_linear_cka(outputs[a], outputs[b]) for b in names] for a in names])
    np.testing.assert_allclose(artifact.data["cka"], expected, rtol=1e-9)
    assert artifact.summary["adjacent_cka"] == pytest.approx([expected[0, 1], expected[1, 2]], rel=1e-9)


def test_drift_from_initial_weights_is_one_for_an_untrained_copy_and_lower_after_a_change() -> None:
    subject = conv_image_subject()
    same = {name: tensor.clone() for name, tensor in subject.model.state_dict().items()}
    artifacts = similarity.layer_similarity(dataclasses.replace(subject, initial_weights=same))
    drift = next(artifact for artifact in artifacts if artifact.name == "drift-from-initial")
    np.testing.assert_allclose(drift.data["cka"], 1.0, rtol=1e-9)
    torch.manual_seed(11)
    other = {name: torch.randn_like(tensor) if name.endswith("weight") else tensor for name, tensor in same.items()}
    moved = next(
        a
        for a in similarity.layer_similarity(dataclasses.replace(subject, initial_weights=other))
        if a.name == "drift-from-initial"
    )
    untrained = conv_image_subject().model
    untrained.load_state_dict(other)
    names = list(drift.summary["layers"])
    trained, initial = (hooked_outputs(model, subject.probe_inputs, names) for model in (subject.model, untrained))
    np.testing.assert_allclose(moved.data["cka"], [numpy_linear_cka(trained[n], initial[n]) for n in names], rtol=1e-9)
    assert (moved.data["cka"] < 0.999).all()


def test_dataset_layer_similarity_equals_minibatch_cka_computed_by_hand() -> None:
    subject = with_test_data(conv_image_subject(), size=40)  # batches of 16, 16 and 8
    spec = spec_of(similarity.dataset_layer_similarity)
    outcome = run_pass(subject, [spec], {spec.name: {}})
    artifact = similarity.dataset_layer_similarity(subject, outcome.reduced[spec.name])[0]
    names = list(artifact.summary["layers"])
    inputs = subject.data.source.dataset.tensors[0]
    hsic = np.zeros((len(names), len(names)))
    for start in range(0, 40, 16):
        outputs = hooked_outputs(subject.model, inputs[start : start + 16], names)
        kernels = [outputs[n].reshape(len(outputs[n]), -1) @ outputs[n].reshape(len(outputs[n]), -1).T for n in names]
        hsic += np.array([[numpy_unbiased_hsic(k, l) for l in kernels] for k in kernels])  # noqa: E741
    expected = hsic / np.sqrt(np.outer(np.diag(hsic), np.diag(hsic)))
    np.testing.assert_allclose(artifact.data["cka"], expected, rtol=1e-9)
    assert artifact.summary["num_inputs"] == 40
