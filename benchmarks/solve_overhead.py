"""Solver overhead: the neural-ODE solve (batch 256) and backprop train step (batch 32) alone.

The two cases of `benchmarks.neural_ode` that measure what a solve costs beyond its vector
field: wall time, vector-field calls and the overhead ratio wall / (calls x one call) for
neuralct, torchdiffeq and torchode, eager and compiled (neuralct's `compile=True`, torchode
under `torch.compile`), timed in turns in one process. `make bench` runs them as part of the
whole neural-ODE benchmark.

Run: `python -m benchmarks.solve_overhead [--quick] [--threads N]`.
"""

from __future__ import annotations

from benchmarks import neural_ode
from benchmarks.harness import BenchmarkResult, Settings
from benchmarks.report import main_for


def run(settings: Settings) -> BenchmarkResult:
    """The solve cases (Dopri5 and Tsit5) and the backprop train step."""
    return neural_ode.run(settings, overhead_only=True)


if __name__ == "__main__":
    main_for(run, __doc__.splitlines()[0])
