"""Several checkpoints analyzed on Ray: one task per checkpoint, one collection written here.

``introspect analyze A.pt B.pt ... --executor ray[:ADDRESS]`` hands each checkpoint to a Ray task.
The task loads and analyzes it as a local run would (a ``--data`` pass inside it runs on the
task's own process), writes its page into a temporary folder and returns the page's files. The
driver adds the pages to the collection in the order the checkpoints were given, so the gallery
is the one a local run writes. On a cluster, the checkpoint paths (and ``--data``) must be
readable from its nodes; the pages come back through Ray.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from introspect.errors import IntrospectError

if TYPE_CHECKING:
    from introspect.report import GalleryWriter

#: What the driver learns of each checkpoint: its page, exit code, and the lines a local run prints.
PageResult = dict[str, Any]


def analyze_on_ray(
    checkpoints: Sequence[str],
    analysis: Mapping[str, Any],
    writer: GalleryWriter,
    address: str | None,
    echo: Callable[[str], None],
) -> int:
    """Analyze every checkpoint in its own Ray task and add its page to ``writer``; returns the worst exit code.

    Args:
        analysis: keyword arguments of :func:`introspect.api.analyze` (without ``out_dir``) for each checkpoint.
        echo: prints a line on the user's terminal (progress, warnings, failures).

    Raises:
        IntrospectError: a checkpoint that cannot be analyzed at all (unreadable, unsafe), as a local run raises it.
    """
    import ray

    from introspect.dataset.on_ray import check_ray_installed, ray_cluster

    check_ray_installed()
    with ray_cluster(address):
        gpus = 1 if ray.cluster_resources().get("GPU", 0) else 0
        task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(analyze_one_page)
        pending = [task.remote(str(checkpoint), dict(analysis)) for checkpoint in checkpoints]
        exit_code = 0
        for position, (checkpoint, reference) in enumerate(zip(checkpoints, pending), start=1):
            page = ray.get(reference)
            if isinstance(page, IntrospectError):
                raise page
            for line in page["lines"]:
                echo(line)
            writer.add_written_page(Path(checkpoint).stem, page["files"], page["manifest"])
            exit_code = max(exit_code, page["exit_code"])
            echo(f"introspect: [{position}/{len(checkpoints)}] {checkpoint} analyzed on Ray")
            del page  # the next page is fetched only after this one is written
    return exit_code


def analyze_one_page(checkpoint: str, analysis: dict[str, Any]) -> PageResult | IntrospectError:
    """A Ray task: analyze ``checkpoint``, write its page, return the page's files and what to print.

    An :class:`IntrospectError` is returned, not raised, so that the driver gets the error itself
    (Ray would hand over only its text inside a traceback) and stops the run as a local one would.
    """
    from introspect.api import analyze
    from introspect.report.writer import write_checkpoint_page

    data_options = dict(analysis.get("data_options") or {})
    if data_options.get("executor", "local") != "local":
        data_options["executor"] = "local"  # this task is already one of the cluster's workers
    try:
        report = analyze(checkpoint, out_dir=None, **{**analysis, "data_options": data_options})
        with tempfile.TemporaryDirectory(prefix="introspect-page-") as folder:
            root = Path(folder)
            manifest = write_checkpoint_page(
                root, report.subject, report.specs, report.results, parent_index="../index.html", release=True
            )
            files = {str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()}
    except IntrospectError as error:
        return error
    lines = [f"introspect: warning: {warning}" for warning in report.warnings]
    lines += [f"introspect: {checkpoint}: {r.name} failed: {r.reason}" for r in report.results if r.status == "failed"]
    return {"files": files, "manifest": manifest, "exit_code": report.exit_code, "lines": lines}
