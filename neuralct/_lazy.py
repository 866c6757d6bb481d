"""Packages whose public names are imported on first use, so that `import neuralct` and
`neuralct list` run without importing torch.

```python
# in a package's __init__.py
from .._lazy import lazy_package
lazy_package(__name__, {".series": ("IrregularBatch", "collate")}, submodules=("datasets",))
```

Type checkers read the same names from imports under `if TYPE_CHECKING:` in the package; a
test checks that the two lists agree.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Mapping, Sequence
from typing import Any


class _LazyPackage(types.ModuleType):
    """A package module that imports a public name when it is first looked up (the PEP 562
    `__getattr__`, as a class so that `__setattr__` can be guarded too)."""

    _lazy_where: dict[str, str]
    _lazy_submodules: frozenset[str]

    def __getattr__(self, name: str) -> Any:
        if name in self._lazy_submodules:
            return importlib.import_module(f".{name}", self.__name__)
        if name not in self._lazy_where:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(self._lazy_where[name], self.__name__), name)
        setattr(self, name, value)  # later look-ups find it directly
        return value

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._lazy_where) | self._lazy_submodules)

    def __setattr__(self, name: str, value: Any) -> None:
        # Importing the submodule `neuralct.solve` would otherwise make `neuralct.solve` that
        # module rather than the function, as it stays when the package imports eagerly.
        if isinstance(value, types.ModuleType) and name in self._lazy_where:
            return
        super().__setattr__(name, value)


def lazy_package(package: str, table: Mapping[str, Sequence[str]], submodules: Sequence[str] = ()) -> None:
    """Make `package` import its public names on first use.

    Args:
        package: the package's `__name__`.
        table: relative module (`".solvers"`) -> the public names it defines.
        submodules: public names that are submodules of the package themselves.
    """
    module = sys.modules[package]
    where = {name: source for source, names in table.items() for name in names}
    setattr(module, "_lazy_where", where)  # noqa: B010 (set before the class that declares them)
    setattr(module, "_lazy_submodules", frozenset(submodules))  # noqa: B010
    module.__class__ = _LazyPackage
