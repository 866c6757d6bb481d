"""Neural SDE train step vs torchsde: Euler-Maruyama with backprop through the solver, one Brownian path.

A batch of 32 diagonal-noise Itô SDEs in 16 dimensions, drift and diffusion small MLPs, solved
over [0, 1] with fixed-step Euler-Maruyama (100 and 1000 steps) by `nct.solve` and by
`torchsde.sdeint(method="euler")`; we time forward + backward of the mean square of the final
state (median of repeats after a warm-up). neuralct runs twice: with a `BrownianGrid` drawn on
the step grid (its fast path for fixed steps) and with a `BrownianPath`, which queries a
`torchsde.BrownianInterval` with the same seed in the same order as torchsde does with its
default interval, so those two integrate the same realisation: the benchmark asserts that
their final states and gradients agree at every step count. The `BrownianGrid` solve also runs
with `solve(..., compile=True)` in full mode (timed after warm-up calls that compile). A bare
Python loop of Euler-Maruyama steps (the two MLPs and two tensor operations per step) is timed
beside them as the floor of any eager loop. The libraries of one step count are timed in turns.
In full mode a cProfile of one call per library at the larger step count splits the time into
Brownian queries, the MLPs, autograd's backward and the rest (solver loop and bookkeeping).
Run: `python -m benchmarks.sde [--quick]`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torchsde
from torch import Tensor, nn

import neuralct as nct
from benchmarks.harness import (
    BenchmarkResult,
    Measurement,
    Settings,
    interleaved_medians,
    median_seconds,
    profile_shares,
    saved_mib,
)
from benchmarks.report import main_for

BATCH, STATE, HIDDEN = 32, 16, 32
STEPS = (100, 1000)
AGREEMENT_STEPS = 128
SEED = 0
# Issue 24: the train step at least this much faster than torchsde at 100 and 1000 steps.
SPEEDUP_TARGET = 1.5


class NeuralSDE(nn.Module):
    """Drift 16 -> 32 -> 16 (tanh hidden layer) and diffusion of the same shape ending in a
    sigmoid; diagonal Itô noise. `f`/`g` are torchsde's interface, `drift`/`diffusion`
    neuralct's; `calls` counts drift plus diffusion evaluations."""

    noise_type, sde_type = "diagonal", "ito"

    def __init__(self) -> None:
        super().__init__()
        self.drift_net = nn.Sequential(nn.Linear(STATE, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, STATE))
        self.diffusion_net = nn.Sequential(nn.Linear(STATE, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, STATE), nn.Sigmoid())
        self.calls = 0

    def f(self, t: Tensor, y: Tensor) -> Tensor:
        """Drift."""
        self.calls += 1
        return self.drift_net(y)

    def g(self, t: Tensor, y: Tensor) -> Tensor:
        """Diagonal diffusion, in (0, 1)."""
        self.calls += 1
        return self.diffusion_net(y)

    def drift(self, t: Tensor, y: Tensor, args: object) -> Tensor:
        """Drift in neuralct's signature."""
        return self.f(t, y)

    def diffusion(self, t: Tensor, y: Tensor, args: object) -> Tensor:
        """Diffusion in neuralct's signature."""
        return self.g(t, y)

    def drift_uncounted(self, t: Tensor, y: Tensor, args: object) -> Tensor:
        """The drift without the call counter, which `torch.compile` would compile again for."""
        return self.drift_net(y)

    def diffusion_uncounted(self, t: Tensor, y: Tensor, args: object) -> Tensor:
        """The diffusion without the call counter."""
        return self.diffusion_net(y)


def time_grid(device: torch.device) -> Tensor:
    """[0, 1] in float64: with float32 times both libraries sum n steps of 1/n to just below 1
    and take an extra sliver of a step, which torchsde's interval then refines its tree for."""
    return torch.tensor([0.0, 1.0], dtype=torch.float64, device=device)


def solve_neuralct(sde: NeuralSDE, y0: Tensor, steps: int) -> Tensor:
    """Final state `[B, D]` by `nct.solve` with Euler-Maruyama on a seeded `nct.BrownianGrid`
    drawn on the step grid (the drawing is part of the timed call)."""
    grid = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64, device=y0.device)
    return _solve_neuralct(sde, y0, steps, nct.BrownianGrid(grid, y0.shape, dtype=y0.dtype, seed=SEED))


def solve_neuralct_path(sde: NeuralSDE, y0: Tensor, steps: int) -> Tensor:
    """Final state `[B, D]` by `nct.solve` with Euler-Maruyama on a seeded `nct.BrownianPath`:
    torchsde's `BrownianInterval`, queried as torchsde queries it."""
    path = nct.BrownianPath(0.0, 1.0, y0.shape, dtype=y0.dtype, device=y0.device, seed=SEED)
    return _solve_neuralct(sde, y0, steps, path)


def solve_neuralct_compiled(sde: NeuralSDE, y0: Tensor, steps: int) -> Tensor:
    """As `solve_neuralct`, each step under `torch.compile` (the fields called uncounted)."""
    grid = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64, device=y0.device)
    path = nct.BrownianGrid(grid, y0.shape, dtype=y0.dtype, seed=SEED)
    return _solve_neuralct(sde, y0, steps, path, compile=True)


def _solve_neuralct(
    sde: NeuralSDE, y0: Tensor, steps: int, path: nct.BrownianPath | nct.BrownianGrid, compile: bool = False
) -> Tensor:
    diffusion, drift = (sde.diffusion_uncounted, sde.drift_uncounted) if compile else (sde.diffusion, sde.drift)
    noise = nct.NoiseTerm(diffusion, path, nct.NoiseType.DIAGONAL, nct.SDEType.ITO)
    term = nct.SDETerm(nct.ODETerm(drift), noise)
    solution = nct.solve(
        term,
        y0,
        time_grid(y0.device),
        solver=nct.EulerMaruyama(),
        controller=nct.ConstantStep(1.0 / steps),
        compile=compile,
    )
    return solution.ys[:, -1]


def solve_torchsde(sde: NeuralSDE, y0: Tensor, steps: int) -> Tensor:
    """Final state `[B, D]` by `torchsde.sdeint(method="euler")` on torchsde's default
    `BrownianInterval`, given the seed that neuralct's path uses."""
    bm = torchsde.BrownianInterval(0.0, 1.0, size=tuple(y0.shape), dtype=y0.dtype, device=y0.device, entropy=SEED)
    return torchsde.sdeint(sde, y0, time_grid(y0.device), bm=bm, method="euler", dt=1.0 / steps)[-1]


def solve_floor(sde: NeuralSDE, y0: Tensor, steps: int) -> Tensor:
    """The floor: Euler-Maruyama as a bare Python loop of the two MLPs and two tensor operations per
    step, its increments drawn up front (what no solver with per-sample bookkeeping can beat)."""
    generator = torch.Generator(device=y0.device).manual_seed(SEED)
    h = 1.0 / steps
    increments = torch.randn(steps, *y0.shape, generator=generator, device=y0.device, dtype=y0.dtype) * h**0.5
    y = y0
    for k in range(steps):
        y = y + sde.f(None, y) * h + sde.g(None, y) * increments[k]
    return y


SOLVERS: dict[str, Callable[[NeuralSDE, Tensor, int], Tensor]] = {
    "neuralct": solve_neuralct,
    "neuralct (BrownianPath)": solve_neuralct_path,
    "torchsde": solve_torchsde,
    "neuralct, compile=True": solve_neuralct_compiled,
    "bare loop (floor)": solve_floor,
}
# The compiled solve calls its fields uncounted: its evaluations are those of the eager one.
COUNTED_AS = {"neuralct, compile=True": "neuralct"}
# The two that integrate the same Brownian realisation.
SAME_NOISE = ("neuralct (BrownianPath)", "torchsde")


def train_step(solve: Callable[[NeuralSDE, Tensor, int], Tensor], sde: NeuralSDE, y0: Tensor, steps: int) -> Tensor:
    """Forward and backward of the mean-square loss of the final state; returns the final state."""
    sde.zero_grad(set_to_none=True)
    final = solve(sde, y0, steps)
    final.square().mean().backward()
    return final.detach()


def count_evals(sde: NeuralSDE, steps: int, y0: Tensor, solvers: dict[str, Callable]) -> dict[str, int]:
    """Drift + diffusion calls of one train step per library in `solvers` (which also compiles the
    compiled ones)."""
    evals = {}
    for library, solve in solvers.items():
        sde.calls = 0
        train_step(solve, sde, y0, steps)
        evals[library] = sde.calls
    return {library: evals[COUNTED_AS.get(library, library)] for library in solvers}


def assert_agreement(sde: NeuralSDE, y0: Tensor) -> float:
    """Assert equal final states and gradients for the two solves on the same Brownian path,
    over AGREEMENT_STEPS steps; returns the largest difference of the final states.

    A `BrownianInterval`'s realisation depends on the query times, so both libraries must
    ask for the same times: with a step of 1/128 their time arithmetic is exact (with 1/100
    torchsde sums the steps while neuralct counts them, and the times differ in the last bit)."""
    finals, grads = [], []
    for library in SAME_NOISE:
        finals.append(train_step(SOLVERS[library], sde, y0, AGREEMENT_STEPS))
        grads.append([p.grad.clone() for p in sde.parameters()])
    torch.testing.assert_close(finals[0], finals[1], rtol=1e-5, atol=1e-6)
    for ours, theirs in zip(*grads):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)
    return float((finals[0] - finals[1]).abs().max())


def brownian_profile(fn: Callable[[], object]) -> dict[str, float]:
    """Shares of one profiled call of `fn` in `BrownianInterval` queries, neuralct's
    `BrownianPath` checks around them, the MLPs (forward), autograd's backward and the rest
    (the solver loop); parts that take no time are left out."""
    shares = profile_shares(
        fn,
        {
            "BrownianInterval queries": (torchsde.BrownianInterval.__call__,),
            "BrownianPath increments": (nct.BrownianPath.increment,),
            "MLP forwards": (NeuralSDE.f, NeuralSDE.g),
            "backward": (torch.Tensor.backward,),
        },
    )
    # The path's increments contain the queries: keep only the checks around them.
    path = shares.pop("BrownianPath increments")
    shares["rest"] += path
    if path > 0:
        shares["BrownianPath checks"] = max(path - shares["BrownianInterval queries"], 0.0)
        shares["rest"] -= shares["BrownianPath checks"]
    return {name: share for name, share in shares.items() if share > 0}


def brownian_seconds(steps: int, settings: Settings) -> float:
    """Median seconds of the Brownian queries of one solve on their own: a fresh seeded
    `BrownianInterval` asked for the `steps` consecutive increments of the grid."""
    edges = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64).tolist()

    def queries() -> None:
        bm = torchsde.BrownianInterval(0.0, 1.0, size=(BATCH, STATE), device=settings.device, entropy=SEED)
        for ta, tb in zip(edges[:-1], edges[1:]):
            bm(ta, tb)

    return median_seconds(queries, settings)


def profile_note(library: str, steps: int, shares: dict[str, float]) -> str:
    """One line of profile shares."""
    split = ", ".join(f"{name} {share:.0%}" for name, share in shares.items())
    return f"cProfile of one {library} train step at {steps} steps: {split}."


def run(settings: Settings) -> BenchmarkResult:
    """Check agreement and time both libraries at every step count; profile the larger case."""
    torch.manual_seed(SEED)
    sde = NeuralSDE().to(settings.device)
    y0 = torch.randn(BATCH, STATE, device=settings.device)
    result = BenchmarkResult(
        name="sde",
        title="Neural SDE vs torchsde",
        setup=(
            f"Diagonal-noise Itô SDE, batch {BATCH}, state {STATE}, float32; drift and diffusion MLPs "
            f"{STATE}->{HIDDEN}->{STATE} (tanh; sigmoid-output diffusion); Euler-Maruyama with fixed steps over "
            "[0, 1] (float64 time grid); timed: forward + backward of the mean-square final state, backprop "
            "through the solver (torchsde `sdeint`, not the adjoint). neuralct: with a `BrownianGrid` drawn on the "
            "step grid (eagerly and, in full mode, with `compile=True`), and with a `BrownianPath` that queries a "
            "seeded torchsde `BrownianInterval` in the order torchsde does (the same realisation; states and "
            "gradients asserted equal). The floor: Euler-Maruyama as a bare Python loop (two MLPs and two tensor "
            "operations per step, increments drawn up front). "
            "evals = drift + diffusion calls on the whole batch."
        ),
    )
    # Quick mode leaves the compiled solve out: its compilation would take most of the module's budget.
    solvers = {k: v for k, v in SOLVERS.items() if not (settings.quick and k in COUNTED_AS)}
    difference = assert_agreement(sde, y0)
    result.notes.append(
        f"over {AGREEMENT_STEPS} steps the BrownianPath solve and torchsde's agree: max final-state difference "
        f"{difference:.2g}, gradients to rtol 1e-4."
    )
    for steps in STEPS:
        case = f"{steps} steps"
        evals = count_evals(sde, steps, y0, solvers)
        runs = {library: partial(train_step, solve, sde, y0, steps) for library, solve in solvers.items()}
        walls = interleaved_medians(runs, settings)
        for library, solve in solvers.items():
            memory = saved_mib(partial(solve, sde, y0, steps))
            result.rows.append(Measurement(case, library, walls[library], evals=evals[library], memory_mib=memory))
        result.speedup(case, "torchsde", SPEEDUP_TARGET)
        if "neuralct, compile=True" in solvers:
            result.speedup(case, "torchsde", SPEEDUP_TARGET, library="neuralct, compile=True")
        queries = brownian_seconds(steps, settings)
        result.notes.append(
            f"{case}: the {steps} "
            f"`BrownianInterval` queries alone take {queries * 1e3:.3g} ms, "
            f"{queries / result.wall(case, 'neuralct (BrownianPath)'):.0%} of neuralct's wall with a BrownianPath and "
            f"{queries / result.wall(case, 'torchsde'):.0%} of torchsde's."
        )
    if not settings.quick:
        for library, solve in SOLVERS.items():
            if library in COUNTED_AS or library == "bare loop (floor)":
                continue  # a compiled step is one opaque call to cProfile; the floor has no parts
            shares = brownian_profile(partial(train_step, solve, sde, y0, STEPS[-1]))
            result.notes.append(profile_note(library, STEPS[-1], shares))
    return result


if __name__ == "__main__":
    main_for(run, __doc__.splitlines()[0])
