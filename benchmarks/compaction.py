"""Compaction: finished samples leave the batch (`solve(..., compact=True)`) on heterogeneous batches.

Without compaction every step evaluates every row of the batch until its slowest sample is
done, so a batch costs the slowest sample's steps times B; with it, the running samples move
into a smaller batch (the next power of two) once at most half of the batch runs, and the cost
falls towards the sum of each sample's own steps. Three batches of 64, float64, no gradients:

* stiffness: Van der Pol, mu log-spaced in [1, 20], t in [0, 10], Tsit5 at rtol 1e-6;
* span: Van der Pol at mu = 2 over spans log-spaced from 0.5 to 20, Tsit5 at rtol 1e-6
  (per-sample grids of 8 save times);
* padding: an MLP field (2 -> 64 -> 2) by RK4 with steps of 0.05 over padded grids of 2 to 64 save times on
  [0, 8] (`lengths`).

Per case and setting: the median wall time of a solve (timed in turns), and `evals`, the rows
the vector field evaluated (calls x rows: the work done); the floor is the sum over samples of
each one's own evaluations (`stats.vf_evals`). Results are identical with and without
compaction (tests/core/test_compaction.py). Run: `python -m benchmarks.compaction [--quick]`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

import neuralct as nct
from benchmarks.harness import BenchmarkResult, Measurement, Settings, Target, interleaved_medians
from benchmarks.report import main_for

BATCH = 64
F64 = torch.float64


class Rows:
    """A vector field `f(t, y, args)` that counts the rows it evaluates."""

    def __init__(self, field: Callable[[Tensor, Tensor, object], Tensor]) -> None:
        self.field, self.rows = field, 0

    def __call__(self, t: Tensor, y: Tensor, args: object) -> Tensor:
        self.rows += y.shape[0]
        return self.field(t, y, args)


def _van_der_pol(t: Tensor, y: Tensor, mu: Tensor) -> Tensor:
    x, v = y[:, 0], y[:, 1]
    return torch.stack([v, mu * (1 - x * x) * v - x], dim=1)


def _mlp(device: torch.device) -> Callable[[Tensor, Tensor, object], Tensor]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.Tanh(), torch.nn.Linear(64, 2)).to(device, F64)
    return lambda t, y, args: net(y)


def cases(device: torch.device) -> dict[str, Callable[[bool, Rows | None], nct.Solution]]:
    """Each case as `solve(compact, counter)`: one solve of its batch, its field wrapped by
    `counter` when given."""
    mu = torch.logspace(0, np.log10(20), BATCH, dtype=F64, device=device)
    vdp_y0 = torch.tensor([2.0, 0.0], dtype=F64, device=device).expand(BATCH, 2).contiguous()
    mlp = _mlp(device)
    y0 = torch.randn(BATCH, 2, dtype=F64, generator=torch.Generator().manual_seed(1)).to(device)
    spans = torch.logspace(np.log10(0.5), np.log10(20), BATCH, dtype=F64, device=device)
    span_grids = torch.linspace(0, 1, 8, dtype=F64, device=device)[None] * spans[:, None]
    lengths = torch.linspace(2, 64, BATCH, device=device).long()
    padded = torch.linspace(0, 1, 64, dtype=F64, device=device)[None] * (8.0 * (lengths - 1) / 63)[:, None]
    adaptive = nct.PIDController(rtol=1e-6, atol=1e-8)

    def wrap(field, counter):
        if counter is None:
            return field
        counter.field = field
        return counter

    def stiffness(compact, counter=None):
        times = torch.linspace(0, 10, 5, dtype=F64, device=device)
        return nct.solve(
            nct.ODETerm(wrap(_van_der_pol, counter)), vdp_y0, times, args=mu, controller=adaptive, compact=compact
        )

    def span(compact, counter=None):
        term = nct.ODETerm(wrap(_van_der_pol, counter))
        return nct.solve(term, vdp_y0, span_grids, args=2.0, controller=adaptive, compact=compact)

    def padding(compact, counter=None):
        term = nct.ODETerm(wrap(mlp, counter))
        step = nct.ConstantStep(0.05)
        return nct.solve(term, y0, padded, solver=nct.RK4(), controller=step, lengths=lengths, compact=compact)

    return {"stiffness": stiffness, "span": span, "padding": padding}


def run(settings: Settings) -> BenchmarkResult:
    """Time each case with and without compaction and count the rows evaluated."""
    result = BenchmarkResult(
        name="compaction",
        title="Compaction: finished samples leave the batch",
        setup=(
            f"{BATCH} samples, float64, no gradients; stiffness: Van der Pol, mu in [1, 20], Tsit5 rtol 1e-6; "
            f"span: Van der Pol, mu = 2, spans 0.5 .. 20, Tsit5 rtol 1e-6; padding: MLP field, RK4 dt 0.05, "
            f"2 .. 64 of 64 "
            f"save times (`lengths`). evals = rows evaluated by the field; note = the floor, each sample's own "
            f"evaluations summed."
        ),
    )
    with torch.no_grad():
        for name, solve in cases(settings.device).items():
            walls = interleaved_medians({str(c): (lambda c=c, solve=solve: solve(c)) for c in (False, True)}, settings)
            for compact in (False, True):
                counter = Rows(None)
                sol = solve(compact, counter)
                floor = int(sol.stats.vf_evals.sum())
                library = "neuralct, compact" if compact else "neuralct"
                result.rows.append(
                    Measurement(name, library, walls[str(compact)], evals=counter.rows, note=f"floor {floor}")
                )
            ratio = result.wall(name, "neuralct, compact") / result.wall(name, "neuralct")
            result.targets.append(Target(f"{name}: compacted wall / whole-batch wall", ratio, 1.0, at_most=True))
    return result


if __name__ == "__main__":
    main_for(run, __doc__.splitlines()[0])
