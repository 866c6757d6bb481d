"""The same SDE `SDETerm` solved by the peer library torchsde (`torchsde.sdeint`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torchsde
from torch import Tensor

from .._checks import check_choice, check_instance, describe
from ..controllers.constant import ConstantStep
from ..errors import IncompatibleTermError, InvalidInputError
from ..paths.brownian import BrownianPath, LevyArea
from ..problem import AbstractRunner, Problem
from ..solution import Solution, SolveStats, Status
from ..terms.base import AbstractTerm
from ..terms.noise import NoiseType, SDEType
from ..terms.sde import SDETerm


class TorchSDEMethod(enum.Enum):
    """torchsde's fixed-step methods; each value is torchsde's own name for it."""

    EULER = "euler"
    MILSTEIN = "milstein"
    SRK = "srk"
    MIDPOINT = "midpoint"
    HEUN = "heun"
    EULER_HEUN = "euler_heun"
    REVERSIBLE_HEUN = "reversible_heun"
    LOG_ODE = "log_ode"


_ITO, _STRAT = frozenset({SDEType.ITO}), frozenset({SDEType.STRATONOVICH})
_COMMUTATIVE = frozenset({NoiseType.DIAGONAL, NoiseType.ADDITIVE, NoiseType.SCALAR})
_LEVY = frozenset({LevyArea.SPACE_TIME, LevyArea.DAVIE, LevyArea.FOSTER})
# method -> (SDE types, noise types, Lévy areas the BrownianPath must provide, strong order), as torchsde declares.
_SUPPORT: dict[TorchSDEMethod, tuple[frozenset, frozenset, frozenset, float]] = {
    TorchSDEMethod.EULER: (_ITO, frozenset(NoiseType), frozenset(LevyArea), 0.5),
    TorchSDEMethod.MILSTEIN: (frozenset(SDEType), _COMMUTATIVE, frozenset(LevyArea), 1.0),
    TorchSDEMethod.SRK: (_ITO, _COMMUTATIVE, _LEVY, 1.0),
    TorchSDEMethod.MIDPOINT: (_STRAT, frozenset(NoiseType), frozenset(LevyArea), 0.5),
    TorchSDEMethod.HEUN: (_STRAT, frozenset(NoiseType), frozenset(LevyArea), 0.5),
    TorchSDEMethod.EULER_HEUN: (_STRAT, frozenset(NoiseType), frozenset(LevyArea), 0.5),
    TorchSDEMethod.REVERSIBLE_HEUN: (_STRAT, frozenset(NoiseType), frozenset(LevyArea), 0.5),
    TorchSDEMethod.LOG_ODE: (_STRAT, frozenset(NoiseType), frozenset({LevyArea.DAVIE, LevyArea.FOSTER}), 0.5),
}


@dataclass(frozen=True)
class TorchSDE(AbstractRunner):
    """Solve an SDE [`SDETerm`][neuralct.SDETerm] with `torchsde.sdeint`.

    The term's own [`BrownianPath`][neuralct.BrownianPath] drives torchsde (its
    `BrownianInterval` is passed as `bm`), so with the same method the result equals
    neuralct's solver: `TorchSDE(TorchSDEMethod.EULER)` and `nct.EulerMaruyama()`,
    `HEUN` and `nct.StochasticHeun()`, `REVERSIBLE_HEUN` and `nct.ReversibleHeun()`,
    `MILSTEIN` with `grad_free=True` and `nct.Milstein()` (Itô).
    Reference: Li, Wong, Chen & Duvenaud, "Scalable Gradients for Stochastic Differential
    Equations", AISTATS 2020 (torchsde).

    Limits: one shared, increasing time grid `t` `[K]`; `nct.ConstantStep(dt)` only; no
    dense output; gradients by autograd through torchsde's steps. torchsde does not land
    on save times: it steps by `dt` and interpolates linearly onto a save time that a step
    crosses, and it does not stop at a drift's jump times, so results equal neuralct's
    only when every save time is a multiple of `dt` from `t[0]`.
    `stats.vf_evals` counts every drift and diffusion call torchsde makes (including the
    two of its shape checks); `stats.steps` its steps.

    Args:
        method: a [`TorchSDEMethod`][neuralct.backends.torchsde.TorchSDEMethod], or its
            torchsde name (e.g. `"euler"`), validated.
        grad_free: torchsde's derivative-free Milstein (`options=dict(grad_free=True)`).
    """

    method: TorchSDEMethod | str = TorchSDEMethod.EULER
    grad_free: bool = False
    term_types: ClassVar[tuple[type, ...]] = (SDETerm,)

    def __post_init__(self) -> None:
        if isinstance(self.method, str):
            check_choice("method", self.method, [m.value for m in TorchSDEMethod])
            object.__setattr__(self, "method", TorchSDEMethod(self.method))
        if not isinstance(self.method, TorchSDEMethod):
            raise InvalidInputError(f"`method` must be a TorchSDEMethod or its name; got {describe(self.method)}")
        check_instance("grad_free", self.grad_free, bool)

    @property
    def order(self) -> float:
        """The method's strong order (for general noise), as torchsde declares it."""
        return _SUPPORT[TorchSDEMethod(self.method)][3]

    def check_term(self, term: AbstractTerm) -> None:
        """Raise `IncompatibleTermError` unless `term` is an `SDETerm` whose SDE and noise
        types the method handles; the message lists the methods that can."""
        super().check_term(term)
        if not isinstance(term, SDETerm):
            return
        method = TorchSDEMethod(self.method)
        sde_types, noise_types, _, _ = _SUPPORT[method]
        if term.sde_type in sde_types and term.noise_type in noise_types:
            return
        able = [m.value for m, s in _SUPPORT.items() if term.sde_type in s[0] and term.noise_type in s[1]]
        raise IncompatibleTermError(
            f"solver TorchSDE(method={method.value!r}) cannot integrate an SDETerm with {term.noise_type} and "
            f"{term.sde_type}; torchsde methods that can: {', '.join(able)}"
        )

    def integrate(self, problem: Problem, y0: Tensor) -> Solution:
        """Solve `problem` from `y0` `[B, D]` with `torchsde.sdeint`; returns a `Solution`."""
        term, ts, dt, path = _check_problem(problem, y0)
        method = TorchSDEMethod(self.method)
        if path.levy_area not in _SUPPORT[method][2]:
            raise IncompatibleTermError(
                f"torchsde method {method.value!r} needs a BrownianPath with levy_area in "
                f"{sorted(a.name for a in _SUPPORT[method][2])}; got {path.levy_area.name}"
            )
        sde = _CountingSDE(term, problem.args, ts)
        options = {"grad_free": True} if self.grad_free else None
        ys = torchsde.sdeint(sde, y0, ts, bm=path.interval, method=method.value, dt=dt, adaptive=False, options=options)
        ys = ys.transpose(0, 1)
        batch = y0.shape[0]
        long = dict(dtype=torch.long, device=y0.device)
        finite = torch.isfinite(ys).flatten(1).all(dim=1)
        status = torch.where(finite, int(Status.SUCCESS), int(Status.NONFINITE)).to(torch.long)
        steps = torch.full((batch,), _count_steps(ts, dt), **long)
        stats = SolveStats(torch.full((batch,), sde.calls, **long), steps, steps.clone(), torch.zeros(batch, **long))
        return Solution(ts=problem.ts, ys=ys, status=status, stats=stats, t_final=problem.ts[:, -1], y_final=ys[:, -1])


class _CountingSDE:
    """torchsde's view of an `SDETerm`: `f(t, y)` and `g(t, y)` with scalar `t`, counting calls."""

    def __init__(self, term: SDETerm, args: Any, ts: Tensor):
        self.noise_type = term.noise_type.value
        self.sde_type = term.sde_type.value
        self.term, self.args, self.ts, self.calls = term, args, ts, 0

    def _times(self, t: Any, y: Tensor) -> Tensor:
        return torch.as_tensor(t, dtype=self.ts.dtype, device=self.ts.device).expand(y.shape[0])

    def f(self, t: Any, y: Tensor) -> Tensor:
        self.calls += 1
        return self.term.drift_field(self._times(t, y), y, self.args)

    def g(self, t: Any, y: Tensor) -> Tensor:
        self.calls += 1
        return self.term.diffusion(self._times(t, y), y, self.args)


def _check_problem(problem: Problem, y0: Tensor) -> tuple[SDETerm, Tensor, float, BrownianPath]:
    """The term, the shared grid `[K]`, the step and the path, after checking what torchsde needs."""
    term, ts = problem.term, problem.ts
    if not isinstance(term, SDETerm):
        raise IncompatibleTermError(f"solver TorchSDE integrates an SDETerm; got {describe(term)}")
    if not isinstance(problem.controller, ConstantStep):
        raise IncompatibleTermError(
            f"solver TorchSDE runs with nct.ConstantStep(dt) only; got {describe(problem.controller)}"
        )
    if problem.dense:
        raise InvalidInputError("solver TorchSDE has no dense output; solve with dense=False")
    if ts.shape[0] > 1 and not bool((ts == ts[:1]).all()):
        b = int((ts != ts[:1]).any(dim=1).nonzero()[0])
        raise InvalidInputError(
            f"solver TorchSDE needs one time grid `t` [K] shared by every sample; sample {b} has its own row "
            f"(t[{b}] differs from t[0]); use a neuralct SDE solver for per-sample grids"
        )
    if bool((problem.direction < 0).any()):
        raise InvalidInputError("solver TorchSDE integrates forward in time only; `t` must be increasing")
    if y0.ndim != 2:
        raise InvalidInputError(f"solver TorchSDE needs `y0` of shape [B, D]; got {tuple(y0.shape)}")
    path = term.noise.brownian
    if not isinstance(path, BrownianPath) or path._rows is not None:
        raise IncompatibleTermError(
            f"solver TorchSDE needs the noise term's brownian to be a whole nct.BrownianPath; got {path!r}"
        )
    term.noise.check_state(y0)
    grid = ts[0]
    if float(grid[0]) < path.t0 or float(grid[-1]) > path.t1:
        raise InvalidInputError(
            f"`t` spans [{float(grid[0]):.6g}, {float(grid[-1]):.6g}], outside the BrownianPath's "
            f"[{path.t0:.6g}, {path.t1:.6g}]"
        )
    return term, grid, problem.controller.dt, path


def _count_steps(ts: Tensor, dt: float) -> int:
    """The number of steps torchsde's fixed-step loop takes over the grid `ts` `[K]` (same arithmetic)."""
    steps, t, end = 0, ts[0], ts[-1]
    for out in ts[1:]:
        while t < out:
            t = min(t + dt, end)
            steps += 1
    return steps
