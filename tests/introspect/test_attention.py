"""Attention weights read from timm, transformers and nn.MultiheadAttention; the maps and rollout drawn from them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from introspect.analyzers import activation_attention as attention_analyzers
from introspect.attention import TokenLayout, attention_layer_names, capture_attention, token_layout
from introspect.model_output import returning_logits
from introspect.runner import run_one
from introspect.spec import spec_of
from introspect.subject import Subject, Task
from introspect.testing import check_analyzer, conv_image_subject

timm = pytest.importorskip("timm")
transformers = pytest.importorskip("transformers")

SIDE = 32


class TinyViT(torch.nn.Module):
    """A vision transformer of torch's own layers: a class token and 4x4 patches through nn.MultiheadAttention."""

    def __init__(self, side: int = 16, patch: int = 4, dim: int = 16, heads: int = 2, depth: int = 2) -> None:
        super().__init__()
        self.patch_embed = torch.nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = torch.nn.Parameter(0.5 * torch.randn(1, 1, dim))
        self.position = torch.nn.Parameter(0.5 * torch.randn(1, 1 + (side // patch) ** 2, dim))
        layer = torch.nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = torch.nn.LayerNorm(dim)
        self.head = torch.nn.Linear(dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], dim=1) + self.position
        return self.head(self.norm(self.encoder(tokens))[:, 0])


def image_subject(model: torch.nn.Module, side: int = SIDE, count: int = 6) -> Subject:
    torch.manual_seed(1)
    task = Task(
        kind="classification",
        input_shape=(3, side, side),
        image_shape=(3, side, side),
        class_names=("cat", "dog", "owl"),
    )
    return Subject.from_model(model.eval(), torch.randn(count, 3, side, side), torch.arange(count) % 3, task=task)


def tiny_timm_vit(name: str = "vit_tiny_patch16_224", **extra: object) -> torch.nn.Module:
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, img_size=SIDE, patch_size=8, depth=3, num_classes=3, **extra)
    with torch.no_grad():  # sharper attention than a fresh init's near-uniform rows, so the numbers say something
        for block in model.blocks:
            block.attn.qkv.weight.mul_(6)
    return model.eval()


@pytest.fixture(scope="module")
def vit_subject() -> Subject:
    return image_subject(tiny_timm_vit())


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def numpy_attention(tokens: np.ndarray, q_weight, q_bias, k_weight, k_bias, heads: int) -> np.ndarray:  # noqa: ANN001
    """softmax(q k^T / sqrt(d)) per head, from the tokens an attention layer reads: (N, heads, T, T)."""
    count, length, _ = tokens.shape
    q = (tokens @ q_weight.T + q_bias).reshape(count, length, heads, -1).transpose(0, 2, 1, 3)
    k = (tokens @ k_weight.T + k_bias).reshape(count, length, heads, -1).transpose(0, 2, 1, 3)
    return softmax(q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1]))


def inputs_of(model: torch.nn.Module, layer: str, inputs: torch.Tensor) -> np.ndarray:
    """What ``layer`` outputs when ``model`` runs on ``inputs``, as float64 numpy."""
    seen = {}
    handle = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: seen.setdefault("x", o))
    with torch.no_grad():
        model(inputs)
    handle.remove()
    return seen["x"].double().numpy()


def hook_counts(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_timm_weights_equal_a_numpy_softmax_of_the_qkv_projection_and_fused_attention_comes_back(vit_subject):
    model, inputs = vit_subject.model, vit_subject.probe_inputs[:3]
    hooks = hook_counts(model)
    capture = capture_attention(model, inputs)
    assert capture.family == "timm" and capture.layers == ("blocks.0.attn", "blocks.1.attn", "blocks.2.attn")
    assert all(block.attn.fused_attn for block in model.blocks) and hook_counts(model) == hooks
    for index, block in enumerate(model.blocks):
        tokens = inputs_of(model, f"blocks.{index}.norm1", inputs)
        qkv_w, qkv_b = block.attn.qkv.weight.detach().double().numpy(), block.attn.qkv.bias.detach().double().numpy()
        dim = tokens.shape[-1]
        expected = numpy_attention(tokens, qkv_w[:dim], qkv_b[:dim], qkv_w[dim : 2 * dim], qkv_b[dim : 2 * dim], 3)
        np.testing.assert_allclose(capture.weights[index].numpy(), expected, atol=1e-5)
    assert capture.weights[0].shape == (3, 3, 17, 17)


def test_token_layout_counts_class_distillation_and_register_tokens() -> None:
    image = (3, SIDE, SIDE)
    distilled = tiny_timm_vit("deit_tiny_distilled_patch16_224")
    assert token_layout(distilled, 18, image) == TokenLayout(2, (4, 4), True)
    registers = tiny_timm_vit(reg_tokens=4, class_token=False, global_pool="avg")
    assert token_layout(registers, 20, image) == TokenLayout(4, (4, 4), False)
    # Without a stated count, the fewest leading tokens that leave a whole grid: 1 + 4x4 patches of 4 pixels.
    assert token_layout(TinyViT(), 17, (3, 16, 16)) == TokenLayout(1, (4, 4), True)
    assert token_layout(TinyViT(), 7, (3, 16, 16)) is None and token_layout(TinyViT(), 17, None) is None


def test_multihead_attention_weights_equal_numpy_per_head_softmax_and_outputs_do_not_change() -> None:
    torch.manual_seed(0)
    model = TinyViT().eval()
    inputs = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        before = model(inputs)
    capture = capture_attention(model, inputs)
    with torch.no_grad():
        assert torch.allclose(model(inputs), before, atol=1e-6)
    assert capture.family == "torch" and capture.layers == ("encoder.layers.0.self_attn", "encoder.layers.1.self_attn")
    assert hook_counts(model) == 0
    for index, layer in enumerate(model.encoder.layers):
        tokens = inputs_of(model, f"encoder.layers.{index}.norm1", inputs)  # norm_first: the attention reads norm1
        weight = layer.self_attn.in_proj_weight.detach().double().numpy()
        bias = layer.self_attn.in_proj_bias.detach().double().numpy()
        expected = numpy_attention(tokens, weight[:16], bias[:16], weight[16:32], bias[16:32], heads=2)
        np.testing.assert_allclose(capture.weights[index].numpy(), expected, atol=1e-5)


@pytest.fixture(scope="module")
def hf_vit() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.ViTConfig(
        image_size=SIDE, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=3,
    )  # fmt: skip
    return returning_logits(transformers.ViTForImageClassification(config).eval())


def test_transformers_vit_weights_equal_numpy_and_its_sdpa_attention_is_put_back(hf_vit) -> None:
    assert hf_vit.config._attn_implementation == "sdpa"  # which returns no weights: the capture switches to eager
    inputs = torch.randn(2, 3, SIDE, SIDE)
    capture = capture_attention(hf_vit, inputs)
    assert hf_vit.config._attn_implementation == "sdpa"
    assert capture.family == "transformers" and list(capture.layers) == attention_layer_names(hf_vit)
    assert capture.layers == ("vit.layers.0.attention", "vit.layers.1.attention")
    for index, layer in enumerate(hf_vit.vit.layers):
        tokens = inputs_of(hf_vit, f"vit.layers.{index}.layernorm_before", inputs)
        parts = [getattr(layer.attention, name) for name in ("q_proj", "k_proj")]
        arrays = [array.detach().double().numpy() for part in parts for array in (part.weight, part.bias)]
        np.testing.assert_allclose(capture.weights[index].numpy(), numpy_attention(tokens, *arrays, 2), atol=1e-5)
    assert token_layout(hf_vit, capture.num_tokens, (3, SIDE, SIDE)) == TokenLayout(1, (4, 4), True)


def test_attention_rollout_equals_a_numpy_product_of_renormalized_head_means(vit_subject: Subject) -> None:
    artifact = attention_analyzers.attention_rollout(vit_subject)[0]
    indices = artifact.data["indices"]
    weights = capture_attention(vit_subject.model, vit_subject.probe_inputs[indices]).weights
    expected = None
    for layer in weights:
        mixed = layer.double().numpy().mean(axis=1) + np.eye(17)
        mixed /= mixed.sum(axis=-1, keepdims=True)
        expected = mixed if expected is None else mixed @ expected
    np.testing.assert_allclose(artifact.data["rollout"], expected, rtol=1e-9, atol=1e-12)
    maps = expected[:, 0, 1:].reshape(len(indices), 4, 4)
    np.testing.assert_allclose(artifact.data["maps"], maps, rtol=1e-9)
    assert artifact.summary["mean_share_on_patches"] == pytest.approx(maps.sum(axis=(1, 2)).mean())
    assert artifact.summary["num_layers"] == 3 and "class token dropped" in artifact.caption
    # A row of a rollout is a mixture of input tokens: it sums to 1.
    np.testing.assert_allclose(artifact.data["rollout"].sum(axis=-1), 1.0, atol=1e-12)


def test_attention_maps_show_the_class_token_row_over_the_patches_for_the_chosen_layers(vit_subject) -> None:
    layers_artifact, heads_artifact = attention_analyzers.attention_maps(vit_subject, layers=(0, -1), max_heads=2)
    indices = layers_artifact.data["indices"]
    assert layers_artifact.data["layers"] == ["blocks.0.attn", "blocks.2.attn"]
    weights = capture_attention(vit_subject.model, vit_subject.probe_inputs[indices]).weights
    expected = np.stack([weights[0].numpy(), weights[2].numpy()], axis=1)[:, :, :, 0, 1:]  # (N, layers, heads, 16)
    np.testing.assert_allclose(layers_artifact.data["maps"], expected.reshape(len(indices), 2, 3, 4, 4), atol=1e-6)
    np.testing.assert_allclose(heads_artifact.data["maps"], expected[:, 1, :2].reshape(-1, 2, 4, 4), atol=1e-6)
    entropy = [-(w[:, :, 0] * np.log(w[:, :, 0])).sum(-1).mean() for w in (weights[0].numpy(), weights[2].numpy())]
    np.testing.assert_allclose(layers_artifact.summary["class_token_entropy"], entropy, rtol=1e-5)
    assert "heads averaged" in layers_artifact.caption and "class token dropped" in layers_artifact.caption
    assert "heads 0 to 1 of 3 separately" in heads_artifact.caption
    default = attention_analyzers.attention_maps(vit_subject, max_layers=2)[0]
    assert default.data["layers"] == ["blocks.0.attn", "blocks.2.attn"]  # spread out, first and last kept
    missing = run_one(vit_subject, spec_of(attention_analyzers.attention_maps), options={"layers": (5,)})
    assert missing.status == "skipped" and "3 attention layers" in missing.reason


@pytest.fixture(scope="module")
def bert_subject() -> Subject:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, num_labels=2,
    )  # fmt: skip
    model = returning_logits(transformers.BertForSequenceClassification(config).eval())
    task = Task(kind="classification", input_shape=(12,), class_names=("no", "yes"))
    return Subject.from_model(model, torch.randint(0, 100, (4, 12)), torch.tensor([0, 1, 0, 1]), task=task)


def test_text_attention_is_token_by_token_and_equals_numpy_from_the_query_and_key_layers(bert_subject) -> None:
    layers_artifact, heads_artifact = attention_analyzers.attention_maps(bert_subject)
    indices = layers_artifact.data["indices"]
    model, ids = bert_subject.model, bert_subject.probe_inputs[indices]
    reference = []
    for reads, layer in zip(["bert.embeddings", "bert.encoder.layer.0"], model.bert.encoder.layer):
        attention = layer.attention.self
        arrays = [
            a.detach().double().numpy() for part in (attention.query, attention.key) for a in (part.weight, part.bias)
        ]
        reference.append(numpy_attention(inputs_of(model, reads, ids), *arrays, heads=2))
    expected = np.stack([layer.mean(axis=1) for layer in reference], axis=1)  # (N, layers, 12, 12)
    np.testing.assert_allclose(layers_artifact.data["attention"], expected, atol=1e-6)
    np.testing.assert_allclose(heads_artifact.data["attention"], reference[-1][0], atol=1e-6)
    entropies = [-(layer * np.log(layer)).sum(axis=-1).mean() for layer in reference]
    np.testing.assert_allclose(layers_artifact.summary["mean_row_entropy"], entropies, rtol=1e-5)
    assert "Token-by-token" in layers_artifact.caption and layers_artifact.summary["family"] == "transformers"
    rollout = attention_analyzers.attention_rollout(bert_subject)[0]
    assert rollout.data["rows"].shape == (4, 12) and "first token's row" in rollout.caption
    np.testing.assert_allclose(rollout.data["rows"].sum(axis=1), 1.0, atol=1e-12)


def test_models_without_attention_layers_are_skipped_with_a_reason() -> None:
    subject = conv_image_subject(channels=3)
    for function in (attention_analyzers.attention_maps, attention_analyzers.attention_rollout):
        result = run_one(subject, spec_of(function))
        assert result.status == "skipped" and "no attention layer" in result.reason


def test_attention_analyzers_conform_on_a_vision_transformer_of_torch_layers() -> None:
    torch.manual_seed(0)
    subject = image_subject(TinyViT(), side=16)
    for function in (attention_analyzers.attention_maps, attention_analyzers.attention_rollout):
        assert check_analyzer(function, {"tiny_vit": subject}) == {"tiny_vit": "ok"}
