"""Analyzer options: ``--option ANALYZER.KEY=VALUE`` parsed, checked and typed.

An analyzer's options are its keyword-only parameters (:meth:`AnalyzerSpec.options`). A value
from the command line is text; it is converted by the parameter's annotation (or, without one,
by the type of its default), so ``grad_cam.layer=4`` stays the string ``"4"`` while
``input_saliency.n_steps=64`` becomes the int 64. The same check runs for options passed to the
Python API, so a misspelt key is one clear sentence before any analysis, not a failed analyzer.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from introspect.errors import IntrospectError
from introspect.spec import AnalyzerSpec

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_NONE = frozenset({"none", "null"})


class OptionError(IntrospectError):
    """An analyzer option names no selected analyzer, no option of it, or has a value of the wrong type."""


def parse_assignments(texts: Iterable[str]) -> dict[str, dict[str, str]]:
    """``["grad_cam.layer=4", ...]`` as ``{"grad_cam": {"layer": "4"}}``; the values stay text."""
    options: dict[str, dict[str, str]] = {}
    for text in texts:
        target, equals, value = text.partition("=")
        analyzer, dot, key = target.strip().partition(".")
        if not equals or not dot or not analyzer or not key:
            raise OptionError(f"--option {text!r} must look like ANALYZER.KEY=VALUE, for example grad_cam.layer=layer4")
        options.setdefault(analyzer, {})[key.strip()] = value.strip()
    return options


def resolve_options(
    specs: Sequence[AnalyzerSpec], options: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    """``options`` checked against the selected analyzers, with text values converted to their types.

    Raises:
        OptionError: an analyzer that is not selected, a key it does not take, or a value that
            does not convert.
    """
    by_name = {spec.name: spec for spec in specs}
    resolved: dict[str, dict[str, Any]] = {}
    for name, values in (options or {}).items():
        spec = by_name.get(name)
        if spec is None:
            raise OptionError(f"options were given for {name}, which is not among the selected analyzers")
        resolved[name] = {key: _typed_value(spec, key, value) for key, value in values.items()}
    return resolved


def option_types(spec: AnalyzerSpec) -> dict[str, str]:
    """Each option of ``spec`` with its type as written in the code, for ``introspect list NAME``."""
    hints = _hints(spec)
    return {key: _type_name(hints.get(key), default) for key, default in spec.options().items()}


def _typed_value(spec: AnalyzerSpec, key: str, value: Any) -> Any:
    defaults = spec.options()
    if key not in defaults:
        known = ", ".join(sorted(defaults)) or "none"
        raise OptionError(f"{spec.name} has no option {key!r} (its options: {known})")
    if not isinstance(value, str):
        return value  # from the Python API, already typed by the caller
    annotation = _hints(spec).get(key)
    try:
        return _convert(value, annotation, defaults[key])
    except ValueError as error:
        raise OptionError(f"{spec.name}.{key}={value!r}: {error}") from None


def _hints(spec: AnalyzerSpec) -> dict[str, Any]:
    """The options' annotations resolved one by one.

    ``typing.get_type_hints`` would resolve every annotation at once and fail on names imported
    only for type checking (``Subject``), which analyzers use for their first parameter.
    """
    annotations = inspect.get_annotations(spec.func)
    namespace = dict(getattr(spec.func, "__globals__", {}))
    hints = {}
    for key in spec.options():
        annotation = annotations.get(key)
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, namespace)  # the analyzer's own source text, never a file's
            except Exception:  # an annotation that does not resolve: fall back to the default's type
                continue
        if annotation is not None:
            hints[key] = annotation
    return hints


def _convert(text: str, annotation: Any, default: Any) -> Any:
    """``text`` as a value of ``annotation`` (or of ``default``'s type where there is no annotation)."""
    if annotation is None:
        annotation = type(default) if default is not None and default is not inspect.Parameter.empty else str
    members = _union_members(annotation)
    if type(None) in members:
        if text.lower() in _NONE:
            return None
        members = [member for member in members if member is not type(None)]
    errors = []
    for member in members:
        try:
            return _convert_one(text, member)
        except ValueError as error:
            errors.append(str(error))
    raise ValueError(" or ".join(errors) or f"cannot be read as {annotation}")


def _union_members(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return list(typing.get_args(annotation))
    return [annotation]


def _convert_one(text: str, kind: Any) -> Any:
    origin = typing.get_origin(kind)
    if origin in (tuple, list):
        arguments = [argument for argument in typing.get_args(kind) if argument is not Ellipsis]
        item = arguments[0] if arguments else str
        values = [_convert_one(part.strip(), item) for part in text.split(",") if part.strip()]
        return tuple(values) if origin is tuple else values
    if kind is bool:
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise ValueError("expected true or false")
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"expected {'an integer' if kind is int else 'a number'}") from None
    if kind in (str, Any) or kind is inspect.Parameter.empty:
        return text
    raise ValueError(f"options of type {_type_name(kind, None)} cannot be set from text")


def _type_name(annotation: Any, default: Any) -> str:
    if annotation is None:
        return type(default).__name__ if default is not None else "str"
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")
