"""Saves: writing each sample's outputs at its save times.

Two ways, chosen by `Problem.interpolate_saves`. Solves that step onto their save times
note, at every step, which samples landed on their next one (`Landing`). Adaptive solves
with dense output instead keep a window of step records and interpolate the save times those
steps passed. Either window is written out (`flush`) at the loop's looks (see `look.py`)
once it holds `SAVE_WINDOW` steps, and at the end, in one batched gather or evaluation whose
width the look reads together with its other values: a step itself reads nothing from the
device. Outputs go into blocks (see `SaveBuffer`) that `outputs.gather_saves` maps back to `[B, K]`
at the end.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..paths.dense import accepted_end_keys, evaluate_polynomial, stack_coefficients
from ..problem import Problem
from . import checks
from .records import StepRecord
from .rows import expand_like, gather_row
from .state import Attempt, Landing, SaveBuffer

# Steps whose records are kept before the save times they passed are written in one batch:
# bounds the memory of a solve without gradients while amortizing the writing.
SAVE_WINDOW = 32


class Pending(NamedTuple):
    """What a window of steps has left to write, read from the device at a look: `width`, the
    most outputs a sample has to write, and `current`, whether every sample with one to write
    (one each) stands exactly on its save time (its state is then the output, exactly)."""

    width: int
    current: bool


def first_saves(problem: Problem, y0: Tensor, zeros: Tensor, ones: Tensor) -> SaveBuffer:
    """`y0` `[B, *state]` written as every sample's first output (`zeros` and `ones` `[B]`)."""
    return SaveBuffer(
        blocks=(y0.unsqueeze(1),),
        starts=(zeros,),
        ends=(ones,),
        next_save=ones,
        save_time=problem.ts[:, min(1, problem.ts.shape[1] - 1)].contiguous(),
        window=(),
    )


def record_saves(
    problem: Problem, saves: SaveBuffer, step: Attempt, record: StepRecord
) -> tuple[SaveBuffer, Tensor | None, Tensor | None]:
    """Note what `step` (whose record is `record`) saves: `(saves, finished, landed)`, with
    `finished` `[B]` the samples on their last save time and `landed` `[B]` those that stepped
    onto their boundary (`None` when none can short of its end: a sample that lands then is
    done, and its fixed-step count is never read again). Device-side only: the outputs are
    written when the window is flushed."""
    if problem.interpolate_saves:
        # With no save time between the start and the end, the one output left is where the
        # loop stops (it lands on the end): no step needs keeping. A backward adjoint interval
        # is such a solve, of a large augmented state.
        window = saves.window + (record,) if _between(problem) else ()
        return _replace_window(saves, window), step.finished, None
    landing = step.accept & step.end.hit
    at_jump = step.end.at_jump
    # A jump time may coincide with the save time: the step then lands on both.
    on_save = landing if at_jump is None else landing & (~at_jump | (step.end.t1 == saves.save_time))
    next_save = saves.next_save + on_save
    between = _between(problem)
    saves = SaveBuffer(
        blocks=saves.blocks,
        starts=saves.starts,
        ends=saves.ends,
        next_save=next_save,
        # Without save times between, the next one is the end (or the start) for good.
        save_time=gather_row(problem.ts, next_save) if between else saves.save_time,
        window=saves.window + (Landing(y=step.out.y1, saved=on_save),) if between else (),
    )
    return saves, next_save >= problem.save_counts, landing if between or problem.jumps is not None else None


def pending(problem: Problem, t: Tensor, saves: SaveBuffer) -> Tensor:
    """`[2]` integers, `Pending`'s fields on the device, for samples at times `t` `[B]`."""
    if not problem.interpolate_saves:
        if not saves.window:  # nothing noted, or only the end to save (`_between`)
            width = (saves.next_save - saves.ends[-1]).amax()
            return torch.stack([width, torch.zeros_like(width)])
        width = torch.stack([landing.saved for landing in saves.window], dim=1).sum(1).amax()
        return torch.stack([width, torch.zeros_like(width)])
    reached = _reached(problem, t)
    width = (reached - saves.next_save).amax()
    current = ((reached == saves.next_save) | (gather_row(problem.ts, saves.next_save) == t)).all()
    return torch.stack([width, current.long()])


def read_pending(problem: Problem, t: Tensor, saves: SaveBuffer) -> Pending:
    """`Pending` read from the device (one read); for the end of a solve or stretch."""
    width, current = checks.read(problem, pending(problem, t, saves))  # with the steps' deferred checks
    return Pending(width, bool(current))


def _reached(problem: Problem, t: Tensor) -> Tensor:
    """`[B]` the save times up to each sample's time `t` `[B]` (one past the last)."""
    return torch.searchsorted(problem.key_times, problem.along(t).unsqueeze(1), right=True).squeeze(1)


def flush(problem: Problem, t: Tensor, y: Tensor, saves: SaveBuffer, todo: Pending) -> SaveBuffer:
    """`saves` with the outputs its window noted written (`todo` as `pending` gave it), up to
    each sample's time `t` `[B]` (where its state is `y` `[B, *state]`); the window empties."""
    if not problem.interpolate_saves:
        return _write_landings(saves, todo.width) if saves.window else _write_ends(saves, y, todo.width)
    if not saves.window and not (todo.width == 1 and todo.current):
        return saves
    return interpolate_window(problem, t, y, saves, todo)


def interpolate_window(problem: Problem, t: Tensor, y: Tensor, saves: SaveBuffer, todo: Pending) -> SaveBuffer:
    """Write every save time up to each sample's current time `t` `[B]` (where its state is
    `y` `[B, *state]`) from the dense output of the steps in the window; the window empties.

    One batched evaluation for up to `todo.width` save times per sample. A save time at the
    end of an accepted step takes that step's value exactly; when the only save time any
    sample has left to write is its current time (`todo.current`: a solve that ends, with one
    save after its start or its last), no interpolation is needed at all.
    """
    reached = _reached(problem, t)
    if todo.width == 0:
        block = None
    elif todo.width == 1 and todo.current:
        # Each sample's one save time left is where it stands: its state, exactly.
        block = y.unsqueeze(1)
    else:
        block = _evaluate_window(problem, t, saves.window, saves.next_save, todo.width)
    return _append(saves, block, reached)


def _between(problem: Problem) -> bool:
    """Whether the solve has save times between its start and its end. Without any, the one
    output left is where each sample stops (the loop lands on its end), so no step is kept for
    it: a backward adjoint interval, of a large augmented state, is such a solve."""
    return problem.ts.shape[1] > 2


def _write_ends(saves: SaveBuffer, y: Tensor, width: int) -> SaveBuffer:
    """`saves` with the end state `y` `[B, *state]` written for the samples that landed on their
    end since the last block (`width` 1: some did; 0: none), in a solve without saves between."""
    if width == 0:
        return saves
    return SaveBuffer(
        blocks=saves.blocks + (y.unsqueeze(1),),
        starts=saves.starts + (saves.ends[-1],),
        ends=saves.ends + (saves.next_save,),
        next_save=saves.next_save,
        save_time=saves.save_time,
        window=(),
    )


def _write_landings(saves: SaveBuffer, width: int) -> SaveBuffer:
    """`saves` with the states its window of `Landing`s saved written as one block of `width`
    columns (row b: its landings in order); the window empties."""
    if width == 0:
        return _replace_window(saves, ())
    saved = torch.stack([landing.saved for landing in saves.window], dim=1)  # [B, W]
    start = saves.next_save - saved.sum(1)
    reached = torch.cumsum(saved, dim=1)
    # Column j of row b: the first step of the window where its (j + 1)-th landing happened.
    wanted = torch.arange(1, width + 1, device=saved.device).expand(saved.shape[0], -1).contiguous()
    step = torch.searchsorted(reached, wanted).clamp_max(saved.shape[1] - 1)
    states = torch.stack([landing.y for landing in saves.window], dim=1)  # [B, W, *state]
    block = states.gather(1, step.reshape(step.shape + (1,) * (states.ndim - 2)).expand(-1, -1, *states.shape[2:]))
    return SaveBuffer(
        blocks=saves.blocks + (block,),
        starts=saves.starts + (start,),
        ends=saves.ends + (saves.next_save,),
        next_save=saves.next_save,
        save_time=saves.save_time,
        window=(),
    )


def _evaluate_window(
    problem: Problem, t: Tensor, window: tuple[StepRecord, ...], next_save: Tensor, width: int
) -> Tensor:
    """`[B, width, *state]` the outputs from `next_save` `[B]` on, from the dense output of the
    steps in `window` (columns past a sample's current time `t` `[B]` are never read)."""
    t0, t1, y0, y1, coeffs, accepted = zip(*window)
    t0, t1, accepted = (torch.stack(parts, dim=1) for parts in (t0, t1, accepted))
    columns = torch.arange(width, device=t.device)
    index = (next_save.unsqueeze(1) + columns).clamp_max(problem.ts.shape[1] - 1)
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
    return torch.where(expand_like(target == end, block), y1, block)


def _append(saves: SaveBuffer, block: Tensor | None, reached: Tensor) -> SaveBuffer:
    """`saves` with `block` (`None`: nothing) written from `next_save` up to `reached` `[B]`,
    and an empty window."""
    if block is None:
        return _replace_window(saves, (), next_save=reached)
    return SaveBuffer(
        blocks=saves.blocks + (block,),
        starts=saves.starts + (saves.next_save,),
        ends=saves.ends + (reached,),
        next_save=reached,
        save_time=saves.save_time,
        window=(),
    )


def _replace_window(saves: SaveBuffer, window: tuple, next_save: Tensor | None = None) -> SaveBuffer:
    """`saves` with `window`, and `next_save` `[B]` when given."""
    return SaveBuffer(
        blocks=saves.blocks,
        starts=saves.starts,
        ends=saves.ends,
        next_save=saves.next_save if next_save is None else next_save,
        save_time=saves.save_time,
        window=window,
    )


def _take_rows(stacked: Tensor, flat: Tensor, shape: torch.Size) -> Tensor:
    """`[*shape, ...]` rows `flat` of `[W, B, ...]` `stacked`, its rows counted step after step."""
    return stacked.flatten(0, 1).index_select(0, flat).unflatten(0, shape)
