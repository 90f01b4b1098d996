"""The gallery row's reference process: load a checkpoint, one forward and one backward pass.

``python -m benchmarks.load_forward_backward CHECKPOINT [--device cpu]``

This is the least any tool that looks inside a trained network has to do: start Python, import
torch, read the weights, rebuild the model and run the probe batch through it both ways.
"""

from __future__ import annotations

import argparse


def load_forward_backward(path: str, device: str = "cpu") -> float:
    """Load ``path`` with introspect's loader, run the probe forward and backward; returns the loss."""
    import torch

    from introspect.loading import load_checkpoint

    subject = load_checkpoint(path, device=device)
    inputs = subject.probe_inputs.to(subject.device).requires_grad_(True)
    outputs = subject.model(inputs)
    labels = subject.probe_labels
    if labels is not None and not labels.is_floating_point():
        loss = torch.nn.functional.cross_entropy(outputs, labels.to(outputs.device))
    else:
        loss = outputs.square().mean()
    loss.backward()
    return float(loss)


def main(argv: list[str] | None = None) -> None:
    """Parse the path and device, then run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    load_forward_backward(args.checkpoint, args.device)


if __name__ == "__main__":
    main()
