"""Build the showcase: train every homework network (quick settings), analyze each, compare NetA.

    python gallery/build.py              # writes gallery/site/index.html

Checkpoints already in ``gallery/checkpoints/`` are reused (delete one, or pass ``--retrain``,
to train it again); any other ``*.pt`` file put there is analyzed too. The site is written
atomically: an interrupted build leaves the previous site or none. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
CHECKPOINT_DIR = ROOT / "checkpoints"
SITE_DIR = ROOT / "site"
SEED = 0

#: The frozen-kernel experiment's comparisons: (folder, title, what it asks, networks).
COMPARISONS = (
    (
        "neta1-schemes",
        "NetA1: the three schemes",
        "Schemes within one architecture: hand-made first-conv kernels kept frozen (HF), hand-made and trained (HT),"
        " default initialization and trained (DT).",
        ("neta1-hf", "neta1-ht", "neta1-dt"),
    ),
    (
        "neta2-schemes",
        "NetA2: the three schemes",
        "The same three schemes in the deeper NetA2 (a second conv layer before the classifier).",
        ("neta2-hf", "neta2-ht", "neta2-dt"),
    ),
    (
        "hf-across-architectures",
        "Frozen hand-made kernels across architectures",
        "One scheme (HF) across architectures: does a second, trained conv layer make up for frozen first-layer"
        " kernels?",
        ("neta1-hf", "neta2-hf"),
    ),
    (
        "neta1-against-neta2-hf",
        "Every NetA1 scheme against NetA2-HF",
        "Can training the first layer of the shallow net (HT, DT) match adding depth on top of frozen kernels"
        " (NetA2-HF)?",
        ("neta1-hf", "neta1-ht", "neta1-dt", "neta2-hf"),
    ),
    (
        "mnist-mlp-against-lenet5",
        "The MNIST MLP against LeNet-5",
        "Do a dense and a convolutional network trained on the same digits compute alike? The page ends with linear"
        " CKA between their layers on the same MNIST probe.",
        ("mnist-mlp", "lenet5"),
    ),
)
#: The networks whose attributions are also measured by retraining (``introspect trust --retrain --quick``).
TRUSTED = ("lenet5",)

_START = time.monotonic()


def say(message: str) -> None:
    """One progress line on stderr, stamped with the seconds since the build started."""
    print(f"[{time.monotonic() - _START:7.1f} s] {message}", file=sys.stderr, flush=True)


def display_name(name: str) -> str:
    """``neta1-hf`` → ``NetA1-HF``; other networks keep their catalog name."""
    if name.startswith("neta"):
        architecture, _, scheme = name.partition("-")
        return f"NetA{architecture[4:]}-{scheme.upper()}"
    return name


def ensure_checkpoints(names: Sequence[str], retrain: bool, data_dir: str | None) -> dict[str, Path]:
    """A checkpoint per network, trained with quick settings unless one is already there."""
    from trainers.catalog import RunSettings, train

    found = {}
    for index, name in enumerate(names, start=1):
        path = CHECKPOINT_DIR / f"{name}.pt"
        if path.exists() and not retrain:
            say(f"[{index}/{len(names)}] {name}: reusing {path.relative_to(ROOT.parent)}")
            found[name] = path
            continue
        say(f"[{index}/{len(names)}] {name}: training (quick)")
        settings = RunSettings(
            quick=True, seed=SEED, data_dir=data_dir, log=lambda note, n=name: say(f"    {n}: {note}")
        )
        started = time.monotonic()
        try:
            found[name] = train(name, settings, path)
        except Exception as error:  # one network without data must not stop the showcase
            say(f"    {name}: not trained, left out: {type(error).__name__}: {error}")
            continue
        say(f"    {name}: trained in {time.monotonic() - started:.1f} s")
    return found


def extra_checkpoints(known: Sequence[str]) -> dict[str, Path]:
    """Checkpoint files a user put in ``gallery/checkpoints`` that no recipe trains."""
    return {path.stem: path for path in sorted(CHECKPOINT_DIR.glob("*.pt")) if path.stem not in known}


def analyze_into(writer: Any, specs: Sequence[Any], name: str, title: str, path: Path) -> tuple[Any, int] | None:
    """Every analyzer on one checkpoint, its page added to ``writer`` as the results come.

    The results go to the writer one at a time, so only one analyzer's figures are in memory at
    once (holding every report until the end took almost 4 GB). Returns the subject and the
    exit code (1 when an analyzer failed or the checkpoint could only partly be analyzed).
    """
    from introspect.errors import IntrospectError
    from introspect.loading import load_checkpoint
    from introspect.runner import run_one

    started = time.monotonic()
    try:
        subject = load_checkpoint(path, seed=SEED)
    except IntrospectError as error:
        say(f"{name}: not analyzed: {error}")
        return None
    results = (reported(name, run_one(subject, spec)) for spec in specs)
    counts = writer.add_page(title, subject, specs, results)["counts"]
    summary = f"{counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed"
    say(f"{name}: analyzed in {time.monotonic() - started:.1f} s ({summary})")
    return subject, int(bool(counts["failed"] or subject.metadata.get("warnings")))


def reported(name: str, result: Any) -> Any:
    """``result``, after saying why it failed if it did."""
    if result.status == "failed":
        say(f"    {name}: {result.name} failed: {result.reason}")
    return result


def add_comparisons(writer: Any, subjects: dict[str, Any]) -> None:
    """The comparison pages whose networks are there (two at least), linked from the index."""
    from introspect.compare import compare_subjects

    for slug, title, text, names in COMPARISONS:
        entries = [(display_name(name), subjects[name]) for name in names if name in subjects]
        if len(entries) < 2:
            say(f"comparison {slug}: left out, fewer than two of {', '.join(names)} are there")
            continue
        comparison = compare_subjects(entries)
        writer.add_comparison(comparison, slug=slug, title=title, description=text)
        say(f"comparison {slug}: {len(entries)} checkpoints, {len(comparison.shared)} shared parameters")


def add_trust_pages(writer: Any, checkpoints: dict[str, Path]) -> None:
    """ROAR and the data randomization test, retrained on the quick recipe, for each network in TRUSTED."""
    from introspect.loading import load_checkpoint
    from introspect.runner import run_one
    from introspect.spec import spec_of
    from trainers.trust import data_randomization, roar

    for name in (name for name in TRUSTED if name in checkpoints):
        started = time.monotonic()
        subject = load_checkpoint(checkpoints[name], seed=SEED)
        specs = [spec_of(roar), spec_of(data_randomization)]
        results = (reported(name, run_one(subject, spec, {"quick": True})) for spec in specs)
        writer.add_page(f"{display_name(name)}: ROAR and data randomization", subject, specs, results)
        say(f"{name}: retrained for ROAR and the data randomization test in {time.monotonic() - started:.1f} s")


def build_site(checkpoints: dict[str, Path], out_dir: Path) -> tuple[Path, int]:
    """A page per checkpoint, the comparison pages, then the index listing both; atomically."""
    from introspect.registry import Registry
    from introspect.report import GalleryWriter

    specs = Registry.default().select(select_all=True)
    compared = {name for *_, names in COMPARISONS for name in names}
    subjects, exit_code = {}, 0
    with GalleryWriter(out_dir, force=True) as writer:
        for index, (name, path) in enumerate(checkpoints.items(), start=1):
            say(f"[{index}/{len(checkpoints)}] {name}: analyzing")
            done = analyze_into(writer, specs, name, display_name(name), path)
            exit_code = max(exit_code, 1 if done is None else done[1])
            if done is not None and name in compared:  # keep only what the comparisons need
                subjects[name] = done[0]
            del done
            gc.collect()
        if not writer.pages:
            raise SystemExit("nothing to show: no checkpoint could be trained or analyzed")
        add_comparisons(writer, subjects)
        add_trust_pages(writer, checkpoints)
    return writer.index_path, exit_code


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line: which networks, where the data is, whether to retrain."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", action="append", metavar="NETWORK", help="Build only these networks (repeatable); default: all."
    )
    parser.add_argument("--retrain", action="store_true", help="Train again even where a checkpoint exists.")
    parser.add_argument("--data-dir", help="Dataset folder (default: $INTROSPECT_DATA, else the cache folder).")
    shown = SITE_DIR.relative_to(ROOT.parent)
    parser.add_argument("--out", type=Path, default=SITE_DIR, help=f"Site folder (default: {shown}).")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Train or reuse, analyze, compare, write; exit 1 when a network or an analyzer failed."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    arguments = parse_arguments(argv)
    from trainers.catalog import list_recipes

    names = arguments.only or [recipe.name for recipe in list_recipes()]
    checkpoints = ensure_checkpoints(names, arguments.retrain, arguments.data_dir)
    if not arguments.only:
        checkpoints.update(extra_checkpoints(names))
    index, exit_code = build_site(checkpoints, arguments.out)
    say(f"done: {index}")
    print(index)
    untrained = [name for name in names if name not in checkpoints]
    return 1 if exit_code or untrained else 0


if __name__ == "__main__":
    sys.exit(main())
