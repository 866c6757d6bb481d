"""No hidden cycles: every module imports on its own, and imports run downward through the layers
of `docs/contributing.md` (read from its table, so the page and the check cannot drift apart)."""

from __future__ import annotations

import ast
import json
import pkgutil
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import neuralct

ROOT = Path(neuralct.__file__).parent
CONTRIBUTING = ROOT.parent / "docs" / "contributing.md"

# Optional heavy dependencies a function may import where it uses them, so that `import neuralct`
# loads none of them (tests/core/test_imports.py checks that).
HEAVY = frozenset({"aeon", "matplotlib", "scipy", "torchcde", "torchdiffeq", "torchsde"})

# Imports of neuralct modules inside a function: each loads a heavy dependency lazily, never to
# get round a cycle (every one of them also runs downward). (importer, imported prefix) -> why.
LAZY = {
    ("neuralct.cli", "neuralct.train"): "each command loads the training stack (torch) it runs, so "
    "`neuralct list` and `--help` start without it",
    ("neuralct.cli", "neuralct.stability"): "the stability lab (SciPy, figures), for `stability` and "
    "a run with --monitor-jacobian only",
    ("neuralct.train.sweep", "neuralct.train.sweep_plot"): "matplotlib, when there is a summary to draw",
}


@dataclass(frozen=True)
class Import:
    """One import statement: who imports what, where, and how it runs."""

    importer: str
    target: str
    path: Path
    line: int
    in_function: bool
    type_only: bool

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT.parent)}:{self.line} imports {self.target}"


def layers() -> dict[str, int]:
    """Top-level name under `neuralct` (`"solvers"`, `"__init__"` for the package) -> its layer,
    from the table of `docs/contributing.md` ("| 2 | `solvers` | ...")."""
    table = {}
    for number, cell in re.findall(r"^\| (\d+) \| ([^|]+) \|", CONTRIBUTING.read_text(), flags=re.MULTILINE):
        table |= {name: int(number) for name in re.findall(r"`([\w.]+)`", cell)}
    return table


def module_names() -> list[str]:
    """Every module of the package, from its files."""
    names = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom, modules: set[str]) -> list[str]:
    """The neuralct modules a `from ... import ...` reads: `from .x import y` is module `.x.y`
    when that is a module, else `.x`."""
    if node.level:
        package = importer.split(".")[: len(importer.split(".")) - (not is_package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    if not base.startswith("neuralct"):
        return []
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]


class _Collector(ast.NodeVisitor):
    """Every import of a module's source, noting whether it sits in a function or under
    `if TYPE_CHECKING:`."""

    def __init__(self, importer: str, path: Path, modules: set[str]) -> None:
        self.importer, self.path, self.modules = importer, path, modules
        self.functions = self.type_blocks = 0
        self.found: list[Import] = []
        self.outside: list[tuple[str, int]] = []  # (top-level package, line) of non-neuralct imports in functions

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.functions += 1
        self.generic_visit(node)
        self.functions -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        type_only = "TYPE_CHECKING" in ast.unparse(node.test)
        self.type_blocks += type_only
        for child in node.body:
            self.visit(child)
        self.type_blocks -= type_only
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        self._add([a.name for a in node.names if a.name.startswith("neuralct")], node)
        self._outside([a.name for a in node.names if not a.name.startswith("neuralct")], node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        is_package = self.path.name == "__init__.py"
        self._add(_resolve(self.importer, is_package, node, self.modules), node)
        if not node.level and not (node.module or "").startswith("neuralct"):
            self._outside([node.module or ""], node)

    def _add(self, targets: list[str], node: ast.stmt) -> None:
        for target in targets:
            where = (self.importer, target, self.path, node.lineno)
            self.found.append(Import(*where, self.functions > 0, self.type_blocks > 0))

    def _outside(self, names: list[str], node: ast.stmt) -> None:
        if self.functions:
            self.outside += [(name.split(".")[0], node.lineno) for name in names]


def collect() -> tuple[list[Import], list[str]]:
    """The imports of every module, and the imports of non-neuralct packages inside functions."""
    modules = set(module_names())
    imports, outside = [], []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        importer = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        collector = _Collector(importer, path, modules)
        collector.visit(ast.parse(path.read_text(), filename=str(path)))
        imports += collector.found
        where = path.relative_to(ROOT.parent)
        outside += [f"{where}:{line} imports {name}" for name, line in collector.outside if name not in HEAVY]
    return imports, outside


def layer_of(module: str, table: dict[str, int]) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    if top not in table:
        raise AssertionError(f"{module} is in no layer of {CONTRIBUTING.name}: add `{top}` to its table")
    return table[top]


def _lazy_reason(imported: Import) -> str | None:
    for (importer, prefix), reason in LAZY.items():
        if imported.importer == importer and (imported.target + ".").startswith(prefix + "."):
            return reason
    return None


def test_every_module_belongs_to_a_layer_of_the_contributing_page() -> None:
    table = layers()
    assert max(table.values()) >= 10 and {"errors", "solvers", "models", "cli"} <= set(table), table
    for module in module_names():
        layer_of(module, table)


def test_imports_run_downward_through_the_layers() -> None:
    table, (imports, _) = layers(), collect()
    upward = [
        f"{imported} (layer {layer_of(imported.target, table)}) from layer {layer_of(imported.importer, table)}"
        for imported in imports
        if layer_of(imported.target, table) > layer_of(imported.importer, table)
    ]
    assert not upward, "imports that run upward (see the layers in docs/contributing.md):\n" + "\n".join(upward)


def test_no_import_inside_a_function_but_the_lazy_loads_of_heavy_dependencies() -> None:
    imports, outside = collect()
    inside = [imported for imported in imports if imported.in_function and not imported.type_only]
    unexplained = [str(imported) for imported in inside if _lazy_reason(imported) is None]
    assert not unexplained + outside, (
        "imports inside a function (move them to the top of the module; a cycle means a piece "
        "belongs in a lower layer):\n" + "\n".join(unexplained + outside)
    )
    used = {key for key in LAZY if any(_lazy_reason(i) == LAZY[key] for i in inside)}
    assert used == set(LAZY), f"allow-list entries no import needs any more: {set(LAZY) - used}"


def test_the_modules_import_one_another_without_a_cycle() -> None:
    """Within a layer too: the graph of the imports that run (not those under TYPE_CHECKING) has
    no strongly connected component of more than one module."""
    graph: dict[str, set[str]] = {}
    for imported in collect()[0]:
        if not imported.type_only and imported.target != imported.importer:
            graph.setdefault(imported.importer, set()).add(imported.target)
    cycles = [sorted(component) for component in _components(graph) if len(component) > 1]
    assert not cycles, f"import cycles: {cycles}"


def _components(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    found.append(component)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


# Imports each module with no other neuralct module loaded before it (torch and the other
# libraries stay loaded between modules: only neuralct's own order is under test).
_IMPORT_EACH = """
import importlib, json, sys, traceback
failed = {}
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "neuralct" or m.startswith("neuralct.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed[name] = traceback.format_exc(limit=-3)
print(json.dumps(failed))
"""


def test_every_module_imports_on_its_own_in_a_fresh_interpreter() -> None:
    broken: list[str] = []  # packages walk_packages could not import to look inside
    found = [m.name for m in pkgutil.walk_packages(neuralct.__path__, "neuralct.", onerror=broken.append)]
    assert not broken, f"packages that fail to import: {broken}"
    names = ["neuralct", *(name for name in found if name != "neuralct.__main__")]  # __main__ runs the CLI
    assert set(names) == set(module_names()) - {"neuralct.__main__"}  # walk_packages sees every file
    batches = [names[k::3] for k in range(3)]
    runs = [
        subprocess.Popen([sys.executable, "-c", _IMPORT_EACH, *batch], stdout=subprocess.PIPE, text=True)
        for batch in batches
    ]
    failed = {}
    for run in runs:
        out, _ = run.communicate(timeout=600)
        failed |= json.loads(out)
    assert not failed, "modules that fail to import on their own:\n" + "\n".join(
        f"{name}:\n{trace}" for name, trace in failed.items()
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from ..train import fit\n", "neuralct/solvers/base.py:1 imports neuralct.train"),
        ("def f():\n    from ..paths import dense\n", "neuralct/solvers/base.py:2 imports neuralct.paths.dense"),
    ],
)
def test_the_checks_name_the_offending_import_and_file(source: str, expected: str) -> None:
    path = ROOT / "solvers" / "base.py"
    collector = _Collector("neuralct.solvers.base", path, set(module_names()))
    collector.visit(ast.parse(source))
    assert [str(imported) for imported in collector.found] == [expected]
    imported = collector.found[0]
    table = layers()
    upward = layer_of(imported.target, table) > layer_of(imported.importer, table)
    assert upward == ("train" in expected)
    assert imported.in_function == ("def" in source) and _lazy_reason(imported) is None
