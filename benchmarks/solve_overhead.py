"""Solver overhead side by side: neuralct vs torchdiffeq vs torchode on one small neural ODE.

Two cases, as in diffrax's `small_neural_ode` benchmark (an MLP vector field, dopri5,
rtol = atol = 1e-6):

* forward: a batch of 256 samples, 10 save times, no gradients;
* train step: a batch of 32 samples, forward and backward of a mean-square loss.

For each library we print the median wall time over repeats, the number of vector-field
calls (each on the whole batch), the time of one call measured on its own, and the overhead
ratio wall / (calls x time of one call). For the train step the unit cost is one forward and
backward call of the vector field. A ratio of 1 means the solver adds nothing beyond the
vector field. Run: `python benchmarks/solve_overhead.py [--repeats N]`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torchdiffeq
import torchode

import neuralct as nct

RTOL = ATOL = 1e-6


class VectorField(torch.nn.Module):
    """MLP 4 -> 32 -> 32 -> 4 with softplus hidden layers and a tanh output; counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, 32),
            torch.nn.Softplus(),
            torch.nn.Linear(32, 32),
            torch.nn.Softplus(),
            torch.nn.Linear(32, 4),
            torch.nn.Tanh(),
        )
        self.calls = 0

    def forward(self, t: torch.Tensor, y: torch.Tensor, args: object = None) -> torch.Tensor:
        self.calls += 1
        return self.net(y)


def solve_neuralct(f: VectorField, y0: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
    term = nct.ODETerm(f)
    return nct.solve(term, y0, ts, solver=nct.Dopri5(), controller=nct.PIDController(rtol=RTOL, atol=ATOL)).ys


def solve_torchdiffeq(f: VectorField, y0: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
    return torchdiffeq.odeint(lambda t, y: f(t, y), y0, ts, method="dopri5", rtol=RTOL, atol=ATOL).transpose(0, 1)


def solve_torchode(f: VectorField, y0: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
    term = torchode.ODETerm(lambda t, y: f(t, y))
    method = torchode.Dopri5(term=term)
    controller = torchode.IntegralController(atol=ATOL, rtol=RTOL, term=term)
    solver = torchode.AutoDiffAdjoint(method, controller)
    problem = torchode.InitialValueProblem(y0=y0, t_eval=ts.expand(y0.shape[0], -1))
    return solver.solve(problem).ys


LIBRARIES: dict[str, Callable[[VectorField, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "neuralct": solve_neuralct,
    "torchdiffeq": solve_torchdiffeq,
    "torchode": solve_torchode,
}


def median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def unit_cost(f: VectorField, y0: torch.Tensor, backward: bool) -> float:
    """Median time of one vector-field call on the batch (forward, or forward + backward)."""
    y = y0.clone().requires_grad_(backward)

    def once() -> None:
        out = f(None, y)
        if backward:
            out.sum().backward()

    with torch.set_grad_enabled(backward):
        return median_time(once, 200)


def run_case(name: str, batch: int, backward: bool, repeats: int) -> None:
    torch.manual_seed(0)
    f = VectorField()
    y0 = torch.randn(batch, 4)
    ts = torch.linspace(0.0, 10.0, 10)
    unit = unit_cost(f, y0, backward)
    print(f"\n{name}: batch {batch}, dopri5, rtol = atol = {RTOL:g}, one call = {unit * 1e6:.1f} us")
    print(f"{'library':<12} {'wall ms':>9} {'calls':>6} {'overhead':>9} {'vs neuralct':>12}")
    reference = None
    for library, solve in LIBRARIES.items():

        def step(solve=solve) -> None:
            with torch.set_grad_enabled(backward):
                ys = solve(f, y0, ts)
                if backward:
                    ys.square().mean().backward()

        wall = median_time(step, repeats)
        f.calls = 0
        step()
        calls = f.calls
        reference = wall if reference is None else reference
        print(f"{library:<12} {wall * 1e3:9.2f} {calls:6d} {wall / (calls * unit):9.2f} {wall / reference:11.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    run_case("forward", batch=256, backward=False, repeats=args.repeats)
    run_case("train step", batch=32, backward=True, repeats=args.repeats)


if __name__ == "__main__":
    main()
