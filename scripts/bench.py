"""Throughput of the shared loop against a bare loop over the same tensors.

Issue 3 asks the loop to stay within 15 % of a bare loop. A script of the repository, not of the
shipped package: run ``python -m scripts.bench`` from the repository root (optionally
``--network lenet5|mnist-mlp --epochs N --repeats R``); it prints both timings and the overhead.
A benchmark, not a test: timings on a shared machine are too noisy to assert. ``python -m
benchmarks`` measures the same ratio for LeNet-5 among its other rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import click
import torch
from torch import nn

from trainers.data import load_mnist
from trainers.loop import TensorSplit, TrainConfig, fit
from trainers.networks.lenet5 import LeNet5, LeNet5Config
from trainers.networks.mnist_mlp import MNISTMLP, MNISTMLPConfig

NETWORKS: dict[str, tuple[Callable[[], nn.Module], bool]] = {
    "lenet5": (lambda: LeNet5(LeNet5Config()), False),
    "mnist-mlp": (lambda: MNISTMLP(MNISTMLPConfig()), True),
}


def bare_loop(model: nn.Module, data: TensorSplit, config: TrainConfig) -> float:
    """Seconds for ``config.epochs`` epochs of the plainest loop: permute, slice, step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_function = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(config.seed)
    model.train()
    started = time.perf_counter()
    for _ in range(config.epochs):
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(data), config.batch_size):
            indices = order[start : start + config.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss_function(model(data.inputs[indices]), data.targets[indices]).backward()
            optimizer.step()
    return time.perf_counter() - started


def shared_loop(model: nn.Module, data: TensorSplit, config: TrainConfig) -> float:
    """Seconds spent training inside :func:`~trainers.loop.fit` (validation passes excluded)."""
    result = fit(model, data, None, config)
    return sum(batch * _num_batches(len(data), config.batch_size) for batch in result.history["seconds_per_batch"])


def _num_batches(size: int, batch_size: int) -> int:
    return -(-size // batch_size)


@click.command(help=(__doc__ or "").splitlines()[0])
@click.option("--network", type=click.Choice(sorted(NETWORKS)), default="lenet5", show_default=True)
@click.option("--epochs", type=int, default=2, show_default=True)
@click.option(
    "--repeats", type=int, default=3, show_default=True, help="Timings of each loop, alternating; the best counts."
)
@click.option("--data-dir", help="Dataset folder [default: $INTROSPECT_DATA, else a cache folder].")
def main(network: str, epochs: int, repeats: int, data_dir: str | None) -> None:
    """Time both loops ``repeats`` times each, alternating, and print the best of each."""
    factory, flatten = NETWORKS[network]
    data = load_mnist(data_dir).train
    data = data.map_inputs(lambda x: x.flatten(1)) if flatten else data
    config = TrainConfig(epochs=epochs, batch_size=64, lr=1e-3)
    bare, shared = [], []
    for _ in range(repeats):
        bare.append(bare_loop(factory(), data, config))
        shared.append(shared_loop(factory(), data, config))
    overhead = min(shared) / min(bare) - 1
    click.echo(
        f"{network}: bare {min(bare):.2f} s, shared loop {min(shared):.2f} s "
        f"for {epochs} epochs of {len(data)} images; overhead {overhead:+.1%}"
    )


if __name__ == "__main__":
    main(prog_name="python -m scripts.bench")
