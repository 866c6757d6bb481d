"""Events: where each sample's event function crosses zero, found after every accepted step.

After a step the event function is evaluated at the step's end (one batched call); a sample
whose value changed sign (in the event's direction, along its solve) crossed zero inside the
step. The crossing is located on the step's dense interpolant by the Illinois method
(`roots.py`), without autograd, and then given its gradient by the implicit function theorem:
the root $\\theta^*$ of $c(t_0 + \\theta h, p(\\theta))$ moves, to first order, by
$-\\delta c / (h\\, dc/dt)$ when the parameters move $c$ by $\\delta c$ at the fixed root, which
one extra evaluation with the parameters' graph supplies. A terminal event then stops the
sample there: its time and state become the crossing's, and it finishes with `Status.EVENT`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..errors import IncompatibleTermError
from ..events import Event
from ..paths.dense import as_coefficients, evaluate_polynomial, polynomial_derivative
from ..problem import Problem
from ..solution import Status
from .roots import illinois
from .rows import expand_like, where_rows
from .state import Attempt, EventLog, LoopState, Progress


def first_events(problem: Problem, t0: Tensor, y0: Tensor) -> EventLog | None:
    """The event log at the start `t0` `[B]`, `y0` `[B, *state]` (`None` without an event):
    the event function there, no crossing yet."""
    event = problem.event
    if event is None:
        return None
    slots = event.slots
    return EventLog(
        g=_evaluate(event, t0, y0, problem.args).detach(),
        count=torch.zeros(t0.shape, dtype=torch.long, device=t0.device),
        times=torch.full((t0.shape[0], slots), torch.nan, dtype=t0.dtype, device=t0.device),
        states=torch.full((y0.shape[0], slots, *y0.shape[1:]), torch.nan, dtype=y0.dtype, device=y0.device),
    )


def find_events(problem: Problem, s: LoopState, step: Attempt) -> tuple[Attempt, EventLog | None, Tensor | None]:
    """Look for crossings inside `step`: `(step, log, stopped)`.

    Returns:
        `step`, with the samples a terminal event stops moved back to their crossing (time,
        state, and no landing on the boundary past it); the event log with the new crossings;
        and `[B]` the samples stopped (`None` when none is, and without an event).
    """
    event, log = problem.event, s.events
    if event is None or log is None:
        return step, log, None
    g1 = torch.where(step.accept, _evaluate(event, step.t, step.y, problem.args).detach(), log.g)
    crossing = step.accept & _crosses(log.g, g1, event.direction)
    if not bool(crossing.any()):
        return step, EventLog(g=g1, count=log.count, times=log.times, states=log.states), None
    t_star, y_star = _locate(event, problem.args, s, step, (log.g, g1), crossing)
    log = _record(log, g1, crossing, t_star, y_star)
    if not event.terminal:
        return step, log, None
    return _stop(step, crossing, t_star, y_star), log, crossing


def stop_at_events(progress: Progress, stopped: Tensor | None) -> Progress:
    """`progress` with the samples `stopped` `[B]` (`None`: none) done, as `Status.EVENT`."""
    if stopped is None:
        return progress
    return Progress(status=torch.where(stopped, int(Status.EVENT), progress.status), done=progress.done | stopped)


def event_outputs(event: Event | None, log: EventLog | None) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """`(event_t, event_y, event_count)` of the `Solution`: `[B]` and `[B, *state]` for a terminal
    event, `[B, N]` and `[B, N, *state]` for a non-terminal one, and `[B]`; `None`s without one."""
    if event is None or log is None:
        return None, None, None
    if event.terminal:
        return log.times[:, 0], log.states[:, 0], log.count
    return log.times, log.states, log.count


def hold_past_events(ys: Tensor, written: Tensor, stopped: Tensor, y_final: Tensor) -> Tensor:
    """`ys` `[B, K, *state]` with the outputs not `written` `[B, K]` of the samples `stopped` by a
    terminal event `[B]` replaced by their final state `y_final` `[B, *state]`, the event state."""
    hold = written.logical_not() & stopped[:, None]
    return torch.where(expand_like(hold, ys), y_final[:, None], ys)


def _evaluate(event: Event, t: Tensor, y: Tensor, args: Any) -> Tensor:
    """`[B]` the event function at times `t` `[B]` and states `y` `[B, *state]`, checked."""
    g = event.cond(t, y, args)
    if not isinstance(g, Tensor) or g.shape != t.shape or not g.is_floating_point():
        got = f"shape {tuple(g.shape)} and dtype {g.dtype}" if isinstance(g, Tensor) else type(g).__name__
        raise IncompatibleTermError(
            f"`event.cond(t, y, args)` must return a floating-point tensor of shape [B] = {tuple(t.shape)}; got {got}"
        )
    return g


def _crosses(g0: Tensor, g1: Tensor, direction: int) -> Tensor:
    """`[B]` whether the event function went from `g0` to `g1` `[B]` across zero in `direction`."""
    rising = (g0 < 0) & (g1 >= 0)
    falling = (g0 > 0) & (g1 <= 0)
    return {1: rising, -1: falling, 0: rising | falling}[direction]


def _locate(
    event: Event, args: Any, s: LoopState, step: Attempt, bracket: tuple[Tensor, Tensor], crossing: Tensor
) -> tuple[Tensor, Tensor]:
    """`([B], [B, *state])` the time and state of the crossing in `step` of the samples `crossing`
    `[B]` (other rows hold values of no meaning), with `bracket` the event function `[B]` at the
    step's start and end."""
    t0, y0 = s.clock.t, s.y
    span = step.end.t1 - t0
    coeffs = as_coefficients(step.out.coeffs)

    def along(theta: Tensor) -> Tensor:
        return evaluate_polynomial(y0, coeffs, theta.to(y0.dtype))

    with torch.no_grad():
        # The interpolant's time is cast to the state's dtype: no finer root is meaningful.
        eps = max(torch.finfo(t0.dtype).eps, torch.finfo(y0.dtype).eps)
        scale = torch.maximum(torch.maximum(t0.abs(), step.end.t1.abs()), span.abs())
        tol = torch.maximum(4 * eps * scale / span.abs(), torch.full_like(t0, 4 * eps))
        theta = illinois(lambda th: event.cond(t0 + th * span, along(th), args), *bracket, crossing, tol)
    if torch.is_grad_enabled():
        slope = polynomial_derivative(coeffs, theta.to(y0.dtype))  # dp/dtheta, [B, *state]
        velocity = slope / expand_like(span, slope).to(slope.dtype)
        theta = _implicit(event, args, (t0 + theta * span).detach(), along, velocity, theta, span)
    return t0 + theta * span, along(theta)


def _implicit(
    event: Event,
    args: Any,
    t_root: Tensor,
    along: Callable[[Tensor], Tensor],
    velocity: Tensor,
    theta: Tensor,
    span: Tensor,
) -> Tensor:
    """`theta` `[B]` (a root at times `t_root` `[B]`, found without autograd), equal in value, with
    its gradient by the implicit function theorem: $d\\theta = -\\delta c / (h\\, dc/dt)$, where
    $\\delta c$ is how the parameters (of the event function, and through the interpolant `along`
    of the state) move the event function at the fixed root, and $dc/dt = \\partial_t c +
    \\partial_y c \\cdot p'(t)$ along the interpolant (`velocity` `[B, *state]` is $p'(t)$, `span`
    `[B]` the step $h$). Unchanged when nothing that needs a gradient moves the event function;
    a tangential crossing ($dc/dt = 0$) gets no gradient through its time."""
    g = event.cond(t_root, along(theta), args)
    if not g.requires_grad:
        return theta
    with torch.enable_grad():
        t_leaf, y_leaf = t_root.detach().requires_grad_(), along(theta).detach().requires_grad_()
        dg_dt, dg_dy = torch.autograd.grad(event.cond(t_leaf, y_leaf, args).sum(), (t_leaf, y_leaf), allow_unused=True)
    rate = torch.zeros_like(t_root) if dg_dt is None else dg_dt
    if dg_dy is not None:
        rate = rate + (dg_dy * velocity).flatten(1).sum(1)
    usable = (rate != 0) & torch.isfinite(rate)
    shift = (g - g.detach()).to(theta.dtype) / torch.where(usable, rate * span, torch.ones_like(rate))
    return torch.where(usable, theta - shift, theta)


def _record(log: EventLog, g1: Tensor, crossing: Tensor, t_star: Tensor, y_star: Tensor) -> EventLog:
    """`log` with the crossings `t_star` `[B]`, `y_star` `[B, *state]` of the samples `crossing`
    `[B]` written to their next free slot (if any is left), and `g1` `[B]` as the current value."""
    slots = torch.arange(log.times.shape[1], device=log.count.device)
    write = (slots == log.count[:, None]) & crossing[:, None]
    return EventLog(
        g=g1,
        count=log.count + crossing,
        times=torch.where(write, t_star[:, None], log.times),
        states=torch.where(expand_like(write, log.states), y_star[:, None], log.states),
    )


def _stop(step: Attempt, stopped: Tensor, t_star: Tensor, y_star: Tensor) -> Attempt:
    """`step` with the samples `stopped` `[B]` moved back to their crossing at `t_star` `[B]`,
    `y_star` `[B, *state]`: they land on their boundary only when the crossing is on it."""
    end = step.end._replace(hit=step.end.hit & (~stopped | (t_star == step.end.t1)))
    finished = None if step.finished is None else step.finished & ~stopped
    return step._replace(
        end=end, t=torch.where(stopped, t_star, step.t), y=where_rows(stopped, y_star, step.y), finished=finished
    )
