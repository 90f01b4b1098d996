"""The ``@analyzer`` decorator and the spec it attaches; no torch needed to read either."""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable
from typing import Any

from introspect.needs import Needs

SPEC_ATTRIBUTE = "__introspect_analyzer__"
_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclasses.dataclass(frozen=True)
class AnalyzerSpec:
    """An analyzer and what is known about it without running it.

    Attributes:
        name: snake_case name, the same in the registry, the CLI and the gallery.
        func: ``func(subject, /, **options) -> list[Artifact]``.
        needs: what the subject must offer for the analyzer to run.
        summary: the first line of the docstring, printed by ``introspect list``.
        description: the rest of the docstring: how to read the figures.
        package: the distribution that provides the analyzer ("introspect" for built-ins).
        reducer: for a dataset analyzer (``Needs.DATASET``), ``reducer(subject, **options)``
            makes the bounded state it keeps over the dataset pass (see
            :mod:`introspect.dataset.passes`); the analyzer is then called as
            ``func(subject, reduced, /, **options)`` once every batch has been fed. Only the
            options the factory's signature names are passed to it.
    """

    name: str
    func: Callable[..., Any]
    needs: Needs
    summary: str
    description: str = ""
    package: str = "introspect"
    reducer: Callable[..., Any] | None = None

    def options(self) -> dict[str, Any]:
        """Keyword-only parameters of the analyzer with their defaults."""
        signature = inspect.signature(self.func)
        return {
            name: parameter.default
            for name, parameter in signature.parameters.items()
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY
        }


def analyzer(
    func: Callable[..., Any] | None = None,
    *,
    needs: Needs = Needs.WEIGHTS,
    name: str | None = None,
    reducer: Callable[..., Any] | None = None,
) -> Any:
    """Mark a function as an analyzer with declared needs.

    The function itself is returned unchanged apart from an attached :class:`AnalyzerSpec`; it
    is not registered anywhere, so tests and plugins decide which registry sees it. Use as
    ``@analyzer(needs=Needs.WEIGHTS)``, or for a dataset analyzer
    ``@analyzer(needs=Needs.DATASET, reducer=make_reducer)``.
    """

    def mark(target: Callable[..., Any]) -> Callable[..., Any]:
        spec_name = name or target.__name__
        if not _NAME_PATTERN.match(spec_name):
            raise ValueError(f"analyzer name {spec_name!r} must be snake_case")
        summary, _, description = inspect.cleandoc(target.__doc__ or "").partition("\n")
        if not summary:
            raise ValueError(f"analyzer {spec_name!r} needs a docstring: its first line is the summary")
        if (reducer is None) != (Needs.DATASET not in needs):
            raise ValueError(f"analyzer {spec_name!r}: a reducer goes with Needs.DATASET, and Needs.DATASET with one")
        spec = AnalyzerSpec(
            name=spec_name,
            func=target,
            needs=needs,
            summary=summary.strip(),
            description=" ".join(description.split()),
            reducer=reducer,
        )
        setattr(target, SPEC_ATTRIBUTE, spec)
        return target

    return mark(func) if func is not None else mark


def spec_of(target: Any) -> AnalyzerSpec | None:
    """The spec attached to ``target`` by :func:`analyzer`, or ``None``."""
    spec = getattr(target, SPEC_ATTRIBUTE, None)
    return spec if isinstance(spec, AnalyzerSpec) else None
