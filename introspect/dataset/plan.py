"""What a dataset pass reads and how: the source, how much of it, in what batches, on which executor."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from introspect.dataset.sources import DataError, DataSource, from_iterable, open_source

EXECUTORS = ("local", "ray")


@dataclasses.dataclass(frozen=True)
class DatasetPlan:
    """The dataset the dataset analyzers stream through the model, and how.

    Attributes:
        source: the opened data.
        limit: the first ``limit`` inputs only (``None``: all of them).
        batch_size: inputs per forward pass.
        workers: DataLoader worker processes reading and decoding the data (local executor).
        executor: ``"local"`` (this process), ``"ray"`` (a local Ray cluster started for the run)
            or ``"ray:ADDRESS"`` (an existing cluster).
        record_dir: where the local executor keeps a record of the pass as it goes
            (:mod:`introspect.dataset.records`); ``None`` keeps none.
        resume: start from the record in ``record_dir`` when it is of the same run.
    """

    source: DataSource
    limit: int | None = None
    batch_size: int = 256
    workers: int = 0
    executor: str = "local"
    record_dir: Path | None = None
    resume: bool = False

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise DataError(f"--limit must be at least 1, not {self.limit}")
        if self.batch_size < 1:
            raise DataError(f"the batch size must be at least 1, not {self.batch_size}")
        if parse_executor(self.executor)[0] == "ray":
            from introspect.dataset.on_ray import check_ray_plan

            check_ray_plan(self)

    @property
    def size(self) -> int | None:
        """How many inputs the pass reads, when the source knows its length."""
        if not hasattr(self.source.dataset, "__len__"):
            return self.limit
        return len(self.source) if self.limit is None else min(self.limit, len(self.source))

    def describe(self) -> str:
        """``the test split of mnist`` for captions."""
        split = f"the {self.source.split} split of " if self.source.split else ""
        return f"{split}{self.source.name}"


def parse_executor(text: str) -> tuple[str, str | None]:
    """``"ray:10.0.0.1:6379"`` → ``("ray", "10.0.0.1:6379")``; ``"local"`` → ``("local", None)``."""
    kind, _, address = text.partition(":")
    if kind not in EXECUTORS or (kind == "local" and address):
        raise DataError(f"unknown executor {text!r}: use local, ray, or ray:ADDRESS")
    return kind, address or None


def plan_for(
    data: Any,
    image_shape: tuple[int, int, int] | None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    labels: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    batch_size: int = 256,
    workers: int = 0,
    executor: str = "local",
    record_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
) -> DatasetPlan:
    """A plan from what the user gave: a ``--data`` string or path, a DataSource, or any dataset or iterable.

    Args:
        image_shape: (C, H, W) of the model's images, which an image folder is resized to.
        data_dir, labels: see :func:`~introspect.dataset.sources.open_source`.
        record_dir, resume: see :class:`DatasetPlan`.
    """
    if isinstance(data, DatasetPlan):
        return data
    if isinstance(data, DataSource):
        source = data
    elif isinstance(data, (str, os.PathLike)):
        source = open_source(data, image_shape=image_shape, data_dir=data_dir, labels=labels)
    else:
        source = from_iterable(data)
    record = None if record_dir is None else Path(record_dir)
    return DatasetPlan(source, limit, batch_size, workers, executor, record_dir=record, resume=resume)
