"""Compaction: finished samples leave the batch (`solve(..., compact=True)`).

Every step evaluates every row of the batch, finished or not, so without compaction a batch
costs its slowest sample's steps times B. When a look (`look.py`) finds that the running
samples fit in half the batch or less, they are gathered, with every per-sample piece of the
loop state, into a batch of the next power of two (topped up with finished samples, which
step as exact no-ops), the solve goes on there, and the result is scattered back. A few
bucketed sizes, so a compiled step is reused. Gather and scatter are `index_select` and
`index_copy`: gradients flow through both.

The sub-batch needs its own problem: the times and directions of its rows, its `args` (every
tensor in `args`, also inside tuples, lists and dicts, whose leading dimension is B is taken
row by row; anything else is passed unchanged) and its term (`AbstractTerm.select_rows`). A
term that cannot select its rows (`None`), or a solver carry or controller state that is not a
tuple of `[B, ...]` tensors, keeps the whole batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..paths.dense import StageCoefficients
from ..problem import Problem
from .records import StepRecord
from .state import Clock, Counters, EventLog, LoopState, Progress, SaveBuffer, Visit

Advance = Callable[[Problem, LoopState], LoopState]
Settle = Callable[[Problem, LoopState], LoopState]


def bucket(running: int, batch: int) -> int | None:
    """The batch size to compact `running` samples of a batch of `batch` into: the next power of
    two, when it is at most half the batch; else `None`."""
    size = 1 << max(running - 1, 0).bit_length()
    return size if running and 2 * size <= batch else None


def compacted(problem: Problem, state: LoopState, size: int, advance: Advance, settle: Settle) -> LoopState | None:
    """Run the `size`-row sub-batch of `state`'s running samples with `advance` and scatter it
    back (each side `settle`d first); `None` when the problem cannot be split by rows."""
    index = torch.argsort(state.done.to(torch.uint8), stable=True)[:size]
    sub_problem = _select_problem(problem, index)
    if sub_problem is None or not _rows_of(state, problem.ts.shape[0]):
        return None
    state = settle(problem, state)
    sub = settle(sub_problem, advance(sub_problem, _select_state(state, index)))
    return _merge(state, sub, index)


def _rows_of(state: LoopState, batch: int) -> bool:
    """Whether the solver's carry and the controller's state are tuples of `[B, ...]` tensors."""
    parts = tuple(state.carry) + tuple(state.controller)
    return all(isinstance(part, Tensor) and part.ndim >= 1 and part.shape[0] == batch for part in parts)


def _select_problem(problem: Problem, index: Tensor) -> Problem | None:
    """`problem` restricted to the rows `index` `[b]`, or `None` when its term cannot be."""
    term = problem.term.select_rows(index)
    if term is None:
        return None
    return dataclasses.replace(
        problem,
        term=term,
        ts=problem.ts.index_select(0, index),
        direction=problem.direction.index_select(0, index),
        args=select_args(problem.args, index, problem.ts.shape[0]),
        jumps=None if problem.jumps is None else problem.jumps.index_select(0, index),
        lengths=None if problem.lengths is None else problem.lengths.index_select(0, index),
    )


def select_args(args: Any, index: Tensor, batch: int) -> Any:
    """`args` for the rows `index` `[b]`: every tensor whose leading dimension is `batch` taken
    row by row, inside tuples, lists and dicts too; everything else unchanged."""
    if isinstance(args, Tensor):
        return args.index_select(0, index) if args.ndim >= 1 and args.shape[0] == batch else args
    if isinstance(args, (tuple, list)):
        return type(args)(select_args(part, index, batch) for part in args)
    if isinstance(args, dict):
        return {key: select_args(value, index, batch) for key, value in args.items()}
    return args


def _select_state(state: LoopState, index: Tensor) -> LoopState:
    """The settled `state`'s rows `index` `[b]`, with nothing saved or recorded yet."""

    def take(part: Tensor) -> Tensor:
        return part.index_select(0, index)

    saves, counters = state.saves, state.counters
    return LoopState(
        clock=Clock(*map(take, _parts(state.clock))),
        y=take(state.y),
        carry=tuple(take(part) for part in state.carry),
        controller=tuple(take(part) for part in state.controller),
        saves=SaveBuffer((), (), (), take(saves.next_save), take(saves.save_time), ()),
        counters=Counters(take(counters.vf_evals), take(counters.steps), take(counters.accepted), ()),
        progress=Progress(take(state.progress.status), take(state.progress.done)),
        records=(),
        iteration=state.iteration,
        events=None if state.events is None else EventLog(*map(take, _parts(state.events))),
    )


def _merge(state: LoopState, sub: LoopState, index: Tensor) -> LoopState:
    """`state` with its rows `index` `[b]` replaced by those of the settled sub-batch `sub`."""

    def put(full: Tensor, part: Tensor) -> Tensor:
        return full.index_copy(0, index, part)

    batch = state.y.shape[0]
    clock = Clock(*map(put, _parts(state.clock), _parts(sub.clock)))
    counters = Counters(*(put(getattr(state.counters, name), getattr(sub.counters, name)) for name in _COUNTS), ())
    return LoopState(
        clock=clock,
        y=put(state.y, sub.y),
        carry=tuple(put(full, part) for full, part in zip(state.carry, sub.carry)),
        controller=tuple(put(full, part) for full, part in zip(state.controller, sub.controller)),
        saves=_merge_saves(state.saves, sub.saves, put),
        counters=counters,
        progress=Progress(put(state.progress.status, sub.progress.status), put(state.progress.done, sub.progress.done)),
        records=state.records + tuple(_merge_record(state, record, put) for record in sub.records),
        iteration=sub.iteration,
        events=None if sub.events is None else EventLog(*map(put, _parts(state.events), _parts(sub.events))),
        trail=state.trail
        + tuple(
            Visit(put(state.clock.t, v.t), put(state.y, v.y), _put_false(v.accepted, put, batch)) for v in sub.trail
        ),
    )


_COUNTS = ("vf_evals", "steps", "accepted")


def _parts(record: Any) -> tuple[Tensor, ...]:
    """The fields of a dataclass of tensors, in order (`dataclasses.astuple` would copy them)."""
    return tuple(getattr(record, field.name) for field in dataclasses.fields(record))


def _merge_saves(saves: SaveBuffer, sub: SaveBuffer, put: Callable[[Tensor, Tensor], Tensor]) -> SaveBuffer:
    """`saves` (settled) with the blocks of the settled sub-batch `sub` scattered into full rows:
    the other rows' entries of each are empty (they start and end at their `next_save`)."""
    blocks = tuple(put(block.new_zeros((saves.next_save.shape[0], *block.shape[1:])), block) for block in sub.blocks)
    return SaveBuffer(
        blocks=saves.blocks + blocks,
        starts=saves.starts + tuple(put(saves.next_save, start) for start in sub.starts),
        ends=saves.ends + tuple(put(saves.next_save, end) for end in sub.ends),
        next_save=put(saves.next_save, sub.next_save),
        save_time=put(saves.save_time, sub.save_time),
        window=(),
    )


def _merge_record(state: LoopState, record: StepRecord, put: Callable[[Tensor, Tensor], Tensor]) -> StepRecord:
    """A step record of the sub-batch as one of the whole batch: the other rows hold a rejected
    step of no length where they stand (never interpolated)."""
    t, y = state.clock.t, state.y
    coeffs = record.coeffs
    if isinstance(coeffs, StageCoefficients):
        stages = tuple(put(torch.zeros_like(y), stage) for stage in coeffs.stages)
        step = put(coeffs.step.new_zeros((y.shape[0], *coeffs.step.shape[1:])), coeffs.step)
        coeffs = StageCoefficients(stages=stages, step=step, matrix=coeffs.matrix)
    else:
        coeffs = put(coeffs.new_zeros((y.shape[0], *coeffs.shape[1:])), coeffs)
    return StepRecord(
        t0=put(t, record.t0),
        t1=put(t, record.t1),
        y0=put(y, record.y0),
        y1=put(y, record.y1),
        coeffs=coeffs,
        accepted=_put_false(record.accepted, put, y.shape[0]),
    )


def _put_false(part: Tensor, put: Callable[[Tensor, Tensor], Tensor], batch: int) -> Tensor:
    """`[batch]` booleans: `part` `[b]` in the sub-batch's rows, `False` elsewhere."""
    return put(part.new_zeros(batch), part)
