"""``introspect train`` and ``introspect demo``, provided to the introspect CLI as plugins.

They are advertised under the entry-point group ``introspect.commands``, so ``introspect`` never
imports ``trainers``. Heavy imports wait until a command runs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

DEMO_NETWORKS = ("regression-mlp", "digits-mlp")
SHOWN_METRICS = ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "seconds_per_epoch")


def _parse_sets(ctx: click.Context, param: click.Parameter, pairs: tuple[str, ...]) -> dict[str, str]:
    """``--set`` pairs through the one parser every command shares (a missing ``=`` is a usage error)."""
    from trainers.settings import RecipeError, parse_sets

    try:
        return parse_sets(pairs)
    except RecipeError as error:
        raise click.UsageError(str(error), ctx=ctx) from None


def _epoch_printer(name: str):  # noqa: ANN202 - returns a progress callback
    def report(epoch: int, num_epochs: int, metrics: Mapping[str, float]) -> None:
        # About ten lines per run, however many epochs: the first, every tenth part, the last.
        if epoch not in (1, num_epochs) and epoch % max(1, num_epochs // 10):
            return
        shown = "  ".join(f"{key} {metrics[key]:.4g}" for key in SHOWN_METRICS if isinstance(metrics.get(key), float))
        click.echo(f"[{name}] epoch {epoch}/{num_epochs}  {shown}", err=True)

    return report


def _note(message: str) -> None:
    click.echo(f"introspect: {message}", err=True)


@click.command()
@click.argument("name", required=False)
@click.option("--list", "show_list", is_flag=True, help="List the networks that can be trained.")
@click.option("--epochs", type=int, help="Epochs to train [default: the network's own].")
@click.option("--quick", is_flag=True, help="A subset and a few epochs: about a minute per network on 2 cores.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Dataset folder [default: $INTROSPECT_DATA, else a cache folder].",
)
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Checkpoint path [default: NAME.pt].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_parse_sets,
    help="Override a config field (repeatable).",
)
@click.option(
    "--search",
    type=click.Choice(["grid", "random", "bayes"]),
    help="Search hyperparameters with k-fold cross-validation first.",
)
@click.option("--trials", type=int, help="Configurations to try (random and bayes).")
@click.option("--folds", type=int, default=3, show_default=True, help="Cross-validation folds for --search.")
@click.option("--storage", metavar="URL", help="Optuna storage shared by several workers, e.g. sqlite:///study.db.")
@click.option("--study-name", metavar="NAME", help="Optuna study to create or join [default: introspect-NAME].")
@click.option("--no-retrain", is_flag=True, help="Only add trials and write the CSV (a worker of a shared study).")
def train(name: str | None, show_list: bool, out_path: str | None, search: str | None, **options: Any) -> int:
    """Train the network NAME and save an introspect checkpoint."""
    from trainers.catalog import list_recipes
    from trainers.catalog import train as train_network
    from trainers.settings import RunSettings

    if show_list:
        for recipe in list_recipes():
            click.echo(f"{recipe.name:<16} {recipe.summary}")
        return 0
    if not name:
        raise click.UsageError("name a network to train ('introspect train --list' shows them)")
    searching = {key: options.pop(key) for key in ("trials", "folds", "storage", "study_name", "no_retrain")}
    if (searching["study_name"] or searching["no_retrain"]) and not search:
        raise click.UsageError("--study-name and --no-retrain go with --search")
    # What is left of the options are RunSettings' own fields: epochs, quick, data_dir, device, seed, overrides.
    settings = RunSettings(**options, progress=_epoch_printer(name), log=_note)
    target = Path(out_path or f"{name}.pt")
    start = time.perf_counter()
    path = _search(name, search, settings, target, **searching) if search else train_network(name, settings, target)
    verb = "searched" if searching["no_retrain"] else "trained"
    click.echo(f"introspect: {verb} {name} in {time.perf_counter() - start:.1f} s", err=True)
    click.echo(str(path))
    return 0


def _search(name: str, method: str, settings: Any, target: Path, **searching: Any) -> Path:
    from trainers.search import run_search

    return run_search(
        name, method, settings, searching["trials"], searching["folds"], target, storage=searching["storage"],
        study_name=searching["study_name"], retrain=not searching["no_retrain"],
    )  # fmt: skip


@click.command()
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="introspect-demo",
    show_default=True,
    help="Folder for the checkpoints and the gallery.",
)
@click.option("--force", is_flag=True, help="Replace the gallery if it exists.")
@click.option("--seed", type=int, default=0, show_default=True)
def demo(out_dir: str, force: bool, seed: int) -> int:
    """Train two small networks (no download needed), analyze both with --all, write a gallery."""
    from introspect.api import analyze
    from introspect.report import check_output_dir, write_collection
    from trainers.catalog import RunSettings
    from trainers.catalog import train as train_network

    gallery_dir = Path(out_dir) / "gallery"
    check_output_dir(gallery_dir, force=force)
    pages = []
    for name in DEMO_NETWORKS:
        settings = RunSettings(quick=True, device="cpu", seed=seed, progress=_epoch_printer(name), log=_note)
        checkpoint = train_network(name, settings, Path(out_dir) / "checkpoints" / f"{name}.pt")
        click.echo(f"introspect: analyzing {checkpoint}", err=True)
        report = analyze(checkpoint, device="cpu", seed=seed, progress=_analyzer_printer(name))
        pages.append((name, report))
    index = write_collection(pages, gallery_dir, force=force)
    click.echo(str(index))
    return max(report.exit_code for _, report in pages)


def _analyzer_printer(name: str):  # noqa: ANN202 - returns a progress callback
    def report(done: int, total: int, result) -> None:  # noqa: ANN001
        click.echo(f"[{name}] [{done}/{total}] {result.name}: {result.status} {result.seconds:.2f} s", err=True)

    return report
