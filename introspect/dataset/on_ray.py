"""The ``ray`` executor: the same reducers as the local pass, fed on Ray Data actors and merged here.

``--executor ray`` starts a local Ray cluster for the run; ``--executor ray:ADDRESS`` joins an
existing one (introspect must be installed on its nodes). The dataset's indices go through
``map_batches`` to a pool of :class:`ShardReducer` actors. Each actor gets the model once, reads
its inputs by index, applies the checkpoint's preprocessing and feeds a fresh copy of every
reducer with the batch; the batch's reducer states come back to the driver, which merges them
into the run's reducers as they arrive. Because every reducer is mergeable and independent of
how the data is split, the numbers equal the local executor's up to float summation order.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pickle
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from introspect._lazy import lazy_import
from introspect.dataset.passes import Progress, reduce_dataset
from introspect.dataset.preprocess import Preprocessing
from introspect.dataset.sources import Batch, DataError, DataSource, labels_or_none
from introspect.errors import IntrospectError

if TYPE_CHECKING:
    import torch

    from introspect.dataset.plan import DatasetPlan
    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

INSTALL_HINT = "pip install 'introspect[ray]'"


def check_ray_installed() -> None:
    """One sentence, before any work, when ``--executor ray`` is asked for without Ray."""
    if importlib.util.find_spec("ray") is None:
        raise DataError(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}")


def check_ray_plan(plan: DatasetPlan) -> None:
    """Refuse, before any work, a Ray pass that cannot run: Ray missing, or data that cannot be indexed."""
    check_ray_installed()
    if not plan.source.is_map_style:
        raise DataError(
            "--executor ray needs data it can index (a dataset name, an image folder, a .npy or .pt file); "
            "a Python iterable runs on the local executor"
        )


def reduce_on_ray(
    subject: Subject, reducers: Mapping[str, Any], address: str | None, progress: Progress
) -> tuple[int, float]:
    """Feed ``reducers`` with the subject's data on Ray; returns the inputs seen and the seconds to the first batch
    (starting or joining the cluster and its actors, which the caption keeps apart from the throughput).

    Args:
        reducers: the run's reducers by analyzer name, still empty; the shards' states are merged into them.
        address: an existing cluster's address, or ``None`` to start a local cluster for this pass.
    """
    plan = subject.data
    check_ray_plan(plan)
    import ray

    start = time.perf_counter()
    startup = 0.0
    with ray_cluster(address), quiet_ray_data():
        count = plan.size or 0
        gpus = int(ray.cluster_resources().get("GPU", 0))
        cpus = int(ray.cluster_resources().get("CPU", 1))
        shards = ray.data.range(count).map_batches(
            ShardReducer,
            fn_constructor_args=(subject.model, plan.source, subject.task, pickle.dumps(dict(reducers))),
            batch_size=plan.batch_size,
            batch_format="numpy",
            num_cpus=1,
            num_gpus=1 if gpus else 0,
            # One actor per GPU, else one per CPU but one, which Ray Data keeps for reading the indices.
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, gpus or cpus - 1)),
        )
        seen = 0
        for row in shards.iter_rows():
            startup = startup or time.perf_counter() - start
            states = pickle.loads(row["state"])  # noqa: S301 - written by this run's actors, not read from a file
            if isinstance(states, IntrospectError):
                raise states
            for name, shard in states.items():
                reducers[name].merge(shard)
            seen += int(row["seen"])
            progress(seen)
    return seen, startup


class ShardReducer:
    """A Ray Data actor: the model loaded once, and each batch of indices reduced into fresh reducer states."""

    def __init__(self, model: Any, source: DataSource, task: Any, templates: bytes) -> None:
        torch.set_num_threads(1)  # one CPU per actor: several actors share a machine without oversubscribing it
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = model.to(self.device)
        self.source = source
        self.prepare = Preprocessing(task, source)
        self.templates = templates

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Reduce the inputs at ``batch["id"]``; returns their reducer states, pickled, and how many were seen."""
        reducers = self.fresh_reducers()
        try:
            seen = reduce_dataset(self.model, [self.read(batch["id"])], list(reducers.values()), device=self.device)
        except IntrospectError as error:
            # Ray would hand the driver only this error's text inside a traceback; the error itself
            # travels back like a state, and the driver raises it, so the user reads its one sentence.
            reducers, seen = error, 0
        state = np.empty(1, dtype=object)
        state[0] = pickle.dumps(reducers)  # states travel as bytes: Arrow cannot hold arbitrary objects
        return {"state": state, "seen": np.array([seen])}

    def read(self, indices: np.ndarray) -> Batch:
        """The inputs at ``indices``, collated and preprocessed as the local executor does."""
        inputs, labels = torch.utils.data.default_collate([self.source.dataset[int(index)] for index in indices])
        batch = Batch(inputs=inputs, labels=labels_or_none(torch.as_tensor(labels)), indices=torch.as_tensor(indices))
        return self.prepare(batch)

    def fresh_reducers(self) -> dict[str, Any]:
        """Empty reducers like the driver's; those that run the model themselves get this actor's copy."""
        reducers = pickle.loads(self.templates)  # noqa: S301 - the driver's own reducers, not a file
        for reducer in reducers.values():
            if hasattr(reducer, "bind"):
                reducer.bind(self.model, self.device)
        return reducers


@contextlib.contextmanager
def ray_cluster(address: str | None) -> Iterator[None]:
    """Ray, connected: the cluster already joined in this process, the one at ``address``, or a local one.

    A cluster this function started or joined is left again afterwards; one the caller had joined is kept.
    """
    import ray

    if ray.is_initialized():
        yield
        return
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            num_cpus=None if address else os.cpu_count(),
        )
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        raise DataError(f"cannot connect to {where}: {error}") from None
    try:
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def quiet_ray_data() -> Iterator[None]:
    """Ray Data without its own progress bars and execution logs: introspect's bar is the one shown."""
    import ray

    context = ray.data.DataContext.get_current()
    bars, logger = context.enable_progress_bars, logging.getLogger("ray.data")
    level = logger.level
    context.enable_progress_bars = False
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        context.enable_progress_bars = bars
        logger.setLevel(level)
