"""Peak memory of a neural-ODE training step against its number of steps, per gradient strategy.

The vector field is the MLP 4 -> 64 -> 64 -> 4 (softplus hidden layers, tanh output; 4,740
parameters), batch 64, float32, 5 save times on [0, 1] and a mean-square loss on all of them.
Tsit5 under a `PIDController` at rtol 1e-4, atol 1e-6 whose largest step `dt_max` is 1 / steps:
the tolerance is loose enough for the cap, not the error, to set the steps, so the solve takes
the adaptive path (save times interpolated from the dense output, error control) at a chosen
number of steps. `Backsolve`'s backward solve inherits the cap and takes as many.

For each strategy (`Backprop()`, `Backprop(checkpoint_every=16)`, `Backsolve()`,
`Backsolve(seminorm=True)`) and number of steps we record the wall time of one training step
(forward and backward) and its peak memory: the most bytes allocated at any moment of the step
above what was allocated when it started (`peak_mib`). The targets are the fitted log-log slopes
of peak memory against steps: about 1 for `Backprop`, about 0 for checkpointing and the
adjoints, whose memory should not grow with the steps; and the checkpointed peak well below
`Backprop`'s at the most steps. Run: `python -m benchmarks.memory [--quick] [--device cuda]`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile

import neuralct as nct
from benchmarks.harness import BenchmarkResult, Measurement, Settings, Target, loglog_slope, median_seconds
from benchmarks.report import main_for

STEPS, QUICK_STEPS = (32, 128, 512), (32, 128)
BATCH, STATE, WIDTH, SAVES = 64, 4, 64, 5
CHECKPOINT_EVERY = 16
STRATEGIES = {
    "Backprop": nct.Backprop(),
    f"Backprop(checkpoint_every={CHECKPOINT_EVERY})": nct.Backprop(checkpoint_every=CHECKPOINT_EVERY),
    "Backsolve": nct.Backsolve(),
    "Backsolve(seminorm=True)": nct.Backsolve(seminorm=True),
}
# Largest fitted slope of peak memory against steps for the strategies meant to be flat; smallest of Backprop's.
FLAT_SLOPE, LINEAR_SLOPE = 0.1, 0.9
# Largest checkpointed peak, as a fraction of Backprop's, at the most steps.
CHECKPOINT_FRACTION = 0.25


def peak_mib(fn: Callable[[], object], device: torch.device) -> float:
    """MiB allocated at the peak of `fn()` above what was allocated when it started.

    On CUDA from the caching allocator's statistics. On CPU, where torch keeps none, from the
    allocations and frees that the profiler records (`profile_memory=True`), summed in order:
    exact and deterministic, but it slows `fn` down about tenfold. A step should allocate all
    it frees (set gradients to `None` first), or the frees of older tensors offset its peak.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - start) / 2**20
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # The raw events, in time order: the profiler's tables sum memory per operator, not per moment.
    events = [event for event in prof.profiler.kineto_results.events() if event.name() == "[memory]"]
    events.sort(key=lambda event: event.start_ns())
    allocated = peak = 0
    for event in events:
        allocated += event.nbytes()
        peak = max(peak, allocated)
    return peak / 2**20


class Field(nn.Module):
    """MLP `state -> width -> width -> state`, softplus hidden layers and a tanh output."""

    def __init__(self, state: int = STATE, width: int = WIDTH) -> None:
        super().__init__()
        self.state = state
        self.net = nn.Sequential(
            nn.Linear(state, width),
            nn.Softplus(),
            nn.Linear(width, width),
            nn.Softplus(),
            nn.Linear(width, state),
            nn.Tanh(),
        )

    def forward(self, t: Tensor, y: Tensor, args: object = None) -> Tensor:
        return self.net(y)


def training_step(
    field: Field,
    gradient: nct.AbstractGradient,
    steps: int,
    device: torch.device,
    batch: int = BATCH,
    saves: int = SAVES,
) -> Callable[[], nct.Solution]:
    """Forward and backward of a mean-square loss on `saves` save times over [0, 1], at about
    `steps` steps (see the module docstring); returns the `Solution`."""
    y0 = torch.randn(batch, field.state, generator=torch.Generator().manual_seed(0)).to(device)
    ts = torch.linspace(0.0, 1.0, saves, device=device)
    controller = nct.PIDController(rtol=1e-4, atol=1e-6, dt_max=1.0 / steps)

    def step() -> nct.Solution:
        field.zero_grad(set_to_none=True)
        solution = nct.solve(
            nct.ODETerm(field),
            y0,
            ts,
            solver=nct.Tsit5(),
            controller=controller,
            gradient=gradient,
            max_steps=10 * steps,
        )
        solution.ys.square().mean().backward()
        return solution

    return step


def run(settings: Settings) -> BenchmarkResult:
    """Every strategy at every number of steps; slopes and the checkpointing ratio as targets."""
    grid = QUICK_STEPS if settings.quick else STEPS
    result = BenchmarkResult(
        name="memory",
        title="Peak memory of a training step against its steps",
        setup=(
            f"Neural ODE, MLP {STATE} -> {WIDTH} -> {WIDTH} -> {STATE} (softplus, tanh output), batch {BATCH}, "
            f"float32, {SAVES} save times on [0, 1], mean-square loss; Tsit5, PIDController(rtol=1e-4, atol=1e-6, "
            "dt_max=1 / steps), so that the cap sets the steps. One training step (forward and backward) per row, "
            "timed once after a warm-up; time ratio = its wall time over Backprop's. The memory column (titled "
            "saved MiB) is here the step's **peak** memory in MiB above its start, parameter gradients included, "
            "not only what autograd saves: on CPU from the profiler's allocation records, on CUDA from the "
            "allocator's peak."
        ),
    )
    torch.manual_seed(0)
    field = Field().to(settings.device)
    peaks: dict[str, list[float]] = {name: [] for name in STRATEGIES}
    taken = []
    for steps in grid:
        case = f"{steps} steps"
        for name, gradient in STRATEGIES.items():
            step = training_step(field, gradient, steps, settings.device)
            wall = median_seconds(step, settings, repeats=1)
            peaks[name].append(peak_mib(step, settings.device))
            result.rows.append(Measurement(case, name, wall, memory_mib=peaks[name][-1]))
        # Every strategy takes the forward steps of the same solve.
        taken.append(int(training_step(field, nct.Backprop(), steps, settings.device)().stats.steps.max()))
        result.notes.append(f"{case}: the forward solve took {taken[-1]} steps.")
    add_targets(result, grid, taken, peaks)
    return result


def add_targets(
    result: BenchmarkResult, grid: tuple[int, ...], taken: list[int], peaks: dict[str, list[float]]
) -> None:
    """Fitted log-log slopes of peak memory against the steps taken (about 1 for Backprop, 0
    for the others), and the checkpointed peak over Backprop's at the most steps."""
    for name, values in peaks.items():
        slope = loglog_slope(taken, values)
        description = f"{name}: log-log slope of peak memory vs steps"
        linear = name == "Backprop"
        result.targets.append(Target(description, slope, LINEAR_SLOPE if linear else FLAT_SLOPE, at_most=not linear))
    checkpointed = f"Backprop(checkpoint_every={CHECKPOINT_EVERY})"
    fraction = peaks[checkpointed][-1] / peaks["Backprop"][-1]
    description = f"{checkpointed} at {grid[-1]} steps: peak / Backprop's peak"
    result.targets.append(Target(description, fraction, CHECKPOINT_FRACTION, at_most=True))


if __name__ == "__main__":
    main_for(run, __doc__.splitlines()[0])
