"""Token attributions for text classifiers: Integrated Gradients on the token embeddings.

Token ids have no gradient, so the path runs through the embedding layer instead
(captum's ``LayerIntegratedGradients``): from the embeddings of a baseline text, the same text
with every token but the special ones ([CLS], [SEP]) replaced by the padding token, to those of
the input. A token's attribution is its embedding's attribution summed over the embedding
dimension; all of them together sum to score(input) - score(baseline), up to the convergence
delta the summary reports. The attention mask stays the input's all along the path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from introspect._lazy import lazy_import
from introspect.analyzers._attribution import INTERNAL_BATCH_SIZE, ProbeSelection, choose_probe, in_eval_mode
from introspect.artifacts import Artifact
from introspect.colours import diverging_colormap
from introspect.errors import SkipAnalyzer
from introspect.needs import Needs
from introspect.plotting import new_figure, short_label
from introspect.report.interactive import tokens_view
from introspect.spec import analyzer
from introspect.text import pad_id, padding_mask, special_ids, subject_tokenizer, token_texts

#: Where this module's analyzers come in the gallery (see ``introspect.analyzers``).
POSITION = 9

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure
    from torch import nn

    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

#: Characters of a token drawn in the figure (the page shows it whole).
MAX_DRAWN_TOKEN_CHARS = 16
FIGURE_WIDTH_INCHES = 10.0
FONT_POINTS = 8
#: Width of one character of the monospaced font (0.6 em), in inches.
CHARACTER_INCHES = 0.6 * FONT_POINTS / 72
#: Characters per line of the figure before a text wraps, a few short of the width for the boxes' padding.
FIGURE_LINE_CHARS = int(0.98 * FIGURE_WIDTH_INCHES / CHARACTER_INCHES) - 4


@analyzer(needs=Needs.FORWARD | Needs.CLASSIFICATION)
@in_eval_mode
def token_attributions(
    subject: Subject,
    /,
    *,
    n_steps: int = 32,
    max_per_class: int = 4,
    max_inputs: int = 6,
    internal_batch_size: int = INTERNAL_BATCH_SIZE,
) -> list[Artifact]:
    """Which tokens of a text move the target class's score: Integrated Gradients on the token embeddings.

    Each text is shown token by token: red tokens raise the score of the target class (the label
    when the probe has one, else the predicted class), blue ones lower it, and the stronger the
    colour the larger the effect, relative to the text's strongest token. The baseline is the
    text with its words replaced by padding (special tokens kept), so a token's number is what
    that word adds over no word at all. The page shows the same as HTML, hover a token for its value.
    """
    layer = _embedding_layer(subject)
    probe = choose_probe(subject, max_per_class, max_inputs, forward_passes=3 * n_steps)
    tokenizer = subject_tokenizer(subject)
    padding = int(subject.metadata.get("text_pad_id", pad_id(tokenizer, subject.model)))
    baseline = baseline_ids(probe.inputs, padding, special_ids(tokenizer))
    mask = padding_mask(subject, probe.inputs)
    scores, delta = token_integrated_gradients(
        subject.model, layer, probe.inputs, baseline, probe.targets, mask, n_steps, internal_batch_size
    )
    shown = _shown_tokens(probe.inputs, mask, tokenizer, scores)
    return [_artifact(subject, probe, shown, (scores, delta, baseline, mask), n_steps, tokenizer is not None)]


def _embedding_layer(subject: Subject) -> nn.Module:
    """The layer that turns token ids into vectors; the analyzer skips where there is none to attribute through."""
    if subject.probe_inputs.is_floating_point():
        raise SkipAnalyzer("the inputs are not token ids (input_saliency explains models that take real values)")
    if not subject.differentiable:
        raise SkipAnalyzer("the model does not support gradients")
    model = subject.model
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if not isinstance(embeddings, torch.nn.Embedding):
        embeddings = next((module for module in model.modules() if isinstance(module, torch.nn.Embedding)), None)
    if embeddings is None:
        raise SkipAnalyzer("the model takes integers but has no nn.Embedding layer to attribute through")
    return embeddings


def baseline_ids(ids: torch.Tensor, padding: int, keep: set[int]) -> torch.Tensor:
    """``ids`` with every token replaced by ``padding``, except the special tokens in ``keep``."""
    kept = torch.isin(ids, torch.as_tensor(sorted(keep), dtype=ids.dtype, device=ids.device))
    return torch.where(kept, ids, torch.full_like(ids, padding))


def token_integrated_gradients(
    model: nn.Module,
    layer: nn.Module,
    ids: torch.Tensor,
    baseline: torch.Tensor,
    targets: torch.Tensor | None,
    mask: torch.Tensor | None,
    n_steps: int,
    internal_batch_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(N, L) attributions per token (summed over the embedding) and the (N,) convergence deltas.

    ``mask`` (the input's attention mask) is passed with both the input and the baseline, so the
    path changes the token embeddings only.
    """
    from captum.attr import LayerIntegratedGradients

    method = LayerIntegratedGradients(_masked_forward(model), layer)
    rows = max(len(ids), internal_batch_size)  # captum's chunks hold whole steps of the batch
    attributions, delta = method.attribute(
        ids,
        baselines=baseline,
        target=targets,
        additional_forward_args=None if mask is None else (mask,),
        n_steps=n_steps,
        internal_batch_size=rows,
        return_convergence_delta=True,
    )
    per_token = attributions.detach().sum(dim=-1).cpu().double().numpy()
    return per_token, delta.detach().cpu().double().numpy().reshape(-1)


def _masked_forward(model: nn.Module) -> Any:
    def forward(ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return model(ids) if mask is None else model(ids, attention_mask=mask)

    return forward


def _shown_tokens(ids: torch.Tensor, mask: torch.Tensor | None, tokenizer: Any, scores: np.ndarray) -> list:
    """Per input, (tokens, scores) of the positions the model reads: padding of a text input is left out."""
    shown = []
    for row, row_ids in enumerate(ids.cpu()):
        keep = np.ones(len(row_ids), dtype=bool) if mask is None else mask[row].cpu().numpy().astype(bool)
        shown.append((token_texts(tokenizer, row_ids[keep].tolist()), scores[row][keep]))
    return shown


def _artifact(
    subject: Subject, probe: ProbeSelection, shown: list, results: tuple, n_steps: int, has_tokenizer: bool
) -> Artifact:
    scores, delta, baseline, mask = results
    titles = [title.replace("\n", " ") for title in probe.titles]
    summary = {
        "num_inputs": len(probe.indices),
        "n_steps": n_steps,
        "max_abs_delta": float(np.abs(delta).max()),
        "mean_abs_attribution": float(np.mean([np.abs(values).mean() for _, values in shown])),
        "tokenizer": has_tokenizer,
    }
    caption = (
        f"Integrated Gradients through the token embeddings ({n_steps} steps from the text with its words "
        f"replaced by padding, special tokens kept) for {len(probe.indices)} probe inputs{probe.note}: red tokens "
        "raise the target class's score, blue ones lower it, each text scaled to its own strongest token. "
        f"The tokens of a text sum to score(text) - score(baseline) within {summary['max_abs_delta']:.2g} "
        "(the largest convergence delta)."
    )
    if not has_tokenizer:
        caption += " Tokens are shown as their ids: the model folder has no tokenizer."
    data = {
        "attributions": scores,
        "token_ids": probe.inputs.cpu().numpy(),
        "baseline_ids": baseline.cpu().numpy(),
        "delta": delta,
        "indices": probe.indices,
        "targets": probe.target_array(),
    }
    if mask is not None:
        data["attention_mask"] = mask.cpu().numpy()
    view = tokens_view(titles, [tokens for tokens, _ in shown], [values for _, values in shown])
    figure = token_figure(titles, shown)
    return Artifact(
        name="token-attributions", caption=caption, figure=figure, data=data, summary=summary, interactive=view
    )


def token_figure(titles: list[str], shown: list) -> Figure:
    """Each text as boxes of its tokens, shaded by attribution (diverging colours), one block per input."""
    lines = [_wrapped(tokens, values) for tokens, values in shown]
    total = sum(len(block) + 1 for block in lines) + 1  # a title line per text, and a margin below
    figure = new_figure(FIGURE_WIDTH_INCHES, total * 0.28 + 0.3)
    figure.set_layout_engine("none")  # the text is placed by hand; there is no grid to lay out
    axes = figure.add_axes((0.01, 0.0, 0.98, 1.0))
    axes.set_axis_off()
    colours, step, y = diverging_colormap(), CHARACTER_INCHES / (0.98 * FIGURE_WIDTH_INCHES), 1.0
    for title, block, (_, values) in zip(titles, lines, shown, strict=True):
        y -= 1 / total
        axes.text(0, y, short_label(title, 60), fontsize=8, color="dimgray", va="center", parse_math=False)
        scale = float(np.abs(values).max()) or 1.0
        for line in block:
            y -= 1 / total
            for start, token, value in line:
                strength = value / scale
                axes.text(
                    start * step, y, token, fontsize=FONT_POINTS, family="monospace", va="center", parse_math=False,
                    color="white" if abs(strength) > 0.6 else "black",  # dark boxes take light text
                    bbox={"boxstyle": "round,pad=0.15", "linewidth": 0, "facecolor": colours(0.5 + strength / 2)},
                )  # fmt: skip
    return figure


def _wrapped(tokens: list[str], values: np.ndarray) -> list[list[tuple[int, str, float]]]:
    """Tokens laid out in lines of ``FIGURE_LINE_CHARS`` characters: (start character, text, value) each."""
    lines: list[list[tuple[int, str, float]]] = [[]]
    position = 0
    for token, value in zip(tokens, values, strict=True):
        text = token if len(token) <= MAX_DRAWN_TOKEN_CHARS else token[: MAX_DRAWN_TOKEN_CHARS - 1] + "…"
        if position + len(text) > FIGURE_LINE_CHARS and lines[-1]:
            lines.append([])
            position = 0
        lines[-1].append((position, text, float(value)))
        position += len(text) + 1
    return lines
