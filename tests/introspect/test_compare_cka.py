"""Linear CKA between the layers of two checkpoints on the same inputs, as the comparison page shows it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from test_representation_similarity import hooked_outputs, numpy_linear_cka  # the same independent references
from torch import nn

from introspect.compare import compare_subjects
from introspect.compare_cka import cross_cka, inputs_for
from introspect.report.comparison import comparison_figures
from introspect.subject import Subject, Task


def image_task(input_shape: tuple[int, ...], normalization: dict | None = None) -> Task:
    return Task(
        kind="classification", input_shape=input_shape, image_shape=(1, 6, 6), class_names=("a", "b", "c"),
        normalization=normalization,
    )  # fmt: skip


def cnn_subject() -> Subject:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))
    inputs = torch.rand(20, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    return Subject.from_model(model, inputs, torch.arange(20) % 3, task=image_task((1, 6, 6)))


def mlp_subject(normalization: dict | None = None) -> Subject:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(36, 10), nn.Tanh(), nn.Linear(10, 3))
    inputs = torch.rand(20, 36)
    return Subject.from_model(model, inputs, torch.arange(20) % 3, task=image_task((36,), normalization))


def test_a_cnn_against_an_mlp_on_the_cnns_probe_equals_numpy_over_hooked_outputs() -> None:
    cnn, mlp = cnn_subject(), mlp_subject()
    (pair,), notes = cross_cka(["cnn", "mlp"], [cnn, mlp])
    assert notes == () and pair.titles == ("cnn", "mlp") and pair.num_inputs == 20
    assert pair.layers == (("1", "3"), ("1", "2")) and pair.note == "reshaped to [36]"
    ours = hooked_outputs(cnn.model, cnn.probe_inputs, ["1", "3"])
    theirs = hooked_outputs(mlp.model, cnn.probe_inputs.reshape(20, 36), ["1", "2"])
    expected = [[numpy_linear_cka(ours[a], theirs[b]) for b in ("1", "2")] for a in ("1", "3")]
    np.testing.assert_allclose(pair.cka, expected, rtol=1e-9)


def test_a_checkpoint_against_itself_has_ones_on_the_diagonal_and_the_page_draws_it() -> None:
    comparison = compare_subjects([("a", cnn_subject()), ("b", cnn_subject())])
    (pair,) = comparison.representations
    np.testing.assert_allclose(np.diag(pair.cka), 1.0, rtol=1e-12)
    figure = [artifact for artifact in comparison_figures(comparison) if artifact.name == "representations-1"]
    assert len(figure) == 1 and figure[0].summary["layers"] == [["1", "3"], ["1", "3"]]


def test_inputs_are_renormalized_for_a_checkpoint_with_other_preprocessing() -> None:
    ours = {"mean": [0.5], "std": [0.25]}
    theirs = mlp_subject({"mean": [0.1], "std": [0.3]})
    inputs = torch.rand(4, 1, 6, 6)
    converted, note = inputs_for(theirs, inputs, ours)
    expected = ((inputs.numpy() * 0.25 + 0.5) - 0.1) / 0.3
    np.testing.assert_allclose(converted.numpy(), expected.reshape(4, 36), rtol=1e-5)
    assert note == "reshaped to [36], renormalized with its own mean and std"


def test_a_checkpoint_that_cannot_take_the_inputs_is_named_with_the_reason() -> None:
    other = dataclasses.replace(mlp_subject(), task=image_task((35,)))
    pairs, notes = cross_cka(["cnn", "other"], [cnn_subject(), other])
    assert pairs == () and notes == ("other: it takes inputs of shape [35], not [1, 6, 6]",)
    weights_only = Subject(weights=dict(cnn_subject().weights))
    assert cross_cka(["w", "cnn"], [weights_only, cnn_subject()])[0] == ()


@pytest.mark.parametrize("count", [2, 3])
def test_the_first_checkpoint_is_compared_with_each_other_one(count: int) -> None:
    pairs, _ = cross_cka([f"c{i}" for i in range(count)], [cnn_subject() for _ in range(count)])
    assert [pair.titles for pair in pairs] == [("c0", f"c{i}") for i in range(1, count)]
