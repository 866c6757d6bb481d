"""LTC train step vs ncps: neuralct's fused LTC solve against a Python loop over `ncps.torch.LTCCell`.

A fully connected LTC network of 32 neurons reads 4 input channels over 100 irregularly spaced
observations (per-sample gaps in [0.1, 2.1]; batch 32, float32) with 6 ODE unfolds per
observation gap. neuralct solves `LTC.term(batch)` with its default `LTCFused(6)` and
`KnotToKnot()`; ncps runs `LTCCell(FullyConnected(32), implicit_param_constraints=True)` in a
Python loop with the elapsed times shaped (B, 1), its parameters copied from the neuralct model.
We time forward + backward of the mean square of all 100 states, and the forward alone without
gradients (median of repeats after a warm-up), and assert once that the states agree; neuralct
runs eagerly and, in full mode, with `solve(..., compile=True)` (the first call compiles; its time
is noted). A cProfile
of one train step per library splits the time into the steps (the same unfold arithmetic in
both), autograd's backward and the rest (the solver loop and its bookkeeping).
Run: `python -m benchmarks.ltc [--quick]`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import torch
from ncps.torch import LTCCell
from ncps.wirings import FullyConnected
from torch import Tensor

import neuralct as nct
from benchmarks.harness import (
    BenchmarkResult,
    Measurement,
    Settings,
    median_seconds,
    profile_shares,
    saved_mib,
)
from benchmarks.report import main_for
from neuralct.data.series import IrregularBatch
from neuralct.models.ltc import LTC, LTCFused

BATCH, LENGTH, CHANNELS, UNITS, UNFOLDS = 32, 100, 4, 32, 6
SEED = 0
# Issue 24: the train step at least this much faster than the ncps loop.
SPEEDUP_TARGET = 1.5
BACKWARD = (torch.Tensor.backward,)
# neuralct also runs with `solve(..., compile=True)`, timed after a first call that compiles.
COMPILED = "neuralct, compile=True"


def make_batch(device: torch.device) -> IrregularBatch:
    """`LENGTH` observations per sample at per-sample gaps drawn from [0.1, 2.1]."""
    times = (0.1 + 2 * torch.rand(BATCH, LENGTH)).cumsum(dim=1)
    return IrregularBatch.from_padded(times.to(device), torch.randn(BATCH, LENGTH, CHANNELS).to(device))


def make_models(device: torch.device) -> tuple[LTC, LTCCell]:
    """A neuralct `LTC` and an ncps `LTCCell` with the same parameters (softplus constraints)."""
    model = LTC(CHANNELS, UNITS, 1, unfolds=UNFOLDS)
    cell = LTCCell(FullyConnected(UNITS), in_features=CHANNELS, ode_unfolds=UNFOLDS, implicit_param_constraints=True)
    missing = cell.load_state_dict(model.field.state_dict(), strict=False).missing_keys
    assert set(missing) == {"sparsity_mask", "sensory_sparsity_mask", "output_w", "output_b"}
    return model.to(device), cell.to(device)


def states_neuralct(model: LTC, batch: IrregularBatch, compile: bool = False) -> Tensor:
    """`[B, T, N]` states at the observations: the LTC field solved knot to knot by `LTCFused`
    (each step under `torch.compile` with `compile`)."""
    options = dataclasses.replace(model.default_solve_options(), compile=compile)
    term, y0 = model.term(batch), model.initial_state(batch)
    return nct.solve(term, y0, model.save_times(batch), **options.solve_kwargs()).ys[:, 1:]


def states_ncps(cell: LTCCell, batch: IrregularBatch) -> Tensor:
    """`[B, T, N]` states from a Python loop over the cell; the first elapsed time is 1 (the
    model's `first_gap`), then the per-sample gaps."""
    ones = torch.ones_like(batch.times[:, :1])
    elapsed = torch.cat([ones, batch.times.diff(dim=1)], dim=1)
    v = batch.values.new_zeros(BATCH, UNITS)
    states = []
    for k in range(LENGTH):
        _, v = cell(batch.values[:, k], v, elapsed[:, k : k + 1])
        states.append(v)
    return torch.stack(states, dim=1)


def train_step(module: torch.nn.Module, states: Callable[[], Tensor]) -> None:
    """Forward and backward of the mean square of every state."""
    module.zero_grad(set_to_none=True)
    states().square().mean().backward()


def forward_only(states: Callable[[], Tensor]) -> None:
    """The states without gradients."""
    with torch.no_grad():
        states()


def profile_note(library: str, shares: dict[str, float]) -> str:
    """One line of profile shares."""
    return f"cProfile of one {library} train step: " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()) + "."


def run(settings: Settings) -> BenchmarkResult:
    """Check agreement, time train step and forward for both libraries, profile the train steps."""
    torch.manual_seed(SEED)
    batch = make_batch(settings.device)
    model, cell = make_models(settings.device)
    libraries = {
        "neuralct": (model, lambda: states_neuralct(model, batch)),
        "ncps": (cell, lambda: states_ncps(cell, batch)),
    }
    with torch.no_grad():
        ours, theirs = (states() for _, states in libraries.values())
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    agreement = f"States agree to {float((ours - theirs).abs().max()):.2g}"
    if not settings.quick:  # its compilation would take more than quick mode's budget
        libraries[COMPILED] = (model, lambda: states_neuralct(model, batch, compile=True))
        start = time.perf_counter()
        train_step(model, libraries[COMPILED][1])
        compile_note = f"{COMPILED}: the first train step (compiling) took {time.perf_counter() - start:.1f} s."
        with torch.no_grad():
            compiled = libraries[COMPILED][1]()
        torch.testing.assert_close(compiled, theirs, rtol=0, atol=1e-5)
        agreement += f", compiled {float((compiled - theirs).abs().max()):.2g}"
    result = BenchmarkResult(
        name="ltc",
        title="LTC vs ncps",
        setup=(
            f"Fully connected LTC, {UNITS} neurons, {CHANNELS} input channels, batch {BATCH}, {LENGTH} observations "
            f"at per-sample gaps in [0.1, 2.1], float32, {UNFOLDS} fused semi-implicit unfolds per gap (softplus "
            "constraints). neuralct: `LTC` states by `nct.solve(LTCFused(6), KnotToKnot())`, eagerly and (full "
            "mode) with `compile=True`; ncps: Python loop "
            "over `LTCCell` with elapsed times (B, 1), parameters copied. Timed: forward + backward of the "
            "mean-square of all states ('train step'), and the forward alone under `no_grad`. evals = unfolds "
            "(state-synapse evaluations) per sample."
        ),
    )
    for library, (module, states) in libraries.items():
        wall = median_seconds(lambda m=module, s=states: train_step(m, s), settings)
        memory = saved_mib(states)
        result.rows.append(Measurement("train step", library, wall, evals=UNFOLDS * LENGTH, memory_mib=memory))
    for library, (_, states) in libraries.items():
        wall = median_seconds(lambda s=states: forward_only(s), settings)
        result.rows.append(Measurement("forward", library, wall, evals=UNFOLDS * LENGTH))
    result.speedup("train step", "ncps", SPEEDUP_TARGET)
    result.notes.append(agreement + " (max abs, float32; asserted <= 1e-5).")
    if COMPILED in libraries:
        result.speedup("train step", "ncps", SPEEDUP_TARGET, library=COMPILED)
        result.notes.append(compile_note)
    parts = {
        "neuralct": {"fused steps (`LTCFused.step`)": (LTCFused.step,)},
        "ncps": {"cell steps (`LTCCell.forward`)": (LTCCell.forward,)},
    }
    for library in ("neuralct", "ncps"):
        module, states = libraries[library]
        shares = profile_shares(lambda m=module, s=states: train_step(m, s), {**parts[library], "backward": BACKWARD})
        result.notes.append(profile_note(library, shares))
    return result


if __name__ == "__main__":
    main_for(run, __doc__.splitlines()[0])
