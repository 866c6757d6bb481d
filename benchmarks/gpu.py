"""GPU benchmark: neuralct vs torchdiffeq and torchode on one device, eager and compiled, at equal error.

Four cases, float32, timed with CUDA events around each call (`harness.timed_call`), the libraries
of one case in turns:

* neural-ODE solve, batch 4096: the MLP field of `benchmarks.neural_ode`, 10 save times on [0, 10],
  Dopri5 in every library at rtol = atol = tol over a sweep of tolerances; error = largest deviation
  from a float64 Dopri8 solve at 1e-13. Libraries: neuralct, neuralct with `solve(..., compile=True)`,
  torchdiffeq, torchode, and torchode's solver under `torch.compile` (its README's way). Target:
  compiled neuralct at least 3x faster than torchdiffeq at equal error (its worst point); no peer
  faster than neuralct at equal error.
* neural-ODE train step, batch 4096: forward + backward of a mean square, Dopri5 at 1e-5, backprop.
* neural-CDE train step (`benchmarks.ncde`'s model, batch 1024, 100 observations, Kutta's 3/8 rule
  at dt = 1/32): neuralct eager and compiled against torchcde.
* heterogeneous Van der Pol (`benchmarks.heterogeneous`'s 64 values of mu, each repeated to a batch
  of 4096), Dopri5 at rtol = tol, atol = tol / 100 over a sweep; error against scipy's DOP853.

Compiled runs start from an empty `torch.compile` cache in every case (`torch._dynamo.reset()`)
and are compiled by their warm-up call (neuralct's step compiles again for each tolerance, which
it holds as a constant; torchode's solver takes its tolerances as tensors). On a GPU: `python -m benchmarks.gpu` writes
`benchmarks/results/<gpu name>.json` and `.md`. On a CPU, `python -m benchmarks.gpu --device cpu
--quick` is a smoke test at tiny sizes (`--eager` leaves out the compiled runs).
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torchcde
from torch import Tensor

import neuralct as nct
from benchmarks import heterogeneous, ncde, neural_ode
from benchmarks.harness import BenchmarkResult, Measurement, Settings, interleaved_medians
from benchmarks.precision import Curves, equal_error_targets, sweep
from benchmarks.report import machine_info, results_stem, write_results

RESULTS = Path(__file__).parent / "results"
COMPILED_NEURALCT, COMPILED_TORCHODE = neural_ode.COMPILED
COMPILED_SPEEDUP = 3.0
TRAIN_TOLERANCE = 1e-5


@dataclass(frozen=True)
class Sizes:
    """Problem sizes: batches of the ODE solve and train step, of the CDE, the distinct Van der Pol
    oscillators and their copies, the CDE's observations, the exponents e of the tolerances 10**-e,
    and whether the compiled runs take part."""

    ode_batch: int
    cde_batch: int
    vdp_distinct: int
    vdp_copies: int
    observations: int
    exponents: tuple[int, ...]
    compile: bool = True


FULL = Sizes(ode_batch=4096, cde_batch=1024, vdp_distinct=64, vdp_copies=64, observations=100, exponents=(3, 4, 5))
QUICK = Sizes(ode_batch=8, cde_batch=4, vdp_distinct=8, vdp_copies=1, observations=10, exponents=(3, 4, 5))


def ode_solve(result: BenchmarkResult, settings: Settings, sizes: Sizes) -> None:
    """The batch solve over tolerances in every library; the equal-error targets."""
    f, y0, ts = neural_ode.problem(sizes.ode_batch, torch.float32, settings.device)
    wide = copy.deepcopy(f).double()
    reference = neural_ode.reference_solution(wide, y0.double(), ts.double())
    libraries = neural_ode.LIBRARIES + (neural_ode.COMPILED if sizes.compile else ())
    forwards = {
        library: lambda tol, library=library: partial(neural_ode.solver_for(library, "dopri5", tol), f, y0, ts)
        for library in libraries
    }
    torch._dynamo.reset()
    tolerances = [10.0**-exponent for exponent in sizes.exponents]
    evals = partial(neural_ode.count_calls, f)
    curves = sweep(
        result, settings, f"ODE solve, batch {sizes.ode_batch}", forwards, tolerances, reference, evals=evals
    )
    add_targets(result, "ODE solve", curves, {"torchdiffeq": COMPILED_SPEEDUP})


def add_targets(result: BenchmarkResult, label: str, curves: Curves, compiled_required: dict[str, float]) -> None:
    """Equal-error targets: eager neuralct against the eager peers (>= 1); where compiled runs
    took part, compiled neuralct against every peer, eager and compiled (>= `compiled_required`'s
    factor for the peers it names, else 1)."""
    equal_error_targets(result, label, {k: v for k, v in curves.items() if k not in neural_ode.COMPILED})
    if COMPILED_NEURALCT not in curves:
        return
    for peer in [library for library in curves if library not in ("neuralct", COMPILED_NEURALCT)]:
        pair = {COMPILED_NEURALCT: curves[COMPILED_NEURALCT], peer: curves[peer]}
        equal_error_targets(result, label, pair, ours=COMPILED_NEURALCT, required=compiled_required.get(peer, 1.0))


def time_case(result: BenchmarkResult, settings: Settings, case: str, runs: dict[str, Callable[[], object]]) -> None:
    """Rows for `case`: every run timed in turns (compiled ones compiled by the warm-up call, from
    an empty cache); speedups of neuralct (and of compiled neuralct, where run) over the rest."""
    torch._dynamo.reset()
    walls = interleaved_medians(runs, settings)
    result.rows += [Measurement(case, library, wall) for library, wall in walls.items()]
    ours = [library for library in ("neuralct", COMPILED_NEURALCT) if library in runs]
    for library in ours:
        for peer in runs:
            if peer not in ours:
                result.speedup(case, peer, 1.0, library=library)


def ode_train(result: BenchmarkResult, settings: Settings, sizes: Sizes) -> None:
    """Forward + backward of a mean square through a Dopri5 solve, backprop, every library."""
    f, y0, ts = neural_ode.problem(sizes.ode_batch, torch.float32, settings.device)
    targets = torch.randn(sizes.ode_batch, len(ts), 4, device=settings.device)
    libraries = neural_ode.LIBRARIES + (neural_ode.COMPILED if sizes.compile else ())

    def step(solve: neural_ode.Solve) -> None:
        f.zero_grad(set_to_none=True)
        (solve(f, y0, ts) - targets).square().mean().backward()

    runs = {library: partial(step, neural_ode.solver_for(library, "dopri5", TRAIN_TOLERANCE)) for library in libraries}
    time_case(result, settings, f"ODE train step, batch {sizes.ode_batch}, tol {TRAIN_TOLERANCE:g}", runs)


def cde_train(result: BenchmarkResult, settings: Settings, sizes: Sizes) -> None:
    """The neural-CDE train step with Kutta's 3/8 rule at the same fixed steps: neuralct (eager,
    compiled) and torchcde."""
    torch.manual_seed(0)
    model = ncde.NeuralCDE().to(settings.device)
    times, data = ncde.irregular_series(True, settings.device, batch=sizes.cde_batch, observations=sizes.observations)
    path = nct.CubicPath.natural(data, times)
    spline = torchcde.CubicSpline(torchcde.natural_cubic_coeffs(data, times), times)
    x0, target = data[:, 0], torch.zeros(sizes.cde_batch, 1, device=settings.device)
    finals = {
        "neuralct": lambda: ncde.neuralct_final(model, path, x0, times, *ncde.RK4),
        "torchcde": lambda: ncde.torchcde_final(model, spline, x0, method="rk4", options=dict(step_size=ncde.RK4_STEP)),
    }
    if sizes.compile:
        finals[COMPILED_NEURALCT] = partial(ncde.neuralct_final, model, path, x0, times, *ncde.RK4, compile=True)
    runs = {library: ncde.training_step(model, final, target=target) for library, final in finals.items()}
    time_case(result, settings, f"CDE train step, batch {sizes.cde_batch}, rk4", runs)


def van_der_pol(result: BenchmarkResult, settings: Settings, sizes: Sizes) -> None:
    """The heterogeneous batch over tolerances: neuralct (eager, compiled), torchdiffeq, torchode
    (eager, compiled); equal-error targets."""
    mu, y0, ts = heterogeneous.problem(settings.device, sizes.vdp_copies, sizes.vdp_distinct)
    exact = heterogeneous.reference(mu, ts)
    solves: dict[str, heterogeneous.Solve] = {
        "neuralct": heterogeneous.SOLVERS["neuralct"],
        "torchdiffeq": heterogeneous.solve_torchdiffeq,
        "torchode": heterogeneous.solve_torchode,
    }
    if sizes.compile:
        solves[COMPILED_NEURALCT] = compiled_solve(
            mu, partial(heterogeneous.solve_neuralct, per_sample=True, compile=True)
        )
        solves[COMPILED_TORCHODE] = compiled_solve(mu, heterogeneous.solve_torchode, compiled_torchode)
    forwards = {
        library: lambda tol, solve=solve: heterogeneous.Counted(solve, mu, y0, ts, rtol=tol, atol=tol / 100)
        for library, solve in solves.items()
    }
    torch._dynamo.reset()
    tolerances = [10.0**-exponent for exponent in sizes.exponents]
    label = f"Van der Pol, batch {mu.shape[0]}"
    curves = sweep(result, settings, label, forwards, tolerances, exact, evals=lambda solve: solve.evals)
    add_targets(result, "Van der Pol", curves, {})


def compiled_solve(
    mu: Tensor, solve: heterogeneous.Solve, solver: Callable[[Callable, float, float], Callable] | None = None
) -> heterogeneous.Solve:
    """`solve` on one uncounted Van der Pol field for every call (a call counter, or a new field
    per call, would make `torch.compile` compile again at every call); with `solver`, a compiled
    solver made once per tolerance pair by `solver(field, rtol, atol)` and passed to `solve`."""
    field = heterogeneous.VanDerPol(mu).uncounted
    solvers: dict[tuple[float, float], Callable] = {}

    def solve_once(_: heterogeneous.VanDerPol, y0: Tensor, ts: Tensor, rtol: float, atol: float) -> tuple[Tensor, int]:
        if solver is None:
            return solve(field, y0, ts, rtol=rtol, atol=atol)
        if (rtol, atol) not in solvers:
            solvers[rtol, atol] = solver(field, rtol, atol)
        return solve(field, y0, ts, solver=solvers[rtol, atol])

    return solve_once


def compiled_torchode(field: Callable, rtol: float, atol: float) -> Callable:
    """torchode's Dopri5 solver for `field` under `torch.compile`, as torchode's README compiles it."""
    return torch.compile(heterogeneous.torchode_solver(field, rtol, atol))


def run(
    settings: Settings, sizes: Sizes | None = None, done: Callable[[BenchmarkResult], object] = lambda result: None
) -> BenchmarkResult:
    """Every case at `sizes` (`QUICK` in quick mode, else `FULL`); `done(result)` after each case
    (the command line writes the results so far, so that a run cut short keeps its finished cases)."""
    sizes = sizes or (QUICK if settings.quick else FULL)
    result = BenchmarkResult(
        name="gpu",
        title=f"GPU: neuralct vs torchdiffeq and torchode on `{settings.device}`",
        setup=(
            f"float32; CUDA-event timing on a GPU. ODE: MLP 4 -> 32 -> 32 -> 4, batch {sizes.ode_batch}, 10 save "
            f"times on [0, 10], Dopri5 at rtol = atol = tol in 1e-{sizes.exponents[0]} .. 1e-{sizes.exponents[-1]}, "
            f"error vs float64 Dopri8 at 1e-13; train step at tol {TRAIN_TOLERANCE:g}, backprop. CDE: batch "
            f"{sizes.cde_batch}, {sizes.observations} observations, Kutta's 3/8 rule at dt = {ncde.RK4_STEP:g}, "
            f"forward + backward. Van der Pol: {sizes.vdp_distinct * sizes.vdp_copies} oscillators "
            f"({sizes.vdp_distinct} values of mu in [1, 20]), "
            "Dopri5 at rtol = tol, atol = tol / 100, error vs scipy DOP853 at 1e-12. Compiled: neuralct "
            "`solve(..., compile=True)`, torchode's solver under `torch.compile`, each compiled by its warm-up."
        ),
    )
    for case in (ode_solve, ode_train, cde_train, van_der_pol):
        case(result, settings, sizes)
        print(f"{case.__name__}: done", flush=True)
        done(result)
    return result


def main(argv: list[str] | None = None) -> tuple[Path, Path]:
    """Command line: `--device` (default cuda), `--quick`, `--eager`, `--output`; returns the files written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for a smoke test")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, two tolerances (a smoke test)")
    parser.add_argument("--eager", action="store_true", help="leave out the compiled runs")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"results folder (default: {RESULTS})")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here; use --device cpu --quick for the smoke test")
    settings = Settings.create(args.quick, args.device)
    sizes = QUICK if args.quick else FULL
    sizes = Sizes(**{**sizes.__dict__, "compile": not args.eager})
    stem = results_stem(settings, "" if settings.device.type == "cuda" else "-gpu-script")
    info = machine_info(settings.device)
    run(settings, sizes, done=lambda result: write_results([result], info, settings, args.output, stem))
    paths = args.output / f"{stem}.json", args.output / f"{stem}.md"
    print(paths[1].read_text())
    return paths


if __name__ == "__main__":
    main()
