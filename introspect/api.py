"""The Python API: analyze a model or a checkpoint in one call."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from introspect.artifacts import AnalyzerResult, Artifact
from introspect.budget import DEFAULT_MAX_PROBE
from introspect.errors import PluginError
from introspect.options import resolve_options
from introspect.registry import Registry
from introspect.report import write_gallery
from introspect.report.outdir import claim_output_dir
from introspect.runner import ProgressCallback, run_analyzers, within_limit
from introspect.spec import AnalyzerSpec
from introspect.subject import Subject, Task

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclasses.dataclass(frozen=True)
class AnalysisReport:
    """What :func:`analyze` produced.

    Attributes:
        subject: what was analyzed.
        results: one result per selected analyzer, in order.
        specs: the selected analyzers, in the same order.
        index_path: the gallery's ``index.html``, or ``None`` when no gallery was written.
        plugin_problems: plugins that were left out, with the reason.
    """

    subject: Subject
    results: tuple[AnalyzerResult, ...]
    specs: tuple[AnalyzerSpec, ...] = ()
    index_path: Path | None = None
    plugin_problems: tuple[str, ...] = ()

    @property
    def warnings(self) -> list[str]:
        """Problems with the checkpoint that left part of the analysis undone (one sentence each)."""
        return list(self.subject.metadata.get("warnings") or [])

    @property
    def exit_code(self) -> int:
        """0 when every analyzer ran or was skipped for a stated reason; 1 when any failed or
        the checkpoint could only partly be analyzed (see :attr:`warnings`)."""
        failed = any(result.status == "failed" for result in self.results)
        return 1 if failed or self.warnings else 0

    def result(self, name: str) -> AnalyzerResult:
        """The result of the analyzer called ``name``."""
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(f"no analyzer named {name!r} ran in this analysis")

    def to_html(self, *, max_figures: int | None = None) -> str:
        """The analysis as one self-contained HTML fragment: header, statuses, figures, captions, tables.

        Figures are embedded as data URIs drawn in memory; nothing is written to disk. At most
        ``max_figures`` figures are embedded (default :data:`~introspect.report.notebook.MAX_FIGURES`),
        and the fragment says how many were left out.
        """
        from introspect.report import notebook

        return notebook.notebook_html(
            self.subject,
            self.specs,
            self.results,
            gallery_path=self.index_path,
            plugin_problems=self.plugin_problems,
            max_figures=notebook.MAX_FIGURES if max_figures is None else max_figures,
        )

    def _repr_html_(self) -> str:
        """What Jupyter shows for a report: :meth:`to_html`."""
        return self.to_html()

    def __repr__(self) -> str:
        # Short, because Jupyter computes the text form too, and the subject holds tensors.
        counts = [result.status for result in self.results]
        statuses = ", ".join(f"{counts.count(status)} {status}" for status in ("ok", "skipped", "failed"))
        return f"<AnalysisReport of {len(self.results)} analyzers: {statuses}>"


def list_analyzers(*, load_plugins: bool | None = None) -> list[AnalyzerSpec]:
    """Every registered analyzer: the built-ins, then plugins (unless disabled)."""
    return list(Registry.default(load_plugins=load_plugins))


def analyze(
    target: str | os.PathLike[str] | nn.Module | Subject,
    inputs: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    *,
    analyzers: Sequence[str] | str = "all",
    exclude: Iterable[str] = (),
    out_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
    task: Task | None = None,
    registry: Registry | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    progress: ProgressCallback | None = None,
    timeout: float | None = None,
    data: Any = None,
    data_options: Mapping[str, Any] | None = None,
    input_files: Sequence[str | os.PathLike[str]] = (),
    **load_options: Any,
) -> AnalysisReport:
    """Run analyzers on a checkpoint path, a module with inputs, or a ready :class:`Subject`.

    Args:
        target: a checkpoint file, an ``nn.Module`` (with ``inputs`` and optional ``labels``), or a Subject.
        analyzers: ``"all"`` or analyzer names; ``exclude``: names to leave out.
        out_dir: write a gallery here (``force`` replaces an earlier introspect gallery); ``None`` writes
            nothing to disk and only returns results (a notebook shows them: :meth:`AnalysisReport.to_html`).
        task: describes the inputs when ``target`` is a module (guessed otherwise); ``registry``: the
            analyzers to choose from (default: built-ins and plugins); ``options``: per-analyzer keyword
            arguments, by analyzer name; ``progress``: called as ``progress(done, total, result)``.
        timeout: seconds each phase may take (loading, each analyzer, writing); an analyzer past it fails,
            loading or writing past it raises :class:`~introspect.runner.PhaseTimeout` (no gallery is left).
        data: for the dataset analyzers: a ``--data`` source (dataset name, image folder, ``.npy``/``.pt``),
            a torch Dataset or DataLoader, batches of ``(inputs, labels)``, or a ``DatasetPlan``.
        data_options: ``data_dir``, ``labels``, ``limit``, ``batch_size``, ``workers``, ``executor``,
            ``resume``, ``record_dir`` (see :func:`~introspect.dataset.plan.plan_for`); with ``out_dir`` the
            pass is recorded beside the gallery unless ``record_dir`` says where, without either ``resume``
            is refused.
        input_files: images, folders, ``.npy``/``.pt`` or texts (``.txt``) as the probe; ``**load_options``:
            fields of :class:`~introspect.loading.LoadOptions` for checkpoint paths.
    """
    # The folder is checked and locked before any work, until the gallery is in place.
    with claim_output_dir(out_dir, force=force) if out_dir is not None else contextlib.nullcontext():
        registry = registry or Registry.default(load_plugins=load_options.pop("load_plugins", None))
        specs = _selected(registry, analyzers, exclude)
        options = resolve_options(specs, options)
        given = (inputs, labels, task, input_files)
        subject = _prepared(target, given, load_options, timeout, data, data_options, out_dir)
        results = tuple(run_analyzers(subject, specs, options=options, progress=progress, timeout=timeout))
        index_path = None if out_dir is None else _written(subject, specs, results, out_dir, force, timeout)
    return AnalysisReport(subject, results, tuple(specs), index_path, tuple(registry.problems))


def _prepared(
    target: Any,
    given: tuple[Any, Any, Task | None, Sequence[str | os.PathLike[str]]],
    load_options: dict[str, Any],
    timeout: float | None,
    data: Any,
    data_options: Mapping[str, Any] | None,
    out_dir: str | os.PathLike[str] | None,
) -> Subject:
    """The subject to analyze: loaded within ``timeout``, with the given input files and dataset attached."""
    inputs, labels, task, input_files = given
    load = functools.partial(_subject_for, target, inputs, labels, task, load_options)
    subject = within_limit(load, timeout, f"loading {_shown(target)}", f"{_shown(target)}: did not finish loading")
    if input_files:
        from introspect.inputs import with_inputs

        subject = with_inputs(subject, input_files, int(load_options.get("max_probe") or DEFAULT_MAX_PROBE))
    if data is not None:
        subject = with_data(subject, data, _with_record_dir(data_options or {}, out_dir))
    return subject


def _written(
    subject: Subject,
    specs: Sequence[AnalyzerSpec],
    results: tuple[AnalyzerResult, ...],
    out_dir: str | os.PathLike[str],
    force: bool,
    timeout: float | None,
) -> Path:
    """The gallery written within ``timeout``; its index page."""
    write = functools.partial(write_gallery, subject, specs, results, out_dir, force=force)
    failure = f"{out_dir}: the gallery was not written"
    return within_limit(write, timeout, f"writing the gallery {out_dir}", failure, gallery=out_dir)


@dataclasses.dataclass(frozen=True)
class AnalyzerView:
    """One analyzer's outcome, as :func:`show` returns it: displayed inline by Jupyter.

    Attributes:
        subject: what was analyzed.
        spec: the analyzer.
        result: its result: status, reason, artifacts with their figures and numbers.
    """

    subject: Subject
    spec: AnalyzerSpec
    result: AnalyzerResult

    @property
    def artifacts(self) -> tuple[Artifact, ...]:
        """The analyzer's figures, animations and tables, each with the numbers behind it (``data``, ``summary``)."""
        return self.result.artifacts

    @property
    def status(self) -> str:
        """``"ok"``, ``"skipped"`` or ``"failed"``; :attr:`reason` says why when not ok."""
        return self.result.status

    @property
    def reason(self) -> str:
        """Why the analyzer was skipped or failed (empty when it ran)."""
        return self.result.reason

    def artifact(self, name: str) -> Artifact:
        """The artifact called ``name`` (for example ``"grad-cam"``)."""
        for artifact in self.result.artifacts:
            if artifact.name == name:
                return artifact
        names = ", ".join(artifact.name for artifact in self.result.artifacts) or "none"
        raise KeyError(f"{self.spec.name} made no artifact named {name!r} (it made: {names})")

    def to_html(self) -> str:
        """The result as one self-contained HTML fragment; nothing is written to disk."""
        from introspect.report.notebook import notebook_html

        return notebook_html(self.subject, (self.spec,), (self.result,))

    def _repr_html_(self) -> str:
        """What Jupyter shows: :meth:`to_html`."""
        return self.to_html()

    def __repr__(self) -> str:
        return f"<AnalyzerView {self.spec.name}: {self.status}, {len(self.artifacts)} artifacts>"


def show(
    target: str | os.PathLike[str] | nn.Module | Subject,
    inputs: torch.Tensor | str | None = None,
    analyzer: str | None = None,
    *,
    labels: torch.Tensor | None = None,
    task: Task | None = None,
    options: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
    data: Any = None,
    data_options: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    load_options: Mapping[str, Any] | None = None,
    **analyzer_options: Any,
) -> AnalyzerView:
    """Run one analyzer and return its outcome, which a notebook displays inline.

    ``show(model, inputs, "grad_cam", layer="layer4")`` runs exactly what
    ``analyze(model, inputs, analyzers=["grad_cam"], options={"grad_cam": {"layer": "layer4"}})``
    runs, with the options checked the same way, and writes nothing. A checkpoint that carries its
    own probe may leave the inputs out: ``show("lenet5.pt", "grad_cam")``.

    Args:
        target: a checkpoint file, an ``nn.Module`` (with ``inputs``), or a Subject.
        inputs: probe inputs when ``target`` is a module; or the analyzer's name when there are none.
        analyzer: the analyzer's name, as ``introspect list`` prints it.
        labels: optional labels for ``inputs``.
        task: describes the inputs when ``target`` is a module (guessed otherwise).
        options: the analyzer's options as a dict, for an option whose name is one of show's own
            parameters; merged with ``analyzer_options``.
        registry, data, data_options, timeout: as for :func:`analyze`.
        load_options: fields of :class:`~introspect.loading.LoadOptions` for checkpoint paths, and
            ``load_plugins``.
        **analyzer_options: the analyzer's keyword options (``layer="layer4"``).

    Raises:
        PluginError: no analyzer was named, or none is registered under that name.
        OptionError: an option the analyzer does not take, or a value of the wrong type.
    """
    if analyzer is None and isinstance(inputs, str):
        inputs, analyzer = None, inputs  # show("model.pt", "grad_cam"): the checkpoint brings its probe
    if not isinstance(analyzer, str) or not analyzer:
        raise PluginError("show needs the name of one analyzer, for example show(model, inputs, 'grad_cam')")
    chosen = {**(options or {}), **analyzer_options}
    settings = {"task": task, "registry": registry, "data": data, "data_options": data_options, "timeout": timeout}
    chosen_options = {analyzer: chosen} if chosen else None
    report = analyze(
        target, inputs, labels, analyzers=[analyzer], options=chosen_options, **settings, **(load_options or {})
    )
    return AnalyzerView(subject=report.subject, spec=report.specs[0], result=report.results[0])


def _selected(registry: Registry, analyzers: Sequence[str] | str, exclude: Iterable[str]) -> list[AnalyzerSpec]:
    if isinstance(analyzers, str):
        if analyzers != "all":
            return registry.select([analyzers], exclude=exclude)
        return registry.select(select_all=True, exclude=exclude)
    if not analyzers:
        raise PluginError("no analyzers were selected: pass --all or -a NAME")
    return registry.select(analyzers, exclude=exclude)


def _subject_for(target: Any, inputs: Any, labels: Any, task: Task | None, load_options: dict[str, Any]) -> Subject:
    if isinstance(target, Subject):
        return target
    if isinstance(target, (str, os.PathLike)):
        from introspect.loading import load_checkpoint

        return load_checkpoint(target, **load_options)
    return Subject.from_model(target, inputs, labels, task=task, seed=int(load_options.get("seed", 0)))


def with_data(subject: Subject, data: Any, data_options: Mapping[str, Any]) -> Subject:
    """``subject`` with the dataset its dataset analyzers stream through the model."""
    from introspect.dataset.plan import plan_for

    return dataclasses.replace(subject, data=plan_for(data, subject.task.image_shape, **data_options))


def _with_record_dir(data_options: Mapping[str, Any], out_dir: str | os.PathLike[str] | None) -> dict[str, Any]:
    """A run that writes a gallery records its dataset pass beside it (so that ``resume`` can pick it up)."""
    from introspect.dataset.records import default_record_dir

    chosen = dict(data_options)
    if out_dir is not None and chosen.get("record_dir") is None:
        chosen["record_dir"] = default_record_dir(out_dir)
    if chosen.get("resume") and chosen.get("record_dir") is None:
        from introspect.dataset.base import DataError

        # Without a gallery nothing is written, so there is no record to resume from.
        raise DataError("resume needs out_dir or data_options['record_dir'], where the dataset pass is recorded")
    return chosen


def _shown(target: Any) -> str:
    """A checkpoint path as given; a module or subject by its kind (its repr may be huge)."""
    return str(target) if isinstance(target, (str, os.PathLike)) else f"the {type(target).__name__[:60]}"
