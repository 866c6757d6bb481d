"""`solve`: the one entry point that integrates any term with any compatible solver."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from ._checks import describe
from ._loop import Problem, hold_past_ends
from ._validate import check_lengths, check_step_options, check_term_tensors, check_times, check_y0
from .controllers.base import AbstractController
from .controllers.pid import PIDController
from .errors import InvalidInputError, SolveFailed
from .gradients.backprop import Backprop
from .gradients.base import AbstractGradient
from .solution import Solution, Status
from .solvers.base import AbstractBackendSolver, AbstractSolver
from .solvers.rk import AbstractExplicitRK, Tsit5
from .terms.base import AbstractTerm

_ADVICE = {
    Status.MAX_STEPS: "raise max_steps ({max_steps}), loosen rtol/atol, or, if the problem is stiff, "
    "try an implicit solver (nct.ImplicitEuler())",
    Status.DT_UNDERFLOW: "the step size vanished: the solution may blow up or be stiff; try an implicit solver "
    "(nct.ImplicitEuler()), looser tolerances or a smaller dt_min",
    Status.NONFINITE: "the state or error estimate became NaN/inf: check the vector field for overflow or "
    "domain errors, or take smaller steps",
    Status.NEWTON_FAILED: "Newton's iteration did not converge: take smaller steps or allow more iterations",
}


def solve(
    term: AbstractTerm,
    y0: Tensor,
    t: Tensor,
    *,
    solver: AbstractSolver = Tsit5(),
    controller: AbstractController = PIDController(rtol=1e-3, atol=1e-6),
    gradient: AbstractGradient = Backprop(),
    dt0: float | None = None,
    max_steps: int = 4096,
    throw: bool = True,
    dense: bool = False,
    args: Any = None,
    compile: bool = False,
    lengths: Tensor | None = None,
) -> Solution:
    """Integrate `term` from `y0` over per-sample time grids.

    Every sample has its own step size, accept/reject decisions, status and statistics;
    a sample's result does not depend on the rest of the batch.

    Args:
        term: what to integrate (`ODETerm`, `ControlTerm`, an SDE `MultiTerm`, `DelayTerm`, ...).
        y0: `[B, *state]` initial state at `t[:, 0]`.
        t: `[K]` shared or `[B, K]` per-sample save times; each row strictly increasing or
            strictly decreasing. The solve starts at the first time of each row.
        solver: the method; must accept `term` (checked before solving).
        controller: `PIDController(...)` for adaptive steps or `ConstantStep(dt)`.
        gradient: `Backprop()`, `Backprop(checkpoint_every=k)` or `Backsolve()`.
        dt0: first step magnitude; `None` chooses it per sample.
        max_steps: steps (accepted or rejected) allowed per sample.
        throw: raise `SolveFailed` when a sample fails; with `False`, return the partial
            solution and read `Solution.status`.
        dense: keep the dense interpolant so that `Solution.evaluate(t)` works.
        args: passed unchanged to the vector field(s).
        compile: run each step's arithmetic, vector field included, through
            `torch.compile` (see the guide's "Making solves fast"): fewer, fused kernels
            per step, after a compilation of several seconds on the first solve of each
            shape, dtype and configuration. The vector field must be traceable by
            `torch.compile` (no Python side effects that change between calls). The
            backward solve of `Backsolve()` stays uncompiled.
        lengths: `[B]` integers: sample b ends at its save time `t[b, lengths[b] - 1]`, and
            the later columns of its row are padding (as in a padded batch of series of
            different lengths, see `IrregularBatch.lengths`). Each sample then costs only
            its own span: it is not integrated over the padding, its result and statistics
            are those of solving it alone, and its outputs past its end repeat its last one
            (so their gradient reaches that output). `None`: every sample ends at `t[:, -1]`.
            Peer backends (torchdiffeq, torchsde) integrate over the padding and only
            repeat the last output.

    Returns:
        A [`Solution`][neuralct.Solution] with `ts` `[B, K]`, `ys` `[B, K, *state]`,
        `status` `[B]` and per-sample `stats`.

    Raises:
        InvalidInputError: bad `y0`, `t`, `lengths`, `max_steps` or `dt0` (a `ValueError`).
        IncompatibleTermError: a solver/term/controller mismatch or a dtype/device clash
            (a `TypeError`).
        SolveFailed: some sample failed and `throw=True`.
    """
    _check_kinds(term, solver, controller, gradient)
    y0 = check_y0(y0)
    ts, direction = check_times(t, y0.shape[0], y0)
    lengths = check_lengths(lengths, ts)
    check_term_tensors(term, y0)
    check_step_options(max_steps, dt0)
    _check_compile(compile, solver)
    solver.check_term(term)
    controller.check_solver(solver)
    problem = Problem(
        term=term,
        solver=solver,
        controller=controller,
        ts=ts,
        direction=direction,
        args=args,
        max_steps=max_steps,
        dt0=dt0,
        dense=dense,
        jumps=_jump_times(solver, term, ts),
        compile=compile,
        lengths=lengths,
    )
    if isinstance(solver, AbstractBackendSolver):
        solution = solver.integrate(problem, y0)
        solution = dataclasses.replace(solution, ys=hold_past_ends(solution.ys, lengths))
    else:
        gradient.check(problem)
        solution = gradient.run(problem, y0)
    if throw and not bool(solution.succeeded.all()):
        raise SolveFailed(failure_message(solution, max_steps), solution)
    return solution


def _check_kinds(term: Any, solver: Any, controller: Any, gradient: Any) -> None:
    for name, value, kind in (
        ("term", term, AbstractTerm),
        ("solver", solver, AbstractSolver),
        ("controller", controller, AbstractController),
        ("gradient", gradient, AbstractGradient),
    ):
        if not isinstance(value, kind):
            raise TypeError(f"`{name}` must be an {kind.__name__}; got {describe(value)}")


def _check_compile(compile: Any, solver: AbstractSolver) -> None:
    if not isinstance(compile, bool):
        raise InvalidInputError(f"`compile` must be True or False; got {compile!r}")
    if compile and not isinstance(solver, AbstractExplicitRK):
        raise InvalidInputError(
            f"`compile=True` needs an explicit Runge-Kutta solver (Tsit5, Dopri5, RK4, ...), whose steps are "
            f"fixed tensor arithmetic; {type(solver).__name__} is not one: leave `compile` False"
        )


def _jump_times(solver: AbstractSolver, term: AbstractTerm, ts: Tensor) -> Tensor | None:
    jumps = solver.jump_times(term, ts)
    if jumps is None:
        return None
    if jumps.ndim == 1:
        jumps = jumps.expand(ts.shape[0], -1)
    if jumps.ndim != 2 or jumps.shape[0] != ts.shape[0]:
        raise InvalidInputError(
            f"term.jump_times() must be [J] or [B, J] with B = {ts.shape[0]}; got {tuple(jumps.shape)}"
        )
    jumps = jumps.to(device=ts.device, dtype=ts.dtype)
    if jumps.shape[1] == 0:
        return None
    return jumps


def failure_message(solution: Solution, max_steps: int, shown: int = 5) -> str:
    """Describe the failed samples of `solution` and what to change."""
    failed = (~solution.succeeded).nonzero().flatten().tolist()
    lines = [f"solve failed for {len(failed)} of {solution.status.shape[0]} samples:"]
    for b in failed[:shown]:
        status = Status(int(solution.status[b]))
        t_end = float(solution.ts[b, -1])
        lines.append(f"  sample {b}: {status.name} at t = {float(solution.t_final[b]):.6g} (solving to {t_end:.6g})")
    if len(failed) > shown:
        lines.append(f"  ... and {len(failed) - shown} more")
    coarse = [b for b in failed if _time_resolution_too_coarse(solution, b)]
    reasons = {Status(int(solution.status[b])) for b in failed if b not in coarse}
    for status in sorted(reasons):
        lines.append(f"{status.name}: {_ADVICE[status].format(max_steps=max_steps)}")
    if coarse:
        lines.append(_resolution_advice(solution, coarse[0]))
    lines.append("Pass throw=False to get the partial solution and per-sample statuses instead.")
    return "\n".join(lines)


def _time_resolution_too_coarse(solution: Solution, b: int) -> bool:
    """Whether sample `b` failed with DT_UNDERFLOW where its time dtype cannot resolve a
    millionth of its span: its step vanished by rounding rather than by error control."""
    if int(solution.status[b]) != Status.DT_UNDERFLOW:
        return False
    ts = solution.ts[b]
    ulp = torch.finfo(ts.dtype).eps * solution.t_final[b].abs()
    return bool(ulp > 1e-6 * (ts[-1] - ts[0]).abs())


def _resolution_advice(solution: Solution, b: int) -> str:
    """What to change for sample `b`, whose step vanished below its times' resolution."""
    t = solution.t_final[b]
    ulp = float(torch.finfo(t.dtype).eps * t.abs())
    span = float((solution.ts[b, -1] - solution.ts[b, 0]).abs())
    return (
        f"DT_UNDERFLOW (sample {b}): the step vanished by rounding, not by stiffness: {t.dtype} times near "
        f"t = {float(t):.6g} resolve no step below about {ulp:.2g}, too coarse for a span of {span:.6g}; shift "
        f"the times to start near 0, or pass the times in float64 (the state may stay {solution.ys.dtype})"
    )


__all__ = ["failure_message", "solve"]
