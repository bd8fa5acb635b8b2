"""The layering of docs/architecture.md, checked against every import in the code.

The table in that page is the source: this test reads it, so the page and the code cannot
drift apart. Imports are read with `ast`, nothing is imported.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
SOURCE_ROOTS = (ROOT / "operator", ROOT / "runtime", ROOT / "tools")
PACKAGES = ("tenfold", "tenfold_runtime", "tenfold_tools")


@dataclass(frozen=True)
class Layer:
    """One row of the layers table."""

    name: str
    package: str
    may_import: frozenset[str]
    forbidden_third_party: frozenset[str]


@dataclass(frozen=True)
class Import:
    """One import statement's target, where it is, and whether only type checkers see it."""

    module: str
    target: str
    line: int
    type_only: bool


def _between(text: str, marker: str) -> str:
    match = re.search(rf"<!-- {marker}:begin -->(.*?)<!-- {marker}:end -->", text, re.S)
    assert match, f"docs/architecture.md lacks the {marker} markers"
    return match.group(1)


def _names(cell: str) -> frozenset[str]:
    return frozenset(part.strip() for part in cell.split(",") if part.strip())


def read_layers() -> list[Layer]:
    """The layers table of docs/architecture.md."""
    layers = []
    for row in _between(DOC.read_text(), "layers").strip().splitlines()[2:]:
        name, package, may, forbidden = (c.strip() for c in row.strip().strip("|").split("|"))
        layers.append(Layer(name, package.strip("`"), _names(may), _names(forbidden)))
    return layers


def read_exceptions() -> set[tuple[str, str]]:
    """(importer, imported) pairs the page lists as known exceptions."""
    block = _between(DOC.read_text(), "exceptions")
    return set(re.findall(r"^- `([\w.]+)` → `([\w.]+)`", block, re.M))


def module_name(path: Path) -> str:
    """The dotted module name of a source file under one of the source roots."""
    for root in SOURCE_ROOTS:
        if path.is_relative_to(root):
            parts = path.relative_to(root).with_suffix("").parts
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    raise ValueError(path)


def source_files() -> Iterator[Path]:
    """Every Python file of the three packages."""
    for root, package in zip(SOURCE_ROOTS, PACKAGES, strict=True):
        yield from sorted((root / package).rglob("*.py"))


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


class _ImportCollector(ast.NodeVisitor):
    """Collects a module's imports, noting those inside `if TYPE_CHECKING:`."""

    def __init__(self, module: str, is_package: bool, known: set[str]) -> None:
        self.module, self.is_package, self.known = module, is_package, known
        self.found: list[Import] = []
        self.type_only = False

    def visit_If(self, node: ast.If) -> None:  # noqa: N802 (ast.NodeVisitor's naming)
        if not _is_type_checking(node):
            self.generic_visit(node)
            return
        outer, self.type_only = self.type_only, True
        for inner in node.body:
            self.visit(inner)
        self.type_only = outer
        for inner in node.orelse:
            self.visit(inner)

    def visit_Import(self, node: ast.Import) -> None:  # noqa: N802
        for alias in node.names:
            self.found.append(Import(self.module, alias.name, node.lineno, self.type_only))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:  # noqa: N802
        base = _resolve(self.module, self.is_package, node)
        for alias in node.names:
            full = f"{base}.{alias.name}"
            target = full if full in self.known else base
            self.found.append(Import(self.module, target, node.lineno, self.type_only))


def imports_of(path: Path, known: set[str]) -> list[Import]:
    """Every import in the file; `from X import Y` targets X.Y when that is a module."""
    collector = _ImportCollector(module_name(path), path.name == "__init__.py", known)
    collector.visit(ast.parse(path.read_text(), str(path)))
    return collector.found


def layer_of(module: str, layers: list[Layer]) -> Layer | None:
    """The layer whose package holds `module` (None: a root package such as `tenfold`)."""
    for layer in layers:
        if module == layer.package or module.startswith(layer.package + "."):
            return layer
    return None


@pytest.fixture(scope="module")
def all_imports() -> list[Import]:
    files = list(source_files())
    known = {module_name(f) for f in files}
    return [imp for f in files for imp in imports_of(f, known)]


def test_the_table_names_every_package_once() -> None:
    layers = read_layers()
    names = {layer.name for layer in layers}
    assert len(names) == len(layers)
    for layer in layers:
        assert layer.may_import <= names, f"{layer.name} may import an unknown layer"
    for path in source_files():
        module = module_name(path)
        if module not in PACKAGES:
            assert layer_of(module, layers), f"{module} is in no layer of docs/architecture.md"


def test_imports_follow_the_layers(all_imports: list[Import]) -> None:
    layers, allowed = read_layers(), read_exceptions()
    wrong = []
    for imp in all_imports:
        source, target = layer_of(imp.module, layers), layer_of(imp.target, layers)
        if source is None or target is None or source is target:
            continue
        if target.name not in source.may_import and (imp.module, imp.target) not in allowed:
            wrong.append(f"{imp.module}:{imp.line} ({source.name}) imports {imp.target}")
    assert not wrong, "imports across the layers of docs/architecture.md:\n" + "\n".join(wrong)


def test_third_party_stays_where_the_table_allows(all_imports: list[Import]) -> None:
    layers = read_layers()
    wrong = []
    for imp in all_imports:
        layer = layer_of(imp.module, layers)
        top = imp.target.split(".")[0]
        if layer is not None and top in layer.forbidden_third_party:
            wrong.append(f"{imp.module}:{imp.line} ({layer.name}) imports {imp.target}")
    assert not wrong, "\n".join(wrong)


def test_listed_exceptions_still_exist(all_imports: list[Import]) -> None:
    # An exception that no longer happens must leave the page, so the list stays honest.
    seen = {(imp.module, imp.target) for imp in all_imports}
    assert read_exceptions() <= seen


def test_no_import_cycles(all_imports: list[Import]) -> None:
    graph: dict[str, set[str]] = {}
    for imp in all_imports:
        if not imp.type_only and imp.target.split(".")[0] in PACKAGES:
            graph.setdefault(imp.module, set()).add(imp.target)
    # A package's __init__ importing its own submodules is how packages work, not a cycle.
    for module, targets in graph.items():
        graph[module] = {t for t in targets if not t.startswith(module + ".")}
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := walk(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := walk(node)):
            return found
    return None
