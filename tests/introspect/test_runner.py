"""run_analyzers: needs checked, failures isolated, the model left as it was."""

from __future__ import annotations

import time

import torch

from introspect import Artifact, Needs, SkipAnalyzer, analyzer
from introspect.plotting import new_figure
from introspect.runner import run_analyzers
from introspect.spec import spec_of
from introspect.testing import dense_image_subject, weights_only_subject


@analyzer(needs=Needs.FORWARD)
def exploding(subject, /):
    """Always raises."""
    raise ValueError("boom")


@analyzer(needs=Needs.FORWARD | Needs.GRADIENTS)
def grad_leaker(subject, /):
    """Leaves .grad on parameters, trains the model and freezes a layer, then returns one figure."""
    subject.model.train()
    next(subject.model.parameters()).requires_grad_(False)
    subject.model(subject.probe_inputs).sum().backward()
    return [Artifact(name="x", caption="x", figure=new_figure())]


@analyzer(needs=Needs.WEIGHTS)
def self_skipping(subject, /):
    """Skips itself."""
    raise SkipAnalyzer("no conv layers")


@analyzer(needs=Needs.WEIGHTS)
def wrong_type(subject, /):
    """Returns a string."""
    return "not artifacts"


def test_failure_is_recorded_and_the_rest_still_run() -> None:
    subject = dense_image_subject()
    specs = [spec_of(f) for f in (exploding, self_skipping, wrong_type, grad_leaker)]
    progress = []
    results = run_analyzers(
        subject, specs, progress=lambda done, total, result: progress.append((done, total, result.status))
    )
    assert [(r.name, r.status) for r in results] == [
        ("exploding", "failed"),
        ("self_skipping", "skipped"),
        ("wrong_type", "failed"),
        ("grad_leaker", "ok"),
    ]
    assert results[0].reason == "ValueError: boom" and "Traceback" in results[0].traceback
    assert results[1].reason == "no conv layers"
    assert "must return a list of Artifact" in results[2].reason
    assert progress == [(1, 4, "failed"), (2, 4, "skipped"), (3, 4, "failed"), (4, 4, "ok")]


def test_model_mode_gradients_and_flags_are_restored() -> None:
    subject = dense_image_subject()
    subject.model.eval()
    run_analyzers(subject, [spec_of(grad_leaker)])
    assert not subject.model.training
    assert all(p.grad is None and p.requires_grad for p in subject.model.parameters())


def test_unmet_needs_skip_with_the_subjects_reason() -> None:
    [result] = run_analyzers(weights_only_subject(), [spec_of(exploding)])
    assert result.status == "skipped"
    assert "weights only" in result.reason


@analyzer(needs=Needs.FORWARD)
def capturing(subject, /):
    """Captures every layer and reports the mean of the last one as a table."""
    from introspect.capture import capture_activations

    outputs = capture_activations(subject.model, subject.probe_inputs)
    return [Artifact(name="t", caption="t", table=[{"mean": float(list(outputs.values())[-1].mean())}])]


def resident_megabytes() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096 / 2**20


def test_two_hundred_runs_leave_no_hooks_and_no_growth() -> None:
    subject = dense_image_subject()
    spec = spec_of(capturing)
    for _ in range(20):  # warm-up: allocator pools and lazy imports settle first
        run_analyzers(subject, [spec])
    before = resident_megabytes()
    means = {run_analyzers(subject, [spec])[0].artifacts[0].table[0]["mean"] for _ in range(200)}
    assert len(means) == 1
    assert resident_megabytes() - before < 5
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in subject.model.modules())
    assert all(p.grad is None for p in subject.model.parameters())
    assert torch.is_grad_enabled()


@analyzer(needs=Needs.WEIGHTS)
def endless(subject, /):
    """Never returns on its own."""
    while True:
        time.sleep(0.01)


def test_analyzer_past_its_time_limit_is_stopped_and_recorded_as_failed() -> None:
    start = time.perf_counter()
    [result, after] = run_analyzers(weights_only_subject(), [spec_of(endless), spec_of(self_skipping)], timeout=0.3)
    assert result.status == "failed" and "time limit of 0.3 s" in result.reason
    assert 0.3 <= time.perf_counter() - start < 5
    assert after.status == "skipped"


class _WarningReducer:
    """Counts inputs; every batch takes a log of zero, as a reducer over a dead unit might."""

    layers: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.seen = 0

    def feed(self, batch, logits, outputs) -> None:  # noqa: ANN001
        import numpy as np

        np.log(np.zeros(1))  # RuntimeWarning: divide by zero
        self.seen += len(batch.indices)

    def merge(self, other: _WarningReducer) -> _WarningReducer:
        self.seen += other.seen
        return self


def test_warnings_of_the_dataset_pass_are_recorded_on_its_analyzers_not_printed(capfd) -> None:  # noqa: ANN001
    from introspect.testing import with_test_data

    @analyzer(needs=Needs.DATASET, reducer=lambda subject: _WarningReducer())
    def counting(subject, reduced, /):  # noqa: ANN001, ANN202
        """Says how many inputs the pass saw."""
        table = [{"inputs": reduced.state.seen}]
        return [Artifact(name="count", caption="inputs seen", table=table, summary={"seen": reduced.state.seen})]

    (result,) = run_analyzers(with_test_data(dense_image_subject(), size=40), [spec_of(counting)])
    assert result.status == "ok" and result.artifacts[0].summary["seen"] == 40
    assert result.warnings == ("RuntimeWarning: divide by zero encountered in log",)
    assert "RuntimeWarning" not in capfd.readouterr().err


def test_collections_during_a_run_skip_survivors_but_still_free_new_cyclic_garbage() -> None:
    import gc
    import weakref

    from introspect import runner

    class Node:
        pass

    def cycle() -> weakref.ref:
        node = Node()
        node.itself = node  # only the cyclic collector frees it
        return weakref.ref(node)

    assert gc.get_freeze_count() == 0
    with runner.survivors_frozen():
        frozen_at_start = gc.get_freeze_count()
        assert frozen_at_start > 1000  # modules, the model, the probe: not walked again
        garbage = cycle()
        runner.release_memory(growth_mb=runner.COLLECT_ABOVE_MB + 1)
        assert garbage() is None  # made during the run: collected
        assert gc.get_freeze_count() >= frozen_at_start  # the survivors joined the frozen ones
    assert gc.get_freeze_count() == 0  # all unfrozen when the run ends
    garbage = cycle()
    gc.collect()
    assert garbage() is None


def test_a_process_that_freezes_objects_itself_keeps_its_freeze() -> None:
    import gc

    from introspect import runner

    gc.freeze()
    try:
        before = gc.get_freeze_count()
        with runner.survivors_frozen():
            runner.release_memory(growth_mb=runner.COLLECT_ABOVE_MB + 1)
            assert gc.get_freeze_count() == before
        assert gc.get_freeze_count() == before  # not unfrozen behind the process's back
    finally:
        gc.unfreeze()
