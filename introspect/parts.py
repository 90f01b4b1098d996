"""What loading takes (:class:`LoadOptions`) and what a reader yields (:class:`Parts`)."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from introspect.budget import DEFAULT_MAX_PROBE, Budget
from introspect.errors import IntrospectError
from introspect.subject import Task

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclasses.dataclass(frozen=True)
class LoadOptions:
    """How to load: what the user allowed and supplied besides the file.

    Attributes:
        trust_code: allow what can run code from the file: unpickling arbitrary objects, running
            TorchScript, and running exported programs whose graphs use ops outside the
            allow-list of pure tensor ops.
        trust_pickle: the former name of ``trust_code``; either one unlocks the same.
        arch: ``MODULE:CALLABLE`` building the model from the user's own code.
        arch_kwargs: keyword arguments for ``arch``.
        probe: a file (tensor, or dict with ``inputs``/``labels``) or a tensor of inputs.
        input_shape: the shape of one input, for generating a random probe.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        seed: seed for generated probes and for analyzers.
        max_memory: bytes the file's tensors, model and probe may take (default: a share of
            the memory available); ``None`` takes the default.
        max_probe: probe inputs kept; a larger probe is cut to this many and the page says so.
        task_kind: ``"classification"`` or ``"regression"`` when the file does not say (``--task``);
            ``None`` infers it from the probe's labels (integers: classification, floats: regression).
    """

    trust_code: bool = False
    trust_pickle: bool = False
    arch: str | None = None
    arch_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    probe: str | os.PathLike[str] | torch.Tensor | None = None
    input_shape: Sequence[int] | None = None
    device: str = "auto"
    seed: int = 0
    max_memory: int | None = None
    max_probe: int = DEFAULT_MAX_PROBE
    task_kind: str | None = None

    @property
    def trusted(self) -> bool:
        """Whether the user allowed code from the file to run (``trust_code`` or ``trust_pickle``)."""
        return self.trust_code or self.trust_pickle

    @functools.cached_property
    def budget(self) -> Budget:
        """The limits the file must fit (the default memory budget is read once per load)."""
        if self.max_probe < 1:
            raise IntrospectError(f"--max-probe must be at least 1, not {self.max_probe}")
        if self.max_memory is None:
            return Budget(max_probe=self.max_probe)
        return Budget(max_memory=self.max_memory, max_probe=self.max_probe)


@dataclasses.dataclass
class Parts:
    """What a checkpoint yielded, before it becomes a Subject."""

    state_dict: dict[str, torch.Tensor]
    model: nn.Module | None = None
    task: Task = Task()
    probe_inputs: torch.Tensor | None = None
    probe_labels: torch.Tensor | None = None
    differentiable: bool = True
    model_note: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    warnings: list[str] = dataclasses.field(default_factory=list)
