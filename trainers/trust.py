"""``introspect trust CKPT``: which attribution to believe, measured; with ``--retrain``, by retraining the network.

Without ``--retrain`` the page holds the two checks that need no training, ``attribution_scorecard``
and ``saliency_sanity``. With it, two analyzers that retrain the checkpoint's own network from
its recipe are added: ``roar`` (Hooker et al. 2019) and ``data_randomization`` (Adebayo et al.
2018). They are not built-ins, so ``analyze --all`` never starts a retraining; they run here,
through the same runner, and land on the same kind of page.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from introspect.artifacts import Artifact
from introspect.errors import SkipAnalyzer
from introspect.needs import Needs
from introspect.plotting import new_figure, short_label
from introspect.spec import analyzer

if TYPE_CHECKING:
    from introspect.subject import Subject
    from trainers.roar import RetrainSetup

#: A record of measured accuracies is a few hundred bytes; anything larger was not written here.
MAX_RECORD_BYTES = 1 << 20
NEEDS = Needs.FORWARD | Needs.GRADIENTS | Needs.IMAGE_INPUT | Needs.CLASSIFICATION


def retrain_setup(subject: Subject, quick: bool, epochs: int | None, data_dir: str | None) -> RetrainSetup:
    """The checkpoint's network, recipe, config and data, ready for retraining; skip when it has none."""
    from trainers.catalog import get_network
    from trainers.layers import config_from_dict
    from trainers.roar import setup_for
    from trainers.settings import RecipeError, RunSettings
    from trainers.training import configure

    name = str(subject.metadata.get("architecture") or "")
    try:
        network = get_network(name)
    except (KeyError, RecipeError):
        raise SkipAnalyzer(
            f"the checkpoint's network {name or '(unnamed)'!r} has no introspect recipe to retrain"
        ) from None
    settings = RunSettings(quick=quick, epochs=epochs, data_dir=data_dir, device="cpu", seed=subject.seed)
    options, config, _ = configure(network, settings)
    stored = subject.metadata.get("config")
    if stored:
        config = config_from_dict(network.config_class, {**stored, **network.fixed_config})
    data = network.load_data(settings, options)
    if not hasattr(data, "class_names"):
        raise SkipAnalyzer("ROAR retrains classifiers; this network is a regression")
    return setup_for(network, settings, config, data)


@analyzer(needs=NEEDS)
def roar(
    subject: Subject,
    /,
    *,
    methods: tuple[str, ...] = (),
    fractions: tuple[float, ...] = (),
    quick: bool = False,
    epochs: int | None = None,
    data_dir: str | None = None,
    record: str = "",
) -> list[Artifact]:
    """ROAR: remove each method's top pixels from every training and test image, retrain, and measure accuracy.

    Hooker et al. (2019): a method that finds the evidence makes accuracy fall faster than
    removing random pixels does; one that does not is no better than the random control, however
    convincing its maps look. Removed pixels take the training set's per-channel mean, and each
    point is a fresh network trained from the recipe under the same seed.
    """
    from trainers.roar import FRACTIONS, METHODS, RoarRecord, roar_curves

    methods, fractions = tuple(methods or METHODS), tuple(fractions or FRACTIONS)
    unknown = [method for method in methods if method not in METHODS]
    if unknown:
        raise SkipAnalyzer(f"unknown ROAR method {unknown[0]!r}; known: {', '.join(METHODS)}")
    setup = retrain_setup(subject, quick, epochs, data_dir)
    key = _fingerprint(subject, methods, fractions, quick, epochs)
    saved = RoarRecord(_read_record(Path(record), key) if record else {})
    with _progress(1 + len(methods) * len(fractions), len(saved.accuracies)) as bar:

        def after_each(name: str, accuracy: float) -> None:
            bar.update(1)
            bar.set_postfix_str(f"{name}: {accuracy:.3f}")
            if record:
                _write_record(Path(record), key, saved.accuracies)

        curves = roar_curves(subject.model, setup, methods, fractions, saved, after_each=after_each)
    return [_curves_artifact(curves, fractions, setup), _roar_table(curves, fractions)]


def _fingerprint(subject: Subject, methods: Sequence[str], fractions: Sequence[float], quick: bool, epochs: Any) -> str:
    text = json.dumps([subject.metadata.get("sha256"), list(methods), list(fractions), quick, epochs, subject.seed])
    return hashlib.sha256(text.encode()).hexdigest()


def _read_record(path: Path, key: str) -> dict[str, float]:
    """The accuracies an interrupted run of the same checkpoint and settings measured; {} when there are none."""
    if not path.is_file() or path.stat().st_size > MAX_RECORD_BYTES:
        return {}
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(payload, dict) or payload.get("fingerprint") != key:
        return {}
    values = payload.get("accuracies")
    if not isinstance(values, dict):
        return {}
    return {str(name): float(value) for name, value in values.items() if isinstance(value, (int, float))}


def _write_record(path: Path, key: str, accuracies: dict[str, float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"fingerprint": key, "accuracies": accuracies}), encoding="utf-8")
    temporary.replace(path)  # a record is whole or absent, also when the run is killed while writing


def _progress(total: int, done: int, description: str = "ROAR retrainings") -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=done,
        desc=description,
        unit="run",
        leave=False,
        file=sys.stderr,
    )


def _curves_artifact(curves: dict[str, list[float]], fractions: Sequence[float], setup: RetrainSetup) -> Artifact:
    clean = curves["clean"][0]
    percent = [0.0, *(100 * fraction for fraction in fractions)]
    figure = new_figure(7.5, 4.6)
    axes = figure.add_subplot()
    for method, values in curves.items():
        if method == "clean":
            continue
        style = {"color": "black", "linestyle": "--", "linewidth": 2.0} if method == "random" else {"marker": "o"}
        axes.plot(percent, [clean, *values], label=method.replace("_", " "), **style)
    axes.set_xlabel("pixels removed from every image (%)")
    axes.set_ylabel("test accuracy after retraining")
    axes.set_title("ROAR: the faster accuracy falls below the random control, the better the method", fontsize=9)
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
    caption = (
        f"ROAR (Hooker et al. 2019) on {len(setup.train):,} training and {len(setup.test):,} test images: each point "
        f"is {setup.network.name} retrained from its recipe after each image's top pixels by the method were set to "
        f"the training mean. Clean accuracy {clean:.3f}. Hooker et al. found Gradient, Integrated Gradients and "
        "Guided Backprop no better than random removal, and only SmoothGrad-squared and VarGrad better."
    )
    summary = {
        "clean_accuracy": clean,
        "fractions": list(fractions),
        "curves": {k: v for k, v in curves.items() if k != "clean"},
    }
    return Artifact(name="roar-curves", caption=caption, figure=figure, data={"curves": curves}, summary=summary)


def _roar_table(curves: dict[str, list[float]], fractions: Sequence[float]) -> Artifact:
    """One row per method: accuracy at each fraction and its mean gap to the random control (negative: better)."""
    random = np.asarray(curves.get("random", [math.nan] * len(fractions)))
    rows = []
    for method, values in curves.items():
        if method == "clean":
            continue
        gap = float(np.mean(np.asarray(values) - random))
        row = {
            "method": short_label(method, 40),
            **{f"{100 * f:g}% removed": round(v, 4) for f, v in zip(fractions, values)},
        }
        rows.append({**row, "mean gap to random": round(gap, 4)})
    beats = {row["method"]: row["mean gap to random"] < 0 for row in rows if row["method"] != "random"}
    caption = (
        "Test accuracy after removing each fraction of pixels and retraining; the last column is the mean accuracy "
        "minus the random control's (negative: the method removed more evidence than random pixels did)."
    )
    return Artifact(name="roar-table", caption=caption, table=rows, summary={"beats_random": beats})


@analyzer(needs=NEEDS)
def data_randomization(
    subject: Subject,
    /,
    *,
    quick: bool = False,
    epochs: int | None = None,
    data_dir: str | None = None,
    method: str = "saliency",
    max_images: int = 6,
) -> list[Artifact]:
    """The data randomization test: do the maps change when the network learns nothing from the labels?

    Adebayo et al. (2018): the same network is trained once more on randomly permuted labels, and
    once more on the true labels under another seed. A method that explains what the network
    learned gives the permuted-label twin's maps a lower rank correlation with the trained
    network's than the second seed's; a method that only echoes the input (an edge detector) does not.
    """
    from trainers.loop import TensorSplit
    from trainers.roar import data_randomization as compare_twins

    setup = retrain_setup(subject, quick, epochs, data_dir)
    probe = TensorSplit(setup.test.inputs[:64], setup.test.targets[:64])
    with _progress(2, 0, "training the two twins") as bar:
        found = compare_twins(subject.model, setup, probe, method)
        bar.update(2)
    seed, shuffled = found["correlations"]["second_seed"], found["correlations"]["random_labels"]
    summary = {
        "method": method,
        "num_images": len(probe),
        "second_seed_spearman": {"mean": float(np.nanmean(seed)), "std": float(np.nanstd(seed))},
        "random_labels_spearman": {"mean": float(np.nanmean(shuffled)), "std": float(np.nanstd(shuffled))},
        "passes": bool(np.nanmean(shuffled) < np.nanmean(seed)),
    }
    caption = (
        f"{method.replace('_', ' ').capitalize()} maps of {len(probe)} test images: the Spearman rank correlation of "
        f"the trained network's maps with a second seed's is {summary['second_seed_spearman']['mean']:.3f} "
        f"± {summary['second_seed_spearman']['std']:.3f}, with the permuted-label twin's "
        f"{summary['random_labels_spearman']['mean']:.3f} ± {summary['random_labels_spearman']['std']:.3f}; "
        f"the test {'passes' if summary['passes'] else 'fails'} (the twin must correlate less). "
        "Rows: a few of the images."
    )
    figure = _twin_maps_figure(found, setup, max_images)
    data = {"second_seed": seed, "random_labels": shuffled}
    return [Artifact(name="data-randomization", caption=caption, figure=figure, data=data, summary=summary)]


def _twin_maps_figure(found: dict[str, Any], setup: RetrainSetup, max_images: int) -> Any:
    rows = (("trained", "trained"), ("second_seed", "second seed"), ("random_labels", "permuted labels"))
    count = min(max_images, len(found["trained"]))
    figure = new_figure(1.3 * count + 1.2, 4.2)
    grid = figure.subplots(len(rows), count, squeeze=False)
    for row, (key, label) in enumerate(rows):
        for column in range(count):
            axes = grid[row][column]
            axes.imshow(found[key][column].numpy(), cmap="inferno", interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            if column == 0:
                axes.set_ylabel(label, fontsize=8)
    figure.suptitle("Maps of the trained network and of its two twins (each scaled to its own maximum)", fontsize=9)
    return figure


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--retrain", is_flag=True, help="Also run ROAR and the data randomization test (retrains the network).")
@click.option("--quick", is_flag=True, help="Retrain on the quick recipe's subset for its few epochs (minutes).")
@click.option("--epochs", type=int, help="Epochs per retraining [default: the recipe's].")
@click.option("--methods", help="ROAR's methods, comma-separated [default: all seven].")
@click.option("--fractions", help="ROAR's removed fractions, comma-separated [default: 0.1,0.3,0.5,0.7,0.9].")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Dataset folder [default: $INTROSPECT_DATA].")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), help="Gallery folder [default: trust-NAME].")
@click.option("--force", is_flag=True, help="Replace an earlier introspect gallery in the folder.")
@click.option("--resume", is_flag=True, help="Keep the retrainings an interrupted --retrain run recorded.")
def trust(checkpoint: str, retrain: bool, out_dir: str | None, force: bool, resume: bool, **options: Any) -> int:
    """Measure which attribution to trust for CHECKPOINT and write a gallery page of the checks."""
    from introspect.loading import load_checkpoint
    from introspect.report import write_gallery
    from introspect.runner import run_analyzers

    target = Path(out_dir or f"trust-{Path(checkpoint).stem}")
    specs, chosen = _trust_specs(retrain, target, resume, options)
    subject = load_checkpoint(checkpoint, device="cpu")
    results = run_analyzers(subject, specs, options=chosen, progress=_print_progress)
    click.echo(str(write_gallery(subject, specs, results, target, force=force)))
    if all(result.status != "failed" for result in results) and "roar" in chosen:
        Path(chosen["roar"]["record"]).unlink(missing_ok=True)  # finished: nothing is left to resume
    return 1 if any(result.status == "failed" for result in results) else 0


def _print_progress(done: int, total: int, result: Any) -> None:
    shown = f" ({result.reason})" if result.reason else ""
    click.echo(f"[{done}/{total}] {result.name}: {result.status} {result.seconds:.1f} s{shown}", err=True)


def _trust_specs(retrain: bool, target: Path, resume: bool, options: dict[str, Any]) -> tuple[list[Any], dict]:
    from introspect.registry import Registry
    from introspect.spec import spec_of

    registry = Registry.default(load_plugins=False)
    specs: list[Any] = [registry.get("attribution_scorecard"), registry.get("saliency_sanity")]
    if not retrain:
        return specs, {}
    record = target.parent / f".{target.name}.introspect-trust.json"
    if not resume:
        record.unlink(missing_ok=True)
    common = {key: options[key] for key in ("quick", "epochs", "data_dir")}
    roar_options = {**common, "record": str(record)}
    for key, parse in (("methods", str), ("fractions", float)):
        if options.get(key):
            roar_options[key] = _listed(options[key], parse, f"--{key}")
    if any(not 0.0 < fraction < 1.0 for fraction in roar_options.get("fractions", ())):
        raise click.BadParameter("fractions lie strictly between 0 and 1, e.g. 0.1,0.5,0.9", param_hint="--fractions")
    return [*specs, spec_of(roar), spec_of(data_randomization)], {"roar": roar_options, "data_randomization": common}


def _listed(text: str, parse: Any, option: str) -> tuple[Any, ...]:
    try:
        return tuple(parse(part.strip()) for part in text.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} should be values separated by commas", param_hint=option) from None
