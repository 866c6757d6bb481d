"""Peak memory of a training step under each gradient strategy, as the docs state it.

Peaks are read from the profiler's allocation records (`benchmarks.memory.peak_mib`): the bytes
torch's allocator hands out and takes back during the step, summed in order, which is exact and
the same from run to run. The problem is the benchmark's neural ODE (MLP field, adaptive Tsit5
whose steps are set by `dt_max`), small enough for a few seconds per test.
"""

from __future__ import annotations

import pytest
import torch

import neuralct as nct
from benchmarks.memory import Field, peak_mib, training_step

CPU = torch.device("cpu")
BATCH = 8
FEW, MANY = 8, 64  # steps; MANY = 8 x FEW


def peak(field: Field, gradient: nct.AbstractGradient, steps: int) -> float:
    """MiB at the peak of one training step over one save interval of about `steps` steps."""
    return peak_mib(training_step(field, gradient, steps, CPU, batch=BATCH, saves=2), CPU)


@pytest.mark.parametrize(
    "gradient",
    [pytest.param(nct.Backsolve(), id="full-norm"), pytest.param(nct.Backsolve(seminorm=True), id="seminorm")],
)
def test_adjoint_peak_memory_at_eight_times_the_steps_stays_within_one_and_a_half_times(gradient):
    # Measured before the fix: full norm 3.7 -> 12.2 MiB (the loop's window of step records, each
    # with the [B, 2N + P] stages), seminorm 0.21 -> 1.39 MiB (every backward step's dense output
    # kept for the quadrature); after: 0.66 -> 0.66 and 0.17 -> 0.18 MiB (batch 8).
    torch.manual_seed(0)
    field = Field(state=4, width=32)
    few, many = peak(field, gradient, FEW), peak(field, gradient, MANY)
    assert 0.9 * few <= many <= 1.5 * few


def test_full_norm_adjoint_holds_a_few_copies_of_its_augmented_state_not_one_per_step():
    # Each sample integrates [y, a, a_theta] of 2N + P numbers; a Tsit5 step needs its seven
    # stages at once, so the peak cannot be below them, and should be a small multiple of them.
    # The stages take 0.29 MiB; the peak was 12.2 MiB before the fix (42x), 0.66 MiB after.
    torch.manual_seed(0)
    field = Field(state=4, width=32)
    parameters = sum(p.numel() for p in field.parameters())
    stages = 7 * BATCH * (2 * field.state + parameters) * 4 / 2**20
    measured = peak(field, nct.Backsolve(), MANY)
    assert stages <= measured <= 3 * stages


def test_checkpointed_backprop_peaks_at_one_stretch_of_backprop_whatever_the_steps():
    # With checkpoint_every=k the backward pass holds the graph of one stretch of k steps
    # (Backprop over k steps) and the loop state at the start of each stretch (steps / k of
    # them). Measured before the fix, state 32: 0.78 MiB at 64 steps against 0.34 MiB for
    # Backprop over 8 (every stretch kept up to 32 earlier steps' records); after: 0.36 MiB,
    # with plain Backprop at 2.3 MiB.
    torch.manual_seed(0)
    field = Field(state=32, width=32)
    one_stretch = peak(field, nct.Backprop(), FEW)
    plain = peak(field, nct.Backprop(), MANY)
    checkpointed = peak(field, nct.Backprop(checkpoint_every=FEW), MANY)
    assert 0.8 * one_stretch <= checkpointed <= 1.25 * one_stretch
    assert checkpointed <= plain / 4
