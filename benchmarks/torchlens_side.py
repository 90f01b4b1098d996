"""Child process of the ``capture_vs_torchlens`` row: prints its timings as one JSON object.

``python -m benchmarks.torchlens_side --batch 64 --repeats 5 --warmup 2``

TorchLens wraps torch's functions globally; it is told to unwrap them after every trace so
that introspect's side, measured alternately in this same process, runs on plain torch.
When TorchLens is missing or fails, the object holds ``error`` instead of timings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings
from typing import Any

from benchmarks import fixtures
from benchmarks.harness import compare, timed


def measure(batch: int, repeats: int, warmup: int) -> dict[str, Any]:
    """Time introspect's capture and ``torchlens.trace`` on ResNet18 side by side."""
    try:
        import torchlens
        from torchlens.options import CaptureOptions
    except ImportError as error:
        return {"error": f"torchlens cannot be imported ({error}); pip install torchlens (the 'bench' extra)"}
    from introspect.capture import capture_activations, leaf_layers

    model = fixtures.resnet("resnet18")
    inputs = fixtures.images(batch, (3, 32, 32))
    options = CaptureOptions(unwrap_when_done=True)

    def trace() -> Any:
        return torchlens.trace(model, inputs, capture=options)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            log = trace()
            comparison = compare(
                timed(lambda: capture_activations(model, inputs)), timed(trace), repeats=repeats, warmup=warmup
            )
    except Exception as error:  # noqa: BLE001 - a TorchLens release that does not support this torch
        return {
            "error": f"torchlens.trace failed on torch: {type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}"
        }
    return {
        "version": getattr(torchlens, "__version__", "unknown"),
        "num_operations": len(getattr(log, "layer_labels", ())),
        "num_layers": len(leaf_layers(model)),
        "introspect": [dataclasses.asdict(timing) for timing in comparison.numerator],
        "torchlens": [dataclasses.asdict(timing) for timing in comparison.denominator],
    }


def main(argv: list[str] | None = None) -> None:
    """Parse the sizes, measure, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args(argv)
    json.dump(measure(args.batch, args.repeats, args.warmup), sys.stdout)


if __name__ == "__main__":
    main()
