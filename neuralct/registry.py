"""The only map from strings to neuralct objects, for command lines and config files.

The Python API takes objects (`solver=nct.Tsit5()`); strings are turned into objects here
and nowhere else:

```python
from neuralct import registry
registry.solver("dopri5")                               # nct.Dopri5()
registry.solver("torchdiffeq:rk4")                      # TorchDiffEq("rk4")
registry.controller("pid", rtol=1e-5, atol=1e-7)        # nct.PIDController(rtol=1e-5, atol=1e-7)
registry.make("gradient", "backprop", checkpoint_every=8)
registry.names("solver")                                # {"euler": "Euler's method, order 1", ...}
```

Options are the keyword arguments of the class; an unknown one raises `TypeError` naming
it, an unknown name raises `InvalidInputError` listing the valid ones.

Every name points at a `"module:attribute"` string imported on first use, with a one-line
description written for `neuralct list` (which therefore runs without importing torch).
Extension: a new class is registered by one line in `neuralct/_catalog.py` (`BUILT_IN`, or
for a family of peer methods `"library:<method>"`, `FAMILIES`). Datasets are names too:
users add theirs with `neuralct.data.datasets.register` or
an entry point of the group `neuralct.datasets`.
"""

from __future__ import annotations

import functools
import re
from importlib.metadata import entry_points
from typing import Any

from ._catalog import BUILT_IN, ENTRY_POINT_GROUPS, FAMILIES, Entry
from ._checks import describe, did_you_mean
from ._choices import check_option_names
from .errors import InvalidInputError

# kind -> name -> entry added at run time (`neuralct.data.datasets.register`).
_ADDED: dict[str, dict[str, Entry]] = {kind: {} for kind in BUILT_IN}

# Options whose string values name another registered object (e.g. the RK method of a DDE solver).
_NESTED = {"solver": "solver"}

# The splits of a dataset that comes from an entry point: those `neuralct fit` loads.
_ENTRY_POINT_SPLITS = ("train", "test")


def kinds() -> list[str]:
    """The kinds of object the registry names: `"solver"`, `"controller"`, `"gradient"`, `"model"`,
    `"dataset"`."""
    return list(BUILT_IN)


def names(kind: str) -> dict[str, str]:
    """Every name of `kind` with its one-line description; nothing is imported.

    Families of peer methods are listed one entry per method, e.g. `"torchdiffeq:dopri5"`.

    Raises:
        InvalidInputError: an unknown kind, or an entry point that takes a name already used.
    """
    listing = {name: entry.description for name, entry in _table(kind).items()}
    for prefix, family in FAMILIES.get(kind, {}).items():
        for method in family.methods:
            listing[f"{prefix}:{method}"] = family.description.format(method=method)
    return listing


def entry(kind: str, name: str) -> Entry:
    """The entry of `kind` registered as `name` (families excluded).

    Raises:
        InvalidInputError: an unknown kind or name (with the valid names).
    """
    table = _table(kind)
    if not isinstance(name, str) or name not in table:
        choices = list(table) + [f"{p}:<method>" for p in FAMILIES.get(kind, {})]
        raise InvalidInputError(_unknown(kind, name, choices))
    return table[name]


def add(kind: str, name: str, new: Entry) -> None:
    """Register `new` as `name` of `kind` for this process (the mechanism behind
    `neuralct.data.datasets.register`).

    Raises:
        InvalidInputError: an unknown kind, a name that is not a plain identifier-like string,
            or a name already taken (built in, from an entry point, or added before).
    """
    table = _table(kind)
    if not isinstance(name, str) or not re.fullmatch(r"[\w.-]+", name):
        raise InvalidInputError(f"a {kind} name must be letters, digits, '_', '.' or '-'; got {name!r}")
    if name in table:
        raise InvalidInputError(f"{kind} name {name!r} is already taken ({table[name].description})")
    _ADDED[kind][name] = new


def make(kind: str, name: str, **options: Any) -> Any:
    """Build the object of `kind` registered as `name` with keyword `options`.

    Args:
        kind: one of `kinds()`.
        name: a registered name, or `"<library>:<method>"` for a peer backend.
        options: keyword arguments of the class; a string given for an option that names
            another registered object (`solver=`) is looked up too.

    Raises:
        InvalidInputError: an unknown kind, name or method (with the valid choices).
        TypeError: an unknown or missing option, naming it.
    """
    _table(kind)
    if not isinstance(name, str):
        raise InvalidInputError(f"a {kind} name must be a string; got {describe(name)}")
    prefix, colon, method = name.partition(":")
    families = FAMILIES.get(kind, {})
    if colon:
        if prefix not in families:
            raise InvalidInputError(_unknown(f"{kind} family", prefix, list(families)))
        family = families[prefix]
        if method not in family.methods:
            raise InvalidInputError(_unknown(f"{prefix} method", method, list(family.methods)))
        factory = Entry(family.target, family.description).load()
        check_option_names(factory, f"{kind} {name!r}", options, skip=1)
        return factory(method, **_resolve(options))
    factory = entry(kind, name).load()
    check_option_names(factory, f"{kind} {name!r}", options)
    return factory(**_resolve(options))


def solver(name: str, **options: Any) -> Any:
    """`make("solver", name, **options)`, e.g. `solver("tsit5")`, `solver("torchdiffeq:dopri5")`."""
    return make("solver", name, **options)


def controller(name: str, **options: Any) -> Any:
    """`make("controller", name, **options)`, e.g. `controller("pid", rtol=1e-5)`."""
    return make("controller", name, **options)


def gradient(name: str, **options: Any) -> Any:
    """`make("gradient", name, **options)`, e.g. `gradient("backprop", checkpoint_every=8)`."""
    return make("gradient", name, **options)


def model(name: str, **options: Any) -> Any:
    """`make("model", name, **options)`, e.g. `model("ltc", channels=12, hidden=32, outputs=9)`."""
    return make("model", name, **options)


def _table(kind: str) -> dict[str, Entry]:
    """Built-in, entry-point and added names of `kind`, in that order."""
    if kind not in BUILT_IN:
        raise InvalidInputError(_unknown("kind", kind, list(BUILT_IN)))
    return BUILT_IN[kind] | _entry_points(kind) | _ADDED[kind]


@functools.cache
def _entry_points(kind: str) -> dict[str, Entry]:
    """The names installed packages declare for `kind`, read once (their modules stay unimported)."""
    if kind not in ENTRY_POINT_GROUPS:
        return {}
    found: dict[str, Entry] = {}
    for point in entry_points(group=ENTRY_POINT_GROUPS[kind]):
        source = getattr(point.dist, "name", "an installed package")
        if point.name in BUILT_IN[kind] or point.name in found:
            raise InvalidInputError(
                f"the entry point {point.name} = {point.value!r} of {source} (group "
                f"{ENTRY_POINT_GROUPS[kind]!r}) takes a {kind} name already used; rename it"
            )
        found[point.name] = Entry(point.value, f"{point.value} (from the package {source})", _ENTRY_POINT_SPLITS)
    return found


def _unknown(what: str, given: object, choices: list[str]) -> str:
    return f"unknown {what} {given!r}{did_you_mean(str(given), choices)} Valid choices: {', '.join(choices)}"


def _resolve(options: dict[str, Any]) -> dict[str, Any]:
    return {
        key: make(_NESTED[key], value) if key in _NESTED and isinstance(value, str) else value
        for key, value in options.items()
    }


__all__ = ["add", "controller", "entry", "gradient", "kinds", "make", "model", "names", "solver"]
