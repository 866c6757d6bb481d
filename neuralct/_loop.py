"""The batch-parallel step loop.

Each sample has its own time, step size, accept/reject decision, save pointer, status and
counters. A sample that finishes or fails freezes (its values stop changing) while the
others go on, so no sample's result depends on its batch mates. The loop state is
immutable: `advance` returns a new state, which lets gradient strategies re-run a stretch
of steps for checkpointing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .controllers.base import AbstractController, ControllerState
from .paths.dense import DenseInterpolant, evaluate_polynomial
from .solution import Solution, SolveStats, Status
from .solvers.base import AbstractSolver, Carry, StepResult
from .terms.base import AbstractTerm

VF_EVALS, STEPS, ACCEPTED, REJECTED = range(4)


@dataclass(frozen=True)
class Problem:
    """Everything fixed during a solve. `ts` is `[B, K]`, `direction` and `span` `[B]`,
    `jumps` `[B, J]` or `None`."""

    term: AbstractTerm
    solver: AbstractSolver
    controller: AbstractController
    ts: Tensor
    direction: Tensor
    args: Any
    max_steps: int
    dt0: float | None
    dense: bool
    jumps: Tensor | None

    @property
    def interpolate_saves(self) -> bool:
        """Adaptive solves with dense output interpolate save times instead of stepping onto them."""
        return self.controller.adaptive and self.solver.interpolates_saves


@dataclass(frozen=True)
class LoopState:
    """Per-sample loop state; every tensor is `[B, ...]` (counts is `[4, B]`)."""

    t: Tensor
    y: Tensor
    h: Tensor
    carry: Carry
    controller: ControllerState
    next_save: Tensor
    next_jump: Tensor
    status: Tensor
    done: Tensor
    counts: Tensor
    failure_reason: Tensor
    saves: tuple[Tensor, ...]
    save_slot: Tensor
    records: tuple[tuple[Tensor, ...], ...]


def initial_state(problem: Problem, y0: Tensor) -> LoopState:
    """Start every sample at `ts[:, 0]` with `y0` `[B, *state]` saved as its first output."""
    ts, direction = problem.ts, problem.direction
    batch, num_saves = ts.shape
    t0 = ts[:, 0]
    carry, evals = problem.solver.init(problem.term, t0, y0, problem.args)
    f0 = carry[0] if carry and isinstance(carry[0], Tensor) and carry[0].shape == y0.shape else None
    span = (ts[:, -1] - t0).abs()
    h, ctrl, ctrl_evals = problem.controller.init(
        problem.term, problem.solver, t0, y0, f0, direction, span, problem.dt0, problem.args
    )
    long = dict(dtype=torch.long, device=ts.device)
    counts = torch.zeros(4, batch, **long)
    counts[VF_EVALS] = evals + ctrl_evals
    if problem.jumps is not None:
        next_jump = (direction[:, None] * (problem.jumps - t0[:, None]) <= 0).sum(dim=1)
    else:
        next_jump = torch.zeros(batch, **long)
    return LoopState(
        t=t0,
        y=y0,
        h=h.to(ts.dtype),
        carry=carry,
        controller=ctrl,
        next_save=torch.ones(batch, **long),
        next_jump=next_jump,
        status=torch.full((batch,), int(Status.SUCCESS), **long),
        done=torch.full((batch,), num_saves == 1, dtype=torch.bool, device=ts.device),
        counts=counts,
        failure_reason=torch.zeros(batch, **long),
        saves=(y0,),
        save_slot=torch.zeros(batch, num_saves, **long),
        records=(),
    )


def advance(problem: Problem, state: LoopState, max_iterations: int | None = None) -> LoopState:
    """Take steps until every sample is done (or `max_iterations` loop iterations)."""
    iterations = 0
    while max_iterations is None or iterations < max_iterations:
        if bool(state.done.all()):
            break
        state = _iterate(problem, state)
        iterations += 1
    return state


def _gather_row(table: Tensor, index: Tensor) -> Tensor:
    """`table[b, index[b]]` for `[B, N]` table and `[B]` index (clamped)."""
    return table.gather(1, index.clamp_max(table.shape[1] - 1)[:, None]).squeeze(1)


def _boundary(problem: Problem, state: LoopState) -> tuple[Tensor, Tensor]:
    """The next time each sample must land on exactly, and whether it is a jump time."""
    direction = problem.direction
    if problem.interpolate_saves:
        boundary = problem.ts[:, -1]
    else:
        boundary = _gather_row(problem.ts, state.next_save)
    if problem.jumps is None:
        return boundary, torch.zeros_like(state.done)
    jump = _gather_row(problem.jumps, state.next_jump)
    jump = torch.where(state.next_jump < problem.jumps.shape[1], jump, direction * torch.inf)
    at_jump = direction * (jump - boundary) <= 0
    return torch.where(at_jump, jump, boundary), at_jump


def _iterate(problem: Problem, s: LoopState) -> LoopState:
    """One attempted step for every running sample."""
    direction, controller, solver = problem.direction, problem.controller, problem.solver
    running = ~s.done
    boundary, at_jump = _boundary(problem, s)
    proposal = s.t + s.h
    hit = direction * (proposal - boundary) >= 0
    t1 = torch.where(hit, boundary, proposal)
    h = t1 - s.t
    out = solver.step(problem.term, s.t, s.y, h, s.carry, problem.args, problem.interpolate_saves or problem.dense)
    accept, h_next, ctrl = controller.adapt(s.y, out.y1, out.error, h, s.controller, running, solver.error_order)
    finite = torch.isfinite(out.y1).flatten(1).all(dim=1)
    failed = out.failed if out.failed is not None else torch.zeros_like(finite)
    reason = torch.where(~finite, int(Status.NONFINITE), torch.where(failed, int(Status.NEWTON_FAILED), 0))
    accept = accept & running & finite & ~failed
    broken = running & (reason > 0) & ~accept
    if not controller.adaptive:
        h_next = torch.where(broken, h, h_next)
    t_new = torch.where(accept, t1, s.t)
    mask = accept.reshape(accept.shape + (1,) * (s.y.ndim - 1))
    y_new = torch.where(mask, out.y1, s.y)
    ctrl = tuple(torch.where(running, new, old) for new, old in zip(ctrl, s.controller))
    state = dataclasses.replace(
        s,
        t=t_new,
        y=y_new,
        h=torch.where(running, h_next.to(s.t.dtype), s.h),
        carry=solver.merge_carry(accept, out.carry, s.carry),
        controller=ctrl,
        counts=s.counts + torch.stack([out.evals * running, running, accept, running & ~accept]).long(),
        failure_reason=torch.where(running & ~accept, reason, s.failure_reason),
    )
    state = _record(problem, state, s, out, h, t1, accept, hit & ~at_jump)
    state = _after_jumps(problem, state, accept & hit & at_jump)
    return _update_status(problem, state, running, accept, h, broken)


def _where_rows(rows: Tensor, new: Tensor, old: Tensor) -> Tensor:
    return torch.where(rows.reshape(rows.shape + (1,) * (new.ndim - 1)), new, old)


def _save(state: LoopState, value: Tensor, rows: Tensor) -> LoopState:
    """Store `value` `[B, *state]` as the next output of the samples in `rows`."""
    slot = len(state.saves)
    columns = torch.arange(state.save_slot.shape[1], device=rows.device)
    target = rows[:, None] & (columns[None, :] == state.next_save[:, None])
    return dataclasses.replace(
        state,
        saves=state.saves + (value,),
        save_slot=torch.where(target, slot, state.save_slot),
        next_save=state.next_save + rows.long(),
    )


def _record(
    problem: Problem, state: LoopState, before: LoopState, out: StepResult, h: Tensor, t1: Tensor, accept: Tensor, hit_save: Tensor
) -> LoopState:
    """Write the outputs that the accepted steps reached, and the dense record."""
    if problem.dense:
        state = dataclasses.replace(state, records=state.records + ((before.t, t1, before.y, out.coeffs, accept),))
    if not problem.interpolate_saves:
        rows = accept & hit_save
        return _save(state, out.y1, rows) if bool(rows.any()) else state
    num_saves = problem.ts.shape[1]
    while True:
        target = _gather_row(problem.ts, state.next_save)
        due = accept & (state.next_save < num_saves) & (problem.direction * (target - t1) <= 0)
        if not bool(due.any()):
            return state
        theta = ((target - before.t) / h).to(before.y.dtype)
        value = evaluate_polynomial(before.y, out.coeffs, theta)
        value = _where_rows(target == t1, out.y1, value)
        state = _save(state, value, due)


def _after_jumps(problem: Problem, state: LoopState, jumped: Tensor) -> LoopState:
    """Samples that landed on a jump time restart their carry from the right-hand limit."""
    if problem.jumps is None or not bool(jumped.any()):
        return state
    carry, evals = problem.solver.init(problem.term, state.t, state.y, problem.args)
    counts = state.counts.clone()
    counts[VF_EVALS] += evals * jumped
    return dataclasses.replace(
        state,
        carry=problem.solver.merge_carry(jumped, carry, state.carry),
        next_jump=state.next_jump + jumped.long(),
        counts=counts,
    )


def _update_status(problem: Problem, state: LoopState, running: Tensor, accept: Tensor, h: Tensor, broken: Tensor) -> LoopState:
    """Finish samples that reached the end; fail those out of steps, step size or finite values."""
    finished = state.next_save >= problem.ts.shape[1]
    dt_min = problem.controller.dt_min
    stalled = running & ~accept & ((state.h.abs() < dt_min) | (state.t + state.h == state.t))
    vanished = running & (h == 0)
    status = state.status
    hard_failure = torch.zeros_like(broken)
    if not problem.controller.adaptive:
        hard_failure = broken
        status = torch.where(broken, state.failure_reason, status)
        stalled = stalled & ~broken
    underflow = (stalled | vanished) & ~finished
    reason = torch.where(state.failure_reason > 0, state.failure_reason, int(Status.DT_UNDERFLOW))
    status = torch.where(underflow, reason, status)
    out_of_steps = running & ~finished & ~underflow & (state.counts[STEPS] >= problem.max_steps)
    status = torch.where(out_of_steps, int(Status.MAX_STEPS), status)
    done = state.done | finished | underflow | out_of_steps | hard_failure
    return dataclasses.replace(state, status=status, done=done)


def finish(problem: Problem, state: LoopState) -> Solution:
    """Assemble the `Solution` from the final loop state."""
    y = state.saves[0]
    values = torch.stack(state.saves + (torch.full_like(y, torch.nan),), dim=1)
    missing = state.save_slot.new_full((), len(state.saves))
    filled = torch.arange(problem.ts.shape[1], device=y.device)[None, :] < state.next_save[:, None]
    slot = torch.where(filled, state.save_slot, missing)
    batch = torch.arange(y.shape[0], device=y.device)[:, None]
    ys = values[batch, slot]
    counts = state.counts
    stats = SolveStats(counts[VF_EVALS], counts[STEPS], counts[ACCEPTED], counts[REJECTED])
    return Solution(
        ts=problem.ts,
        ys=ys,
        status=state.status,
        stats=stats,
        t_final=state.t,
        y_final=state.y,
        dense=_dense(problem, state),
    )


def _dense(problem: Problem, state: LoopState) -> DenseInterpolant | None:
    if not problem.dense or not state.records:
        return None
    t0, t1, y0, coeffs, accepted = (torch.stack(parts, dim=1) for parts in zip(*state.records))
    return DenseInterpolant(t0, t1, y0, coeffs, accepted, problem.direction)
