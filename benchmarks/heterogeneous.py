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
work-precision rows compare them at equal error: neuralct per-sample and joint at rtol 1e-3 ..
1e-9 (atol = rtol / 100), evaluations against error, and the ratio of evaluations at equal error
with joint control's evaluations interpolated log-log at each per-sample error inside its range.
Run: `python -m benchmarks.heterogeneous [--quick] [--device cuda] [--threads N]`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torchdiffeq
import torchode
from scipy.integrate import solve_ivp
from torch import Tensor

import neuralct as nct
from benchmarks.harness import (
    BenchmarkResult,
    Measurement,
    Settings,
    Target,
    main_for,
    median_seconds,
    wall_at_error,
)

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
        x, v = y[:, 0], y[:, 1]
        return torch.stack([v, self.mu * (1 - x * x) * v - x], dim=1)


def problem(device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """`mu` `[B]` (log-spaced), `y0` `[B, 2]` and the save times `[K]`, float64."""
    mu = torch.logspace(np.log10(MU_MIN), np.log10(MU_MAX), BATCH, dtype=torch.float64, device=device)
    y0 = torch.tensor([2.0, 0.0], dtype=torch.float64, device=device).expand(BATCH, 2).contiguous()
    return mu, y0, torch.linspace(0.0, T_END, SAVES, dtype=torch.float64, device=device)


def reference(mu: Tensor, ts: Tensor) -> Tensor:
    """`[B, K, 2]` scipy DOP853 solutions at rtol = atol = 1e-12, one oscillator at a time."""
    t_eval = ts.cpu().numpy()
    solutions = []
    for m in mu.tolist():
        field = lambda t, y, m=m: [y[1], m * (1 - y[0] ** 2) * y[1] - y[0]]  # noqa: E731
        sol = solve_ivp(field, (0.0, T_END), [2.0, 0.0], method="DOP853", t_eval=t_eval, rtol=1e-12, atol=1e-12)
        solutions.append(sol.y.T)
    return torch.from_numpy(np.stack(solutions)).to(mu.device)


def solve_neuralct(
    field: VanDerPol, y0: Tensor, ts: Tensor, per_sample: bool, rtol: float = RTOL, atol: float = ATOL
) -> tuple[Tensor, int]:
    """`[B, K, 2]` states and per-sample evaluations summed over the batch."""
    controller = nct.PIDController(rtol=rtol, atol=atol, per_sample=per_sample)
    sol = nct.solve(nct.ODETerm(field), y0, ts, solver=nct.Dopri5(), controller=controller, max_steps=100_000)
    return sol.ys, int(sol.stats.vf_evals.sum())


def solve_torchdiffeq(field: VanDerPol, y0: Tensor, ts: Tensor) -> tuple[Tensor, None]:
    """`[B, K, 2]` states; torchdiffeq keeps no per-sample counts."""
    return torchdiffeq.odeint(field, y0, ts, method="dopri5", rtol=RTOL, atol=ATOL).transpose(0, 1), None


def solve_torchode(field: VanDerPol, y0: Tensor, ts: Tensor) -> tuple[Tensor, int]:
    """`[B, K, 2]` states and per-sample evaluations from torchode's per-sample step counts."""
    term = torchode.ODETerm(field)
    controller = torchode.IntegralController(atol=ATOL, rtol=RTOL, term=term)
    solver = torchode.AutoDiffAdjoint(torchode.Dopri5(term=term), controller)
    sol = solver.solve(torchode.InitialValueProblem(y0=y0, t_eval=ts.expand(y0.shape[0], -1)))
    evals = TORCHODE_INITIAL_EVALS * BATCH + DOPRI5_NEW_EVALS_PER_STEP * int(sol.stats["n_steps"].sum())
    return sol.ys, evals


SOLVERS: dict[str, Callable[[VanDerPol, Tensor, Tensor], tuple[Tensor, int | None]]] = {
    "neuralct": lambda field, y0, ts: solve_neuralct(field, y0, ts, per_sample=True),
    "neuralct (joint)": lambda field, y0, ts: solve_neuralct(field, y0, ts, per_sample=False),
    "torchdiffeq": solve_torchdiffeq,
    "torchode": solve_torchode,
}


def measure(library: str, mu: Tensor, y0: Tensor, ts: Tensor, exact: Tensor, settings: Settings) -> Measurement:
    """Time one library's solve and count its work (calls x batch where the library keeps no per-sample count)."""
    field = VanDerPol(mu)
    solve = SOLVERS[library]
    with torch.no_grad():
        wall = median_seconds(lambda: solve(field, y0, ts), settings)
        field.calls = 0
        ys, evals = solve(field, y0, ts)
    evals = field.calls * BATCH if evals is None else evals
    error = float((ys - exact).abs().max())
    return Measurement(CASE, library, wall, evals=evals, error=error, note=f"{field.calls} batched calls")


WORK_PRECISION_REPEATS = 3


def measure_controller(
    per_sample: bool, exponent: int, mu: Tensor, y0: Tensor, ts: Tensor, exact: Tensor, settings: Settings
) -> Measurement:
    """neuralct's Dopri5 at rtol 10^-exponent, atol rtol / 100 (wall: median of 3 calls after a warm-up)."""
    rtol, atol = 10.0**-exponent, 10.0 ** -(exponent + 2)
    solve = torch.no_grad()(lambda: solve_neuralct(VanDerPol(mu), y0, ts, per_sample, rtol, atol))
    wall = median_seconds(solve, settings, repeats=WORK_PRECISION_REPEATS)
    ys, evals = solve()
    library = "neuralct" if per_sample else "neuralct (joint)"
    error = float((ys - exact).abs().max())
    return Measurement(f"work-precision, rtol 1e-{exponent}", library, wall, evals=evals, error=error)


def work_precision(
    result: BenchmarkResult, settings: Settings, mu: Tensor, y0: Tensor, ts: Tensor, exact: Tensor
) -> None:
    """Per-sample and joint control over tolerances; adds the worst ratio of evaluations at equal
    error as a target, the ratios of evaluations and of wall time at each per-sample point as a note."""
    exponents = _exponents(settings)
    rows = {
        per_sample: [measure_controller(per_sample, e, mu, y0, ts, exact, settings) for e in exponents]
        for per_sample in (True, False)
    }
    result.rows += rows[True] + rows[False]
    joint_evals = [(row.error, row.evals) for row in rows[False]]
    joint_wall = [(row.error, row.wall_s) for row in rows[False]]
    # wall_at_error reads any cost off a work-precision front: evaluations as well as wall time.
    points = [
        (row.error, row.evals / evals, row.wall_s / wall)
        for row in rows[True]
        if (evals := wall_at_error(joint_evals, row.error)) is not None
        and (wall := wall_at_error(joint_wall, row.error)) is not None
    ]
    listed = "; ".join(f"error {error:.2g}: {evals:.2f} and {wall:.2f}" for error, evals, wall in points)
    result.notes.append(f"Per-sample / joint control at equal error, evaluations and wall time: {listed}.")
    description = f"per-sample / joint evals at equal error, worst of {len(points)} points"
    result.targets.append(Target(description, max(evals for _, evals, _ in points), 1.0, at_most=True))


def _exponents(settings: Settings) -> tuple[int, ...]:
    """The work-precision sweep's tolerances are 10**-e for these e."""
    return (4, 6, 8) if settings.quick else (3, 4, 5, 6, 7, 8, 9)


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
            f"scipy DOP853 at rtol = atol = 1e-12. Work-precision: neuralct's per-sample and joint control at rtol "
            f"{_tolerance_range(settings)}, atol = rtol / 100, wall the median of 3 calls; the ratio of evaluations "
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
