"""Re-measure the quality bars of issue 3: train each network at its defaults and compare.

A script of the repository, not of the shipped package. Run ``python -m scripts.quality`` from
the repository root, or ``make quality`` (``lenet5 mnist-mlp`` to measure only those, ``--seed N``,
``--out-dir DIR`` to keep the checkpoints, ``--markdown PATH`` to write the table as Markdown,
``--quick`` for a smoke run on small subsets and few epochs). Each network is trained on the CPU
at its default settings on whatever the data folder holds (``--data-dir``, else
``$INTROSPECT_DATA``); the table gives our metric, the bar, pass or fail, the training time and
the homework's full-dataset figure beside it, and says which data was used. The exit code is 1
when a bar is missed (or a network failed to train), else 0. Progress goes to stderr, the table
to stdout.

The bars (issue 3, "Quality bars"): on the offline subsets (MNIST 4000 train / 1000 test,
FashionMNIST 3443 / 1000), ``lenet5`` >= 96 % test accuracy, ``mnist-mlp`` >= 92 %,
``fashion-cnn`` >= 78 %, ``fashion-mlp`` >= 75 %, and ``regression-mlp`` test MSE within 2x of
the test set's noise variance.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

FULL_SIZES = {"MNIST": (60000, 10000), "FashionMNIST": (60000, 10000)}
IDX_LABEL_FILES = ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte")


@dataclasses.dataclass(frozen=True)
class Bar:
    """One quality bar.

    Attributes:
        network: the CLI name of the network.
        kind: ``"accuracy"`` (``test_accuracy`` >= ``threshold``) or ``"mse"`` (``test_mse`` <=
            ``threshold`` x ``noise_variance``).
        threshold: a fraction for ``accuracy``, a factor of the noise variance for ``mse``.
        dataset: the dataset it trains on (``MNIST``, ``FashionMNIST``, ``synthetic``).
        homework: the homework's figure on the full dataset, as text (``"99.1%"``), or ``None``.
    """

    network: str
    kind: str
    threshold: float
    dataset: str
    homework: str | None = None

    def describe(self) -> str:
        """The bar as a reader sees it: ``>= 96.0%`` or ``MSE <= 2x noise var``."""
        if self.kind == "accuracy":
            return f">= {self.threshold:.1%}"
        return f"MSE <= {self.threshold:g}x noise var"


BARS: dict[str, Bar] = {
    bar.network: bar
    for bar in (
        Bar("lenet5", "accuracy", 0.96, "MNIST", "99.1% (LeNet-5, full MNIST)"),
        Bar("mnist-mlp", "accuracy", 0.92, "MNIST", "97.1% (784-96-24-10, full MNIST)"),
        Bar("fashion-cnn", "accuracy", 0.78, "FashionMNIST", "89.3% (CNN, full FashionMNIST)"),
        Bar("fashion-mlp", "accuracy", 0.75, "FashionMNIST", "88.1% (MLP, full FashionMNIST)"),
        Bar("regression-mlp", "mse", 2.0, "synthetic", None),
    )
}


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one training run gave: its checkpoint metrics and wall-clock time, or an error."""

    network: str
    metrics: Mapping[str, Any]
    seconds: float
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the results table, already judged against its bar."""

    network: str
    ours: str
    bar: str
    passed: bool
    seconds: float
    homework: str
    data: str
    details: str


@dataclasses.dataclass(frozen=True)
class DataSource:
    """What a dataset folder holds for one dataset: image counts and whether it is the full set."""

    name: str
    train: int | None
    test: int | None

    @property
    def label(self) -> str:
        """``"offline subset"``, ``"full dataset"`` or ``"missing"``."""
        if self.train is None or self.test is None:
            return "missing"
        full_train, full_test = FULL_SIZES.get(self.name, (0, 0))
        return "full dataset" if (self.train, self.test) >= (full_train, full_test) else "offline subset"

    def describe(self) -> str:
        """``"MNIST: 4000 train / 1000 test (offline subset)"``."""
        if self.label == "missing":
            return f"{self.name}: not found"
        return f"{self.name}: {self.train} train / {self.test} test ({self.label})"


# --- judging ---------------------------------------------------------------------------------------


def passes(bar: Bar, metrics: Mapping[str, Any]) -> bool:
    """Whether ``metrics`` (a checkpoint's ``metrics``) meet ``bar``; missing values fail."""
    if bar.kind == "accuracy":
        accuracy = metrics.get("test_accuracy")
        return accuracy is not None and float(accuracy) >= bar.threshold
    mse, noise = metrics.get("test_mse"), metrics.get("noise_variance")
    return mse is not None and noise is not None and float(mse) <= bar.threshold * float(noise)


def our_figure(bar: Bar, metrics: Mapping[str, Any]) -> str:
    """Our metric as text: ``97.3%`` or ``MSE 0.105 (1.17x noise var 0.09)``."""
    if bar.kind == "accuracy":
        return f"{float(metrics['test_accuracy']):.1%}"
    mse, noise = float(metrics["test_mse"]), float(metrics["noise_variance"])
    return f"MSE {mse:.3g} ({mse / noise:.2f}x noise var {noise:g})"


def shortfall(bar: Bar, metrics: Mapping[str, Any]) -> str:
    """By how much a missed bar was missed (``"1.2 points short"``); empty when it passed."""
    if passes(bar, metrics) or not metrics:
        return ""
    if bar.kind == "accuracy":
        return f"{(bar.threshold - float(metrics['test_accuracy'])) * 100:.1f} points short"
    ratio = float(metrics["test_mse"]) / float(metrics["noise_variance"])
    return f"{ratio:.2f}x noise var, {ratio / bar.threshold:.2f}x the allowed MSE"


def details_of(bar: Bar, metrics: Mapping[str, Any]) -> str:
    """Supporting numbers: accuracy of the best-validation weights, epochs run, early stop."""
    parts = []
    if bar.kind == "accuracy" and "best_test_accuracy" in metrics:
        parts.append(f"best-val weights {float(metrics['best_test_accuracy']):.1%}")
    if bar.kind == "mse" and "true_function_test_mse" in metrics:
        parts.append(f"noise-free f scores {float(metrics['true_function_test_mse']):.3g}")
    if "epochs_run" in metrics:
        stopped = " (early stop)" if metrics.get("stopped_early") else ""
        parts.append(f"{int(metrics['epochs_run'])} epochs{stopped}")
    return ", ".join(parts)


def data_used(bar: Bar, metrics: Mapping[str, Any], sources: Mapping[str, DataSource], quick: bool) -> str:
    """Which data a row was measured on, from the checkpoint's own counts and the folder's label."""
    if bar.dataset == "synthetic":
        return "synthetic 1-D (generated)"
    fit, validation, test = (metrics.get(key) for key in ("num_train", "num_validation", "num_test"))
    source = sources.get(bar.dataset)
    label = source.label if source is not None else "unknown"
    if quick:
        label = f"quick subset of the {label}"
    if fit is None or validation is None or test is None:
        return f"{bar.dataset} ({label})"
    split = f"{int(fit) + int(validation)} train ({int(fit)} fit + {int(validation)} val) / {int(test)} test"
    return f"{bar.dataset} {split} ({label})"


def judge(outcome: Outcome, sources: Mapping[str, DataSource], quick: bool = False) -> Row:
    """One table row for ``outcome``; a run that raised is a failed row carrying the error."""
    bar = BARS[outcome.network]
    homework = bar.homework or "none"
    if outcome.error is not None:
        data = data_used(bar, {}, sources, quick)
        return Row(outcome.network, "error", bar.describe(), False, outcome.seconds, homework, data, outcome.error)
    ok = passes(bar, outcome.metrics)
    details = details_of(bar, outcome.metrics)
    if not ok:
        details = "; ".join(part for part in (shortfall(bar, outcome.metrics), details) if part)
    ours, data = our_figure(bar, outcome.metrics), data_used(bar, outcome.metrics, sources, quick)
    return Row(outcome.network, ours, bar.describe(), ok, outcome.seconds, homework, data, details)


# --- the data folder -------------------------------------------------------------------------------


def idx_count(path: Path) -> int | None:
    """The item count in an IDX file's header (bytes 4-8, big-endian), or ``None`` if unreadable."""
    try:
        with path.open("rb") as handle:
            header = handle.read(8)
    except OSError:
        return None
    return int.from_bytes(header[4:8], "big") if len(header) == 8 else None


def inspect_data_dir(root: Path) -> dict[str, DataSource]:
    """What ``root`` (torchvision's layout) holds for MNIST and FashionMNIST."""
    sources = {}
    for name in FULL_SIZES:
        train, test = (idx_count(root / name / "raw" / file) for file in IDX_LABEL_FILES)
        sources[name] = DataSource(name, train, test)
    return sources


# --- rendering -------------------------------------------------------------------------------------

COLUMNS = ("network", "ours", "bar", "result", "train time", "homework (full data)", "data", "details")


def _cells(row: Row) -> list[str]:
    result = "pass" if row.passed else "FAIL"
    return [row.network, row.ours, row.bar, result, f"{row.seconds:.0f} s", row.homework, row.data, row.details]


def text_table(rows: Sequence[Row]) -> str:
    """The rows as an aligned plain-text table."""
    lines = [list(COLUMNS)] + [_cells(row) for row in rows]
    widths = [max(len(line[column]) for line in lines) for column in range(len(COLUMNS))]
    rendered = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
    rendered.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(rendered)


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(rows: Sequence[Row]) -> str:
    """The rows as a GitHub Markdown table (``|`` in cells escaped)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_markdown_cell(cell) for cell in _cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def summary_lines(rows: Sequence[Row], sources: Mapping[str, DataSource], data_dir: Path, settings: str) -> list[str]:
    """The lines said around the table: the data used, how it was trained, the verdict."""
    held = "; ".join(source.describe() for source in sources.values())
    failed = [row.network for row in rows if not row.passed]
    missed = f"; missed: {', '.join(failed)}" if failed else ""
    verdict = f"{len(rows) - len(failed)} of {len(rows)} bars met{missed}"
    return [f"Data: {held} (from {data_dir}).", f"Settings: {settings}.", f"Verdict: {verdict}."]


def markdown_report(rows: Sequence[Row], sources: Mapping[str, DataSource], data_dir: Path, settings: str) -> str:
    """The Markdown written by ``--markdown``: the summary lines, then the table."""
    lines = [f"- {line}" for line in summary_lines(rows, sources, data_dir, settings)]
    return "\n".join(lines) + "\n\n" + markdown_table(rows) + "\n"


# --- training --------------------------------------------------------------------------------------


def _say(message: str) -> None:
    click.echo(f"quality: {message}", err=True)


def _progress(name: str) -> Callable[[int, int, Mapping[str, float]], None]:
    """About ten progress lines per network on stderr."""

    def report(epoch: int, num_epochs: int, metrics: Mapping[str, float]) -> None:
        if epoch not in (1, num_epochs) and epoch % max(1, num_epochs // 10):
            return
        shown = "  ".join(f"{key} {value:.4g}" for key, value in metrics.items() if _is_curve_value(key, value))
        _say(f"[{name}] epoch {epoch}/{num_epochs}  {shown}")

    return report


def _is_curve_value(key: str, value: object) -> bool:
    return key.startswith(("val_", "train_")) and isinstance(value, float)


def train_one(
    network: str, out_dir: Path, data_dir: Path, seed: int, quick: bool, epochs: int | None = None
) -> Outcome:
    """Train ``network`` at its defaults on the CPU; its metrics and time, or the error it raised."""
    from trainers.catalog import RunSettings, train

    settings = RunSettings(
        epochs=epochs, quick=quick, data_dir=str(data_dir), device="cpu", seed=seed, progress=_progress(network),
        log=_say,
    )  # fmt: skip
    _say(f"training {network}{' (quick)' if quick else ''}...")
    started = time.perf_counter()
    try:
        path = train(network, settings, out_dir / f"{network}.pt")
        metrics = _metrics_of(path)
    except Exception as error:  # one failing network must not stop the others
        seconds = time.perf_counter() - started
        _say(f"{network} failed after {seconds:.0f} s: {type(error).__name__}: {error}")
        return Outcome(network, {}, seconds, f"{type(error).__name__}: {error}")
    seconds = time.perf_counter() - started
    _say(f"{network} done in {seconds:.0f} s")
    return Outcome(network, metrics, seconds)


def _metrics_of(path: Path) -> dict[str, Any]:
    import torch

    return dict(torch.load(path, map_location="cpu", weights_only=True)["metrics"])


def resolve_data_dir(data_dir: str | None) -> Path:
    """``--data-dir``, else ``$INTROSPECT_DATA``, else the trainers' cache folder."""
    from trainers.data import resolve_data_dir as resolve

    return resolve(data_dir)


# --- entry point -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Request:
    """What the command line asked for.

    Attributes:
        networks: the networks to measure, in order.
        data_dir: ``--data-dir``, else ``None`` (``$INTROSPECT_DATA``, else the cache folder).
        seed: the seed every network trains with.
        quick: each network's ``--quick`` subset and epochs (a smoke run, not the quality run).
        epochs: every network's epochs forced to this (smoke runs only), or ``None``.
    """

    networks: tuple[str, ...]
    data_dir: str | None = None
    seed: int = 0
    quick: bool = False
    epochs: int | None = None


def settings_text(request: Request) -> str:
    """How the networks were trained, in one phrase."""
    mode = "QUICK mode (subsets, few epochs; not the quality run)" if request.quick else "default settings"
    epochs = f", epochs forced to {request.epochs}" if request.epochs else ""
    return f"{mode}{epochs}, CPU, seed {request.seed}"


def run(request: Request, out_dir: Path) -> tuple[list[Row], dict[str, DataSource], Path]:
    """Train every requested network into ``out_dir`` and judge it."""
    data_dir = resolve_data_dir(request.data_dir)
    sources = inspect_data_dir(data_dir)
    for source in sources.values():
        _say(source.describe())
    seed, quick, epochs = request.seed, request.quick, request.epochs
    outcomes = [train_one(name, out_dir, data_dir, seed, quick, epochs) for name in request.networks]
    return [judge(outcome, sources, request.quick) for outcome in outcomes], sources, data_dir


@click.command(help=f"{(__doc__ or '').splitlines()[0]}\n\nNETWORK: {', '.join(BARS)} (all of them by default).")
@click.argument("networks", nargs=-1, type=click.Choice(list(BARS)), metavar="[NETWORK]...")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the checkpoints here [default: a temporary folder].")  # fmt: skip
@click.option("--data-dir", help="Dataset folder [default: $INTROSPECT_DATA, else a cache folder].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--markdown", type=click.Path(dir_okay=False, path_type=Path), help="Also write the table as Markdown.")
@click.option("--quick", is_flag=True,
              help="Smoke run: each network's --quick subset and epochs (the bars are for the defaults).")  # fmt: skip
@click.option("--epochs", type=int, help="Override every network's epochs (smoke runs only).")
@click.pass_context
def main(
    ctx: click.Context, networks: tuple[str, ...], markdown: Path | None, out_dir: Path | None, **asked: Any
) -> None:
    """Train, print the table and the data used, optionally write Markdown; exit 1 when a bar is missed."""
    request = Request(networks or tuple(BARS), **asked)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        rows, sources, used_dir = run(request, out_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="introspect-quality-") as folder:
            rows, sources, used_dir = run(request, Path(folder))
    settings = settings_text(request)
    click.echo(text_table(rows))
    click.echo()
    click.echo("\n".join(summary_lines(rows, sources, used_dir, settings)))
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(markdown_report(rows, sources, used_dir, settings), encoding="utf-8")
        _say(f"wrote {markdown}")
    ctx.exit(0 if all(row.passed for row in rows) else 1)


if __name__ == "__main__":
    main(prog_name="python -m scripts.quality")
