"""Rows that time computation in this process: capture, saliency, the scorecard and the training loop.

The TorchLens comparison runs in a child process (:mod:`benchmarks.torchlens_side`), because
TorchLens wraps torch's functions globally on first use and would slow every later row here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks import fixtures
from benchmarks.fixtures import Sizes
from benchmarks.harness import Comparison, Timing, child_environment, compare, timed
from benchmarks.report import Row, ratio_row, unmeasured

if TYPE_CHECKING:
    from trainers.loop import TensorSplit, TrainConfig

CAPTURE_TARGET = 1.05
CAPTURE_WHAT = (
    "capture_activations (every leaf layer's output) on ResNet18, batch {batch} of 3x32x32 / a plain no-grad forward"
)
TORCHLENS_WHAT = (
    "capture_activations on ResNet18, batch {batch} of 3x32x32 / torchlens.trace of the same forward "
    "(saves every operation's output)"
)


def capture_rows(sizes: Sizes) -> list[Row]:
    """``capture``: hooks on all leaf layers of ResNet18 against the same forward without them."""
    import torch

    from introspect.capture import capture_activations, leaf_layers

    model = fixtures.resnet("resnet18")
    inputs = fixtures.images(sizes.capture_batch, (3, 32, 32))

    def plain() -> None:
        with torch.no_grad():
            model(inputs)

    comparison = compare(
        timed(lambda: capture_activations(model, inputs)),
        timed(plain),
        repeats=sizes.cheap_repeats,
        warmup=sizes.warmup + 1,
    )
    return [
        ratio_row(
            "capture",
            CAPTURE_WHAT.format(batch=sizes.capture_batch),
            comparison,
            CAPTURE_TARGET,
            num_layers=len(leaf_layers(model)),
        )
    ]


def torchlens_rows(sizes: Sizes) -> list[Row]:
    """``capture_vs_torchlens``: the same capture against TorchLens, in a child process."""
    what = TORCHLENS_WHAT.format(batch=sizes.capture_batch)
    command = [
        sys.executable,
        "-m",
        "benchmarks.torchlens_side",
        "--batch",
        str(sizes.capture_batch),
        "--repeats",
        str(sizes.repeats),
        "--warmup",
        str(sizes.warmup + 1),
    ]
    finished = subprocess.run(command, capture_output=True, text=True, check=False, env=child_environment())
    if finished.returncode != 0:
        reason = (finished.stderr.strip().splitlines() or ["no output"])[-1]
        return [unmeasured("capture_vs_torchlens", what, "x", 0.10, f"not measured: {reason}")]
    result = json.loads(finished.stdout)
    if "error" in result:
        return [unmeasured("capture_vs_torchlens", what, "x", 0.10, f"not measured: {result['error']}")]
    comparison = Comparison(
        numerator=tuple(Timing(**timing) for timing in result["introspect"]),
        denominator=tuple(Timing(**timing) for timing in result["torchlens"]),
    )
    note = (
        f"torchlens {result['version']} logs {result['num_operations']} operations, introspect "
        f"{result['num_layers']} leaf layers"
    )
    return [ratio_row("capture_vs_torchlens", what, comparison, 0.10, note, torchlens_version=result["version"])]


def saliency_rows(sizes: Sizes) -> list[Row]:
    """``saliency``: introspect's Saliency path (``_attribution.attribute``) against captum's own call."""
    import torch
    from captum.attr import Saliency

    from introspect.analyzers._attribution import attribute
    from introspect.capture import evaluation_mode

    model = fixtures.lenet5()
    inputs = fixtures.images(sizes.saliency_batch, (1, 28, 28))
    targets = torch.arange(sizes.saliency_batch) % 10

    def ours() -> None:
        with evaluation_mode(model):  # as input_saliency's in_eval_mode does
            attribute(model, inputs, targets, "saliency")

    leaf = inputs.clone().requires_grad_(True)  # as a user passes it, so captum does not warn

    def direct() -> None:
        Saliency(model).attribute(leaf, target=targets, abs=True)

    comparison = compare(timed(ours), timed(direct), repeats=sizes.cheap_repeats, warmup=sizes.warmup + 1)
    what = (
        f"input_saliency's Saliency (_attribution.attribute) on LeNet-5, batch {sizes.saliency_batch} / captum "
        "Saliency.attribute"
    )
    return [ratio_row("saliency", what, comparison, 1.05)]


def training_rows(sizes: Sizes) -> list[Row]:
    """``training``: :func:`trainers.loop.fit` against a bare loop over the same tensors."""
    from trainers.loop import TensorSplit, TrainConfig, fit

    inputs = fixtures.images(sizes.train_samples, (1, 28, 28))
    labels = fixtures.images(sizes.train_samples, (), seed=1).abs().mul(1000).long() % 10
    data = TensorSplit(inputs, labels)
    # Fixed here rather than taken from the LeNet-5 recipe, so the bare loop can mirror it exactly.
    config = TrainConfig(
        epochs=sizes.train_epochs, batch_size=64, optimizer="adam", lr=1e-3, loss="cross_entropy", device="cpu"
    )

    def ours() -> None:
        fit(fixtures.lenet5().train(), data, None, config)

    comparison = compare(timed(ours), timed(bare_loop(data, config)), repeats=sizes.repeats, warmup=sizes.warmup)
    what = (
        f"trainers.loop.fit on LeNet-5 ({sizes.train_samples} in-memory images, {sizes.train_epochs} epochs, batch "
        f"{config.batch_size}, "
        f"Adam, no validation split) / a bare loop over the same tensors"
    )
    return [ratio_row("training", what, comparison, 1.15)]


def bare_loop(data: TensorSplit, config: TrainConfig) -> Callable[[], None]:
    """The loop users write by hand: shuffle, slice, zero_grad, forward, loss, backward, step."""
    import torch

    def run() -> None:
        model = fixtures.lenet5().train()
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        loss_function = torch.nn.CrossEntropyLoss()
        torch.manual_seed(config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        for _ in range(config.epochs):
            order = torch.randperm(len(data.inputs), generator=generator)
            for start in range(0, len(order), config.batch_size):
                indices = order[start : start + config.batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_function(model(data.inputs[indices]), data.targets[indices])
                loss.backward()
                optimizer.step()

    return run


SCORECARD_TARGET = 3.0


def scorecard_rows(sizes: Sizes, folder: Path) -> list[Row]:
    """``scorecard``: the attribution_scorecard analyzer against input_saliency, both on the gallery's LeNet-5."""
    from introspect.analyzers.attribution import input_saliency
    from introspect.analyzers.attribution_scorecard import attribution_scorecard
    from introspect.loading import load_checkpoint

    checkpoint, made = fixtures.lenet5_checkpoint(folder, trained=sizes.trained_lenet5)
    subject = load_checkpoint(checkpoint)
    comparison = compare(
        timed(lambda: attribution_scorecard(subject)),
        timed(lambda: input_saliency(subject)),
        repeats=sizes.repeats,
        warmup=sizes.warmup,
    )
    what = (
        "attribution_scorecard on LeNet-5 (its probe, as --all runs it: 6 images, 8 rows, ROAD and MPRT included) / "
        "input_saliency on the same checkpoint (its four maps), figures built but not written"
    )
    return [ratio_row("scorecard", what, comparison, SCORECARD_TARGET, note=f"checkpoint: {made}")]
