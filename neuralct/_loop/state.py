"""The loop state: per-sample records, immutable, one new state per loop iteration.

Every tensor is `[B, ...]`, one row per sample. Grouped by mechanism: where each sample
stands in time (`Clock`), what it has saved (`SaveBuffer`), what it has spent (`Counters`),
whether it is still running (`Progress`), plus the state `y`, the solver's carry and the
controller's state. Immutability lets gradient strategies re-run a stretch of steps from
a kept state (checkpointing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from torch import Tensor

from ..controllers.base import ControllerState, Decision
from ..solvers.base import Carry, StepResult
from .records import StepRecord


@dataclass(frozen=True)
class Clock:
    """Where each sample stands in time and how it steps on; all `[B]`.

    Attributes:
        t: the current time.
        h: the signed step the controller proposes next.
        reach: how far short of its boundary (next save or jump time) a step of size `h`
            may end and still be stretched onto it: a few ulps plus 0.1% of `h`, so that no
            sliver step is left.
        anchor: under a fixed-step controller, the last time the sample landed on (its
            start, a save or jump time) or changed its step size; a step ends at
            `anchor + ahead * h` rather than at a sum of steps, so n steps of `dt` in float32
            end on the n-th multiple to an ulp instead of drifting.
        ahead: the steps from `anchor` to the end of the next one, in the time dtype
            (exact below 2**24 steps in float32). Unused under an adaptive controller.
        next_jump: index of the sample's next jump time in `Problem.jump_table`.
    """

    t: Tensor
    h: Tensor
    reach: Tensor
    anchor: Tensor
    ahead: Tensor
    next_jump: Tensor


class Landing(NamedTuple):
    """One step of a solve that steps onto its save times: `y` `[B, *state]` the state the
    step proposed and `saved` `[B]` the samples that landed on their next save time with it."""

    y: Tensor
    saved: Tensor


@dataclass(frozen=True)
class SaveBuffer:
    """The outputs written so far, as blocks, and what is pending.

    Attributes:
        blocks: blocks `[B, W, *state]`; block j holds, for sample b, the outputs
            `starts[j][b] <= k < ends[j][b]` in its first `ends[j][b] - starts[j][b]` columns.
        starts: `[B]` first output index of each block.
        ends: `[B]` one past the last output index of each block.
        next_save: `[B]` outputs written so far (the index of the next one).
        save_time: `[B]` the next save time, in solves that step onto their save times.
        window: the latest steps not yet written out (`saves.flush`, every `SAVE_WINDOW`
            steps and at the end): in solves that interpolate their save times, their
            records; in solves that step onto them, their `Landing`s.
    """

    blocks: tuple[Tensor, ...]
    starts: tuple[Tensor, ...]
    ends: tuple[Tensor, ...]
    next_save: Tensor
    save_time: Tensor
    window: tuple[StepRecord, ...] | tuple[Landing, ...]


class Tally(NamedTuple):
    """What one loop iteration spent: `running` and `accepted` `[B]` and the evaluations
    each running sample made (an int for every one, or `[B]`)."""

    running: Tensor
    accepted: Tensor
    evals: int | Tensor


@dataclass(frozen=True)
class Counters:
    """Per-sample statistics, `[B]` integers. `vf_evals`, `steps` and `accepted` lag behind
    by the iterations in `tally`, added to them every `COUNT_WINDOW` iterations and at the end
    (one batched sum instead of three additions per step)."""

    vf_evals: Tensor
    steps: Tensor
    accepted: Tensor
    tally: tuple[Tally, ...]


@dataclass(frozen=True)
class Progress:
    """`status` `[B]` (a `Status` code) and `done` `[B]`: finished or failed samples freeze."""

    status: Tensor
    done: Tensor


@dataclass(frozen=True)
class EventLog:
    """What an event (`Problem.event`) has found so far.

    Attributes:
        g: `[B]` the event function at each sample's current time and state (no gradient:
            only its sign and the brackets of the root finding read it).
        count: `[B]` crossings found so far.
        times: `[B, N]` the first N crossing times (NaN in slots not yet found).
        states: `[B, N, *state]` the states at those times (NaN likewise).
    """

    g: Tensor
    count: Tensor
    times: Tensor
    states: Tensor


class Visit(NamedTuple):
    """Where each sample stands after one loop iteration, for `SaveAt(steps=True)`: `t` `[B]`,
    `y` `[B, *state]` and `accepted` `[B]` (whether it took a step there)."""

    t: Tensor
    y: Tensor
    accepted: Tensor


@dataclass(frozen=True)
class LoopState:
    """The whole per-sample state of the loop after `iteration` iterations.

    Attributes:
        clock: times and step sizes (`Clock`).
        y: `[B, *state]` the current state.
        carry: what the solver hands from one step to the next.
        controller: the step-size controller's state.
        saves: the outputs written so far (`SaveBuffer`).
        counters: the statistics (`Counters`).
        progress: statuses and which samples are done (`Progress`).
        records: every step's record, kept for dense output (`dense=True`).
        iteration: loop iterations so far.
        events: the crossings found so far, in solves with an event (else `None`).
        trail: the start and every iteration's `Visit`, in solves that save every step.
    """

    clock: Clock
    y: Tensor
    carry: Carry
    controller: ControllerState
    saves: SaveBuffer
    counters: Counters
    progress: Progress
    records: tuple[StepRecord, ...]
    iteration: int = 0
    events: EventLog | None = None
    trail: tuple[Visit, ...] = ()

    @property
    def done(self) -> Tensor:
        """`[B]` whether each sample has finished or failed."""
        return self.progress.done


class StepEnd(NamedTuple):
    """Where each sample's next step ends; all `[B]`.

    Attributes:
        t1: the end time.
        h: the signed step size the solver takes (a hair short of `t1` when it lands on a
            jump time, see `jumps.short_of_jumps`).
        hit: whether `t1` is the sample's boundary (save or jump time).
        at_jump: whether that boundary is a jump time (`None` without jumps).
    """

    t1: Tensor
    h: Tensor
    hit: Tensor
    at_jump: Tensor | None


class Attempt(NamedTuple):
    """One attempted step of every sample and its verdict, before the loop's bookkeeping.

    Attributes:
        running: `[B]` the samples that stepped (not yet done).
        end: where the step ends (`StepEnd`).
        out: the solver's step.
        decision: the controller's verdict, next step size and state.
        accept: `[B]` the steps that stand: accepted by the controller, taken by a running
            sample, finite, and not of zero size.
        t: `[B]` the time after the step (`end.t1` where accepted).
        y: `[B, *state]` the state after the step (`out.y1` where accepted).
        carry: the solver's carry after the step.
        rejected: `[B]` running samples whose step was not accepted.
        finite: `[B]` steps whose end state is finite.
        finished: in solves that interpolate their save times, `[B]` whether each sample
            stands on its last one (`None` in solves that step onto them).
    """

    running: Tensor
    end: StepEnd
    out: StepResult
    decision: Decision
    accept: Tensor
    t: Tensor
    y: Tensor
    carry: Carry
    rejected: Tensor
    finite: Tensor
    finished: Tensor | None
