"""The loop: start, iterate until every sample is done, settle, and assemble the `Solution`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import Tensor

from ..controllers.base import ControllerStart, ControllerState
from ..errors import IncompatibleTermError
from ..paths.dense import DenseInterpolant
from ..problem import Problem
from ..solution import Solution, SolveStats, Status
from ..terms.base import AbstractTerm
from .checks import deferring
from .clock import advance_clock, first_clock
from .compaction import bucket, compacted
from .compile import AttemptStep, step_function, stride_runs
from .counters import count, first_counters, settle_counters
from .events import event_outputs, find_events, first_events, hold_past_events, stop_at_events
from .jumps import cross_jumps, first_jump, start_time
from .look import look
from .outputs import gather_saves, hold_past_ends
from .progress import first_progress, update_progress
from .records import StepRecord, Steps
from .saves import first_saves, flush, read_pending, record_saves
from .state import LoopState, Tally
from .strides import FEWEST, Trial, stride, strides_apply
from .trail import extend, first_visit, trail_outputs


def initial_state(problem: Problem, y0: Tensor) -> LoopState:
    """Start every sample at `ts[:, 0]` with `y0` `[B, *state]` saved as its first output.

    The loop starts from a copy of `y0`, so a vector field that changes its input in place
    (refused at the first evaluation, see `_check_first_step`) cannot reach the caller's tensor.
    """
    ts = problem.ts
    y0 = y0.clone()
    # Contiguous: under `compile=True` the strides of the loop state stay those of later
    # steps, which spares a recompilation.
    t0 = ts[:, 0].contiguous()
    t_start = start_time(problem, t0)
    carry, evals = problem.solver.init(problem.term, t_start, y0, problem.args)
    _check_unchanged(problem.term, y0)
    f0 = carry[0] if carry and isinstance(carry[0], Tensor) and carry[0].shape == y0.shape else None
    h, controller, controller_evals = _start_controller(problem, t0, y0, f0)
    # The loop never changes a state tensor in place, so the records can share these.
    zeros = torch.zeros(t0.shape, dtype=torch.long, device=t0.device)
    ones = torch.ones_like(zeros)
    return LoopState(
        clock=first_clock(problem, t0, t_start, h.to(ts.dtype), first_jump(problem, t0, zeros)),
        y=y0,
        carry=carry,
        controller=controller,
        saves=first_saves(problem, y0, zeros, ones),
        counters=first_counters(evals + controller_evals, zeros),
        progress=first_progress(problem, f0),
        records=(),
        events=first_events(problem, t0, y0),
        trail=first_visit(t0, y0) if problem.save_steps else (),
    )


def _start_controller(
    problem: Problem, t0: Tensor, y0: Tensor, f0: Tensor | None
) -> tuple[Tensor, ControllerState, int]:
    """The controller's first signed step `[B]`, its state and the evaluations it spent, from the
    start times `t0` `[B]`, states `y0` and slopes `f0` (`[B, *state]` or `None`)."""
    start = ControllerStart(
        term=problem.term,
        solver=problem.solver,
        t0=t0,
        y0=y0,
        f0=f0,
        direction=problem.direction,
        span=(problem.t_end - t0).abs(),
        dt0=problem.dt0,
        args=problem.args,
    )
    return problem.controller.init(start)


def advance(problem: Problem, state: LoopState, max_iterations: int | None = None) -> LoopState:
    """Take steps until every sample is done (or `max_iterations` loop iterations), looking at
    the device's values only every few iterations (`look.py`): the iterations past a sample's
    end are exact no-ops for it, and none runs past `problem.max_steps`. Under a `ConstantStep`
    the iterations between two looks run as one stride where no sample can reach a boundary
    (`strides.py`)."""
    attempt = step_function(problem)
    take_stride = deferring(problem, stride) if strides_apply(problem) else None
    runs = stride_runs(problem)
    stop = problem.max_steps if max_iterations is None else min(problem.max_steps, state.iteration + max_iterations)
    trial = None
    while state.iteration < stop:
        state, seen = look(problem, state, trial)
        trial = None
        if not seen.held:  # the stride is discarded: its iterations run one by one
            state = _iterations(problem, attempt, state, seen.ahead)
            continue
        if seen.ahead == 0:
            break
        size = bucket(seen.running, state.y.shape[0]) if problem.compact else None
        smaller = None if size is None else compacted(problem, state, size, _until(stop), settle)
        if smaller is not None:
            state = smaller
            continue
        ahead = min(seen.ahead, stop - state.iteration)
        # A stride is always followed by a look, which reads whether it held.
        if take_stride is not None and seen.clear >= FEWEST and 0 < state.iteration < stop - ahead:
            before, steps = state, min(ahead, seen.clear)
            state, held = take_stride(problem, state, steps, runs)
            trial = Trial(before, ahead, held)
            ahead -= steps
        state = _iterations(problem, attempt, state, ahead)
    return state


def _iterations(problem: Problem, attempt: AttemptStep, state: LoopState, count: int) -> LoopState:
    """`count` loop iterations of `state`, one by one."""
    for _ in range(count):
        state = _iterate(problem, attempt, state)
    return state


def _until(stop: int) -> Callable[[Problem, LoopState], LoopState]:
    """`advance` up to loop iteration `stop`, for a sub-batch (`compaction.py`)."""
    return lambda problem, state: advance(problem, state, stop - state.iteration)


def _iterate(problem: Problem, attempt: AttemptStep, s: LoopState) -> LoopState:
    """One loop iteration: attempt a step, record its saves, count it, move past jump
    times, update the statuses and advance the clock."""
    step = attempt(problem, s)
    if s.iteration == 0:
        _check_first_step(problem.term, s.y, step.out.y1)
    step, events, stopped = find_events(problem, s, step)
    out = step.out
    record = StepRecord(t0=s.clock.t, t1=step.end.t1, y0=s.y, y1=out.y1, coeffs=out.coeffs, accepted=step.accept)
    saves, finished, landed = record_saves(problem, s.saves, step, record)
    carry, next_jump, jumped, jump_evals = cross_jumps(problem, s, step)
    counters = count(s.counters, Tally(step.running, step.accept, step.out.evals), jumped, jump_evals)
    clock = advance_clock(problem, s, step, next_jump, landed)
    return LoopState(
        clock=clock,
        y=step.y,
        carry=carry,
        controller=step.decision.state,
        saves=saves,
        counters=counters,
        progress=stop_at_events(update_progress(problem, s, step, finished, clock.reach), stopped),
        records=s.records + (record,) if problem.dense else s.records,
        iteration=s.iteration + 1,
        events=events,
        trail=extend(s.trail, step) if problem.save_steps else s.trail,
    )


def settle(problem: Problem, state: LoopState) -> LoopState:
    """`state` with nothing pending: the save times its window of step records passed are
    written and its tallied iterations added to its counters. A settled state holds the
    current step's values, not the records of up to `SAVE_WINDOW` earlier steps (each with
    the step's stages): what a checkpoint keeps of a stretch's start, and how a solve ends."""
    saves = state.saves
    if saves.window or not problem.interpolate_saves:  # a solve that steps onto its end notes no landing
        saves = flush(problem, state.clock.t, state.y, saves, read_pending(problem, state.clock.t, saves))
    return dataclasses.replace(state, saves=saves, counters=settle_counters(state.counters))


def finish(problem: Problem, state: LoopState) -> Solution:
    """Assemble the `Solution` from the final loop state."""
    state = settle(problem, state)
    counters = state.counters
    ts, ys, mask = _outputs(problem, state)
    event_t, event_y, event_count = event_outputs(problem.event, state.events)
    return Solution(
        ts=ts,
        ys=ys,
        status=state.progress.status,
        stats=SolveStats(counters.vf_evals, counters.steps, counters.accepted, counters.steps - counters.accepted),
        t_final=state.clock.t,
        y_final=state.y,
        dense=_dense(problem, state),
        mask=mask,
        event_t=event_t,
        event_y=event_y,
        event_count=event_count,
    )


def _outputs(problem: Problem, state: LoopState) -> tuple[Tensor, Tensor, Tensor | None]:
    """`(ts, ys, mask)` of the `Solution` from a settled state: the saves at `problem.ts`
    `[B, K]` (the outputs of samples a terminal event stopped held at its state past it, and
    `mask` `[B, K]` the outputs reached, in solves with an event), or every step's."""
    if problem.save_steps:
        return trail_outputs(state.trail)
    ys = gather_saves(problem, state.saves, state.y)
    mask = None
    if problem.event is not None:
        mask = torch.arange(ys.shape[1], device=ys.device) < state.saves.next_save[:, None]
        ys = hold_past_events(ys, mask, state.progress.status == int(Status.EVENT), state.y)
    return problem.ts, hold_past_ends(ys, problem.lengths), mask


def _dense(problem: Problem, state: LoopState) -> DenseInterpolant | None:
    """The dense output over the recorded steps (`dense=True`), up to where each sample
    stopped when a terminal event may have stopped it short of its last step's end."""
    if not (problem.dense and state.records):
        return None
    stopped = problem.event is not None and problem.event.terminal
    return Steps.stack(state.records).interpolant(problem.direction, stop=state.clock.t if stopped else None)


def _check_unchanged(term: AbstractTerm, y: Tensor) -> None:
    """Refuse a vector field that changed its input `y` in place (its version counter moved):
    the solve would go on from a state that is not the one the step started from."""
    if not y.is_inference() and y._version != 0:
        raise IncompatibleTermError(
            f"the vector field of {type(term).__name__} changed its input `y` in place (e.g. `y.mul_(2)` or "
            f"`y[:, 0] = 0`); return a new tensor instead (`y * 2`, `torch.cat`, ...)"
        )


def _check_first_step(term: AbstractTerm, y: Tensor, y1: Tensor) -> None:
    """Checks of a solve's first step, once per solve: the field left the state it was given
    (`y` `[B, *state]`, a fresh copy) unchanged, and the step's end state `y1` has its shape,
    dtype and device (a field of another dtype would promote the solution silently)."""
    _check_unchanged(term, y)
    if y1.shape != y.shape or y1.dtype != y.dtype or y1.device != y.device:
        raise IncompatibleTermError(
            f"a step of {type(term).__name__} turned a state of shape {tuple(y.shape)}, dtype {y.dtype} on "
            f"{y.device} into one of shape {tuple(y1.shape)}, dtype {y1.dtype} on {y1.device}: its vector field "
            f"must return the state's shape, dtype and device"
        )
