"""Throughput of the shared loop against a bare loop over the same tensors.

Issue 3 asks the loop to stay within 15 % of a bare loop. Run ``python -m trainers.bench``
(optionally ``--network lenet5|mnist-mlp --epochs N --repeats R``); it prints both timings
and the overhead. A benchmark, not a test: timings on a shared machine are too noisy to assert.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn

from trainers.data import load_mnist
from trainers.lenet5 import LeNet5, LeNet5Config
from trainers.loop import TensorSplit, TrainConfig, fit
from trainers.mnist_mlp import MNISTMLP, MNISTMLPConfig

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


def main(argv: list[str] | None = None) -> None:
    """Time both loops ``--repeats`` times each, alternating, and print the best of each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=sorted(NETWORKS), default="lenet5")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", default=None)
    arguments = parser.parse_args(argv)
    factory, flatten = NETWORKS[arguments.network]
    data = load_mnist(arguments.data_dir).train
    data = data.map_inputs(lambda x: x.flatten(1)) if flatten else data
    config = TrainConfig(epochs=arguments.epochs, batch_size=64, lr=1e-3)
    bare, shared = [], []
    for _ in range(arguments.repeats):
        bare.append(bare_loop(factory(), data, config))
        shared.append(shared_loop(factory(), data, config))
    overhead = min(shared) / min(bare) - 1
    print(f"{arguments.network}: bare {min(bare):.2f} s, shared loop {min(shared):.2f} s "
          f"for {arguments.epochs} epochs of {len(data)} images; overhead {overhead:+.1%}")


if __name__ == "__main__":
    main()
