"""Scaling of neuralct with batch size and with sequence length, with fitted log-log slopes.

Two sweeps, neuralct against itself, forward solves without gradients in float32:

* batch: a neural ODE with the MLP 4 -> 32 -> 32 -> 4 (softplus, tanh output) from random
  initial states over [0, 10] with 10 save times, Tsit5 at rtol = atol = 1e-6, for batch sizes
  16 to 1024. A batched solve pays the per-step overhead once for the whole batch, so the wall
  time should grow much more slowly than the batch until the vector field dominates (slope < 1).
  With per-sample control the batch takes as many steps as its slowest sample, so the number
  of calls may grow a little with the batch; the time per call shows the cost of one step.
* length: a neural CDE (hidden 32, vector field 32 -> 64 -> 32 x 4 with tanh) driven by the
  natural cubic spline through 50 to 800 irregular observations per sample (per-sample grids,
  gaps uniform in [0.05, 0.2], batch 32), solved by Tsit5 at rtol 1e-3, atol 1e-6 to the last
  observation; the spline is built outside the timed solve. The steps, and so the time, should
  grow linearly with the length (slope ~1).

Each row records the median wall time, the evaluations summed over samples (`stats.vf_evals`),
and in its note the calls of the vector field on the batch and the time per call; the targets
are the fitted slopes (`loglog_slope`). Quick mode runs fewer points. Run:
`python -m benchmarks.scaling [--quick] [--device cuda] [--threads N]`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

import neuralct as nct
from benchmarks.harness import BenchmarkResult, Measurement, Settings, Target, loglog_slope, median_seconds
from benchmarks.report import main_for

BATCHES, QUICK_BATCHES = (16, 64, 256, 1024), (16, 128, 1024)
LENGTHS, QUICK_LENGTHS = (50, 100, 200, 400, 800), (50, 200, 800)
ODE_TOL = 1e-6
CDE_BATCH, CHANNELS, HIDDEN, WIDTH = 32, 3, 32, 64
CDE_RTOL, CDE_ATOL = 1e-3, 1e-6


class CountingField(nn.Module):
    """An MLP vector field `f(t, y, args) = net(y)`, reshaped to `shape` per sample; counts its calls."""

    def __init__(self, net: nn.Module, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.net = net
        self.shape = shape
        self.calls = 0

    def forward(self, t: Tensor, y: Tensor, args: object = None) -> Tensor:
        self.calls += 1
        return self.net(y).view(y.shape[0], *self.shape)


def ode_field() -> CountingField:
    """MLP 4 -> 32 -> 32 -> 4 with softplus hidden layers and a tanh output."""
    net = nn.Sequential(nn.Linear(4, 32), nn.Softplus(), nn.Linear(32, 32), nn.Softplus(), nn.Linear(32, 4), nn.Tanh())
    return CountingField(net, (4,))


def cde_field() -> CountingField:
    """MLP hidden -> 64 -> hidden x (channels + 1) with tanh, a `[B, H, C + 1]` matrix per sample."""
    net = nn.Sequential(nn.Linear(HIDDEN, WIDTH), nn.Tanh(), nn.Linear(WIDTH, HIDDEN * (CHANNELS + 1)), nn.Tanh())
    return CountingField(net, (HIDDEN, CHANNELS + 1))


def measure(
    result: BenchmarkResult, case: str, field: CountingField, solve: Callable[[], nct.Solution], settings: Settings
) -> int:
    """Time `solve` without gradients, then count its calls and evaluations; record the row and
    return the calls."""
    with torch.no_grad():
        wall = median_seconds(solve, settings)
        field.calls = 0
        evals = int(solve().stats.vf_evals.sum())
    note = f"{field.calls} calls, {wall / field.calls * 1e6:.0f} us per call"
    result.rows.append(Measurement(case, "neuralct", wall, evals=evals, note=note))
    return field.calls


def batch_sweep(result: BenchmarkResult, settings: Settings) -> None:
    """Neural ODE solves at growing batch sizes; slopes of wall time and time per call."""
    torch.manual_seed(0)
    field = ode_field().to(settings.device)
    ts = torch.linspace(0.0, 10.0, 10, device=settings.device)
    pid = nct.PIDController(rtol=ODE_TOL, atol=ODE_TOL)
    batches = QUICK_BATCHES if settings.quick else BATCHES
    calls = []
    for batch in batches:
        y0 = torch.randn(batch, 4, generator=torch.Generator().manual_seed(batch)).to(settings.device)
        solve = lambda y0=y0: nct.solve(nct.ODETerm(field), y0, ts, solver=nct.Tsit5(), controller=pid)  # noqa: E731
        calls.append(measure(result, f"neural ODE, batch {batch}", field, solve, settings))
    walls = [row.wall_s for row in result.rows[-len(batches) :]]
    slope = loglog_slope(batches, walls)
    per_call = loglog_slope(batches, [wall / n for wall, n in zip(walls, calls)])
    result.targets.append(
        Target(f"batch {batches[0]}..{batches[-1]}: log-log slope of wall time", slope, 1.0, at_most=True)
    )
    result.notes.append(
        f"batch {batches[0]}..{batches[-1]}: wall time grows as batch^{slope:.2f}, time per call as "
        f"batch^{per_call:.2f} (1 would mean no gain from batching)."
    )


def irregular_controls(length: int, device: torch.device, seed: int) -> tuple[Tensor, Tensor]:
    """Per-sample times `[B, L]` (gaps uniform in [0.05, 0.2]) and controls `[B, L, 1 + C]`:
    time, then noisy sines of random frequency and phase."""
    gen = torch.Generator().manual_seed(seed)
    gaps = 0.05 + 0.15 * torch.rand(CDE_BATCH, length - 1, generator=gen)
    times = torch.cat([torch.zeros(CDE_BATCH, 1), gaps.cumsum(dim=1)], dim=1)
    frequency = 0.5 + 1.5 * torch.rand(CDE_BATCH, 1, CHANNELS, generator=gen)
    phase = 6.28 * torch.rand(CDE_BATCH, 1, CHANNELS, generator=gen)
    noise = 0.05 * torch.randn(CDE_BATCH, length, CHANNELS, generator=gen)
    values = torch.sin(frequency * times[..., None] + phase) + noise
    return times.to(device), torch.cat([times[..., None], values], dim=-1).to(device)


def length_sweep(result: BenchmarkResult, settings: Settings) -> None:
    """Neural CDE solves over growing numbers of observations; slope of wall time."""
    torch.manual_seed(1)
    field = cde_field().to(settings.device)
    embed = nn.Linear(CHANNELS + 1, HIDDEN).to(settings.device)
    pid = nct.PIDController(rtol=CDE_RTOL, atol=CDE_ATOL)
    lengths = QUICK_LENGTHS if settings.quick else LENGTHS
    calls = []
    for length in lengths:
        times, controls = irregular_controls(length, settings.device, seed=length)
        term = nct.ControlTerm(field, nct.CubicPath.natural(controls, times))
        with torch.no_grad():
            z0 = embed(controls[:, 0])
        span = times[:, [0, -1]]
        solve = lambda term=term, z0=z0, span=span: nct.solve(  # noqa: E731
            term, z0, span, solver=nct.Tsit5(), controller=pid, max_steps=100_000
        )
        calls.append(measure(result, f"neural CDE, L = {length}", field, solve, settings))
    slope = loglog_slope(lengths, [row.wall_s for row in result.rows[-len(lengths) :]])
    steps = loglog_slope(lengths, calls)
    result.targets.append(
        Target(f"L {lengths[0]}..{lengths[-1]}: log-log slope of wall time", slope, 1.1, at_most=True)
    )
    result.notes.append(
        f"L {lengths[0]}..{lengths[-1]}: wall time grows as L^{slope:.2f}, the calls as L^{steps:.2f} (linear: 1)."
    )


def run(settings: Settings) -> BenchmarkResult:
    """Both sweeps; targets on the fitted slopes."""
    result = BenchmarkResult(
        name="scaling",
        title="Scaling with batch size and sequence length",
        setup=(
            f"neuralct alone, forward solves without gradients, float32. Batch sweep: neural ODE, MLP 4 -> 32 -> 32 "
            f"-> 4, random y0, t in [0, 10] with 10 save times, Tsit5 at rtol = atol = {ODE_TOL:g}. Length sweep: "
            f"neural CDE, hidden {HIDDEN}, field {HIDDEN} -> {WIDTH} -> {HIDDEN}x{CHANNELS + 1} with tanh, batch "
            f"{CDE_BATCH}, natural cubic spline through L irregular observations on per-sample grids (built "
            f"untimed), Tsit5 at rtol {CDE_RTOL:g}, atol {CDE_ATOL:g} to the last observation. evals = "
            f"evaluations summed over samples; note = calls on the batch and wall time per call."
        ),
    )
    batch_sweep(result, settings)
    length_sweep(result, settings)
    return result


if __name__ == "__main__":
    main_for(run, __doc__.splitlines()[0])
