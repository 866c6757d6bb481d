"""Neural ODE solves and training steps: neuralct vs torchdiffeq vs torchode.

The vector field is diffrax's `small_neural_ode` MLP (4 -> 32 -> 32 -> 4, softplus hidden
layers, tanh output), with 10 save times on [0, 10].

* solve: a batch of 256 samples, no gradients, Dopri5 and Tsit5 at rtol = atol = 1e-6 in
  float32. Besides the wall time we count vector-field calls (each on the whole batch) and
  report the overhead ratio wall / (calls x time of one call measured on its own): 1 means
  the solver costs nothing beyond its vector field.
* work-precision: the same solve in float64 at rtol = atol = 1e-3 ... 1e-8 (1e-3, 1e-5, 1e-7
  in quick mode, whose solve case runs Tsit5 alone); the error is the
  largest deviation from a Dopri8 solve at 1e-13. A library is faster "at equal accuracy"
  when its wall time, interpolated (log-log) at neuralct's error, exceeds neuralct's.
* train step: batch 32, forward and backward of a mean-square loss to the parameters,
  Dopri5 at 1e-6, by backpropagation through the solver and by the continuous adjoint
  (neuralct `Backsolve`, torchdiffeq `odeint_adjoint`, torchode `BacksolveAdjoint`), the
  latter with the full error norm and with the seminorm (`Backsolve(seminorm=True)`,
  torchdiffeq's `adjoint_options=dict(norm="seminorm")`; torchode has none).
* compiled: the solves and the backprop train step also run with neuralct's
  `solve(..., compile=True)` (each step, vector field included, under `torch.compile`) and
  with torchode's `solve` under `torch.compile`, timed after a first call that compiles
  (its time is in the notes; the cases share one compile cache, emptied when the module
  starts; quick mode leaves torchode's compiled runs out); their calls are read from the
  solvers' statistics. In full mode both adjoints run compiled too (neuralct only: the
  backward steps, per-sample VJPs included, under `torch.compile`); their calls are counted on
  the same solve run eagerly. Targets (issue 24): solve overhead <= 1.5 eager and <= 1.15
  compiled, compiled train-step overhead <= 1.0, the full-norm adjoint at least as fast as
  torchdiffeq's, and no peer faster at equal error.

Run: `python -m benchmarks.neural_ode [--quick]`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import torch
import torchdiffeq
import torchode

import neuralct as nct
from benchmarks.harness import BenchmarkResult, Measurement, Settings, Target, interleaved_medians
from benchmarks.precision import equal_error_targets, sweep
from benchmarks.report import main_for

SOLVERS = {"dopri5": (nct.Dopri5, torchode.Dopri5), "tsit5": (nct.Tsit5, torchode.Tsit5)}
LIBRARIES = ("neuralct", "torchdiffeq", "torchode")
# The solves and the backprop train step also run compiled: neuralct's `solve(..., compile=True)`
# and torchode's `solve` under `torch.compile` (which splits it into pieces at its data-dependent
# loop conditions). The first call, the warm-up, compiles; its time goes into the notes.
COMPILED = ("neuralct, compile=True", "torchode, torch.compile")
# Issue 24's targets for the solver's own cost: wall / (calls x one call) of a solve, eager and
# compiled, and of a compiled backprop train step.
OVERHEAD_TARGETS = {"neuralct": 1.5, COMPILED[0]: 1.15}
TRAIN_OVERHEAD_TARGET = 1.0
# Speedups required of neuralct's train steps over each peer; the full-norm adjoint's over
# torchdiffeq's is issue 24's (at least as fast).
TRAIN_SPEEDUPS = {
    "backprop": {"torchdiffeq": 2.0, "torchode": 1.5},
    "adjoint": {"torchdiffeq": 1.0, "torchode": 1.5},
    "adjoint, seminorm": {"torchdiffeq": 2.0},
}
# torchdiffeq has no Tsit5; its Dopri5 is the method of the same order and cost per step.
TORCHDIFFEQ_METHOD = {"tsit5": "dopri5"}


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

    def uncounted(self, t: torch.Tensor, y: torch.Tensor, args: object = None) -> torch.Tensor:
        """The field without its call counter: a Python side effect that would make
        `torch.compile` compile the step again at every call."""
        return self.net(y)


class Uncounted(torch.nn.Module):
    """`field` called without its counter, as a module holding its parameters (what `Backsolve`
    differentiates)."""

    def __init__(self, field: VectorField) -> None:
        super().__init__()
        self.field = field

    def forward(self, t: torch.Tensor, y: torch.Tensor, args: object = None) -> torch.Tensor:
        return self.field.uncounted(t, y, args)


Solve = Callable[[VectorField, torch.Tensor, torch.Tensor], torch.Tensor]


def solver_for(library: str, method: str, tol: float, gradient: str = "backprop") -> Solve:
    """A function `(f, y0 [B, 4], ts [K]) -> ys [B, K, 4]` solving with `library`, its
    gradient by `"backprop"`, `"adjoint"` or `"adjoint, seminorm"`."""
    adjoint, seminorm = gradient != "backprop", gradient.endswith("seminorm")
    if library in ("neuralct", COMPILED[0]):
        return _neuralct_solver(method, tol, gradient, compile=library == COMPILED[0])
    if library == COMPILED[1]:
        return _compiled_torchode(method, tol)
    if library == "torchdiffeq":
        method = TORCHDIFFEQ_METHOD.get(method, method)
        if not adjoint:
            return lambda f, y0, ts: torchdiffeq.odeint(f, y0, ts, method=method, rtol=tol, atol=tol).transpose(0, 1)
        options = {"norm": "seminorm"} if seminorm else {}
        return lambda f, y0, ts: torchdiffeq.odeint_adjoint(
            f, y0, ts, method=method, rtol=tol, atol=tol, adjoint_options=options
        ).transpose(0, 1)
    return _torchode_solver(method, tol, adjoint)


def _neuralct_solver(method: str, tol: float, gradient: str, compile: bool) -> Solve:
    """`nct.solve` with the gradient named by `gradient`, each step under `torch.compile` with
    `compile`. Compiled, the field is called without its counter (`Uncounted`): a backprop solve
    adds the calls its statistics report to `f.calls` (the sample that ran longest was running
    at every call on the batch); an adjoint's are counted on the eager run (see `train_cases`)."""
    adjoint = gradient != "backprop"
    strategy = nct.Backsolve(seminorm=gradient.endswith("seminorm")) if adjoint else nct.Backprop()
    controller = nct.PIDController(rtol=tol, atol=tol)
    solver = SOLVERS[method][0]()

    def solve(f: VectorField, y0: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        term = nct.ODETerm(Uncounted(f) if compile else f)
        solution = nct.solve(term, y0, ts, solver=solver, controller=controller, gradient=strategy, compile=compile)
        if compile and not adjoint:
            f.calls += int(solution.stats.vf_evals.max())
        return solution.ys

    return solve


def _compiled_torchode(method: str, tol: float) -> Solve:
    """torchode's `solve` under `torch.compile`, gradients by backprop, calling the field without
    its counter (`VectorField.uncounted`); adds the calls its statistics report to `f.calls`."""
    compiled: dict[VectorField, Callable] = {}

    def solve_compiled(f: VectorField, y0: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        if f not in compiled:
            compiled[f] = torch.compile(_torchode_adjoint(f.uncounted, method, tol, adjoint=False).solve)
        solution = compiled[f](torchode.InitialValueProblem(y0=y0, t_eval=ts.expand(y0.shape[0], -1)))
        f.calls += int(solution.stats["n_f_evals"].max())
        return solution.ys

    return solve_compiled


def _torchode_adjoint(f: Callable, method: str, tol: float, adjoint: bool) -> torch.nn.Module:
    """torchode's solver for `f(t, y)`: backprop through it, or its backsolve adjoint."""
    term = torchode.ODETerm(f)
    step = SOLVERS[method][1](term=term)
    controller = torchode.IntegralController(atol=tol, rtol=tol, term=term)
    if adjoint:
        return torchode.BacksolveAdjoint(term, step, controller)
    return torchode.AutoDiffAdjoint(step, controller)


def _torchode_solver(method: str, tol: float, adjoint: bool) -> Solve:
    def solve(f: VectorField, y0: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        problem = torchode.InitialValueProblem(y0=y0, t_eval=ts.expand(y0.shape[0], -1))
        return _torchode_adjoint(f, method, tol, adjoint).solve(problem).ys

    return solve


def problem(batch: int, dtype: torch.dtype, device: torch.device) -> tuple[VectorField, torch.Tensor, torch.Tensor]:
    """The seeded vector field, `y0` `[batch, 4]` and 10 save times on [0, 10]."""
    torch.manual_seed(0)
    f = VectorField().to(dtype=dtype, device=device)
    y0 = torch.randn(batch, 4, dtype=dtype, device=device)
    return f, y0, torch.linspace(0.0, 10.0, 10, dtype=dtype, device=device)


def count_calls(f: VectorField, run: Callable[[], object]) -> int:
    """Vector-field calls made by one `run()`."""
    f.calls = 0
    run()
    return f.calls


def note_compilation(result: BenchmarkResult, case: str, library: str, run: Callable[[], object]) -> None:
    """Time the first call of a compiled `run`, which compiles, into the notes."""
    start = time.perf_counter()
    run()
    result.notes.append(f"{case}: {library}'s first call (compiling) took {time.perf_counter() - start:.1f} s")


def add_speedups(result: BenchmarkResult, case: str, required: dict[str, float], compiled: tuple[str, ...]) -> None:
    """Speedup targets on `case`: neuralct over each peer in `required` (at least the value
    given), and, where the case ran compiled neuralct, compiled neuralct over the same peers and
    over compiled torchode (where it ran: `compiled` names the compiled runs)."""
    for peer, factor in required.items():
        result.speedup(case, peer, factor)
    if COMPILED[0] in compiled:
        for peer, factor in required.items():
            result.speedup(case, peer, factor, library=COMPILED[0])
        if COMPILED[1] in compiled:
            result.speedup(case, COMPILED[1], required["torchode"], library=COMPILED[0])


def compiled_runs(settings: Settings) -> tuple[str, ...]:
    """The compiled runs of the solve and backprop cases: both in full mode; quick mode leaves out
    torchode under `torch.compile`, whose compilation takes minutes on 2 cores."""
    return COMPILED[:1] if settings.quick else COMPILED


# Calls of the field alone in one timed run of the one-call measurement.
CALLS_PER_UNIT = 10


def field_calls(f: VectorField, y0: torch.Tensor, backward: bool) -> Callable[[], None]:
    """`CALLS_PER_UNIT` calls of `f` on the batch `y0` (forward, or forward + backward)."""
    y = y0.clone().requires_grad_(backward)

    def calls() -> None:
        with torch.set_grad_enabled(backward):
            for _ in range(CALLS_PER_UNIT):
                out = f(None, y)
                if backward:
                    out.sum().backward()

    return calls


def measure_case(
    result: BenchmarkResult,
    settings: Settings,
    case: str,
    runs: dict[str, Callable[[], object]],
    f: VectorField,
    unit: Callable[[], None],
    counted_as: dict[str, str] | None = None,
) -> dict[str, float]:
    """Rows for `case`: each library's run in `runs` timed in turns with the others and with
    `unit` (`field_calls`), so that the host's drift neither favours a library nor enters
    the overhead ratio wall / (calls of `f` x one call). Compiled runs are compiled first, their
    compile time noted; the cases share one compile cache (emptied once, in `run`), so a case
    compiles only what an earlier one did not. A library in `counted_as` has its calls counted on
    the run of the library it maps to (the same solve, eager). Returns library -> overhead ratio."""
    for library, run in runs.items():
        if library in COMPILED:
            note_compilation(result, case, library, run)
    walls = interleaved_medians({**runs, "one call": unit}, settings)
    one_call = walls.pop("one call") / CALLS_PER_UNIT
    overheads = {}
    for library in runs:
        calls = count_calls(f, runs[(counted_as or {}).get(library, library)])
        overheads[library] = walls[library] / (calls * one_call)
        note = f"overhead {overheads[library]:.2f}"
        result.rows.append(Measurement(case, library, walls[library], evals=calls, note=note))
    result.notes.append(f"{case}: one call {one_call * 1e6:.1f} us")
    return overheads


def solve_cases(result: BenchmarkResult, settings: Settings) -> None:
    """Batch 256, float32, rtol 1e-6, no gradients: wall, calls and overhead per library."""
    f, y0, ts = problem(256, torch.float32, settings.device)
    for method in ("tsit5",) if settings.quick else SOLVERS:
        case = f"solve {method}, batch 256"
        runs = {}
        for library in LIBRARIES + compiled_runs(settings):
            solve = solver_for(library, method, 1e-6)
            runs[library] = torch.no_grad()(lambda solve=solve: solve(f, y0, ts))
        overheads = measure_case(result, settings, case, runs, f, field_calls(f, y0, backward=False))
        for library, required in OVERHEAD_TARGETS.items():
            result.targets.append(Target(f"{case}: {library} overhead", overheads[library], required, at_most=True))
        add_speedups(result, case, {"torchdiffeq": 1.0, "torchode": 1.0}, compiled_runs(settings))
    result.notes.append("solves: one call = one vector-field call on the batch of 256")


GRADIENTS = ("backprop", "adjoint", "adjoint, seminorm")


def train_cases(result: BenchmarkResult, settings: Settings, gradients: tuple[str, ...] = GRADIENTS) -> None:
    """Batch 32, Dopri5 at 1e-6: forward + backward by backprop and by the adjoint (with
    the full error norm, and with the seminorm, which torchode does not offer)."""
    f, y0, ts = problem(32, torch.float32, settings.device)
    targets = torch.randn(32, len(ts), 4, device=settings.device)
    for gradient in gradients:
        case = f"train step, {gradient}"
        libraries = LIBRARIES[:2] if gradient.endswith("seminorm") else LIBRARIES
        if gradient == "backprop":
            libraries += compiled_runs(settings)
        elif not settings.quick:  # quick mode's budget has no room for the adjoints' compilation
            libraries += COMPILED[:1]
        runs = {}
        for library in libraries:
            solve = solver_for(library, "dopri5", 1e-6, gradient)

            def run(solve: Solve = solve) -> None:
                f.zero_grad()
                (solve(f, y0, ts) - targets).square().mean().backward()

            runs[library] = run
        # The compiled adjoints call the field uncounted; their calls are the eager solve's.
        counted_as = {COMPILED[0]: "neuralct"} if gradient != "backprop" else None
        overheads = measure_case(result, settings, case, runs, f, field_calls(f, y0, backward=True), counted_as)
        if COMPILED[0] in overheads and gradient == "backprop":
            overhead = overheads[COMPILED[0]]
            description = f"{case}: {COMPILED[0]} overhead"
            result.targets.append(Target(description, overhead, TRAIN_OVERHEAD_TARGET, at_most=True))
        add_speedups(result, case, TRAIN_SPEEDUPS[gradient], libraries)
    result.notes.append(
        "train steps: one call = one forward + backward vector-field call on the batch of 32 (adjoint calls include "
        "the backward solve's)"
    )


def reference_solution(f: VectorField, y0: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
    """Dopri8 at rtol = atol = 1e-13 in float64."""
    with torch.no_grad():
        controller = nct.PIDController(rtol=1e-13, atol=1e-13)
        return nct.solve(nct.ODETerm(f), y0, ts, solver=nct.Dopri8(), controller=controller, max_steps=100_000).ys


def work_precision(result: BenchmarkResult, settings: Settings) -> None:
    """Wall time against error over tolerances, float64, Tsit5 (torchdiffeq: Dopri5); targets:
    no peer faster at equal error at any of neuralct's points."""
    f, y0, ts = problem(256, torch.float64, settings.device)
    reference = reference_solution(f, y0, ts)
    exponents = (3, 5, 7) if settings.quick else (3, 4, 5, 6, 7, 8)
    forwards = {
        library: lambda tol, library=library: partial(solver_for(library, "tsit5", tol), f, y0, ts)
        for library in LIBRARIES
    }
    tolerances = [10.0**-exponent for exponent in exponents]
    label = "work-precision tsit5"
    curves = sweep(result, settings, label, forwards, tolerances, reference, evals=partial(count_calls, f))
    equal_error_targets(result, "work-precision", curves)


def run(settings: Settings, overhead_only: bool = False) -> BenchmarkResult:
    """All three parts (see the module docstring); with `overhead_only`, the solves and the
    backprop train step alone (`benchmarks.solve_overhead`)."""
    result = BenchmarkResult(
        name="neural_ode",
        title="Neural ODE",
        setup=(
            "MLP 4 -> 32 -> 32 -> 4 (softplus, tanh output), 10 save times on [0, 10], rtol = atol. Solve: batch 256, "
            "float32, 1e-6, no gradients (torchdiffeq has no Tsit5: it runs Dopri5 there). Train step: batch 32, "
            "float32, Dopri5 at 1e-6, forward + backward of a "
            "mean-square loss. Work-precision: batch 256, float64, Tsit5, error = max deviation from Dopri8 at "
            "1e-13. evals = vector-field calls on the whole batch."
        ),
    )
    torch._dynamo.reset()  # the compiled runs' first calls compile from an empty cache
    solve_cases(result, settings)
    train_cases(result, settings, gradients=("backprop",) if overhead_only else GRADIENTS)
    if not overhead_only:
        work_precision(result, settings)
    return result


if __name__ == "__main__":
    main_for(run, __doc__.splitlines()[0])
