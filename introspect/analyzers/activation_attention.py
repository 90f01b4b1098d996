"""Attention: where a transformer's heads look, layer by layer, and how attention flows through the layers.

Weights are read by :mod:`introspect.attention` (timm, transformers, ``nn.MultiheadAttention``).
A vision transformer's tokens are laid back on the image: the class token's row over the patch
tokens, reshaped to the patch grid (class, distillation and register tokens dropped); a model
without a class token shows the attention each patch receives, averaged over the patch queries.
Any other model (a text encoder) is shown token by token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from introspect._lazy import lazy_import
from introspect.analyzers._attention import (
    MAX_TOKEN_LABELS,
    TEXT_COLOURS,
    chosen_layers,
    image_sized,
    listed_layers,
    query_rows,
    row_entropy,
    token_heatmaps,
    token_labels,
)
from introspect.analyzers._attribution import ProbeSelection, choose_probe, in_eval_mode
from introspect.analyzers._attribution_maps import colourize, overlay, strip_figure
from introspect.analyzers._shared import display_images
from introspect.artifacts import Artifact
from introspect.attention import (
    NO_ATTENTION,
    AttentionCapture,
    TokenLayout,
    attention_layer_names,
    capture_attention,
    token_layout,
)
from introspect.attention import rollout as attention_rollout_matrices
from introspect.capture import check_hookable
from introspect.errors import SkipAnalyzer
from introspect.needs import Needs
from introspect.plotting import new_figure
from introspect.spec import analyzer

#: After the attribution modules (``input_saliency``, ``grad_cam``, ``occlusion``), before ``attribution_sanity``.
POSITION = 10

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure

    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

#: Sequences drawn token by token; more T x T panels per layer would be too small to read.
MAX_TEXT_ROWS = 2


@analyzer(needs=Needs.FORWARD)
@in_eval_mode
def attention_maps(
    subject: Subject,
    /,
    *,
    layers: tuple[int, ...] | None = None,
    max_layers: int = 4,
    max_images: int = 4,
    max_heads: int = 6,
) -> list[Artifact]:
    """Attention maps: where each attention layer's heads look, for a few probe inputs.

    For a vision transformer (timm ViT/DeiT, transformers' ViT, any model whose tokens are a class
    token and a patch grid) each map is the class token's attention to the patches, laid on the
    image; the class, distillation and register tokens themselves are dropped. One figure shows a
    few layers with their heads averaged, a second the heads of the last chosen layer one by one.
    For a text encoder (BERT) the maps are token-by-token heatmaps: row = query token, column =
    key token. ``layers`` picks attention layers by index (0 is the first, -1 the last); by
    default ``max_layers`` of them are spread from the first to the last.
    """
    model = subject.model
    check_hookable(model)
    names = attention_layer_names(model)
    if not names:
        raise SkipAnalyzer(NO_ATTENTION)
    chosen = chosen_layers(names, layers, max_layers)
    probe = choose_probe(subject, max_images, max_images, forward_passes=1)
    capture = capture_attention(model, probe.inputs, keep=chosen)
    layout = token_layout(model, capture.num_tokens, subject.task.image_shape)
    labels = [f"layer {names.index(name)}" if name in names else name for name in capture.layers]
    if layout is not None:
        return _vision_maps(subject, probe, capture, layout, labels, max_heads)
    return _text_maps(probe, capture, labels, max_heads)


@analyzer(needs=Needs.FORWARD)
@in_eval_mode
def attention_rollout(subject: Subject, /, *, max_images: int = 8) -> list[Artifact]:
    """Attention rollout: how much the class token's final state draws on each input token, through every layer.

    Abnar and Zuidema (2020): per layer the heads are averaged, the identity is added for the
    residual connection and each row is renormalized to sum to 1; multiplying these matrices
    through the layers gives how each token at the top is mixed from the input tokens. The class
    token's row (the first token's for a text encoder) is shown over the patch grid on the image,
    or over the tokens. Attention flow ignores the MLPs and the values, so it is a rough guide to
    where information comes from, not an attribution of the score.
    """
    model = subject.model
    check_hookable(model)
    if not attention_layer_names(model):
        raise SkipAnalyzer(NO_ATTENTION)
    probe = choose_probe(subject, max_images, max_images, forward_passes=1)
    capture = capture_attention(model, probe.inputs)
    rolled = attention_rollout_matrices(capture.weights)
    layout = token_layout(model, capture.num_tokens, subject.task.image_shape)
    if layout is not None:
        return [_vision_rollout(subject, probe, capture, layout, rolled)]
    return [_text_rollout(probe, capture, rolled)]


def _vision_maps(
    subject: Subject,
    probe: ProbeSelection,
    capture: AttentionCapture,
    layout: TokenLayout,
    labels: list[str],
    max_heads: int,
) -> list[Artifact]:
    images = display_images(subject, probe.inputs)
    height, width = images.shape[1:3]
    per_head = np.stack([query_rows(weights, layout).double().numpy() for weights in capture.weights], axis=1)
    averaged = per_head.mean(axis=2)  # (N, layers, rows, columns)
    what = _query_phrase(layout)
    layer_figure = _image_rows(images, averaged, probe.titles, ["input", *labels], height, width)
    heading = f"{what.capitalize()}, heads averaged, in {len(capture.layers)} attention layers"
    layer_figure.suptitle(heading, fontsize=8)
    last = per_head[:, -1]
    num_heads = min(max_heads, last.shape[1])
    head_titles = ["input", *(f"head {head}" for head in range(num_heads))]
    head_figure = _image_rows(images, last[:, :num_heads], probe.titles, head_titles, height, width)
    head_figure.suptitle(f"{what.capitalize()} in {labels[-1]}, head by head", fontsize=8)
    grid = f"{layout.grid[0]}x{layout.grid[1]}"
    base = (
        f"{what} ({grid} patch grid{_dropped_phrase(layout)}) for {len(probe.indices)} probe images{probe.note}, "
        "laid over the image; each map is scaled to its own maximum."
    )
    summary = _vision_summary(capture, layout, len(probe.indices))
    data = {"maps": per_head, "indices": probe.indices, "layers": list(capture.layers)}
    shown_heads = f"heads 0 to {num_heads - 1} of {last.shape[1]}" if num_heads < last.shape[1] else "every head"
    return [
        Artifact(
            name="attention-layers",
            caption=f"Attention layers {listed_layers(labels, capture.layers)}, heads averaged: {base}",
            figure=layer_figure,
            data=data,
            summary=summary,
        ),
        Artifact(
            name="attention-heads",
            caption=f"Attention {labels[-1]} ({capture.layers[-1]}), {shown_heads} separately: {base}",
            layer=capture.layers[-1],
            figure=head_figure,
            data={"maps": last[:, :num_heads], "indices": probe.indices},
            summary={"layer": capture.layers[-1], "num_heads_shown": num_heads, "num_heads": int(last.shape[1])},
        ),
    ]


def _query_phrase(layout: TokenLayout) -> str:
    if layout.has_class_token:
        return "the class token's attention to the patches"
    return "the attention each patch receives, averaged over the patch queries (the model has no class token)"


def _dropped_phrase(layout: TokenLayout) -> str:
    """``; the class token and 1 distillation/register token dropped``, or "" when there is no such token."""
    if layout.num_prefix == 0:
        return ""
    extra = layout.num_prefix - int(layout.has_class_token)
    dropped = (["the class token"] if layout.has_class_token else []) + (
        [f"{extra} distillation/register token{'s' if extra > 1 else ''}"] if extra else []
    )
    return f"; {' and '.join(dropped)} dropped"


def _image_rows(
    images: np.ndarray, maps: np.ndarray, row_titles: list[str], column_titles: list[str], height: int, width: int
) -> Figure:
    """One row per image: the image, then each of its (columns, rows, cols) patch maps laid over it."""
    rows = []
    for image, image_maps, title in zip(images, maps, row_titles):
        sized = image_sized(image_maps, height, width)
        repeated = np.repeat(image[None], len(sized), axis=0)
        rows.append((title, np.concatenate([image[None], overlay(repeated, sized, signed=False)])))
    # strip_figure titles its columns on top and its rows at the left, as the other attribution strips.
    return strip_figure(rows, column_titles, "")


def _vision_summary(capture: AttentionCapture, layout: TokenLayout, num_images: int) -> dict:
    first_rows = [weights[:, :, 0] for weights in capture.weights]
    summary = {
        "layers": list(capture.layers),
        "num_heads": int(capture.weights[0].shape[1]),
        "num_tokens": capture.num_tokens,
        "num_prefix_tokens": layout.num_prefix,
        "patch_grid": list(layout.grid),
        "class_token": layout.has_class_token,
        "num_images": num_images,
        "family": capture.family,
    }
    if layout.has_class_token:
        summary["class_token_entropy"] = [row_entropy(rows) for rows in first_rows]
        patches = slice(layout.num_prefix, None)
        summary["class_token_to_patches"] = [float(rows[..., patches].sum(-1).double().mean()) for rows in first_rows]
    return summary


def _vision_rollout(
    subject: Subject, probe: ProbeSelection, capture: AttentionCapture, layout: TokenLayout, rolled: torch.Tensor
) -> Artifact:
    images = display_images(subject, probe.inputs)
    height, width = images.shape[1:3]
    maps = query_rows(rolled, layout).numpy()
    sized = image_sized(maps, height, width)
    tiles = [("input", images), ("rollout", colourize(sized, signed=False)), ("overlay", overlay(images, sized, False))]
    what = "the class token's row" if layout.has_class_token else "the mean row of the patch tokens"
    grid_note = f"patch tokens only{_dropped_phrase(layout)}"
    grid = f"{layout.grid[0]}x{layout.grid[1]}"
    heading = f"Attention rollout through {len(capture.layers)} layers: {what} over the {grid} patches"
    figure = strip_figure(tiles, probe.titles, heading)
    caption = (
        f"Attention rollout through all {len(capture.layers)} attention layers ({capture.layers[0]} to "
        f"{capture.layers[-1]}; heads averaged, identity added, rows renormalized): {what} over the "
        f"{layout.grid[0]}x{layout.grid[1]} patch grid ({grid_note}) for {len(probe.indices)} probe "
        f"images{probe.note}; each map is scaled to its own maximum."
    )
    to_patches = maps.reshape(len(maps), -1).sum(axis=1)
    summary = {
        "num_layers": len(capture.layers),
        "patch_grid": list(layout.grid),
        "num_prefix_tokens": layout.num_prefix,
        "class_token": layout.has_class_token,
        "num_images": len(probe.indices),
        "mean_share_on_patches": float(to_patches.mean()),
        "max_patch_share": float(maps.max()),
    }
    data = {"rollout": rolled.numpy(), "maps": maps, "indices": probe.indices, "layers": list(capture.layers)}
    return Artifact(name="attention-rollout", caption=caption, figure=figure, data=data, summary=summary)


def _text_summary(capture: AttentionCapture, num_sequences: int) -> dict:
    """The numbers of a text model's attention: per layer, how spread the rows are and how much goes to token 0."""
    return {
        "layers": list(capture.layers),
        "num_heads": int(capture.weights[0].shape[1]),
        "num_tokens": capture.num_tokens,
        "num_sequences": num_sequences,
        "mean_row_entropy": [row_entropy(weights) for weights in capture.weights],
        "mean_attention_to_first_token": [float(weights[..., 0].double().mean()) for weights in capture.weights],
        "family": capture.family,
    }


def _text_maps(probe: ProbeSelection, capture: AttentionCapture, labels: list[str], max_heads: int) -> list[Artifact]:
    tokens = token_labels(probe.inputs)
    averaged = np.stack([weights.double().mean(dim=1).numpy() for weights in capture.weights], axis=1)
    num_rows = min(MAX_TEXT_ROWS, len(averaged))
    names = [f"input {index}: {title.splitlines()[0]}" for index, title in zip(probe.indices, probe.titles)]
    panels = [
        [(averaged[row, layer], f"{names[row]}, {label}") for layer, label in enumerate(labels)]
        for row in range(num_rows)
    ]
    layer_figure = token_heatmaps(panels, tokens, "Attention, heads averaged (row: query token, column: key token)")
    last = capture.weights[-1][0].double().numpy()
    num_heads = min(max_heads, len(last))
    head_panels = [[(last[head], f"{names[0]}, head {head}") for head in range(num_heads)]]
    head_figure = token_heatmaps(head_panels, tokens, f"Attention in {labels[-1]}, head by head")
    axis_words = "token ids" if tokens is not None else "token positions"
    base = (
        "Row i is how query token i spreads its attention over the key tokens (each row sums to 1); all panels "
        f"share one colour scale; axes are labelled with {axis_words}."
    )
    summary = _text_summary(capture, len(probe.indices))
    shown_heads = f"heads 0 to {num_heads - 1} of {len(last)}" if num_heads < len(last) else "every head"
    return [
        Artifact(
            name="attention-layers",
            caption=(
                f"Token-by-token attention in attention layers {listed_layers(labels, capture.layers)}, "
                "heads averaged, "
                f"for the first {num_rows} of {len(probe.indices)} probe sequences{probe.note}. {base}"
            ),
            figure=layer_figure,
            data={"attention": averaged, "indices": probe.indices, "layers": list(capture.layers)},
            summary=summary,
        ),
        Artifact(
            name="attention-heads",
            caption=(
                f"Token-by-token attention in {labels[-1]} ({capture.layers[-1]}), {shown_heads} separately, for "
                f"probe input {probe.indices[0]}. {base}"
            ),
            layer=capture.layers[-1],
            figure=head_figure,
            data={"attention": last[:num_heads], "index": int(probe.indices[0])},
            summary={"layer": capture.layers[-1], "num_heads_shown": num_heads, "num_heads": int(len(last))},
        ),
    ]


def _text_rollout(probe: ProbeSelection, capture: AttentionCapture, rolled: torch.Tensor) -> Artifact:
    rows = rolled[:, 0].numpy()  # (N, T): the first token, where BERT-style classifiers read their output
    labels = token_labels(probe.inputs)
    shown = rows[:, 1:]
    figure = new_figure(max(4.0, 0.32 * shown.shape[1] + 1.8), 0.32 * len(shown) + 1.4)
    axes = figure.add_subplot()
    drawn = axes.imshow(shown, cmap=TEXT_COLOURS, vmin=0.0, vmax=float(shown.max()) or 1.0, aspect="auto")
    if labels is not None and shown.shape[1] <= MAX_TOKEN_LABELS:
        for row, tokens in enumerate(labels):
            for column, token in enumerate(tokens[1:]):
                # Dark text on the light end of the colour map, light text on the dark end.
                dark = shown[row, column] > 0.6 * float(shown.max())
                axes.text(column, row, token, ha="center", va="center", fontsize=5, color="black" if dark else "white")
    names = [f"input {index}: {title.splitlines()[0]}" for index, title in zip(probe.indices, probe.titles)]
    axes.set_yticks(range(len(shown)), names, fontsize=6)
    axes.set_xticks(range(shown.shape[1]), [str(position) for position in range(1, rows.shape[1])], fontsize=5)
    axes.set_xlabel("token position (the first token, whose row this is, left out)", fontsize=7)
    figure.colorbar(drawn, ax=axes, shrink=0.8, label="rollout share")
    figure.suptitle(f"Attention rollout through {len(capture.layers)} layers: the first token's row", fontsize=8)
    self_share = float(rows[:, 0].mean())
    caption = (
        f"Attention rollout through all {len(capture.layers)} attention layers (heads averaged, identity added, rows "
        f"renormalized): the first token's row (where BERT-style classifiers read their [CLS] output) over the "
        f"other tokens, for {len(probe.indices)} probe sequences{probe.note}; token ids are written in the cells. "
        f"Its share of itself (mean {self_share:.2f}) is left out so the other tokens can be told apart."
    )
    summary = {
        "num_layers": len(capture.layers),
        "num_tokens": capture.num_tokens,
        "num_sequences": len(probe.indices),
        "mean_self_share": self_share,
        "max_token_share": float(shown.max()),
    }
    data = {"rollout": rolled.numpy(), "rows": rows, "indices": probe.indices, "layers": list(capture.layers)}
    return Artifact(name="attention-rollout", caption=caption, figure=figure, data=data, summary=summary)
