"""The only map from strings to neuralct objects, for command lines and config files.

The Python API takes objects (`solver=nct.Tsit5()`); strings are turned into objects here
and nowhere else:

```python
from neuralct import registry
registry.solver("dopri5")                               # nct.Dopri5()
registry.solver("torchdiffeq:rk4")                      # TorchDiffEq("rk4")
registry.controller("pid", rtol=1e-5, atol=1e-7)        # nct.PIDController(rtol=1e-5, atol=1e-7)
registry.make("gradient", "backprop", checkpoint_every=8)
registry.names("solver")                                # {"euler": "Euler's method ...", ...}
```

Options are the keyword arguments of the class; an unknown one raises `TypeError` naming
it, an unknown name raises `InvalidInputError` listing the valid ones.

Extension: a new class is registered by one line in `_NAMES` (or, for a family of peer
methods `"library:<method>"`, one line in `_FAMILIES`).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from ._choices import check_options, did_you_mean
from .backends.torchdiffeq import TorchDiffEq, available_methods
from .backends.torchsde import TorchSDE, TorchSDEMethod
from .controllers import ConstantStep, KnotToKnot, PIDController
from .errors import InvalidInputError
from .gradients import Backprop, Backsolve
from .models import ANCDE, GRUD, LTC, ODERNN, CfC, GRUDelta, NeuralCDE, NoisyRNN, TauGRU
from .solvers import (
    RK4,
    Bosh3,
    Dopri5,
    Dopri8,
    Euler,
    EulerMaruyama,
    Heun,
    ImplicitEuler,
    LTCFused,
    MethodOfSteps,
    Midpoint,
    Milstein,
    Ralston,
    ReversibleHeun,
    StochasticHeun,
    Tsit5,
)
from .solvers.exact_linear import GBT, ZOH
from .solvers.symplectic_euler import SymplecticEuler

# kind -> name -> class (or factory) called with the options.
_NAMES: dict[str, dict[str, Callable[..., Any]]] = {
    "solver": {
        # ODE / CDE: explicit Runge-Kutta methods
        "euler": Euler,
        "midpoint": Midpoint,
        "heun": Heun,
        "ralston": Ralston,
        "rk4": RK4,
        "bosh3": Bosh3,
        "dopri5": Dopri5,
        "tsit5": Tsit5,
        "dopri8": Dopri8,
        # stiff
        "implicit_euler": ImplicitEuler,
        # linear terms (LinearTerm): exact zero-order hold, generalized bilinear transform
        "zoh": ZOH,
        "gbt": GBT,
        # the LTC term: fused semi-implicit step, `unfolds` sub-steps per step
        "ltc_fused": LTCFused,
        # separable Hamiltonian terms (SeparableHamiltonianTerm): symplectic Euler, the H2-DNN step
        "symplectic_euler": SymplecticEuler,
        # SDE
        "euler_maruyama": EulerMaruyama,
        "milstein": Milstein,
        "stochastic_heun": StochasticHeun,
        "reversible_heun": ReversibleHeun,
        # DDE
        "method_of_steps": MethodOfSteps,
    },
    "controller": {
        "constant": ConstantStep,
        "knots": KnotToKnot,
        "pid": PIDController,
    },
    "gradient": {
        "backprop": Backprop,
        "backsolve": Backsolve,
    },
    # sequence models on irregular series, built as model(channels=..., hidden=..., outputs=..., **options)
    "model": {
        "ltc": LTC,
        "cfc": CfC,
        "ncde": NeuralCDE,
        "ancde": ANCDE,
        "noisy_rnn": NoisyRNN,
        "tau_gru": TauGRU,
        "gru_d": GRUD,
        "ode_rnn": ODERNN,
        "gru_delta": GRUDelta,
    },
}

# kind -> prefix -> (factory called as factory(method, **options), the valid methods).
_FAMILIES: dict[str, dict[str, tuple[Callable[..., Any], Callable[[], list[str]]]]] = {
    "solver": {
        "torchdiffeq": (TorchDiffEq, available_methods),
        "torchsde": (TorchSDE, lambda: [m.value for m in TorchSDEMethod]),
    },
}

# Options whose string values name another registered object (e.g. the RK method of a DDE solver).
_NESTED = {"solver": "solver"}


def kinds() -> list[str]:
    """The kinds of object the registry makes: `"solver"`, `"controller"`, `"gradient"`, `"model"`."""
    return list(_NAMES)


def names(kind: str) -> dict[str, str]:
    """Every name of `kind` with a one-line description (from the class docstring).

    Families of peer methods are listed one entry per method, e.g. `"torchdiffeq:dopri5"`.

    Raises:
        InvalidInputError: an unknown kind.
    """
    table = _table(kind)
    listing = {name: _summary(factory) for name, factory in table.items()}
    for prefix, (factory, methods) in _FAMILIES.get(kind, {}).items():
        for method in methods():
            listing[f"{prefix}:{method}"] = f"{prefix}'s {method!r} method through {_name_of(factory)}"
    return listing


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
    table = _table(kind)
    if not isinstance(name, str):
        raise InvalidInputError(f"a {kind} name must be a string; got {type(name).__name__}")
    prefix, colon, method = name.partition(":")
    families = _FAMILIES.get(kind, {})
    if colon:
        if prefix not in families:
            raise InvalidInputError(_unknown(f"{kind} family", prefix, list(families)))
        factory, methods = families[prefix]
        if method not in methods():
            raise InvalidInputError(_unknown(f"{prefix} method", method, methods()))
        check_options(factory, f"{kind} {name!r}", options, skip=1)
        return factory(method, **_resolve(options))
    if name not in table:
        choices = list(table) + [f"{p}:<method>" for p in families]
        raise InvalidInputError(_unknown(kind, name, choices))
    check_options(table[name], f"{kind} {name!r}", options)
    return table[name](**_resolve(options))


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


def _table(kind: str) -> dict[str, Callable[..., Any]]:
    if kind not in _NAMES:
        raise InvalidInputError(_unknown("kind", kind, list(_NAMES)))
    return _NAMES[kind]


def _unknown(what: str, given: object, choices: list[str]) -> str:
    return f"unknown {what} {given!r}{did_you_mean(str(given), choices)} Valid choices: {', '.join(choices)}"


def _resolve(options: dict[str, Any]) -> dict[str, Any]:
    return {
        key: make(_NESTED[key], value) if key in _NESTED and isinstance(value, str) else value
        for key, value in options.items()
    }


def _summary(factory: Callable[..., Any]) -> str:
    """First sentence of the docstring, without literature references in parentheses or
    mkdocstrings cross-reference brackets."""
    doc = inspect.getdoc(factory) or _name_of(factory)
    text = " ".join(doc.split("\n\n")[0].split())
    text = re.sub(r"\[`([^`]+)`\]\[[^\]]*\]", r"`\1`", text)
    kept, group, depth = [], [], 0
    for char in text:
        if depth == 0 and char == ".":
            break
        if char == "(":
            depth += 1
        if depth:
            group.append(char)
        else:
            kept.append(char)
        if char == ")" and depth:
            depth -= 1
            if depth == 0:
                # Drop references such as "(Euler, 1768)"; keep "5(4)".
                kept.extend([] if re.search(r"\b1[5-9]\d\d|\b20\d\d", "".join(group)) else group)
                group = []
    text = re.sub(r"\s+", " ", "".join(kept + group))
    return re.sub(r"\s([,:;])", r"\1", text).strip()


def _name_of(factory: Callable[..., Any]) -> str:
    return getattr(factory, "__name__", repr(factory))


__all__ = ["controller", "gradient", "kinds", "make", "names", "solver"]
