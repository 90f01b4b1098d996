"""``introspect analyze``: run analyzers on one or more checkpoints and write one gallery.

Nothing here imports torch at module level; :mod:`introspect.cli` adds the command to the group.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import click

from introspect.cli_options import checkpoint_options, dataset_options, load_options_from, warn_plugin_problems


@click.command()
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
    "a .npy or .pt file, or for a text model with a tokenizer a .txt of texts, one per line (repeat for "
    "several; the checkpoint's preprocessing is applied).",
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
    from introspect.report.outdir import claim_output_dir

    registry, options = _checked_selection(select_all, names, exclude, option_texts, no_plugins, input_files, loading)
    executor, address = _checked_executor(data_options["executor"])
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
    index, exit_code = _analyze_all(checkpoints, run, out_dir, force, timeout, executor, address)
    click.echo(str(index))
    if open_browser:
        open_in_browser(Path(index))
    return exit_code


def _checked_selection(
    select_all: bool,
    names: tuple[str, ...],
    exclude: tuple[str, ...],
    option_texts: tuple[str, ...],
    no_plugins: bool,
    input_files: tuple[str, ...],
    loading: dict[str, Any],
) -> tuple[Any, dict[str, Any]]:
    """The registry and the analyzers' options, every usage error raised before the gallery folder is claimed."""
    from introspect.options import parse_assignments, resolve_options
    from introspect.registry import Registry

    if not select_all and not names:
        raise click.UsageError("choose analyzers with --all or -a NAME ('introspect list' shows them)")
    if input_files and loading.get("probe"):
        raise click.UsageError("--inputs and --probe both give the probe: use one")
    registry = Registry.default(load_plugins=False if no_plugins else None)
    warn_plugin_problems(registry.problems)
    # checked before the folder is claimed, so a misspelt option leaves nothing behind
    selected = registry.select(names, exclude=exclude, select_all=select_all)
    return registry, resolve_options(selected, parse_assignments(option_texts))


def _checked_executor(text: str) -> tuple[str, str | None]:
    """``--executor`` as (kind, Ray address); Ray must be installed before anything is written."""
    from introspect.dataset.on_ray import check_ray_installed
    from introspect.dataset.plan import parse_executor

    executor, address = parse_executor(text)
    if executor == "ray":
        check_ray_installed()
    return executor, address


def _analyze_all(
    checkpoints: tuple[str, ...],
    run: Any,
    out_dir: str,
    force: bool,
    timeout: float | None,
    executor: str,
    address: str | None,
) -> tuple[Path, int]:
    """The gallery's index and the exit code: one checkpoint's own gallery, or a page per checkpoint."""
    if len(checkpoints) == 1:
        report = run(checkpoints[0], out_dir=out_dir)
        _report_problems(checkpoints[0], report)
        return report.index_path, report.exit_code
    if executor == "ray":
        return _analyze_on_ray(checkpoints, run, out_dir, force, address)
    return _analyze_into_collection(checkpoints, run, out_dir, force, timeout)


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
