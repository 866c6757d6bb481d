"""House rules that keep the code readable (docs/contributing.md): no function over 60 lines,
docstring included, and no file of the step loop over 250 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import neuralct

PACKAGE = Path(neuralct.__file__).parent
MAX_FUNCTION_LINES = 60
MAX_LOOP_FILE_LINES = 250


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [
        f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


def test_no_function_is_longer_than_sixty_lines():
    long = [entry for path in sorted(PACKAGE.rglob("*.py")) for entry in _long_functions(path)]
    assert not long, "split these functions:\n" + "\n".join(long)


def test_every_file_of_the_step_loop_is_under_250_lines():
    sizes = {path.name: len(path.read_text().splitlines()) for path in (PACKAGE / "_loop").glob("*.py")}
    assert len(sizes) >= 10  # the package, not a stray module
    assert not {name: n for name, n in sizes.items() if n >= MAX_LOOP_FILE_LINES}, sizes
