"""The batch-parallel step loop.

Each sample has its own time, step size, accept/reject decision, save pointer, status and
counters. A sample that finishes or fails freezes (its values stop changing) while the
others go on, so no sample's result depends on its batch mates. The loop state is
immutable: `advance` returns a new state, which lets gradient strategies re-run a stretch
of steps for checkpointing.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .controllers.base import AbstractController, ControllerState
from .errors import IncompatibleTermError
from .paths.dense import Coefficients, DenseInterpolant, accepted_end_keys, evaluate_polynomial, stack_coefficients
from .solution import Solution, SolveStats, Status
from .solvers.base import AbstractSolver, Carry, StepResult
from .terms.base import AbstractTerm


@dataclass(frozen=True)
class Problem:
    """Everything fixed during a solve. `ts` is `[B, K]`, `direction` `[B]`, `jumps` `[B, J]`
    or `None`, `lengths` `[B]` (sample b ends at its save time `lengths[b] - 1`; the later
    columns of its row are padding) or `None` (every sample ends at `ts[:, -1]`)."""

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
    compile: bool = False
    lengths: Tensor | None = None

    @functools.cached_property
    def attempt(self) -> Callable[[Problem, LoopState], Attempt]:
        """`attempt_step`, compiled by `torch.compile` when the solve asked for it."""
        if not self.compile:
            return attempt_step
        # The cached properties the step reads are filled here, outside the compiled graph:
        # `forward` reads a tensor's value, and torch.compile cannot enter the lock that
        # `functools.cached_property` takes on its first read (Python < 3.12).
        for name in ("forward", "interpolate_saves", "want_coefficients", "t_end", "time_slack", "jump_table"):
            getattr(self, name)
        return _compiled_attempt_step()

    @functools.cached_property
    def interpolate_saves(self) -> bool:
        """Adaptive solves with dense output interpolate save times instead of stepping onto
        them. A solve from one time to another has nothing between them to interpolate: it
        takes the same steps either way and keeps no window of step records."""
        return self.controller.adaptive and self.solver.interpolates_saves and self.ts.shape[1] > 2

    @functools.cached_property
    def key_times(self) -> Tensor:
        """`[B, K]` save times times the direction: increasing in every row."""
        return self.along(self.ts).contiguous()

    @functools.cached_property
    def forward(self) -> bool:
        """Whether every sample integrates forward in time."""
        return bool((self.direction > 0).all())

    def along(self, t: Tensor) -> Tensor:
        """`t` `[B, ...]` times each sample's direction: increasing along its solve."""
        return t if self.forward else self.direction.reshape(t.shape[:1] + (1,) * (t.ndim - 1)) * t

    @functools.cached_property
    def jump_table(self) -> Tensor | None:
        """`[B, J + 1]` the jump times with an infinite time in each sample's direction after
        the last, so `next_jump` (at most J) always indexes a row's next jump."""
        if self.jumps is None:
            return None
        return torch.cat([self.jumps, (self.direction * torch.inf).unsqueeze(1)], dim=1)

    @functools.cached_property
    def t_end(self) -> Tensor:
        """`[B]` last save time of each sample."""
        if self.lengths is None:
            return self.ts[:, -1].contiguous()
        return _gather_row(self.ts, self.lengths - 1)

    @functools.cached_property
    def save_counts(self) -> Tensor | int:
        """How many save times each sample has: `lengths` `[B]`, or K for every sample."""
        return self.ts.shape[1] if self.lengths is None else self.lengths

    @functools.cached_property
    def time_slack(self) -> Tensor:
        """`[B]` a few ulps of the largest time magnitude each sample meets: how far a step may
        fall short of a boundary by rounding alone."""
        largest = torch.maximum(self.ts[:, 0].abs(), self.t_end.abs())
        return 4 * torch.finfo(self.ts.dtype).eps * largest

    @functools.cached_property
    def want_coefficients(self) -> bool:
        """Whether steps must return dense-output coefficients."""
        return self.interpolate_saves or self.dense


# (t0, t1, y0, y1, dense coefficients, accepted) of one attempted step, all `[B, ...]`.
StepRecord = tuple[Tensor, Tensor, Tensor, Tensor, Coefficients, Tensor]

# Steps whose records are kept before the save times they passed are interpolated in one
# batch: bounds the memory of a solve without gradients while amortizing the interpolation.
SAVE_WINDOW = 32
# Loop iterations whose (running, accepted, evaluations) are tallied before they are added to
# the per-sample counters in one batch.
COUNT_WINDOW = 32

# (running, accepted, evaluations per running sample) of one loop iteration.
Tally = tuple[Tensor, Tensor, int]


@dataclass(frozen=True)
class LoopState:
    """Per-sample loop state; every tensor is `[B, ...]`.

    Saved outputs are kept as blocks `[B, W, *state]` in `saves`; block j holds, for sample
    b, the outputs `save_from[j][b] <= k < save_from[j][b] + W` (only the first
    `save_to[j][b] - save_from[j][b]` columns are used). `finish` maps them back to `[B, K]`.
    Under a fixed-step controller a step ends at `anchor + ahead * h`, counted from the
    last time the sample landed on (its start, a save or jump time) or changed its step size,
    rather than summed step by step: n steps of `dt` in float32 then end on the n-th multiple
    to an ulp instead of drifting and leaving a sliver step (`ahead`, in the time dtype, counts
    the steps from the anchor to the end of the next one: exact below 2**24 steps in float32).
    Solves that step onto their save times keep each sample's next one in `save_time`. A step
    that ends short of its boundary by at most `reach` (a few ulps plus 0.1% of `h`) is
    stretched onto it.
    Solves that interpolate save times keep the records of their latest steps in `window`
    and interpolate the save times those steps passed every `SAVE_WINDOW` steps and at the
    end (`next_save` counts the outputs written so far). `records` keeps every step for
    dense output. The counters `vf_evals`, `steps` and `accepted` lag behind by the
    iterations in `tally`, added to them every `COUNT_WINDOW` iterations and at the end.
    """

    t: Tensor
    y: Tensor
    h: Tensor
    reach: Tensor
    anchor: Tensor
    ahead: Tensor
    save_time: Tensor
    carry: Carry
    controller: ControllerState
    next_save: Tensor
    next_jump: Tensor
    status: Tensor
    done: Tensor
    vf_evals: Tensor
    steps: Tensor
    accepted: Tensor
    tally: tuple[Tally, ...]
    saves: tuple[Tensor, ...]
    save_from: tuple[Tensor, ...]
    save_to: tuple[Tensor, ...]
    window: tuple[StepRecord, ...]
    records: tuple[StepRecord, ...]
    iteration: int = 0


def initial_state(problem: Problem, y0: Tensor) -> LoopState:
    """Start every sample at `ts[:, 0]` with `y0` `[B, *state]` saved as its first output.

    The loop starts from a copy of `y0`, so a vector field that changes its input in place
    (refused at the first evaluation, see `_check_first_step`) cannot reach the caller's tensor.
    """
    ts, direction = problem.ts, problem.direction
    y0 = y0.clone()
    batch, num_saves = ts.shape
    # Contiguous, and `anchor` a tensor of its own: under `compile=True` the strides and
    # aliasing of the loop state stay those of later steps, which spares a recompilation.
    t0 = ts[:, 0].contiguous()
    t_init = t0
    if problem.jumps is not None:
        # A sample starting on a jump time (the first knot of a piecewise-constant input) starts
        # from the limit past it, as after landing on one (see `_restart_past_jumps`).
        at_start = (problem.jumps == t0[:, None]).any(dim=1)
        t_init = torch.where(at_start, t0 + direction * _jump_margin(t0, t0), t0)
    carry, evals = problem.solver.init(problem.term, t_init, y0, problem.args)
    _check_unchanged(problem.term, y0)
    f0 = carry[0] if carry and isinstance(carry[0], Tensor) and carry[0].shape == y0.shape else None
    span = (problem.t_end - t0).abs()
    h, ctrl, ctrl_evals = problem.controller.init(
        problem.term, problem.solver, t0, y0, f0, direction, span, problem.dt0, problem.args
    )
    h = h.to(ts.dtype)
    # The loop never changes a state tensor in place, so the counters can share these.
    zeros = torch.zeros(batch, dtype=torch.long, device=ts.device)
    ones = torch.ones_like(zeros)
    if problem.jumps is not None:
        next_jump = (direction[:, None] * (problem.jumps - t0[:, None]) <= 0).sum(dim=1)
    else:
        next_jump = zeros
    status = torch.full_like(zeros, int(Status.SUCCESS))
    if problem.lengths is None:
        done = torch.full((batch,), num_saves == 1, dtype=torch.bool, device=ts.device)
    else:
        done = problem.lengths == 1
    if f0 is not None:
        # No step size helps a sample whose slope at the start is NaN or infinite.
        broken = ~_finite_rows(f0) & ~done
        status = torch.where(broken, int(Status.NONFINITE), status)
        done = done | broken
    return LoopState(
        t=t0,
        y=y0,
        h=h,
        reach=_reach(problem, h),
        anchor=t_init.clone(),
        ahead=torch.ones_like(t0),
        save_time=ts[:, min(1, num_saves - 1)].contiguous(),
        carry=carry,
        controller=ctrl,
        next_save=ones,
        next_jump=next_jump,
        status=status,
        done=done,
        vf_evals=torch.full_like(zeros, evals + ctrl_evals),
        steps=zeros,
        accepted=torch.zeros_like(zeros),  # not shared with `steps`: both can reach the user
        tally=(),
        saves=(y0.unsqueeze(1),),
        save_from=(zeros,),
        save_to=(ones,),
        window=(),
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


def _where_rows(rows: Tensor, new: Tensor, old: Tensor) -> Tensor:
    return torch.where(rows.reshape(rows.shape + (1,) * (new.ndim - 1)), new, old)


def _boundary(problem: Problem, state: LoopState) -> tuple[Tensor, Tensor | None]:
    """The next time each sample must land on exactly, and whether it is a jump time."""
    direction = problem.direction
    boundary = problem.t_end if problem.interpolate_saves else state.save_time
    if problem.jumps is None:
        return boundary, None
    jump = problem.jump_table.gather(1, state.next_jump.unsqueeze(1)).squeeze(1)
    at_jump = jump <= boundary if problem.forward else direction * (jump - boundary) <= 0
    return torch.where(at_jump, jump, boundary), at_jump


class Attempt(NamedTuple):
    """One attempted step for every sample, before the loop's bookkeeping; all `[B, ...]`.

    `t1` and `hit` are where each step ends and whether that is its boundary, `at_jump`
    whether the boundary is a jump time (`None` without jumps); `out` is the solver's step;
    `accept`, `h_next` and `controller` the controller's verdict, next step size and state;
    `t`, `y` and `carry` the samples' values after the step (changed where accepted);
    `rejected` the running samples whose step was not accepted; `reach` as in `LoopState`
    for `h_next`; `finished`, in solves that interpolate their save times, whether each
    sample stands on its last one (`None` in solves that step onto them).
    """

    running: Tensor
    t1: Tensor
    hit: Tensor
    at_jump: Tensor | None
    out: StepResult
    accept: Tensor
    h_next: Tensor
    controller: ControllerState
    t: Tensor
    y: Tensor
    carry: Carry
    rejected: Tensor
    reach: Tensor
    finished: Tensor | None


def attempt_step(problem: Problem, s: LoopState) -> Attempt:
    """Step every running sample once and decide, per sample, whether the step stands.

    Tensor operations only, with no data-dependent Python branch: this is the part of a
    loop iteration that `solve(..., compile=True)` hands to `torch.compile`.
    """
    solver = problem.solver
    running = ~s.done
    t1, h, hit, at_jump = _step_end(problem, s)
    out = solver.step(problem.term, s.t, s.y, h, s.carry, problem.args, problem.want_coefficients)
    accept, h_next, ctrl = problem.controller.adapt(
        s.y, out.y1, out.error, h, s.controller, running, solver.error_order
    )
    healthy = _finite_rows(out.y1)
    if out.failed is not None:
        healthy = healthy & ~out.failed
    # A step below the time resolution leaves t unchanged and has zero error; accepting it
    # would repeat forever, so it is rejected and fails as DT_UNDERFLOW (see _statuses).
    # (`h.bool()` is `h != 0`.)
    accept = (accept if accept is running else accept & running) & healthy & h.bool()
    t = torch.where(accept, t1, s.t)
    y = _where_rows(accept, out.y1, s.y)
    carry = solver.merge_carry(accept, out.carry, s.carry)
    # Every accepted sample was running, so a running sample was rejected where the two differ.
    rejected = running != accept
    reach = s.reach if h_next is s.h else _reach(problem, h_next)
    finished = t == problem.t_end if problem.interpolate_saves else None
    return Attempt(running, t1, hit, at_jump, out, accept, h_next, ctrl, t, y, carry, rejected, reach, finished)


@functools.cache
def _compiled_attempt_step() -> Callable[[Problem, LoopState], Attempt]:
    """`attempt_step` under `torch.compile`, made once per process: torch compiles it again
    for each new dtype, term, solver and controller setting, and once more, with sizes left
    symbolic, when a size first changes."""
    return torch.compile(attempt_step)


def _iterate(problem: Problem, s: LoopState) -> LoopState:
    """One attempted step for every running sample, and its bookkeeping."""
    step = problem.attempt(problem, s)
    if s.iteration == 0:
        _check_first_step(problem.term, s.y, step.out.y1)
    out, accept, at_jump, t = step.out, step.accept, step.at_jump, step.t
    record = (s.t, step.t1, s.y, out.y1, out.coeffs, accept)
    saves, save_from, save_to, next_save, save_time = s.saves, s.save_from, s.save_to, s.next_save, s.save_time
    window, finished = s.window, step.finished
    # Samples that stepped onto a boundary (save or jump time), `None` when none did.
    landed = None
    if problem.interpolate_saves:
        window = window + (record,)
        if len(window) >= SAVE_WINDOW:
            saves, save_from, save_to, next_save = _interpolate_window(problem, t, step.y, window, s)
            window = ()
    else:
        landing = accept & step.hit
        # A jump time may coincide with the save time: the step then lands on both.
        on_save = landing if at_jump is None else landing & (~at_jump | (step.t1 == s.save_time))
        saves, save_from, save_to, next_save = _saves_landed_on(s, out.y1, on_save)
        # Nothing to update while no sample reached its save time (the common step).
        if next_save is not s.next_save:
            save_time = _gather_row(problem.ts, next_save)
            finished = next_save >= problem.save_counts
        if at_jump is not None or finished is not None:
            landed = landing
    vf_evals, steps, accepted, tally = _count(s, (step.running, accept, out.evals))
    carry, next_jump = step.carry, s.next_jump
    if at_jump is not None:
        # A sample that stepped onto its last time is done: a jump there needs no restart.
        jumped = accept & step.hit & at_jump & (t != problem.t_end)
        carry, next_jump, vf_evals = _restart_past_jumps(problem, t, step.y, carry, next_jump, vf_evals, jumped)
    status, done = _statuses(problem, s, step, finished)
    anchor, ahead = _count_fixed_steps(problem, s, t, step.h_next, landed, accept)
    return LoopState(
        t=t,
        y=step.y,
        h=step.h_next,
        reach=step.reach,
        anchor=anchor,
        ahead=ahead,
        save_time=save_time,
        carry=carry,
        controller=step.controller,
        next_save=next_save,
        next_jump=next_jump,
        status=status,
        done=done,
        vf_evals=vf_evals,
        steps=steps,
        accepted=accepted,
        tally=tally,
        saves=saves,
        save_from=save_from,
        save_to=save_to,
        window=window,
        records=s.records + (record,) if problem.dense else s.records,
        iteration=s.iteration + 1,
    )


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


def _step_end(problem: Problem, s: LoopState) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Where each sample's next step ends (`t1`), its signed size, whether it lands on the
    boundary, and whether that boundary is a jump time."""
    boundary, at_jump = _boundary(problem, s)
    # A step that would end short of the boundary by rounding (ten steps of 0.1 end at
    # 0.9999999999999999; long runs accumulate more) or by at most 0.1% of the step is
    # stretched onto it instead of leaving a sliver step.
    remaining = problem.along(boundary - s.t)
    hit = remaining <= s.reach
    free_end = s.t + s.h if problem.controller.adaptive else torch.addcmul(s.anchor, s.ahead, s.h)
    t1 = torch.where(hit, boundary, free_end)
    h = t1 - s.t
    if at_jump is not None and problem.solver.reads_step_end:
        h = _short_of_jumps(h, s.t, t1, hit & at_jump, problem.direction)
    return t1, h, hit, at_jump


def _reach(problem: Problem, h: Tensor) -> Tensor:
    """`[B]` how far short of a boundary a step of size `h` `[B]` may end and still be
    stretched onto it: a few ulps of the times (`time_slack`) plus 0.1% of the step."""
    return torch.add(problem.time_slack, h.abs(), alpha=1.001)


def _count_fixed_steps(
    problem: Problem, s: LoopState, t: Tensor, h_next: Tensor, landed: Tensor | None, accept: Tensor
) -> tuple[Tensor, Tensor]:
    """`(anchor, ahead)` after a step under a fixed-step controller: counting restarts where a
    sample landed on a boundary (`landed` `[B]`, `None` when none did) or changes its step
    size (see `LoopState`); unused, and left as they are, under an adaptive one."""
    if problem.controller.adaptive:
        return s.anchor, s.ahead
    # Non-adaptive controllers hand back the very tensor they proposed before while the step
    # size stays the same, which spares comparing the values.
    restart = landed
    if h_next is not s.h:
        changed = h_next != s.h
        restart = changed if landed is None else landed | changed
    if restart is None:
        return s.anchor, s.ahead + accept
    return torch.where(restart, t, s.anchor), torch.where(restart, 1.0, s.ahead + accept)


def _finite_rows(y: Tensor) -> Tensor:
    """`[B]` whether every entry of each row of `y` `[B, *state]` is finite.

    In single and double precision a row's sum stands in for its entries (NaN or infinite
    if any entry is, and cheaper than an elementwise test): a row whose finite entries sum
    past the largest float counts as non-finite too, a state that has blown up anyway.
    """
    flat = y if y.ndim == 2 else y.flatten(1)
    if flat.dtype in (torch.float16, torch.bfloat16):
        return torch.isfinite(flat).all(dim=1)
    total = flat.sum(dim=1)
    return (total - total) == 0


Saves = tuple[tuple[Tensor, ...], tuple[Tensor, ...], tuple[Tensor, ...], Tensor]


def _saves_landed_on(before: LoopState, y1: Tensor, landed: Tensor) -> Saves:
    """`(saves, save_from, save_to, next_save)` as in `LoopState` after the samples in
    `landed` `[B]` stepped exactly onto their next save time with state `y1`."""
    if not bool(landed.any()):
        return before.saves, before.save_from, before.save_to, before.next_save
    next_save = before.next_save + landed
    return (
        before.saves + (y1.unsqueeze(1),),
        before.save_from + (before.next_save,),
        before.save_to + (next_save,),
        next_save,
    )


def _interpolate_window(
    problem: Problem, t: Tensor, y: Tensor, window: tuple[StepRecord, ...], before: LoopState
) -> Saves:
    """Write every save time up to each sample's current time `t` `[B]` (where its state is
    `y` `[B, *state]`) from the dense output of the steps in `window`; returns
    `(saves, save_from, save_to, next_save)`.

    One batched evaluation for up to W save times per sample. A save time at the end of an
    accepted step takes that step's value exactly; when the only save time any sample has
    left to write is its current time (a solve that ends, with one save after its start or
    its last), no interpolation is needed at all.
    """
    reached = torch.searchsorted(problem.key_times, problem.along(t).unsqueeze(1), right=True).squeeze(1)
    width = int((reached - before.next_save).max())
    if width == 0:
        return before.saves, before.save_from, before.save_to, reached
    if width == 1 and _only_current_time(problem, t, reached, before.next_save):
        # Each sample's one save time left is where it stands: its state, exactly.
        return (
            before.saves + (y.unsqueeze(1),),
            before.save_from + (before.next_save,),
            before.save_to + (reached,),
            reached,
        )
    t0, t1, y0, y1, coeffs, accepted = zip(*window)
    t0, t1, accepted = (torch.stack(parts, dim=1) for parts in (t0, t1, accepted))
    columns = torch.arange(width, device=t.device)
    index = (before.next_save.unsqueeze(1) + columns).clamp_max(problem.ts.shape[1] - 1)
    target = problem.ts.gather(1, index)
    end_keys = accepted_end_keys(t1, accepted, problem.direction)
    step = torch.searchsorted(end_keys, problem.along(target)).clamp_max(len(window) - 1)
    start, end = t0.gather(1, step), t1.gather(1, step)
    # Columns past a sample's reached saves point at no step of theirs; their theta is never
    # read but must stay in [0, 1], or its zero gradient turns into NaN.
    theta = torch.nan_to_num((target - start) / (end - start), nan=0.0).clamp_(0.0, 1.0)
    if theta.dtype != y1[0].dtype:
        theta = theta.to(y1[0].dtype)
    # Row b of step s is row s * B + b of the records stacked step after step.
    flat = (step * t.shape[0] + torch.arange(t.shape[0], device=t.device).unsqueeze(1)).flatten()
    y0, y1 = (_take_rows(torch.stack(parts), flat, step.shape) for parts in (y0, y1))
    coeffs = _take_rows(stack_coefficients(coeffs, dim=0), flat, step.shape)
    block = evaluate_polynomial(y0, coeffs, theta)
    block = torch.where(_expand_like(target == end, block), y1, block)
    return (
        before.saves + (block,),
        before.save_from + (before.next_save,),
        before.save_to + (reached,),
        reached,
    )


def _only_current_time(problem: Problem, t: Tensor, reached: Tensor, next_save: Tensor) -> bool:
    """Whether every sample with a save time to write (`next_save < reached`, one each) stands
    exactly on it (`t` `[B]`)."""
    return bool(((reached == next_save) | (_gather_row(problem.ts, next_save) == t)).all())


def _take_rows(stacked: Tensor, flat: Tensor, shape: torch.Size) -> Tensor:
    """`[*shape, ...]` rows `flat` of `[W, B, ...]` `stacked`, its rows counted step after step."""
    return stacked.flatten(0, 1).index_select(0, flat).unflatten(0, shape)


def _expand_like(mask: Tensor, like: Tensor) -> Tensor:
    return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))


def _jump_margin(t0: Tensor, t1: Tensor) -> Tensor:
    """A few ulps of the larger time: more than the rounding in `t0 + c * h`."""
    scale = torch.maximum(torch.maximum(t0.abs(), t1.abs()), torch.ones_like(t0))
    return 4 * torch.finfo(t0.dtype).eps * scale


def _short_of_jumps(h: Tensor, t0: Tensor, t1: Tensor, to_jump: Tensor, direction: Tensor) -> Tensor:
    """Steps that land on a jump time stop a hair short of it, so that every stage (c = 1
    included) sees the vector field before the jump whichever side the term returns at the
    jump itself; the sample is still placed exactly on the jump (`t1`)."""
    margin = _jump_margin(t0, t1)
    return torch.where(to_jump & (h.abs() > 2 * margin), h - direction * margin, h)


def _restart_past_jumps(
    problem: Problem, t: Tensor, y: Tensor, carry: Carry, next_jump: Tensor, vf_evals: Tensor, jumped: Tensor
) -> tuple[Carry, Tensor, Tensor]:
    """Samples that landed on a jump time restart their carry from the limit past the jump
    (evaluated a hair past it, see `_short_of_jumps`); returns `(carry, next_jump, vf_evals)`."""
    if not carry:
        # A solver that carries nothing from step to step has nothing to restart.
        return carry, next_jump + jumped, vf_evals
    if not bool(jumped.any()):
        return carry, next_jump, vf_evals
    past = t + problem.direction * _jump_margin(t, t)
    restarted, evals = problem.solver.init(problem.term, past, y, problem.args)
    return (
        problem.solver.merge_carry(jumped, restarted, carry),
        next_jump + jumped,
        torch.add(vf_evals, jumped, alpha=evals),
    )


def _statuses(problem: Problem, before: LoopState, step: Attempt, finished: Tensor | None) -> tuple[Tensor, Tensor]:
    """`(status, done)` after a step: samples that reached their last save time finish;
    those out of steps, step size or finite values fail.

    A rejected sample fails when an adaptive controller cannot shrink its step any further
    (below `dt_min`, or so small that `t + h == t`; the step factor is never NaN), or at once under a fixed
    step; its status says why its last step was rejected (NONFINITE, NEWTON_FAILED) or
    else DT_UNDERFLOW.
    """
    done = before.done if finished is None else before.done | finished
    status = before.status
    if bool(step.rejected.any()):
        # Under a fixed step a rejected step cannot be retried smaller: it fails at once.
        failing = step.rejected & _stalled(problem, step) if problem.controller.adaptive else step.rejected
        if bool(failing.any()):
            status = torch.where(failing, _failure_code(step.out), status)
            done = done | failing
    if before.iteration + 1 >= problem.max_steps:
        # Samples run from the first iteration until they are done: one still running has
        # taken a step in every iteration.
        status = torch.where(done, status, int(Status.MAX_STEPS))
        done = torch.ones_like(done)
    return status, done


def _stalled(problem: Problem, step: Attempt) -> Tensor:
    """`[B]` samples whose next attempt cannot differ from the rejected one: its step vanishes
    (`t + h == t`) or falls below `dt_min`, or the rejected step was stretched onto its
    boundary and the next would be stretched onto it again (the boundary lies within the
    rounding slack of the times, as with float32 times far from 0 over a span of a few ulps)."""
    t, h_next = step.t, step.h_next
    stalled = t + h_next == t
    if problem.controller.dt_min > 0:
        stalled = stalled | ~(h_next.abs() >= problem.controller.dt_min)
    return stalled | (step.hit & (problem.along(step.t1 - t) <= step.reach))


def _failure_code(out: StepResult) -> Tensor:
    """`[B]` status code explaining a rejected step: NONFINITE, NEWTON_FAILED or DT_UNDERFLOW."""
    code = torch.where(_finite_rows(out.y1), int(Status.DT_UNDERFLOW), int(Status.NONFINITE))
    if out.failed is not None:
        code = torch.where(out.failed & (code == int(Status.DT_UNDERFLOW)), int(Status.NEWTON_FAILED), code)
    return code


def settle(problem: Problem, state: LoopState) -> LoopState:
    """`state` with nothing pending: the save times its window of step records passed are
    written and its tallied iterations added to its counters. A settled state holds the
    current step's values, not the records of up to `SAVE_WINDOW` earlier steps (each with
    the step's stages): what a checkpoint keeps of a stretch's start, and how a solve ends."""
    saves, save_from, save_to, next_save = state.saves, state.save_from, state.save_to, state.next_save
    if state.window:
        saves, save_from, save_to, next_save = _interpolate_window(problem, state.t, state.y, state.window, state)
    vf_evals, steps, accepted = _add_tally(state.vf_evals, state.steps, state.accepted, state.tally)
    return dataclasses.replace(
        state,
        saves=saves,
        save_from=save_from,
        save_to=save_to,
        next_save=next_save,
        window=(),
        vf_evals=vf_evals,
        steps=steps,
        accepted=accepted,
        tally=(),
    )


def finish(problem: Problem, state: LoopState) -> Solution:
    """Assemble the `Solution` from the final loop state."""
    state = settle(problem, state)
    stats = SolveStats(state.vf_evals, state.steps, state.accepted, state.steps - state.accepted)
    return Solution(
        ts=problem.ts,
        ys=hold_past_ends(_gather_saves(problem, state), problem.lengths),
        status=state.status,
        stats=stats,
        t_final=state.t,
        y_final=state.y,
        dense=_dense(problem, state),
    )


def _count(s: LoopState, iteration: Tally) -> tuple[Tensor, Tensor, Tensor, tuple[Tally, ...]]:
    """`(vf_evals, steps, accepted, tally)` with one more iteration tallied (see `LoopState`)."""
    tally = s.tally + (iteration,)
    if len(tally) < COUNT_WINDOW:
        return s.vf_evals, s.steps, s.accepted, tally
    return (*_add_tally(s.vf_evals, s.steps, s.accepted, tally), ())


def _add_tally(
    vf_evals: Tensor, steps: Tensor, accepted: Tensor, tally: tuple[Tally, ...]
) -> tuple[Tensor, Tensor, Tensor]:
    """The counters `(vf_evals, steps, accepted)` `[B]` with the iterations in `tally` added."""
    if not tally:
        return vf_evals, steps, accepted
    running, accepts, evals = zip(*tally)
    running = torch.stack(running)
    taken = running.sum(0)
    if len(set(evals)) == 1:
        vf_evals = torch.add(vf_evals, taken, alpha=evals[0])
    else:
        vf_evals = vf_evals + (running * torch.tensor(evals, dtype=steps.dtype, device=steps.device)[:, None]).sum(0)
    return vf_evals, steps + taken, accepted + torch.stack(accepts).sum(0)


def hold_past_ends(ys: Tensor, lengths: Tensor | None) -> Tensor:
    """`ys` `[B, K, *state]` with every sample's outputs past its end (columns
    `k >= lengths[b]`, `lengths` `[B]`) replaced by its last one, `ys[b, lengths[b] - 1]`;
    unchanged when `lengths` is `None`. A gather, so the padding's gradient reaches that
    last output."""
    if lengths is None:
        return ys
    positions = torch.arange(ys.shape[1], device=ys.device)
    index = torch.minimum(positions, (lengths - 1)[:, None])
    return ys.gather(1, index.reshape(index.shape + (1,) * (ys.ndim - 2)).expand_as(ys))


def _gather_saves(problem: Problem, state: LoopState) -> Tensor:
    """`[B, K, *state]` outputs from the save blocks; outputs never reached are NaN."""
    y = state.y
    num_saves = problem.ts.shape[1]
    in_one_block = len(state.saves) == 2 and state.saves[1].shape[1] == num_saves - 1
    if in_one_block and bool((state.next_save == num_saves).all()):
        # Every sample wrote all its outputs after the first in one block: they are in order.
        return torch.cat(state.saves, dim=1)
    widths = torch.tensor([block.shape[1] for block in state.saves], device=y.device)
    offsets = torch.cumsum(widths, 0) - widths
    values = torch.cat(state.saves + (torch.full_like(y, torch.nan)[:, None],), dim=1)
    save_to = torch.stack(state.save_to, dim=1)
    positions = torch.arange(problem.ts.shape[1], device=y.device).expand(y.shape[0], -1).contiguous()
    block = torch.searchsorted(save_to, positions, right=True).clamp_max(len(state.saves) - 1)
    start = torch.stack(state.save_from, dim=1).gather(1, block)
    column = offsets[block] + positions - start
    filled = positions < state.next_save[:, None]
    column = torch.where(filled, column, values.shape[1] - 1)
    return values[torch.arange(y.shape[0], device=y.device)[:, None], column]


def _dense(problem: Problem, state: LoopState) -> DenseInterpolant | None:
    if not problem.dense or not state.records:
        return None
    t0, t1, y0, _, coeffs, accepted = zip(*state.records)
    t0, t1, y0, accepted = (torch.stack(parts, dim=1) for parts in (t0, t1, y0, accepted))
    return DenseInterpolant(t0, t1, y0, stack_coefficients(coeffs, dim=1), accepted, problem.direction)
