"""Heterogeneous batch: Van der Pol with stiffness spread over the batch, per-sample vs joint step control.

A batch of 64 Van der Pol oscillators x'' = mu (1 - x^2) x' - x, with mu log-spaced from 1 to 20,
starts at (x, x') = (2, 0) and is solved over [0, 10] with 5 save times by Dopri5 at rtol 1e-6,
atol 1e-8 in float64, without gradients, by:

* neuralct with per-sample step control (its default): each oscillator takes its own steps;
* neuralct with joint control (`PIDController(per_sample=False)`): one step for the batch,
  accepted only when every sample's error is;
* torchdiffeq `odeint` (joint by construction: one step, error norm over the whole batch);
* torchode (per-sample steps).

Per library we time the solve (median of repeats after a warm-up) and record the evaluations of
the vector field summed over samples: neuralct counts per sample (`stats.vf_evals`, only while a
sample runs); for joint control every call evaluates every sample (calls x batch); torchode's
own `n_f_evals` also counts every call for every sample, so its per-sample work is read from its
per-sample step counts (2 + 6 evaluations per step of the first-same-as-last Dopri5). The error
is the largest absolute error over samples and save times against scipy's DOP853 at rtol = atol
= 1e-12.

These rows compare the controllers at equal tolerance, where joint control, which steps every
sample at the pace of the hardest, is far more accurate than asked on the others. The
work-precision rows compare them at equal error: every library at rtol 1e-3 .. 1e-9 (1e-3,
1e-5, 1e-7 in quick mode; atol = rtol / 100), wall time and evaluations against error; the
targets are that no peer is faster at equal error (`benchmarks.precision`), and the ratio of
evaluations at equal error with joint control's evaluations interpolated log-log at each
per-sample error inside its range.
Run: `python -m benchmarks.heterogeneous [--quick] [--device cuda] [--threads N]`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
import torchdiffeq
import torchode
from scipy.integrate import solve_ivp
from torch import Tensor

import neuralct as nct
from benchmarks.harness import BenchmarkResult, Measurement, Settings, Target, median_seconds, wall_at_error
from benchmarks.precision import equal_error_targets, sweep
from benchmarks.report import main_for

BATCH, MU_MIN, MU_MAX, T_END, SAVES = 64, 1.0, 20.0, 10.0, 5
RTOL, ATOL = 1e-6, 1e-8
DOPRI5_NEW_EVALS_PER_STEP, TORCHODE_INITIAL_EVALS = 6, 2
CASE = f"Van der Pol, mu in [{MU_MIN:g}, {MU_MAX:g}]"


class VanDerPol:
    """The batch of oscillators as a first-order system `[B, 2] -> [B, 2]`; counts its calls."""

    def __init__(self, mu: Tensor) -> None:
        self.mu = mu
        self.calls = 0

    def __call__(self, t: Tensor, y: Tensor, args: object = None) -> Tensor:
        self.calls += 1
        return self.uncounted(t, y, args)

    def uncounted(self, t: Tensor, y: Tensor, args: object = None) -> Tensor:
        """The field without its call counter (which `torch.compile` would compile again for)."""
        x, v = y[:, 0], y[:, 1]
        return torch.stack([v, self.mu * (1 - x * x) * v - x], dim=1)


def problem(device: torch.device, copies: int = 1, distinct: int = BATCH) -> tuple[Tensor, Tensor, Tensor]:
    """`mu` `[B]` (`distinct` log-spaced values, the whole set repeated `copies` times), `y0` `[B, 2]`
    and the save times `[K]`, float64."""
    mu = torch.logspace(np.log10(MU_MIN), np.log10(MU_MAX), distinct, dtype=torch.float64, device=device)
    mu = mu.repeat(copies)
    y0 = torch.tensor([2.0, 0.0], dtype=torch.float64, device=device).expand(mu.shape[0], 2).contiguous()
    return mu, y0, torch.linspace(0.0, T_END, SAVES, dtype=torch.float64, device=device)


def reference(mu: Tensor, ts: Tensor) -> Tensor:
    """`[B, K, 2]` scipy DOP853 solutions at rtol = atol = 1e-12, one distinct oscillator at a time."""
    t_eval = ts.cpu().numpy()
    distinct, index = mu.unique(return_inverse=True)
    solutions = []
    for m in distinct.tolist():
        field = lambda t, y, m=m: [y[1], m * (1 - y[0] ** 2) * y[1] - y[0]]  # noqa: E731
        sol = solve_ivp(field, (0.0, T_END), [2.0, 0.0], method="DOP853", t_eval=t_eval, rtol=1e-12, atol=1e-12)
        solutions.append(sol.y.T)
    return torch.from_numpy(np.stack(solutions)).to(mu.device)[index]


def solve_neuralct(
    field: VanDerPol,
    y0: Tensor,
    ts: Tensor,
    per_sample: bool,
    rtol: float = RTOL,
    atol: float = ATOL,
    compile: bool = False,
) -> tuple[Tensor, int]:
    """`[B, K, 2]` states and per-sample evaluations summed over the batch."""
    controller = nct.PIDController(rtol=rtol, atol=atol, per_sample=per_sample)
    term = nct.ODETerm(field)
    sol = nct.solve(term, y0, ts, solver=nct.Dopri5(), controller=controller, max_steps=100_000, compile=compile)
    return sol.ys, int(sol.stats.vf_evals.sum())


def solve_torchdiffeq(
    field: VanDerPol, y0: Tensor, ts: Tensor, rtol: float = RTOL, atol: float = ATOL
) -> tuple[Tensor, None]:
    """`[B, K, 2]` states; torchdiffeq keeps no per-sample counts."""
    return torchdiffeq.odeint(field, y0, ts, method="dopri5", rtol=rtol, atol=atol).transpose(0, 1), None


def torchode_solver(field: Callable, rtol: float = RTOL, atol: float = ATOL) -> torchode.AutoDiffAdjoint:
    """torchode's Dopri5 with its integral controller, backprop through the solver."""
    term = torchode.ODETerm(field)
    controller = torchode.IntegralController(atol=atol, rtol=rtol, term=term)
    return torchode.AutoDiffAdjoint(torchode.Dopri5(term=term), controller)


def solve_torchode(
    field: VanDerPol, y0: Tensor, ts: Tensor, rtol: float = RTOL, atol: float = ATOL, solver: Callable | None = None
) -> tuple[Tensor, int]:
    """`[B, K, 2]` states and per-sample evaluations from torchode's per-sample step counts;
    `solver` a (compiled) `torchode_solver(field, rtol, atol)` to reuse, else a fresh one."""
    solver = torchode_solver(field, rtol, atol) if solver is None else solver
    sol = solver.solve(torchode.InitialValueProblem(y0=y0, t_eval=ts.expand(y0.shape[0], -1)))
    evals = TORCHODE_INITIAL_EVALS * y0.shape[0] + DOPRI5_NEW_EVALS_PER_STEP * int(sol.stats["n_steps"].sum())
    return sol.ys, evals


Solve = Callable[..., tuple[Tensor, int | None]]
SOLVERS: dict[str, Solve] = {
    "neuralct": partial(solve_neuralct, per_sample=True),
    "neuralct (joint)": partial(solve_neuralct, per_sample=False),
    "torchdiffeq": solve_torchdiffeq,
    "torchode": solve_torchode,
}


class Counted:
    """One library's solve of the batch as a `precision.Forward`: `()` returns the states `[B, K, 2]`
    and leaves the evaluations summed over samples in `evals` (calls x batch where the library
    keeps no per-sample count) and the calls on the whole batch in `calls`."""

    def __init__(self, solve: Solve, mu: Tensor, y0: Tensor, ts: Tensor, **tolerances: float) -> None:
        self.solve, self.mu, self.y0, self.ts, self.tolerances = solve, mu, y0, ts, tolerances
        self.evals = self.calls = 0

    def __call__(self) -> Tensor:
        field = VanDerPol(self.mu)
        ys, evals = self.solve(field, self.y0, self.ts, **self.tolerances)
        self.calls = field.calls
        self.evals = field.calls * self.y0.shape[0] if evals is None else evals
        return ys


def measure(library: str, mu: Tensor, y0: Tensor, ts: Tensor, exact: Tensor, settings: Settings) -> Measurement:
    """Time one library's solve and count its work (calls x batch where the library keeps no per-sample count)."""
    solve = Counted(SOLVERS[library], mu, y0, ts)
    with torch.no_grad():
        wall = median_seconds(solve, settings)
        error = float((solve() - exact).abs().max())
    return Measurement(CASE, library, wall, evals=solve.evals, error=error, note=f"{solve.calls} batched calls")


def work_precision(
    result: BenchmarkResult, settings: Settings, mu: Tensor, y0: Tensor, ts: Tensor, exact: Tensor
) -> None:
    """Every library over tolerances (rtol, atol = rtol / 100); targets: no peer faster at equal
    error, and per-sample control's worst ratio of evaluations to joint control's at equal
    error; the ratios of evaluations and of wall time at each per-sample point as a note."""
    forwards = {
        library: lambda tol, solve=solve: Counted(solve, mu, y0, ts, rtol=tol, atol=tol / 100)
        for library, solve in SOLVERS.items()
    }
    tolerances = [10.0**-exponent for exponent in _exponents(settings)]
    curves = sweep(result, settings, "work-precision", forwards, tolerances, exact, evals=lambda solve: solve.evals)
    equal_error_targets(result, "Van der Pol work-precision", {k: v for k, v in curves.items() if "joint" not in k})
    joint_evals = [(row.error, row.evals) for row in _sweep_rows(result, "neuralct (joint)")]
    # wall_at_error reads any cost off a work-precision front: evaluations as well as wall time.
    points = [
        (row.error, row.evals / evals, row.wall_s / wall)
        for row in _sweep_rows(result, "neuralct")
        if (evals := wall_at_error(joint_evals, row.error)) is not None
        and (wall := wall_at_error(curves["neuralct (joint)"], row.error)) is not None
    ]
    listed = "; ".join(f"error {error:.2g}: {evals:.2f} and {wall:.2f}" for error, evals, wall in points)
    result.notes.append(f"Per-sample / joint control at equal error, evaluations and wall time: {listed}.")
    worst = max((evals for _, evals, _ in points), default=math.nan)
    description = f"per-sample / joint evals at equal error, worst of {len(points)} points"
    result.targets.append(Target(description, worst, 1.0, at_most=True))


def _sweep_rows(result: BenchmarkResult, library: str) -> list[Measurement]:
    """`library`'s work-precision rows, by decreasing tolerance."""
    return [row for row in result.rows if row.library == library and row.case.startswith("work-precision")]


def _exponents(settings: Settings) -> tuple[int, ...]:
    """The work-precision sweep's tolerances are 10**-e for these e."""
    return (3, 5, 7) if settings.quick else (3, 4, 5, 6, 7, 8, 9)


def _tolerance_range(settings: Settings) -> str:
    """The sweep's tolerances as the setup text names them, e.g. "1e-3 .. 1e-9"."""
    exponents = _exponents(settings)
    return f"1e-{exponents[0]} .. 1e-{exponents[-1]}"


def run(settings: Settings) -> BenchmarkResult:
    """Solve the heterogeneous batch with every library at one tolerance, then neuralct's two
    controllers over tolerances; targets on evaluations (at equal tolerance and at equal error)
    and on torchode's wall time."""
    mu, y0, ts = problem(settings.device)
    exact = reference(mu, ts)
    result = BenchmarkResult(
        name="heterogeneous",
        title="Heterogeneous Van der Pol batch: per-sample vs joint control",
        setup=(
            f"{BATCH} Van der Pol oscillators, mu log-spaced in [{MU_MIN:g}, {MU_MAX:g}], y0 = (2, 0), t in "
            f"[0, {T_END:g}] with {SAVES} save times; Dopri5 at rtol {RTOL:g}, atol {ATOL:g}, float64, no gradients "
            f"(torchdiffeq has no Tsit5). Timed: one solve of the batch. evals = vector-field evaluations summed over "
            f"samples (per-sample counts for neuralct and torchode, calls x batch for joint control); note = calls "
            f"of the vector field on the whole batch; error = max |y - y_ref| over samples and save times against "
            f"scipy DOP853 at rtol = atol = 1e-12. Work-precision: every library at rtol "
            f"{_tolerance_range(settings)}, atol = rtol / 100, timed in turns; the ratio of evaluations "
            f"at equal error "
            f"reads joint control's evaluations off its curve (log-log) at each per-sample error inside its range."
        ),
    )
    result.rows = [measure(library, mu, y0, ts, exact, settings) for library in SOLVERS]
    per_sample = result.row(CASE, "neuralct").evals
    for joint in ("neuralct (joint)", "torchdiffeq"):
        ratio = per_sample / result.row(CASE, joint).evals
        description = f"per-sample evals / {joint} evals at equal tolerance (rtol {RTOL:g})"
        result.targets.append(Target(description, ratio, 1.0, at_most=True))
    result.speedup(CASE, "torchode", 1.0)
    work_precision(result, settings, mu, y0, ts, exact)
    return result


if __name__ == "__main__":
    main_for(run, __doc__.splitlines()[0])
