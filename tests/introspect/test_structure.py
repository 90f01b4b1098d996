"""The package's shape: no import cycles, and the report layer never reaches up into the API."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import introspect
from introspect import analyzers

PACKAGE_DIR = Path(introspect.__file__).parent
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by the name of its ``__init__``)."""
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_nodes(tree: ast.AST, *, type_checking: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at module level and inside functions and classes alike.

    Imports under ``if TYPE_CHECKING:`` never run, so they cannot take part in an import cycle;
    they are left out unless ``type_checking`` is set.
    """
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node) and not type_checking:
            yield from import_nodes(ast.Module(body=node.orelse, type_ignores=[]), type_checking=type_checking)
        else:
            yield from import_nodes(node, type_checking=type_checking)


def imported_modules(name: str, path: Path, known: set[str], *, type_checking: bool = False) -> set[str]:
    """The package's modules that ``name`` imports.

    ``from a import b`` counts as importing ``a.b`` when that is a module, else ``a``. Parent
    packages are not counted: Python imports them before any of their modules, whoever asks.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in import_nodes(ast.parse(path.read_text(encoding="utf-8")), type_checking=type_checking):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        submodules = {f"{base}.{alias.name}" for alias in node.names} & known
        found.update(submodules or {base})
    return (found & known) - {name}


def import_graph(*, type_checking: bool = False) -> dict[str, set[str]]:
    """Module → the package's modules it imports."""
    files = module_files()
    known = set(files)
    return {name: imported_modules(name, path, known, type_checking=type_checking) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or ``None`` when the graph is acyclic."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        stack.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)) is not None:
            return cycle
    return None


def test_the_import_graph_is_read_from_the_source() -> None:
    graph = import_graph()
    assert "introspect.report.writer" in graph["introspect.report"]
    assert "introspect.report.files" in graph["introspect.report.writer"]  # `from introspect.report import files`
    assert "introspect.report.outdir" in graph["introspect.compare"]  # imported inside compare_checkpoints
    assert "introspect.compare" not in graph["introspect.report.comparison"]  # only under TYPE_CHECKING
    assert "introspect.compare" in import_graph(type_checking=True)["introspect.report.comparison"]


def test_find_cycle_names_the_modules_of_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_report_package_never_imports_the_api_or_the_cli() -> None:
    graph = import_graph(type_checking=True)
    for module, targets in graph.items():
        if module == "introspect.report" or module.startswith("introspect.report."):
            assert not targets & {"introspect.api", "introspect.cli"}, module


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def size_offences(name: str, source: str) -> list[str]:
    """What in ``source`` (module ``name``) breaks the size limits: the module's length, each long function's.

    A function is measured from its ``def`` line to its last line, docstring included and
    decorators left out.
    """
    offences = []
    num_lines = len(source.splitlines())
    if num_lines > MAX_MODULE_LINES:
        offences.append(f"{name}: {num_lines} lines")
    for function in _functions(ast.parse(source)):
        length = (function.end_lineno or function.lineno) - function.lineno + 1
        if length > MAX_FUNCTION_LINES:
            offences.append(f"{name}.{function.name}: {length} lines")
    return offences


def test_size_offences_name_a_long_module_and_each_long_function() -> None:
    body = "".join(f"    x{index} = {index}\n" for index in range(MAX_FUNCTION_LINES - 1))
    short = "def short():\n" + body  # the def line and 49 more: exactly the limit
    long = "@decorated\ndef long():\n" + body + "    return 0\n"  # 51 lines from the def
    source = short + long + "\n" * (MAX_MODULE_LINES - 2 * MAX_FUNCTION_LINES)
    assert len(source.splitlines()) == MAX_MODULE_LINES + 2
    assert size_offences("m", source) == ["m: 402 lines", "m.long: 51 lines"]
    assert size_offences("m", short) == []


def test_every_module_stays_small() -> None:
    offences = [
        offence
        for name, path in module_files().items()
        for offence in size_offences(name, path.read_text(encoding="utf-8"))
    ]
    limits = f"modules over {MAX_MODULE_LINES} lines or functions over {MAX_FUNCTION_LINES}"
    assert not offences, f"{len(offences)} {limits}:\n" + "\n".join(offences)


def test_analyzer_modules_import_only_the_private_helpers_not_each_other() -> None:
    # Shared helpers live in analyzers/_shared.py (and the other _ modules), so a module can be
    # moved or removed without breaking a sibling.
    graph = import_graph(type_checking=True)
    prefix = "introspect.analyzers."
    moved = set(analyzers.MOVED)
    for module, targets in graph.items():
        short = module.removeprefix(prefix)
        if not module.startswith(prefix) or short.startswith("_") or short in moved:
            continue
        siblings = {target.removeprefix(prefix) for target in targets if target.startswith(prefix)}
        assert all(name.startswith("_") for name in siblings), (module, siblings)


def test_analyzer_modules_are_named_by_mechanism() -> None:
    mechanisms = ("weight", "activation", "attribution", "predictions", "training", "animations", "dataset")
    mechanisms += ("representation",)  # layers compared with each other (CKA)
    for name in module_files():
        short = name.removeprefix("introspect.analyzers.")
        if name.startswith("introspect.analyzers.") and not short.startswith("_") and short not in analyzers.MOVED:
            assert short.startswith(mechanisms), name


def test_old_analyzer_module_paths_still_import_with_a_deprecation_warning() -> None:
    import importlib
    import sys

    import pytest

    for old, new in analyzers.MOVED.items():
        sys.modules.pop(f"introspect.analyzers.{old}", None)
        with pytest.warns(DeprecationWarning, match=f"introspect.analyzers.{new}"):
            shim = importlib.import_module(f"introspect.analyzers.{old}")
        moved_to = importlib.import_module(f"introspect.analyzers.{new}")
        public = [name for name, value in vars(moved_to).items() if callable(value) and not name.startswith("_")]
        assert public and all(getattr(shim, name) is getattr(moved_to, name) for name in public), old
