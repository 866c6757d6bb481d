"""Delay equations vs torchdde: work-precision of the method of steps with Dopri5 on Mackey-Glass and a neural DDE.

Two problems, each a batch of 32 samples with different initial histories, float32:

* Mackey-Glass, y' = 0.2 y(t - 17) / (1 + y(t - 17)^10) - 0.1 y on [0, 100], constant
  histories from 0.5 to 1.3; the forward solve is timed.
* a neural DDE, y' = MLP([y(t), y(t - 1)]) - y / 2 with a 8 -> 32 -> 4 tanh MLP on [0, 10],
  histories c + a sin(w t) per sample; forward + backward of the mean square of the saved
  states is timed (backprop through the solver in both libraries).

Both libraries use Dopri5 with rtol = atol = tol at several tolerances: neuralct's
`MethodOfSteps(Dopri5())` with a `PIDController`, torchdde's `integrate(Dopri5())` with its
`AdaptiveStepSizeController` (`discretize_then_optimize=True`). The error is the largest
absolute deviation, over samples and save times, from a reference: neuralct's
`MethodOfSteps(Dopri5())` in float64 at rtol = atol = 1e-10, asserted to agree with
`MethodOfSteps(Tsit5())` at the same tolerance (tests/core/test_dde.py checks the method against
SciPy). Equal accuracy: for every neuralct point, torchdde's wall time at the same error is
interpolated log-log between the two points of torchdde's work-precision Pareto front that
bracket it; neuralct points outside torchdde's range of errors are listed, not compared (no
extrapolation). The target is the worst of the compared ratios; in full mode both libraries are
profiled (cProfile) at its tolerance. Quick mode runs 1e-3, 1e-5 and 1e-7 only.
Run: `python -m benchmarks.dde [--quick]`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torchdde
from torch import Tensor, nn

import neuralct as nct
from benchmarks.harness import (
    BenchmarkResult,
    Matcher,
    Measurement,
    Settings,
    Target,
    median_seconds,
    pareto_front,
    profile_shares,
    wall_at_error,
)
from benchmarks.report import main_for

BATCH, HIDDEN, SEED = 32, 32, 0
TOLERANCES = (1e-3, 1e-4, 1e-5, 1e-6, 1e-7)
QUICK_TOLERANCES = (1e-3, 1e-5, 1e-7)
REFERENCE_TOLERANCE = 1e-10
MAX_STEPS = 100_000


class MackeyGlass(nn.Module):
    """y' = beta y_tau / (1 + y_tau^n) - gamma y with beta 0.2, gamma 0.1, n 10; counts calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, y: Tensor, lagged: Tensor) -> Tensor:
        """dy/dt from `y` and `lagged` = y(t - tau), both `[B, 1]`."""
        self.calls += 1
        return 0.2 * lagged / (1 + lagged**10) - 0.1 * y


class NeuralDelayField(nn.Module):
    """y' = MLP([y, y_tau]) - y / 2 with an MLP 2D -> 32 -> D (tanh); counts calls."""

    def __init__(self, state: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * state, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, state))
        self.calls = 0

    def forward(self, y: Tensor, lagged: Tensor) -> Tensor:
        """dy/dt from `y` and `lagged` = y(t - tau), both `[B, D]`."""
        self.calls += 1
        return self.net(torch.cat([y, lagged], dim=-1)) - 0.5 * y


class SineHistory(nn.Module):
    """phi(t) = c + a sin(w t), each `[B, D]`: t may be `[B]` (neuralct) or 0-dim (torchdde)."""

    def __init__(self, c: Tensor, a: Tensor, w: Tensor) -> None:
        super().__init__()
        self.register_buffer("c", c)
        self.register_buffer("a", a)
        self.register_buffer("w", w)

    def forward(self, t: Tensor) -> Tensor:
        """`[B, D]` history values."""
        return self.c + self.a * torch.sin(self.w * t.reshape(-1, 1).to(self.c.dtype))


@dataclass
class Problem:
    """A batch of DDEs y' = field(y, y(t - tau)) on [0, t1] with history phi, saved at `saves`
    equally spaced times; `train` times forward + backward instead of the forward alone."""

    name: str
    field: nn.Module
    history: SineHistory
    tau: float
    t1: float
    saves: int
    train: bool

    def save_times(self) -> Tensor:
        """`[K]` save times in the history's dtype and device."""
        return torch.linspace(0.0, self.t1, self.saves, dtype=self.history.c.dtype, device=self.history.c.device)

    def in_dtype(self, dtype: torch.dtype) -> Problem:
        """A copy with field and history in `dtype`."""
        return dataclasses.replace(
            self, field=copy.deepcopy(self.field).to(dtype), history=copy.deepcopy(self.history).to(dtype)
        )


def problems(device: torch.device) -> list[Problem]:
    """Mackey-Glass with constant histories 0.5 ... 1.3, and the neural DDE with random sinusoidal histories."""
    torch.manual_seed(SEED)
    levels = torch.linspace(0.5, 1.3, BATCH, device=device)[:, None]
    constant = SineHistory(levels, torch.zeros_like(levels), torch.zeros_like(levels))
    state = 4
    c, a, w = (torch.randn(BATCH, state), torch.randn(BATCH, state), torch.rand(BATCH, state))
    sinusoidal = SineHistory(0.5 * c.to(device), 0.5 * a.to(device), 1 + w.to(device))
    return [
        Problem("Mackey-Glass", MackeyGlass(), constant, tau=17.0, t1=100.0, saves=51, train=False),
        Problem("neural DDE", NeuralDelayField(state).to(device), sinusoidal, tau=1.0, t1=10.0, saves=21, train=True),
    ]


def solve_neuralct(problem: Problem, tol: float, inner: nct.AbstractSolver | None = None) -> Tensor:
    """`[B, K, D]` by `MethodOfSteps(inner)` (Dopri5 unless told) with a PID controller."""
    ts = problem.save_times()
    term = nct.DelayTerm(lambda t, y, lagged, args: problem.field(y, lagged[:, 0]), [problem.tau], problem.history)
    y0 = problem.history(ts[:1].expand(BATCH))
    solver = nct.MethodOfSteps(inner or nct.Dopri5())
    controller = nct.PIDController(rtol=tol, atol=tol)
    return nct.solve(term, y0, ts, solver=solver, controller=controller, max_steps=MAX_STEPS).ys


def solve_torchdde(problem: Problem, tol: float) -> Tensor:
    """`[B, K, D]` by `torchdde.integrate` with Dopri5, its adaptive controller (a fresh one:
    it keeps past errors) and backprop through the solver."""
    ts = problem.save_times()
    return torchdde.integrate(
        lambda t, y, args, *, history: problem.field(y, history[0]),
        torchdde.Dopri5(),
        ts[0],
        ts[-1],
        ts,
        problem.history,
        None,
        stepsize_controller=torchdde.AdaptiveStepSizeController(atol=tol, rtol=tol),
        delays=torch.tensor([problem.tau], device=ts.device),
        discretize_then_optimize=True,
        max_steps=MAX_STEPS,
    )


SOLVERS: dict[str, Callable[[Problem, float], Tensor]] = {"neuralct": solve_neuralct, "torchdde": solve_torchdde}


def timed_call(solve: Callable[[Problem, float], Tensor], problem: Problem, tol: float) -> None:
    """The forward solve, or for a training problem forward + backward of the mean square."""
    if not problem.train:
        with torch.no_grad():
            solve(problem, tol)
        return
    problem.field.zero_grad(set_to_none=True)
    solve(problem, tol).square().mean().backward()


def reference(problem: Problem) -> tuple[Tensor, float]:
    """The float64 reference solution and its distance to the same solve with Tsit5 (asserted small)."""
    wide = problem.in_dtype(torch.float64)
    with torch.no_grad():
        dopri5 = solve_neuralct(wide, REFERENCE_TOLERANCE)
        tsit5 = solve_neuralct(wide, REFERENCE_TOLERANCE, nct.Tsit5())
    gap = float((dopri5 - tsit5).abs().max())
    assert gap < 1e-7, f"{problem.name}: the reference solves disagree by {gap:.2g}"
    return dopri5, gap


def equal_error_target(
    result: BenchmarkResult, problem: Problem, points: dict[str, list], tolerances: tuple[float, ...]
) -> float | None:
    """Add the worst torchdde / neuralct wall ratio at equal error over neuralct's points
    inside torchdde's range ("n/a" when none is), with a note per point; returns the tolerance
    of the worst point."""
    ratios: dict[float, float] = {}
    lines = []
    span = [error for error, _ in pareto_front(points["torchdde"])]
    for tol, (error, wall) in zip(tolerances, points["neuralct"]):
        peer = wall_at_error(points["torchdde"], error)
        if peer is None:
            side = "below" if error < span[-1] else "above"
            lines.append(f"tol {tol:g}: error {error:.2g} {side} torchdde's range ({span[-1]:.2g} to {span[0]:.2g})")
            continue
        ratios[tol] = peer / wall
        lines.append(f"tol {tol:g}: error {error:.2g} in {wall * 1e3:.3g} ms vs torchdde {peer * 1e3:.3g} ms")
    result.notes.append(f"{problem.name}, neuralct vs torchdde at equal error: " + "; ".join(lines) + ".")
    worst = min(ratios, key=ratios.__getitem__) if ratios else None
    description = f"{problem.name}: torchdde / neuralct wall at equal error, worst of {len(ratios)} points"
    result.targets.append(Target(description, math.nan if worst is None else ratios[worst], 1.0))
    return worst


def profile_note(library: str, problem: Problem, tol: float) -> str:
    """Shares of one profiled call spent in the history (delayed-value lookups, and setting up
    or extending the stored solution they read), the vector field, autograd's backward, and the
    rest (the solver loop, step-size control, Runge-Kutta arithmetic)."""
    history: dict[str, tuple[Matcher, ...]] = {
        "neuralct": (("method_of_steps.py", "delayed"), ("method_of_steps.py", "__init__")),
        "torchdde": (
            ("dense_interpolation.py", "__call__"),
            ("dense_interpolation.py", "add_point"),
            SineHistory.forward,
        ),
    }
    parts = {
        "history": history[library],
        "vector field": (type(problem.field).forward,),
        "backward": (torch.Tensor.backward,),
    }
    shares = profile_shares(lambda: timed_call(SOLVERS[library], problem, tol), parts)
    split = ", ".join(f"{name} {share:.0%}" for name, share in shares.items() if share > 0)
    return f"cProfile of {library} on {problem.name} at tol {tol:g}: {split}."


def measure_problem(result: BenchmarkResult, problem: Problem, settings: Settings) -> None:
    """Both libraries at every tolerance: error against the reference, evaluations, wall; then
    the equal-error target and (full mode) the profiles at its worst point's tolerance."""
    truth, gap = reference(problem)
    points: dict[str, list[tuple[float, float]]] = {library: [] for library in SOLVERS}
    tolerances = QUICK_TOLERANCES if settings.quick else TOLERANCES
    for tol in tolerances:
        for library, solve in SOLVERS.items():
            problem.field.calls = 0
            with torch.no_grad():
                error = float((solve(problem, tol).double() - truth).abs().max())
            evals = problem.field.calls
            wall = median_seconds(lambda solve=solve, tol=tol: timed_call(solve, problem, tol), settings)
            result.rows.append(Measurement(f"{problem.name}, tol {tol:g}", library, wall, evals=evals, error=error))
            points[library].append((error, wall))
    assert points["torchdde"][-1][0] < 1e-3, f"{problem.name}: torchdde does not approach the reference"
    result.notes.append(f"{problem.name}: the float64 reference agrees with Tsit5 at 1e-10 to {gap:.1g}.")
    worst = equal_error_target(result, problem, points, tolerances)
    if not settings.quick:
        tol = tolerances[len(tolerances) // 2] if worst is None else worst
        result.notes += [profile_note(library, problem, tol) for library in SOLVERS]


def run(settings: Settings) -> BenchmarkResult:
    """Work-precision of both libraries on both problems; equal-error targets; profiles at one tolerance."""
    result = BenchmarkResult(
        name="dde",
        title="Delay equations vs torchdde",
        setup=(
            f"Batch {BATCH}, float32, different initial histories per sample. Mackey-Glass (beta 0.2, gamma 0.1, "
            "n 10, tau 17) on [0, 100], constant histories 0.5..1.3, 51 save times, forward timed; neural DDE "
            "y' = MLP([y, y(t-1)]) - y/2 (MLP 8->32->4, tanh), D = 4, on [0, 10], histories c + a sin(w t), "
            "21 save times, forward + backward of the mean-square states timed. Dopri5 in both (neuralct "
            "`MethodOfSteps(Dopri5())` + `PIDController`; torchdde `integrate(Dopri5())` + "
            f"`AdaptiveStepSizeController`), rtol = atol = tol in "
            f"{', '.join(f'{t:g}' for t in (QUICK_TOLERANCES if settings.quick else TOLERANCES))}. "
            "error: max abs error over samples and save times against neuralct `MethodOfSteps(Dopri5())` in "
            "float64 at rtol = atol = 1e-10; evals: vector-field calls on the whole batch. Equal error: torchdde's "
            "wall interpolated log-log on its work-precision front at each neuralct error inside its range."
        ),
    )
    for problem in problems(settings.device):
        measure_problem(result, problem, settings)
    return result


if __name__ == "__main__":
    main_for(run, __doc__.splitlines()[0])
