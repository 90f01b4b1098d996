"""The options several ``introspect`` commands share: loading a checkpoint, reading a dataset.

Nothing here imports torch at module level, so ``introspect --help`` stays quick.
"""

from __future__ import annotations

import functools
from typing import Any

import click


def load_options_from(**values: Any) -> dict[str, Any]:
    """LoadOptions fields from the shared checkpoint options of several commands."""
    from introspect.architectures import parse_factory_kwargs
    from introspect.budget import DEFAULT_MAX_PROBE, parse_size

    shape = values.get("input_shape")
    return {
        "trust_code": values.get("trust_code", False),
        "arch": values.get("arch"),
        "arch_kwargs": parse_factory_kwargs(values.get("arch_kwarg") or ()),
        "probe": values.get("probe"),
        "input_shape": _parse_shape(shape) if shape else None,
        "device": values.get("device", "auto"),
        "seed": values.get("seed", 0),
        "max_memory": parse_size(values["max_memory"]) if values.get("max_memory") else None,
        "max_probe": values.get("max_probe") or DEFAULT_MAX_PROBE,
        "task_kind": values.get("task"),
    }


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} should be sizes separated by commas, e.g. 3,32,32") from None
    if not shape or min(shape) < 1:
        raise click.BadParameter(f"{text!r} should be positive sizes, e.g. 3,32,32")
    return shape


def checkpoint_options(command: Any) -> Any:
    """Options every command that loads a checkpoint shares."""
    options = [
        click.option(
            "--arch",
            metavar="MODULE:CALLABLE",
            help="Build the model with your own code (it is imported and called), or timm:NAME / timm.",
        ),
        click.option(
            "--arch-kwarg", multiple=True, metavar="NAME=VALUE", help="Keyword argument for --arch (repeatable)."
        ),
        click.option(
            "--trust-code",
            "--trust-pickle",
            "trust_code",
            is_flag=True,
            help="Allow code from the file to run: unpickling, TorchScript, exported programs with ops outside the "
            "allow-list.",
        ),
        click.option(
            "--max-memory",
            metavar="SIZE",
            help="Memory the file may make introspect use, e.g. 4G [default: a quarter of what is available].",
        ),
        click.option(
            "--max-probe",
            type=click.IntRange(min=1),
            default=256,
            show_default=True,
            help="Probe inputs kept; more are cut.",
        ),
        click.option(
            "--probe",
            type=click.Path(dir_okay=False),
            help="Inputs (tensor, or dict with inputs/labels) saved with torch.save.",
        ),
        click.option(
            "--input-shape", metavar="C,H,W", help="Shape of one input, for a random probe when none is stored."
        ),
        click.option(
            "--task",
            type=click.Choice(["classification", "regression"]),
            help="What the network does, when the checkpoint does not say [default: from --probe's labels].",
        ),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed for every random choice."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def dataset_options(command: Any) -> Any:
    """``--data`` and how to read it; the reading options arrive gathered as ``data_options``."""

    def gathered(*args: Any, **values: Any) -> Any:
        keys = ("data_dir", "data_labels", "limit", "batch_size", "workers", "executor", "resume")
        chosen = {key: values.pop(key) for key in keys}
        data_options = {
            "data_dir": chosen["data_dir"],
            "labels": chosen["data_labels"],
            "limit": chosen["limit"],
            "batch_size": chosen["batch_size"],
            "workers": chosen["workers"],
            "executor": chosen["executor"],
            "resume": chosen["resume"],
        }
        if values.get("data") is None and any(chosen[key] for key in ("data_labels", "limit", "resume")):
            raise click.UsageError("--data-labels, --limit and --resume go with --data SOURCE")
        return command(*args, data_options=data_options, **values)

    gathered = functools.wraps(command)(gathered)
    options = [
        click.option(
            "--data",
            metavar="SOURCE",
            help="A dataset for the dataset analyzers: mnist, fashion-mnist, cifar10 (NAME:train|test), "
            "an image folder, or a .npy/.pt file.",
        ),
        click.option("--data-dir", type=click.Path(file_okay=False), help="Named datasets' folder [$INTROSPECT_DATA]."),
        click.option("--data-labels", type=click.Path(dir_okay=False), help="Labels (.npy) for a .npy --data."),
        click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Read N inputs of --data at most."),
        click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True, help="Batch size."),
        click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True, help="DataLoader workers."),
        click.option(
            "--executor",
            default="local",
            show_default=True,
            metavar="local|ray[:ADDRESS]",
            help="Where the dataset pass runs (with several checkpoints: where each one is analyzed): this "
            "process, a local Ray cluster, or the Ray cluster at ADDRESS.",
        ),
        click.option(
            "--resume",
            is_flag=True,
            help="Start the dataset pass from the record an interrupted run of the same analysis left beside -o.",
        ),
    ]
    for option in reversed(options):
        gathered = option(gathered)
    return gathered


def warn_plugin_problems(problems: list[str]) -> None:
    """Each problem met while loading the plugins, as one warning line on stderr."""
    for problem in problems:
        click.echo(f"introspect: warning: {problem}", err=True)
