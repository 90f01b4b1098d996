"""Hugging Face model folders: rebuilt offline with transformers' classes, never with remote code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from introspect.cli import main  # noqa: E402
from introspect.loading import load_checkpoint  # noqa: E402
from introspect.needs import Needs  # noqa: E402


def exit_code_of(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(args)
    captured = capsys.readouterr()
    return caught.value.code, captured.out, captured.err


@pytest.fixture(scope="module")
def vit_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ViT classifier as save_pretrained writes it, with its image processor's config."""
    folder = tmp_path_factory.mktemp("hf") / "my-vit"
    torch.manual_seed(0)
    config = transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=3, id2label={0: "cat", 1: "dog", 2: "owl"},
        label2id={"cat": 0, "dog": 1, "owl": 2},
    )  # fmt: skip
    transformers.ViTForImageClassification(config).save_pretrained(folder)
    processor = {"size": {"height": 32, "width": 32}, "image_mean": [0.4, 0.5, 0.6], "image_std": [0.2, 0.25, 0.3]}
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder


@pytest.fixture(scope="module")
def bert_model() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, num_labels=2,
    )  # fmt: skip
    return transformers.BertForSequenceClassification(config).eval()


def test_vit_folder_gives_transformers_own_logits_labels_and_preprocessing(vit_folder: Path) -> None:
    subject = load_checkpoint(vit_folder, device="cpu")
    reference = transformers.ViTForImageClassification.from_pretrained(vit_folder).eval()
    inputs = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(subject.model(inputs), reference(inputs).logits, atol=1e-6)
    assert subject.task.kind == "classification" and subject.task.class_names == ("cat", "dog", "owl")
    assert subject.task.input_shape == (3, 32, 32) and subject.task.image_shape == (3, 32, 32)
    assert subject.task.normalization == {"mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3]}
    assert subject.metadata["format"] == "hugging-face-folder"
    assert subject.metadata["details"]["model_type"] == "vit" and subject.metadata["details"]["labels"] == 3


@pytest.mark.slow
def test_vit_folder_is_analyzed_with_every_analyzer(vit_folder: Path, tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "gallery"
    # attribution_scorecard alone takes 12 s of a 2-core machine on this tiny ViT; it has its own tests.
    args = ["analyze", str(vit_folder), "--all", "-x", "attribution_scorecard", "-o", str(out_dir), "--device", "cpu"]
    code, out, err = exit_code_of(args, capsys)
    assert code == 0, err
    manifest = json.loads((out_dir / "manifest.json").read_text())
    results = {result["name"]: result for result in manifest["analyzers"]}
    statuses = {name: result["status"] for name, result in results.items()}
    assert statuses["activations"] == statuses["input_saliency"] == statuses["grad_cam"] == "ok"
    assert statuses["attention_maps"] == statuses["attention_rollout"] == "ok"
    # Grad-CAM on the tokens the last attention layer reads, on the 4x4 patch grid, not on the patch-embedding conv.
    cam = results["grad_cam"]["figures"][0]
    assert cam["layer"] == "vit.layers.1.layernorm_before" and cam["summary"]["cam_shape"] == [4, 4]
    assert results["attention_rollout"]["figures"][0]["summary"]["patch_grid"] == [4, 4]


@pytest.mark.slow
def test_bert_classifier_runs_every_analyzer_on_token_ids_inside_the_vocabulary(
    bert_model: torch.nn.Module, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "bert"
    bert_model.save_pretrained(folder)
    subject = load_checkpoint(folder, device="cpu")
    assert subject.probe_inputs.dtype == torch.int64 and subject.probe_inputs.shape == (16, 16)
    assert 0 <= int(subject.probe_inputs.min()) and int(subject.probe_inputs.max()) < 100
    with torch.no_grad():
        assert torch.allclose(subject.model(subject.probe_inputs), bert_model(subject.probe_inputs).logits, atol=1e-6)
    assert Needs.GRADIENTS not in subject.available()
    assert "token ids" in subject.missing_reason(Needs.GRADIENTS)
    out_dir = tmp_path / "gallery"
    code, _, err = exit_code_of(["analyze", str(folder), "--all", "-o", str(out_dir), "--device", "cpu"], capsys)
    assert code == 0, err
    results = json.loads((out_dir / "manifest.json").read_text())["analyzers"]
    statuses = {result["name"]: result["status"] for result in results}
    assert statuses["activations"] == statuses["weight_histograms"] == "ok"
    assert statuses["input_saliency"] == "skipped"
    assert statuses["attention_maps"] == statuses["attention_rollout"] == "ok"  # token by token


def test_sharded_save_pretrained_loads_the_same_weights(bert_model: torch.nn.Module, tmp_path: Path) -> None:
    bert_model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert len(list((tmp_path / "sharded").glob("*.safetensors"))) > 1
    subject = load_checkpoint(tmp_path / "sharded", device="cpu")
    assert subject.metadata["details"]["shards"] > 1
    expected = dict(bert_model.named_parameters())
    assert set(subject.weights) == set(expected)
    assert all(torch.equal(subject.weights[name], expected[name].detach()) for name in expected)


def test_pytorch_model_bin_folder_is_read_with_the_safe_torch_reader(bert_model, tmp_path: Path) -> None:
    folder = tmp_path / "bin"
    bert_model.config.save_pretrained(folder)
    torch.save(bert_model.state_dict(), folder / "pytorch_model.bin")
    subject = load_checkpoint(folder, device="cpu")
    ids = torch.randint(0, 100, (2, 8))
    with torch.no_grad():
        assert torch.allclose(subject.model(ids), bert_model(ids).logits, atol=1e-6)


def _folder_with_config(tmp_path: Path, bert_model: torch.nn.Module, **changes: object) -> Path:
    folder = tmp_path / "hostile"
    bert_model.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    return folder


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"auto_map": {"AutoModel": "evil.EvilModel"}}, "asks for the model's own code (auto_map"),
        ({"model_type": "evil-llm"}, "model type 'evil-llm', which the installed transformers"),
        ({"architectures": ["os.system"]}, "names architecture 'os.system'"),
        ({"num_hidden_layers": 10**9}, "more than the 1024 allowed"),
    ],
    ids=["auto-map", "unknown-model-type", "foreign-architecture", "forged-layer-count"],
)
def test_hostile_config_is_refused_in_one_line_and_nothing_is_written(
    tmp_path: Path, bert_model: torch.nn.Module, changes: dict, words: str, capsys: pytest.CaptureFixture
) -> None:
    folder = _folder_with_config(tmp_path, bert_model, **changes)
    out_dir = tmp_path / "gallery"
    code, _, err = exit_code_of(["analyze", str(folder), "--all", "-o", str(out_dir), "--device", "cpu"], capsys)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not out_dir.exists()


def test_info_describes_the_folder(vit_folder: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = exit_code_of(["info", str(vit_folder), "--json"], capsys)
    description = json.loads(out)
    assert code == 0 and description["format"] == "hugging-face-folder"
    assert description["details"]["model_type"] == "vit" and description["details"]["labels"] == 3
    assert description["details"]["preprocessing"]["mean"] == [0.4, 0.5, 0.6]
    assert description["architecture"] == "ViTForImageClassification"
