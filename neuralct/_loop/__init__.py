"""The batch-parallel step loop, readable in one sitting.

Every sample has its own time, step size, accept/reject decision, save pointer, status and
counters; a sample that finishes or fails freezes while the others go on, so no sample's
result depends on its batch mates. The state is immutable: each iteration returns a new
`LoopState`, which lets gradient strategies re-run a stretch of steps (checkpointing).

One iteration (`loop._iterate`) reads as the algorithm:

1. **attempt** (`attempt.py`): every running sample takes one solver step to its step end
   (`clock.step_end`: the proposed step, stretched onto the next boundary when it would fall
   just short of it) and the controller returns its `Decision` (accept, next step size,
   whether it changed; `ConstantStep` and `KnotToKnot`, with no error to judge, are not
   asked: "accept, same step" is built directly). Tensor operations only: what
   `compile=True` compiles (`compile.py`, which also prepares the problem's derived values
   before tracing).
   With an event (`events.py`), the event function is then evaluated at each step's end; a
   sample whose value changed sign has its crossing located on the step's interpolant
   (`roots.py`, Illinois) and, for a terminal event, is moved back onto it and stops there.
2. **record saves** (`saves.py`): a sample that landed on its save time notes it (the state
   is written out with its window of steps); an adaptive solve with dense output instead
   keeps a window of `StepRecord`s (`records.py`) and interpolates the save times they passed
   every `SAVE_WINDOW` steps.
3. **boundaries and jumps** (`jumps.py`): a sample that landed on a jump time of the term
   restarts its solver carry from the limit past it.
4. **count** (`counters.py`): evaluations, steps and accepted steps, tallied per iteration
   and added up every `COUNT_WINDOW` iterations.
5. **advance the clock** (`clock.py`): time, next step size, how far a step may be stretched
   onto a boundary, and the fixed-step count that keeps n steps of `dt` on the n-th multiple.
6. **update statuses** (`progress.py`): samples on their last save time finish; those out of
   steps, step size or finite values fail with their `Status`.

No step reads a device value to decide: rare paths (rejections, landings, jumps, failures)
are device-side masks, and an iteration after a sample is done is an exact no-op for it. The
loop reads the device only at its looks (`look.py`), at most 32 iterations apart and no later
than the slowest sample's estimated end: how many samples still run, and what the window of
saves has to write. Under a `ConstantStep` the iterations between two looks run as one
*stride* (`strides.py`) where no sample can reach a save or jump time: the solver's steps
back to back, the bookkeeping done once, and the stride discarded and run again iteration by
iteration if a state it reached is not finite. The checks that a step's path
queries make (a `BrownianGrid`'s on-grid check) are noted on the device and read in the same
transfers (`checks.py`). (Events still read once per
step whether any sample crossed, to locate crossings only then.) With `compact=True` a look
that finds at most half of the batch running moves those samples into a smaller batch and
scatters their results back (`compaction.py`).

The state (`state.py`) groups these as records: `Clock`, `SaveBuffer`, `Counters`,
`Progress`, beside `y`, the solver's carry and the controller's state, and, as asked, the
`EventLog` of an event and the trail of every step's `Visit` (`trail.py`, for
`SaveAt(steps=True)`). `neuralct.problem` holds `Problem`, everything fixed during a solve.
`loop.py` holds the entry points: `initial_state`, `advance` (iterate), `settle` (write
pending saves and counts) and `finish` (the `Solution`, with the dense output built from the
`Steps` of every `StepRecord`, the same records the continuous adjoint's parameter quadrature
reads). `rows.py` has the row-wise tensor helpers.
"""

from .loop import advance, finish, initial_state, settle
from ..problem import Problem
from .records import StepRecord, Steps
from .outputs import hold_past_ends
from .state import LoopState

__all__ = [
    "LoopState",
    "Problem",
    "StepRecord",
    "Steps",
    "advance",
    "finish",
    "hold_past_ends",
    "initial_state",
    "settle",
]
