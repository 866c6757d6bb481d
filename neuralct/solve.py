"""`solve`: the one entry point that integrates any term with any compatible solver."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from ._checks import check_instance, describe
from ._loop import hold_past_ends
from ._loop.compile import compile_refusal
from ._validate import check_lengths, check_step_options, check_term_tensors, check_times, check_y0
from .controllers.base import AbstractController
from .controllers.pid import PIDController
from .errors import InvalidInputError, SolveFailed
from .events import Event
from .gradients.backprop import Backprop
from .gradients.base import AbstractGradient
from .problem import AbstractRunner, Problem
from .saveat import SaveAt
from .solution import Solution, failure_message
from .solvers.base import AbstractSolver
from .solvers.rk import Tsit5
from .terms.base import AbstractTerm


def solve(
    term: AbstractTerm,
    y0: Tensor,
    t: Tensor,
    *,
    solver: AbstractSolver | AbstractRunner = Tsit5(),
    controller: AbstractController = PIDController(rtol=1e-3, atol=1e-6),
    gradient: AbstractGradient = Backprop(),
    dt0: float | None = None,
    max_steps: int = 4096,
    throw: bool = True,
    dense: bool = False,
    args: Any = None,
    compile: bool = False,
    lengths: Tensor | None = None,
    event: Event | None = None,
    saveat: SaveAt | None = None,
    compact: bool = False,
) -> Solution:
    """Integrate `term` from `y0` over per-sample time grids (the guide: docs/guide/solve.md).

    Every sample has its own step size, accept/reject decisions, status and statistics;
    a sample's result does not depend on the rest of the batch.

    Args:
        term: what to integrate (`ODETerm`, `ControlTerm`, `SDETerm`, `DelayTerm`, ...).
        y0: `[B, *state]` initial state at `t[:, 0]`.
        t: `[K]` shared or `[B, K]` per-sample save times, each row strictly monotonic.
        solver: a step solver, or an `AbstractRunner` that integrates the whole problem and owns
            its gradient (`TorchDiffEq`, `TorchSDE`, `LogODE`); must accept `term`.
        controller: `PIDController(...)` for adaptive steps or `ConstantStep(dt)`.
        gradient: `Backprop()`, `Backprop(checkpoint_every=k)` or `Backsolve()`.
        dt0: first step magnitude; `None` chooses it per sample.
        max_steps: steps (accepted or rejected) allowed per sample.
        throw: raise `SolveFailed` when a sample fails; `False` returns the partial solution.
        dense: keep the dense interpolant for `Solution.evaluate(t)`.
        args: passed unchanged to the vector field(s).
        compile: run each step through `torch.compile` (explicit RK, `LTCFused`, `SymplecticEuler`,
            `MethodOfSteps`, SDE solvers on a `BrownianGrid`; the guide's "Compiled steps").
        lengths: `[B]` integers: sample b ends at `t[b, lengths[b] - 1]` and costs only its own
            span; its outputs past the end repeat its last one (the guide's "Padded batches").
        event: an `Event`: stop each sample where `cond(t, y, args)` crosses zero (the guide's "Events").
        saveat: a `SaveAt`: the times of `t`, its ends, or every step (the guide's "Choosing what is saved").
        compact: gather the running samples into a smaller batch as others finish (the guide's "Finished samples").

    Returns:
        A [`Solution`][neuralct.Solution] with `ts` `[B, K]`, `ys` `[B, K, *state]`,
        `status` `[B]` and per-sample `stats` (and `mask`, `event_t`, `event_y` as asked).

    Raises:
        InvalidInputError: bad `y0`, `t`, `lengths`, `max_steps`, `dt0`, `event`, `saveat` or `compact`.
        IncompatibleTermError: a solver/term/controller mismatch or a dtype/device clash.
        SolveFailed: some sample failed and `throw=True`.
    """
    _check_kinds(term, solver, controller, gradient)
    _check_outputs(event, saveat, solver, gradient)
    y0 = check_y0(y0)
    problem = _problem(term, y0, t, solver, controller, dt0, max_steps, dense, args, compile, lengths, event, saveat)
    solution = _run(dataclasses.replace(problem, compact=compact), y0, gradient)
    return _checked(solution, throw, max_steps, problem.t_end)


def _checked(solution: Solution, throw: bool, max_steps: int, t_end: Tensor) -> Solution:
    """`solution`, or `SolveFailed` when `throw` and a sample failed (`t_end` `[B]` its end times)."""
    if throw and not bool(solution.succeeded.all()):
        raise SolveFailed(failure_message(solution, max_steps, t_end), solution)
    return solution


def _problem(
    term: AbstractTerm,
    y0: Tensor,
    t: Tensor,
    solver: AbstractSolver | AbstractRunner,
    controller: AbstractController,
    dt0: float | None,
    max_steps: int,
    dense: bool,
    args: Any,
    compile: bool,
    lengths: Tensor | None,
    event: Event | None = None,
    saveat: SaveAt | None = None,
) -> Problem:
    """The checked `Problem` of a solve of `y0` `[B, *state]` over the times `t` (`[K]` or `[B, K]`)."""
    ts, direction = check_times(t, y0.shape[0], y0)
    lengths = check_lengths(lengths, ts)
    check_term_tensors(term, y0)
    check_step_options(max_steps, dt0)
    _check_compile(compile, solver, term)
    solver.check_term(term)
    # The solver's own check first: an SDE solver without an error estimate names the adaptive
    # SDE solvers, where the controller's generic message would suggest an ODE solver.
    if controller.adaptive and isinstance(solver, AbstractSolver):
        solver.check_adaptive_term(term)
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
    return problem if saveat is None and event is None else _with_outputs(problem, event, saveat or SaveAt())


def _run(problem: Problem, y0: Tensor, gradient: AbstractGradient) -> Solution:
    """Hand `problem` (from `y0` `[B, *state]`) to its runner, or to `gradient`, which runs the loop."""
    if isinstance(problem.solver, AbstractRunner):
        solution = problem.solver.integrate(problem, y0)
        return dataclasses.replace(solution, ys=hold_past_ends(solution.ys, problem.lengths))
    gradient.check(problem)
    return gradient.run(problem, y0)


def _check_outputs(
    event: Any, saveat: Any, solver: AbstractSolver | AbstractRunner, gradient: AbstractGradient
) -> None:
    """Refuse an `event` or `saveat` of the wrong type, and an event or saved steps with a
    runner or a gradient other than `Backprop`, which do not run them."""
    if event is not None:
        check_instance("event", event, Event)
    if saveat is not None:
        check_instance("saveat", saveat, SaveAt)
    for name, asked in (
        ("event", event is not None),
        ("saveat=SaveAt(steps=True)", saveat is not None and saveat.steps),
    ):
        if asked and isinstance(solver, AbstractRunner):
            raise InvalidInputError(
                f"`{name}` needs a step solver in neuralct's loop; {type(solver).__name__} integrates the whole "
                f"problem its own way"
            )
        if asked and not isinstance(gradient, Backprop):
            raise InvalidInputError(
                f"`{name}` needs `gradient=Backprop()` (with or without checkpointing), which differentiates through "
                f"it; {type(gradient).__name__} does not"
            )


def _with_outputs(problem: Problem, event: Event | None, saveat: SaveAt) -> Problem:
    """`problem` with `event`, and, when `saveat` keeps only the span of the times, save times
    `[B, 2]`: each sample's first time and its last (within `lengths`)."""
    if not saveat.spans_only:
        return dataclasses.replace(problem, event=event)
    ts, lengths = problem.ts, problem.lengths
    span = torch.stack([ts[:, 0], problem.t_end], dim=1)
    return dataclasses.replace(
        problem,
        ts=span,
        lengths=None if lengths is None else lengths.clamp_max(2),
        jumps=_jump_times(problem.solver, problem.term, span),
        event=event,
        save_steps=saveat.steps,
    )


def _check_kinds(term: Any, solver: Any, controller: Any, gradient: Any) -> None:
    for name, value, kinds in (
        ("term", term, (AbstractTerm,)),
        ("solver", solver, (AbstractSolver, AbstractRunner)),
        ("controller", controller, (AbstractController,)),
        ("gradient", gradient, (AbstractGradient,)),
    ):
        if not isinstance(value, kinds):
            expected = " or an ".join(kind.__name__ for kind in kinds)
            raise TypeError(f"`{name}` must be an {expected}; got {describe(value)}")


def _check_compile(compile: Any, solver: AbstractSolver | AbstractRunner, term: AbstractTerm) -> None:
    """Refuse a `compile` that is not a bool, and `compile=True` for steps that are not fixed
    tensor arithmetic (see `neuralct._loop.compile.compile_refusal`)."""
    if not isinstance(compile, bool):
        raise InvalidInputError(f"`compile` must be True or False; got {compile!r}")
    why = compile_refusal(solver, term) if compile else None
    if why is not None:
        raise InvalidInputError(
            f"`compile=True` needs steps that torch.compile can trace: {why}; leave `compile` False"
        )


def _jump_times(solver: AbstractSolver | AbstractRunner, term: AbstractTerm, ts: Tensor) -> Tensor | None:
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


__all__ = ["solve"]
