"""The ``introspect`` command line: thin wrappers over the Python API.

Nothing here imports torch at module level, so ``introspect --help`` and ``introspect list``
answer quickly. Extra sub-commands (``train``, ``demo``) arrive through the entry-point group
``introspect.commands``, which keeps ``introspect`` from importing ``trainers``.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import click

from introspect import __version__
from introspect.errors import IntrospectError

COMMAND_GROUP = "introspect.commands"
EXIT_USAGE = 2
EXIT_BUG = 3


class _Group(click.Group):
    """A group that also lists the commands other installed packages provide."""

    def _plugin_commands(self) -> dict[str, metadata.EntryPoint]:
        return {entry_point.name: entry_point for entry_point in metadata.entry_points(group=COMMAND_GROUP)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugin_commands()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None and name in self._plugin_commands():
            command = self._plugin_commands()[name].load()
        return command


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="introspect")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
def cli(debug: bool) -> None:
    """Look inside PyTorch networks: run analyzers on a checkpoint and write a figure gallery."""


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


@cli.command()
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path())
@click.option("--all", "select_all", is_flag=True, help="Run every analyzer that applies.")
@click.option("-a", "--analyzer", "names", multiple=True, metavar="NAME", help="Run this analyzer (repeatable).")
@click.option("-x", "--exclude", multiple=True, metavar="NAME", help="Leave this analyzer out (repeatable).")
@click.option(
    "--option",
    "option_texts",
    multiple=True,
    metavar="ANALYZER.KEY=VALUE",
    help="Set an analyzer option, e.g. grad_cam.layer=layer4 (repeatable; 'introspect list NAME' shows them).",
)
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(),
    metavar="DIRECTORY",
    help="Gallery folder [default: introspect-<checkpoint name>].",
)
@click.option("--force", is_flag=True, help="Replace the gallery folder if it exists.")
@click.option("--no-plugins", is_flag=True, help="Use only the built-in analyzers.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Time each phase may take: loading (with the --probe check), each analyzer, the gallery writing. "
    "An analyzer past it is recorded as failed; loading or writing past it stops with exit 2 and no gallery.",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the gallery in the default browser when there is one.")
@click.option(
    "--inputs",
    "input_files",
    multiple=True,
    type=click.Path(),
    metavar="PATH",
    help="Explain these inputs instead of the probe: image files, a folder of images, an ImageFolder tree, "
    "a .npy or .pt file (repeat for several; the checkpoint's preprocessing is applied).",
)
@dataset_options
@checkpoint_options
def analyze(
    checkpoints: tuple[str, ...],
    select_all: bool,
    names: tuple[str, ...],
    exclude: tuple[str, ...],
    option_texts: tuple[str, ...],
    out_dir: str | None,
    force: bool,
    no_plugins: bool,
    timeout: float | None,
    open_browser: bool,
    input_files: tuple[str, ...],
    data: str | None,
    data_options: dict[str, Any],
    **loading: Any,
) -> int:
    """Run analyzers on each CHECKPOINT and write one gallery (exit 1 if any analyzer failed).

    With several checkpoints the gallery has a page per checkpoint and an index listing them.
    """
    from introspect.api import analyze as run_analysis
    from introspect.dataset.on_ray import check_ray_installed
    from introspect.dataset.plan import parse_executor
    from introspect.options import parse_assignments, resolve_options
    from introspect.registry import Registry
    from introspect.report.outdir import claim_output_dir

    if not select_all and not names:
        raise click.UsageError("choose analyzers with --all or -a NAME ('introspect list' shows them)")
    if input_files and loading.get("probe"):
        raise click.UsageError("--inputs and --probe both give the probe: use one")
    registry = Registry.default(load_plugins=False if no_plugins else None)
    _warn_plugin_problems(registry.problems)
    # checked before the folder is claimed, so a misspelt option leaves nothing behind
    selected = registry.select(names, exclude=exclude, select_all=select_all)
    options = resolve_options(selected, parse_assignments(option_texts))
    executor, address = parse_executor(data_options["executor"])
    if executor == "ray":
        check_ray_installed()
    out_dir = out_dir or (f"introspect-{Path(checkpoints[0]).stem}" if len(checkpoints) == 1 else "introspect-gallery")
    # checked and locked before any analysis; the context releases the lock once the gallery is in place
    click.get_current_context().with_resource(claim_output_dir(out_dir, force=force))
    run = functools.partial(
        run_analysis,
        analyzers="all" if select_all else list(names),
        exclude=exclude,
        force=force,
        registry=registry,
        options=options,
        data=data,
        data_options=data_options,
        input_files=input_files,
        progress=_print_progress,
        timeout=timeout,
        **load_options_from(**loading),
    )
    if len(checkpoints) == 1:
        report = run(checkpoints[0], out_dir=out_dir)
        _report_problems(checkpoints[0], report)
        index, exit_code = report.index_path, report.exit_code
    elif executor == "ray":
        index, exit_code = _analyze_on_ray(checkpoints, run, out_dir, force, address)
    else:
        index, exit_code = _analyze_into_collection(checkpoints, run, out_dir, force, timeout)
    click.echo(str(index))
    if open_browser:
        open_in_browser(Path(index))
    return exit_code


def _report_problems(checkpoint: str, report: Any) -> None:
    for warning in report.warnings:
        click.echo(f"introspect: warning: {warning}", err=True)
    for result in report.results:
        if result.status == "failed":
            click.echo(f"introspect: {checkpoint}: {result.name} failed: {result.reason}", err=True)


def _analyze_into_collection(
    checkpoints: tuple[str, ...], run: Any, out_dir: str, force: bool, timeout: float | None
) -> tuple[Path, int]:
    """Each checkpoint analyzed and its page written at once, so only one report is held at a time."""
    from introspect.artifacts import slugify
    from introspect.dataset.records import default_record_dir
    from introspect.report import GalleryWriter
    from introspect.runner import within_limit

    exit_code = 0
    with GalleryWriter(out_dir, force=force) as writer:
        for checkpoint in checkpoints:
            click.echo(f"introspect: analyzing {checkpoint}", err=True)
            record_dir = default_record_dir(out_dir) / slugify(Path(checkpoint).stem)
            report = run(
                checkpoint, out_dir=None, data_options={**run.keywords["data_options"], "record_dir": record_dir}
            )
            _report_problems(checkpoint, report)
            exit_code = max(exit_code, report.exit_code)
            page = (Path(checkpoint).stem, report.subject, report.specs, report.results)
            write = functools.partial(writer.add_page, *page)
            failure = f"{out_dir}: the gallery was not written"
            within_limit(write, timeout, f"writing the page of {checkpoint}", failure, gallery=out_dir)
            del report, page, write  # the next checkpoint is loaded only after this one's memory is free
    return writer.index_path, exit_code


def _analyze_on_ray(
    checkpoints: tuple[str, ...], run: Any, out_dir: str, force: bool, address: str | None
) -> tuple[Path, int]:
    """One Ray task per checkpoint; the pages are added here in the order given, as a local run adds them."""
    from introspect.report import GalleryWriter
    from introspect.sweeps import analyze_on_ray

    analysis = {key: value for key, value in run.keywords.items() if key != "progress"}
    with GalleryWriter(out_dir, force=force) as writer:
        exit_code = analyze_on_ray(checkpoints, analysis, writer, address, functools.partial(click.echo, err=True))
    return writer.index_path, exit_code


def usage_line(error: click.ClickException) -> str:
    """A click error as one line, with the help command of the sub-command it concerns."""
    message = " ".join(error.format_message().split())
    context = getattr(error, "ctx", None)
    if isinstance(error, click.UsageError) and context is not None:
        return f"{message} (see '{context.command_path} --help')"
    return message


def open_in_browser(index: Path) -> None:
    """Open ``index`` in the default browser; say so when there is none (a headless machine)."""
    import webbrowser

    try:
        opened = webbrowser.open(index.resolve().as_uri())
    except webbrowser.Error:
        opened = False
    if not opened:
        click.echo("introspect: no browser to open the gallery with; open the path above yourself", err=True)


def _print_progress(done: int, total: int, result: Any) -> None:
    detail = f" ({result.reason})" if result.status == "skipped" else ""
    click.echo(f"[{done}/{total}] {result.name}: {result.status} {result.seconds:.2f} s{detail}", err=True)


def _warn_plugin_problems(problems: list[str]) -> None:
    for problem in problems:
        click.echo(f"introspect: warning: {problem}", err=True)


@cli.command(name="list")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--no-plugins", is_flag=True, help="Use only the built-in analyzers.")
def list_command(names: tuple[str, ...], as_json: bool, no_plugins: bool) -> int:
    """List the analyzers with their needs, summary and providing package; with NAME, its options too."""
    from introspect.needs import describe_needs
    from introspect.options import option_types
    from introspect.registry import Registry

    registry = Registry.default(load_plugins=False if no_plugins else None)
    _warn_plugin_problems(registry.problems)
    specs = registry.select(names) if names else list(registry)
    rows = [
        {"name": spec.name, "needs": describe_needs(spec.needs), "summary": spec.summary, "package": spec.package}
        for spec in specs
    ]
    if names:
        for row, spec in zip(rows, specs, strict=True):
            types = option_types(spec)
            row["description"] = spec.description
            row["options"] = [
                {"name": key, "type": types[key], "default": _shown_default(default)}
                for key, default in spec.options().items()
            ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return 0
    width = max(len(row["name"]) for row in rows)
    for row in rows:
        click.echo(f"{row['name']:<{width}}  {row['summary']}")
        click.echo(f"{'':<{width}}  needs: {', '.join(row['needs'])}; from {row['package']}")
        for option in row.get("options", []):
            setting = f"--option {row['name']}.{option['name']}=..."
            click.echo(f"{'':<{width}}  {setting}  ({option['type']}, default {option['default']})")
    return 0


def _shown_default(default: Any) -> Any:
    """A default as JSON can hold it: tuples as lists, anything unusual as its repr."""
    if isinstance(default, tuple):
        return list(default)
    return default if isinstance(default, (str, int, float, bool, type(None))) else repr(default)


@cli.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@checkpoint_options
def info(checkpoint: str, as_json: bool, **loading: Any) -> int:
    """Describe CHECKPOINT: format, architecture, parameters, layers, task, metrics, probe."""
    from introspect.describe import describe_checkpoint, format_description
    from introspect.loading import load_checkpoint

    with warnings.catch_warnings():  # numpy/torch notices while reading are noise, not the description
        warnings.simplefilter("ignore")
        subject = load_checkpoint(checkpoint, **load_options_from(**loading))
        description = describe_checkpoint(subject)
    click.echo(json.dumps(description, indent=2) if as_json else format_description(description))
    return 0


@cli.command()
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(),
    metavar="DIRECTORY",
    default="introspect-compare",
    show_default=True,
    help="Comparison page folder.",
)
@click.option("--force", is_flag=True, help="Replace the folder if it exists.")
@click.option("--title", help="Heading of the page [default: Comparison of N checkpoints].")
@checkpoint_options
def compare(checkpoints: tuple[str, ...], out_dir: str, force: bool, title: str | None, **loading: Any) -> int:
    """Compare two or more CHECKPOINTS on one page: curves, a table of numbers, shared layers side by side."""
    from introspect.compare import MIN_CHECKPOINTS, compare_checkpoints

    if len(checkpoints) < MIN_CHECKPOINTS:
        raise click.UsageError(f"compare needs at least {MIN_CHECKPOINTS} checkpoints, got {len(checkpoints)}")
    _, index = compare_checkpoints(checkpoints, out_dir, force=force, title=title, **load_options_from(**loading))
    click.echo(str(index))
    return 0


def _exit_interrupted(error: BaseException | None, message: str) -> None:
    """Exit 128 + the signal that stopped the run (SIGTERM: 143), 130 for Ctrl-C."""
    signum = getattr(error, "signum", None) or 2
    click.echo(message if signum == 2 else f"introspect: {error}; no partial gallery was left behind", err=True)
    sys.exit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn known errors into one line and an exit code.

    Exit codes: 0 done, 1 partly done (see ``analyze``), 2 bad input of any kind, 3 a bug in
    introspect. ``--debug`` anywhere on the line adds the traceback to 2 and 3.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("INTROSPECT_DEBUG", "") not in ("", "0")
    args = [arg for arg in args if arg != "--debug"]  # accepted anywhere, not only before the command
    try:
        code = cli.main(args=args, prog_name="introspect", standalone_mode=False)
    except click.ClickException as error:
        click.echo(f"introspect: error: {usage_line(error)}", err=True)
        sys.exit(error.exit_code)
    except click.exceptions.Abort as error:
        _exit_interrupted(error.__cause__, "introspect: interrupted")
    except KeyboardInterrupt as error:
        _exit_interrupted(error, "introspect: interrupted; no partial gallery was left behind")
    except IntrospectError as error:
        if debug:
            traceback.print_exc()
        click.echo(f"introspect: error: {error}", err=True)
        sys.exit(EXIT_USAGE)
    except Exception as error:  # an unexpected bug: one line, or the traceback with --debug
        if debug:
            traceback.print_exc()
        click.echo(
            f"introspect: internal error: {type(error).__name__}: {error} (run with --debug for the traceback)",
            err=True,
        )
        sys.exit(EXIT_BUG)
    sys.exit(code if isinstance(code, int) else 0)
