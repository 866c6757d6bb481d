"""Run the ```python blocks of a document and check the values they state.

A statement whose line ends in a comment holding `-> expected` states what it shows:
`print(...)  # -> text` what the call prints, any other expression statement
`expr  # note -> text` its value (a tensor as its `tolist()`, anything else as its `repr`).
In `text`, `...` stands for any text, and a number written with a decimal point or an exponent
matches a value within one unit of its last written digit (`0.2785` matches 0.27852..., `3e-07`
anything in [2e-07, 4e-07]); the rest, whole numbers included, must match exactly. A `print`, or
an expression that is not a call (`sol.ys`), without `->` is refused: a snippet that shows a
value says which.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import sys
import tokenize
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

NUMBER = r"-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?"
STATED = re.compile(r"(?:^|\s)->\s(?P<text>.*?)\s*$")


def python_blocks(path: Path) -> list[str]:
    """The ```python blocks of a Markdown file (```py blocks are illustrations, never run)."""
    return [block.split("```", 1)[0] for block in path.read_text().split("```python\n")[1:]]


def stated_outputs(source: str) -> dict[int, str]:
    """Line number -> the text after `->` in that line's comment."""
    stated = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and (found := STATED.search(token.string[1:])):
            stated[token.start[0]] = found["text"]
    return stated


def matches(expected: str, shown: str) -> bool:
    """Whether `shown` reads as `expected` under the rules in this module's docstring."""
    pattern, written, end = [], [], 0
    for token in re.finditer(rf"\.\.\.|{NUMBER}", expected):
        pattern.append(re.escape(expected[end : token.start()]))
        if token.group() == "...":
            pattern.append(".*?")
        else:
            pattern.append(f"({NUMBER})")
            written.append(token.group())
        end = token.end()
    pattern.append(re.escape(expected[end:]))
    found = re.fullmatch("".join(pattern), shown, flags=re.DOTALL)
    return found is not None and all(_agrees(w, a) for w, a in zip(written, found.groups()))


def _agrees(written: str, actual: str) -> bool:
    if not re.search(r"[.eE]", written):
        return written == actual
    mantissa, _, exponent = written.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return abs(float(actual) - float(written)) <= 10.0 ** (int(exponent or 0) - decimals)


def _render(value: Any) -> str:
    return repr(value.tolist()) if hasattr(value, "tolist") and not isinstance(value, (str, bytes)) else repr(value)


def _check(where: str) -> Callable[[Callable[[], Any], str, bool], None]:
    def show(thunk: Callable[[], Any], expected: str, printed: bool) -> None:
        if printed:
            with contextlib.redirect_stdout(io.StringIO()) as out:
                thunk()
            shown = out.getvalue().rstrip("\n")
        else:
            shown = _render(thunk())
        assert matches(expected, shown), f"{where}: states `{expected}` but shows `{shown}`"

    return show


class _StatedOutputs(ast.NodeTransformer):
    """Wraps every expression statement with a stated output in a call that checks it."""

    def __init__(self, stated: dict[int, str], where: str) -> None:
        self.stated, self.where = stated, where

    def visit_Expr(self, node: ast.Expr) -> ast.Expr:
        value = node.value
        printed = isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "print"
        expected = self.stated.get(node.end_lineno or node.lineno)
        if expected is None:
            if printed or not isinstance(value, (ast.Call, ast.Constant, ast.Await)):
                raise AssertionError(f"{self.where}, line {node.lineno}: shows a value without `# -> expected`")
            return node
        thunk = ast.Lambda(ast.arguments([], [], None, [], [], None, []), value)
        check = ast.Call(
            ast.Name("__stated_output__", ast.Load()), [thunk, ast.Constant(expected), ast.Constant(printed)], []
        )
        return ast.copy_location(ast.Expr(check), node)


def run_source(source: str, namespace: dict[str, Any], where: str) -> None:
    """Run `source` in `namespace`, checking each stated output; raises `AssertionError` on a mismatch."""
    tree = _StatedOutputs(stated_outputs(source), where).visit(ast.parse(source))
    namespace["__stated_output__"] = _check(where)
    exec(compile(ast.fix_missing_locations(tree), where, "exec"), namespace)


def run_document(document: Path) -> dict[str, Any]:
    """Run a document's python blocks in order in one throwaway module (dataclasses need a real one)."""
    module = types.ModuleType(f"neuralct_doc_{document.stem}")
    sys.modules[module.__name__] = module
    try:
        for index, block in enumerate(python_blocks(document)):
            run_source(block, module.__dict__, f"{document.name}, python block {index + 1}")
    finally:
        del sys.modules[module.__name__]
    return module.__dict__
