"""The outputs rule: analyzers see the logits of tuples, dicts and ModelOutput dataclasses."""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path

import pytest
import torch

from introspect import analyze
from introspect.loading import load_checkpoint
from introspect.model_output import logits_of, returning_logits

LOGITS = torch.arange(6.0).reshape(2, 3)
OTHER = torch.ones(2, 5)


@dataclasses.dataclass
class Output:
    hidden: torch.Tensor
    logits: torch.Tensor


Pair = collections.namedtuple("Pair", ["hidden", "scores"])


@pytest.mark.parametrize(
    "output",
    [
        LOGITS,
        {"hidden": OTHER, "logits": LOGITS},
        Output(hidden=OTHER, logits=LOGITS),
        (LOGITS, OTHER),
        ["no tensor", LOGITS, OTHER],
        {"loss": None, "scores": LOGITS, "hidden": OTHER},
        Pair(hidden=LOGITS, scores=OTHER),
    ],
    ids=["tensor", "dict-logits", "dataclass-logits", "tuple", "list-first-tensor", "dict-first-tensor", "namedtuple"],
)
def test_logits_are_the_logits_entry_else_the_first_tensor(output: object) -> None:
    assert logits_of(output) is LOGITS


def test_a_transformers_model_output_gives_its_logits() -> None:
    modeling_outputs = pytest.importorskip("transformers.modeling_outputs")
    output = modeling_outputs.SequenceClassifierOutput(loss=None, logits=LOGITS, hidden_states=(OTHER,))
    assert logits_of(output) is LOGITS


def test_an_output_without_any_tensor_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="holds no tensor"):
        logits_of({"text": "hello", "count": 3})


class DictNetwork(torch.nn.Module):
    """Returns a dict, as many research models do."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh())
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.body(x)
        return {"features": features, "logits": self.head(features)}


def build_dict_network() -> DictNetwork:
    torch.manual_seed(0)
    return DictNetwork()


def test_hook_keeps_layer_names_and_is_added_once() -> None:
    network = build_dict_network()
    inputs = torch.randn(3, 4)
    expected = network(inputs)["logits"]
    returning_logits(returning_logits(network))
    assert len(network._forward_hooks) == 1
    assert torch.equal(network(inputs), expected)
    assert [name for name, _ in network.named_modules()] == ["", "body", "body.0", "body.1", "head"]


def test_a_rebuilt_model_returning_a_dict_runs_forward_and_gradient_analyzers(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save(build_dict_network().state_dict(), path)
    arch = "tests.introspect.test_formats_outputs:build_dict_network"
    subject = load_checkpoint(path, device="cpu", arch=arch, input_shape=(4,))
    assert subject.model(subject.probe_inputs).shape == (16, 3)
    report = analyze(subject, analyzers=["activations", "input_saliency", "activation_health"], out_dir=tmp_path / "g")
    assert {result.name: result.status for result in report.results} == {
        "activations": "ok",
        "input_saliency": "ok",
        "activation_health": "ok",
    }
