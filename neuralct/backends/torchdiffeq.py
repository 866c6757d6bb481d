"""The same drift term (ODE, CDE) solved by the peer library torchdiffeq (`torchdiffeq.odeint`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torchdiffeq
from torch import Tensor, nn

from .._checks import check_choice, check_instance, describe
from ..controllers.constant import ConstantStep
from ..controllers.pid import PIDController
from ..errors import InvalidInputError
from ..problem import AbstractRunner, Problem
from ..solution import Solution, SolveStats, Status
from ..terms.base import AbstractDriftTerm

try:  # torchdiffeq keeps its method table private; fall back to the 0.2.5 names
    from torchdiffeq._impl.odeint import SOLVERS as _AVAILABLE
except ImportError:  # pragma: no cover
    _AVAILABLE = {}

# method -> (order, order of the error estimate or None for fixed-grid methods). The names
# offered are those of this table that the installed torchdiffeq provides ("tsit5" arrived
# after 0.2.5; "scipy_solver" is left out: it does not run in torch and has no autograd).
_METHODS: dict[str, tuple[float, int | None]] = {
    "dopri8": (8, 7),
    "dopri5": (5, 4),
    "tsit5": (5, 4),
    "bosh3": (3, 2),
    "fehlberg2": (2, 1),
    "adaptive_heun": (2, 1),
    "euler": (1, None),
    "midpoint": (2, None),
    "heun2": (2, None),
    "heun3": (3, None),
    "rk4": (4, None),
    "explicit_adams": (4, None),
    "implicit_adams": (4, None),
    "fixed_adams": (4, None),
}
# torchdiffeq's failure assertions and the status each one means.
_FAILURES = {
    "max_num_steps exceeded": Status.MAX_STEPS,
    "underflow in dt": Status.DT_UNDERFLOW,
    "non-finite values": Status.NONFINITE,
}


def available_methods() -> list[str]:
    """The torchdiffeq methods `TorchDiffEq` accepts with the installed torchdiffeq."""
    return [name for name in _METHODS if not _AVAILABLE or name in _AVAILABLE]


@dataclass(frozen=True)
class TorchDiffEq(AbstractRunner):
    """Solve a drift term ([`ODETerm`][neuralct.ODETerm], [`ControlTerm`][neuralct.ControlTerm])
    with `torchdiffeq.odeint` (Chen et al., "Neural Ordinary Differential Equations",
    NeurIPS 2018), for cross-checks and comparisons.

    Adaptive methods (`"dopri5"`, `"bosh3"`, ...) take `rtol`, `atol`, `dt_max`, `safety`,
    `factor_min` / `factor_max` and the norm from a `PIDController`, which must be an integral
    controller (torchdiffeq's only kind) with `dt_min = 0` (torchdiffeq accepts any step at
    its minimum instead of failing). torchdiffeq takes one step size for the whole batch:
    the batch shares its worst sample's error, as `PIDController(per_sample=False)` does,
    so a sample's result depends on its batch mates. `dt0` becomes `first_step`; the term's
    jump times become `jump_t` (their union over the batch).
    Fixed-grid methods (`"euler"`, `"midpoint"`, `"rk4"`, ...) take `ConstantStep(dt)` and step
    on the grid neuralct's loop uses: steps of `dt`, shortened to land on every save and jump
    time. Note torchdiffeq's `"rk4"` is Kutta's 3/8 rule, not the classic `nct.RK4()`.

    Statistics are those of the joint solve, repeated for every sample: `vf_evals` counts
    calls of the vector field (each evaluates the whole batch), `steps` / `accepted` /
    `rejected` come from torchdiffeq's step callbacks (fixed grids accept every step).
    `max_steps` bounds `steps`; when torchdiffeq fails (too many steps, step underflow,
    non-finite state) every sample gets that status, `ys` beyond `t[0]` holds NaN and
    `t_final` / `y_final` give the start of the last step attempted.

    Args:
        method: torchdiffeq's method name; see `available_methods()`.
        adjoint: use `torchdiffeq.odeint_adjoint` (backsolve adjoint through the term's
            parameters) instead of backpropagating through the solver.

    Raises:
        InvalidInputError: an unknown method (the message lists the valid ones), or, at
            solve time, per-sample time grids, dense output, or a controller torchdiffeq
            cannot follow.
    """

    method: str = "dopri5"
    adjoint: bool = False
    term_types: ClassVar[tuple[type, ...]] = (AbstractDriftTerm,)

    def __post_init__(self) -> None:
        check_choice("method", self.method, available_methods())
        check_instance("adjoint", self.adjoint, bool)

    @property
    def order(self) -> float:
        """The method's order of convergence."""
        return _METHODS[self.method][0]

    @property
    def error_order(self) -> int | None:
        """Order of the embedded error estimate; `None` for fixed-grid methods."""
        return _METHODS[self.method][1]

    def integrate(self, problem: Problem, y0: Tensor) -> Solution:
        """Solve `problem` from `y0` `[B, *state]` with torchdiffeq; returns a `Solution`."""
        ts = _shared_times(problem)
        field = (_Field if self.error_order is None else _AdaptiveField)(problem, y0.shape[0])
        options, tolerances = self._options(problem, field)
        odeint = torchdiffeq.odeint_adjoint if self.adjoint else torchdiffeq.odeint
        try:
            ys = odeint(field, y0, ts, method=self.method, options=options, **tolerances)
        except (AssertionError, _OutOfSteps) as error:
            status = Status.MAX_STEPS if isinstance(error, _OutOfSteps) else _failure_status(error)
            return _failed(problem, y0, field, status)
        ys = ys.transpose(0, 1)
        finite = torch.isfinite(ys).flatten(1).all(dim=1)
        status = torch.where(finite, int(Status.SUCCESS), int(Status.NONFINITE)).long()
        return Solution(problem.ts, ys, status, field.stats(y0), problem.ts[:, -1], ys[:, -1])

    def _options(self, problem: Problem, field: _Field) -> tuple[dict[str, Any], dict[str, float]]:
        """torchdiffeq's `options` and `rtol`/`atol` from the problem's controller."""
        controller, name = problem.controller, f"TorchDiffEq({self.method!r})"
        if problem.dense:
            raise InvalidInputError(f"{name} has no dense output; solve with dense=False or a neuralct solver")
        jumps = _jumps_inside(problem)
        if self.error_order is None:
            if not isinstance(controller, ConstantStep):
                raise InvalidInputError(f"{name} is a fixed-grid method; use nct.ConstantStep(dt)")
            if problem.dt0 is not None:
                raise InvalidInputError(f"{name} steps on a fixed grid of ConstantStep.dt; `dt0` must be None")
            grid = _grid_constructor(controller.dt, jumps)
            return {"grid_constructor": grid, "perturb": jumps is not None}, {}
        if not isinstance(controller, PIDController):
            raise InvalidInputError(f"{name} is adaptive and needs a PIDController; got {describe(controller)}")
        if (controller.pcoeff, controller.icoeff, controller.dcoeff) != (0.0, 1.0, 0.0) or controller.dt_min != 0:
            raise InvalidInputError(
                f"{name} has an integral controller and no failing minimum step: use "
                "PIDController(pcoeff=0, icoeff=1, dcoeff=0, dt_min=0)"
            )
        options: dict[str, Any] = {
            "norm": lambda scaled: controller.norm(scaled).max(),
            "safety": controller.safety,
            "ifactor": controller.factor_max,
            "dfactor": controller.factor_min,
        }
        if math.isfinite(controller.dt_max):
            options["max_step"] = controller.dt_max
        if problem.dt0 is not None:
            options["first_step"] = problem.dt0
        if jumps is not None:
            options["jump_t"] = jumps
        return options, {"rtol": controller.rtol, "atol": controller.atol}


class _OutOfSteps(Exception):
    """Raised from the step callback when the solve exceeds `max_steps`."""


class _Field(nn.Module):
    """torchdiffeq's view of the term: `f(t, y)` with scalar `t`, counting calls and steps."""

    def __init__(self, problem: Problem, batch: int):
        super().__init__()
        self.term = problem.term
        self.args, self.batch, self.max_steps = problem.args, batch, problem.max_steps
        self.time_dtype = problem.ts.dtype
        self.calls = self.steps = self.accepted = self.rejected = 0
        self.last: tuple[Tensor, Tensor] | None = None

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        self.calls += 1
        return self.term.vector_field(t.to(self.time_dtype).expand(self.batch), y, self.args)

    def callback_step(self, t0: Tensor, y0: Tensor, dt: Tensor) -> None:
        self.last = (t0, y0)
        if self.steps >= self.max_steps:
            raise _OutOfSteps
        self.steps += 1

    def stats(self, y0: Tensor) -> SolveStats:
        """Counts of the joint solve for every sample (fixed grids accept every step)."""
        counts = (self.calls, self.steps, self.steps, 0)
        return SolveStats(*(torch.full((self.batch,), c, dtype=torch.long, device=y0.device) for c in counts))


class _AdaptiveField(_Field):
    """`_Field` that also counts accepted and rejected steps (adaptive methods only: fixed-grid
    methods do not call these callbacks and torchdiffeq warns when they are defined)."""

    def callback_accept_step(self, t0: Tensor, y0: Tensor, dt: Tensor) -> None:
        self.accepted += 1

    def callback_reject_step(self, t0: Tensor, y0: Tensor, dt: Tensor) -> None:
        self.rejected += 1

    def stats(self, y0: Tensor) -> SolveStats:
        """Counts of the joint solve for every sample."""
        counts = (self.calls, self.steps, self.accepted, self.rejected)
        return SolveStats(*(torch.full((self.batch,), c, dtype=torch.long, device=y0.device) for c in counts))


def _shared_times(problem: Problem) -> Tensor:
    """The `[K]` time grid of the batch; torchdiffeq has no per-sample times."""
    ts = problem.ts
    differs = (ts != ts[:1]).any(dim=1).nonzero()
    if len(differs):
        raise InvalidInputError(
            f"TorchDiffEq needs one time grid shared by the batch (torchdiffeq has no per-sample times); "
            f"`t` of sample {int(differs[0])} differs from sample 0: pass `t` as [K] or solve samples separately"
        )
    return ts[0]


def _jumps_inside(problem: Problem) -> Tensor | None:
    """`[J]` sorted distinct jump times of any sample strictly inside the solve's span."""
    if problem.jumps is None:
        return None
    ts, direction = problem.ts[0], problem.direction[0]
    jumps = problem.jumps.flatten().unique()
    jumps = jumps[(direction * (jumps - ts[0]) > 0) & (direction * (ts[-1] - jumps) > 0)]
    return jumps if len(jumps) else None


def _grid_constructor(dt: float, jumps: Tensor | None) -> Any:
    """torchdiffeq `grid_constructor`: steps of `dt` from each save or jump time to the next
    (the grid of neuralct's loop under `ConstantStep(dt)`); works on whatever `t` it is given
    (the adjoint calls it on reversed stretches)."""

    def construct(func: Any, y0: Tensor, t: Tensor) -> Tensor:
        direction = torch.sign(t[-1] - t[0])
        marks = t
        if jumps is not None:
            inside = jumps.to(t)[(direction * (jumps.to(t) - t[0]) > 0) & (direction * (t[-1] - jumps.to(t)) > 0)]
            marks = torch.cat([t, inside]).unique()
            marks = marks.flip(0) if direction < 0 else marks
        start, end = marks[:-1], marks[1:]
        count = int(torch.ceil((end - start).abs().max() / dt).item())
        k = torch.arange(1, max(count, 1), dtype=t.dtype, device=t.device)
        inner = start[:, None] + direction * dt * k[None, :]
        keep = direction * (inner - end[:, None]) < 0
        points = torch.cat([inner, end[:, None]], dim=1)
        keep = torch.cat([keep, torch.ones_like(keep[:, :1])], dim=1)
        return torch.cat([marks[:1], points[keep]])

    return construct


def _failure_status(error: AssertionError) -> Status:
    for text, status in _FAILURES.items():
        if str(error).startswith(text):
            return status
    raise error


def _failed(problem: Problem, y0: Tensor, field: _Field, status: Status) -> Solution:
    """The partial solution of a failed joint solve: `y0`, then NaN; status for every sample."""
    batch = y0.shape[0]
    ys = torch.full((batch, problem.ts.shape[1]) + y0.shape[1:], torch.nan, dtype=y0.dtype, device=y0.device)
    ys[:, 0] = y0
    t_last, y_last = field.last if field.last is not None else (problem.ts[0, 0], y0)
    t_final = t_last.detach().to(problem.ts.dtype).expand(batch).clone()
    codes = torch.full((batch,), int(status), dtype=torch.long, device=y0.device)
    return Solution(problem.ts, ys, codes, field.stats(y0), t_final, y_last.detach().clone())


__all__ = ["TorchDiffEq", "available_methods"]
