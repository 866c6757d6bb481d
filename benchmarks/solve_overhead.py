"""Solver overhead: the neural-ODE solve (batch 256) and backprop train step (batch 32) alone.

The two cases of `benchmarks.neural_ode` that measure what a solve costs beyond its vector
field: wall time, vector-field calls and the overhead ratio wall / (calls x one call) for
neuralct, torchdiffeq and torchode, eager and compiled (neuralct's `compile=True`, torchode
under `torch.compile`), side by side in one process. `make bench` runs them as part of the
whole neural-ODE benchmark.

Run: `python -m benchmarks.solve_overhead [--quick] [--threads N]`.
"""

from __future__ import annotations

from benchmarks.harness import BenchmarkResult, Settings, main_for
from benchmarks.neural_ode import solve_cases, train_cases


def run(settings: Settings) -> BenchmarkResult:
    """The solve cases (Dopri5 and Tsit5) and the backprop train step."""
    result = BenchmarkResult(
        name="solve_overhead",
        title="Solver overhead",
        setup=(
            "MLP 4 -> 32 -> 32 -> 4 (softplus, tanh output), 10 save times on [0, 10], rtol = atol = 1e-6, float32. "
            "Solve: batch 256, no gradients. Train step: batch 32, Dopri5, forward + backward of a mean-square loss "
            "by backprop. evals = vector-field calls on the whole batch."
        ),
    )
    solve_cases(result, settings)
    train_cases(result, settings, gradients=("backprop",))
    return result


if __name__ == "__main__":
    main_for(run, __doc__.splitlines()[0])
