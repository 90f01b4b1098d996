"""The ``introspect`` command line: thin wrappers over the Python API.

Nothing here imports torch at module level, so ``introspect --help`` and ``introspect list``
answer quickly. Extra sub-commands (``train``, ``demo``) arrive through the entry-point group
``introspect.commands``, which keeps ``introspect`` from importing ``trainers``. ``analyze`` is
defined in :mod:`introspect.cli_analyze`, the options commands share in :mod:`introspect.cli_options`.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
import warnings
from importlib import metadata
from typing import Any

import click

from introspect import __version__
from introspect.cli_analyze import analyze
from introspect.cli_options import checkpoint_options, load_options_from, warn_plugin_problems
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


cli.add_command(analyze)


def usage_line(error: click.ClickException) -> str:
    """A click error as one line, with the help command of the sub-command it concerns."""
    message = " ".join(error.format_message().split())
    context = getattr(error, "ctx", None)
    if isinstance(error, click.UsageError) and context is not None:
        return f"{message} (see '{context.command_path} --help')"
    return message


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
    warn_plugin_problems(registry.problems)
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
