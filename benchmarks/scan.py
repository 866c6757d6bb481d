"""Diagonal SSM: parallel scan vs sequential loop vs FFT convolution, forward + backward against L.

One diagonal SSM layer as S4D runs it (zero-order hold, complex modes read out as
$2\\,\\mathrm{Re}\\sum_m c_m h_m$), batch 32, H = 2 channels of N/2 = 32 complex modes (S4D's
default state size 64), complex64, the eigenvalues and readout trained. Three ways to run it:

* `scan` and `loop`: the irregular-series path, which discretises every step on its own
  ($\\bar a_k = e^{\\Delta_k a}$, `[B, L, H, N/2]`) and runs `linear_recurrence` with
  `method="scan"` (log-depth) or `"sequential"` (a Python loop over L);
* `convolution`: the uniform-grid path, `diagonal_convolution` (Vandermonde kernel, one FFT);
* `scan, recurrence only` and `loop, recurrence only`: `linear_recurrence` alone, on fixed
  discretised inputs that require grad (the part of the layer that the scan replaces).

All three are fed the same uniform grid, so their outputs agree: the `error` column is the largest
difference from the loop's output. A last case feeds an `S4D` layer (same sizes) a series with half
of a regular sampler's 4096 points dropped: its gaps are whole multiples of the sampler's step, so
`S4D` runs it as one convolution over the lattice (`lattice`, the default) instead of the scan over
the ~2048 observations (`scan`, `mode="recurrent"`); error there is against the scan.
The loop is timed up to `LOOP_STEPS` (1024 in quick mode) and scaled linearly beyond
(its cost is linear in L); such rows say so. Run: `python -m benchmarks.scan [--quick]`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from benchmarks.harness import (
    BenchmarkResult,
    Measurement,
    Settings,
    Target,
    interleaved_medians,
    loglog_slope,
    saved_mib,
)
from benchmarks.report import main_for
from neuralct.models.ssm.kernels import diagonal_convolution, linear_recurrence
from neuralct.models.ssm.s4d import S4D

BATCH, WIDTH, MODES = 32, 2, 32
STEP = 0.01
LOOP_STEPS = 4096
QUICK_LOOP_STEPS = 1024
METHODS = {"scan": "scan", "loop": "sequential"}


def discretise(u: Tensor, eigenvalues: Tensor) -> tuple[Tensor, Tensor]:
    """Zero-order hold at every step, as for an irregular batch: `(a_bar, b_bar * u)`, `[B, L, H * N/2]`."""
    steps = torch.full(u.shape[:2], STEP, device=u.device)  # what an irregular batch carries per step
    a_bar = torch.exp(steps[..., None, None] * eigenvalues)  # [B, L, H, N/2]
    return a_bar.flatten(-2), ((a_bar - 1) / eigenvalues * u[..., None]).flatten(-2)


def layer_outputs(u: Tensor, eigenvalues: Tensor, c: Tensor, method: str) -> Tensor:
    """`[B, L, H]` outputs of the diagonal layer on a grid of steps `STEP`, by `method`.

    Args:
        u: `[B, L, H]` inputs.
        eigenvalues: `[H, N/2]` continuous-time modes a.
        c: `[H, N/2]` complex readout.
        method: `"scan"`, `"loop"` (both discretise every step) or `"convolution"`.
    """
    if method == "convolution":
        a_bar = torch.exp(STEP * eigenvalues)
        y = diagonal_convolution(
            u.transpose(1, 2), STEP * eigenvalues, c * (a_bar - 1) / eigenvalues, conjugate_pairs=True
        )
        return y.transpose(1, 2)
    h = linear_recurrence(*discretise(u, eigenvalues), method=METHODS[method]).unflatten(-1, c.shape)
    return 2 * torch.einsum("hm,blhm->blh", c, h).real


def loop_length(settings: Settings) -> int:
    """The most steps the loops are timed on: `QUICK_LOOP_STEPS` in quick mode, else `LOOP_STEPS`."""
    return QUICK_LOOP_STEPS if settings.quick else LOOP_STEPS


def paths(
    u: Tensor, parameters: tuple[Tensor, Tensor], loop_steps: int = LOOP_STEPS
) -> dict[str, tuple[Callable[[], Tensor], tuple[Tensor, ...]]]:
    """Each timed path: a forward call and the tensors its backward pass reaches.

    The layer paths train the eigenvalues and readout; the "recurrence only" paths time
    `linear_recurrence` alone on fixed `(a_bar, b_bar u)`, the part that the scan replaces. The
    loops run on the first `loop_steps` steps (causal: a prefix is a shorter run).
    """
    with torch.no_grad():
        a, b = discretise(u, parameters[0])
    # Copies, not views, of the prefix: the saved-memory count takes whole storages.
    prefix = tuple(x[:, :loop_steps].clone().requires_grad_() for x in (a, b))
    u_prefix = u[:, :loop_steps].clone()
    a, b = a.requires_grad_(), b.requires_grad_()
    return {
        "scan": (lambda: layer_outputs(u, *parameters, "scan"), parameters),
        "convolution": (lambda: layer_outputs(u, *parameters, "convolution"), parameters),
        "loop": (lambda: layer_outputs(u_prefix, *parameters, "loop"), parameters),
        "scan, recurrence only": (lambda: linear_recurrence(a, b), (a, b)),
        "loop, recurrence only": (lambda: linear_recurrence(*prefix, method="sequential"), prefix),
    }


def _training_step(forward: Callable[[], Tensor], leaves: tuple[Tensor, ...]) -> Callable[[], None]:
    def step() -> None:
        for leaf in leaves:
            leaf.grad = None
        output = forward()
        (torch.view_as_real(output) if output.is_complex() else output).square().mean().backward()

    return step


def measure(
    length: int, parameters: tuple[Tensor, Tensor], settings: Settings, batch: int = BATCH, only: str = ""
) -> list[Measurement]:
    """One row per path (those whose name contains `only`) at length `length`: median seconds
    (timed in turns), error against the loop, saved MiB."""
    loop_steps = loop_length(settings)
    timed = paths(torch.randn(batch, length, WIDTH, device=settings.device), parameters, loop_steps)
    timed = {name: path for name, path in timed.items() if only in name}
    medians = interleaved_medians({name: _training_step(*path) for name, path in timed.items()}, settings)
    with torch.no_grad():
        outputs = {name: forward() for name, (forward, _) in timed.items()}
    case = f"L = {length}" + (f", batch {batch}" if batch != BATCH else "")
    rows = []
    for name, output in outputs.items():
        scale = length / output.shape[1]
        reference = outputs["loop, recurrence only" if "recurrence" in name else "loop"]
        error = (output[:, :loop_steps] - reference).abs().max().item()
        memory = saved_mib(timed[name][0]) * scale
        note = f"timed on {output.shape[1]} steps, scaled" if scale > 1 else ""
        wall = medians[name] * scale
        rows.append(Measurement(case, name, wall, error=error, memory_mib=memory, note=note))
    return rows


def measure_dropped(settings: Settings, length: int = 4096) -> list[Measurement]:
    """The `S4D` layer on half of a regular sampler's `length` points: lattice convolution vs scan."""
    generator = torch.Generator().manual_seed(1)
    keep = torch.rand(BATCH, length, generator=generator) < 0.5
    count = int(keep.sum(dim=1).min())
    times = torch.stack([torch.nonzero(row).squeeze(1)[:count] for row in keep]).float() * STEP
    gaps = torch.cat([times[:, 1:2] - times[:, :1], times.diff(dim=1)], dim=1).to(settings.device)
    layer = S4D(WIDTH, 2 * MODES).to(settings.device)
    u = torch.randn(BATCH, count, WIDTH, device=settings.device)
    modes = {"lattice": "auto", "scan": "recurrent"}
    steps = {
        name: _training_step(lambda mode=mode: layer(u, dt=gaps, mode=mode), tuple(layer.parameters()))
        for name, mode in modes.items()
    }
    medians = interleaved_medians(steps, settings)
    with torch.no_grad():
        outputs = {name: layer(u, dt=gaps, mode=mode) for name, mode in modes.items()}
    case = f"L = {length}, half dropped ({count} observations)"
    return [
        Measurement(
            case,
            f"S4D layer, {name}",
            medians[name],
            error=(outputs[name] - outputs["scan"]).abs().max().item(),
            memory_mib=saved_mib(lambda mode=modes[name]: layer(u, dt=gaps, mode=mode)),
        )
        for name in modes
    ]


def run(settings: Settings) -> BenchmarkResult:
    """Every path at L = 1k .. 16k (1k, 4k in quick mode); targets at 4k; log-log slopes."""
    lengths = [1024, 4096] if settings.quick else [1024, 2048, 4096, 8192, 16384]
    result = BenchmarkResult(
        name="scan",
        title="Diagonal SSM: scan vs loop vs convolution",
        setup=(
            f"One diagonal SSM layer (ZOH, S4D readout), batch {BATCH}, H = {WIDTH}, N/2 = {MODES} complex modes, "
            "complex64, forward + backward of a mean-square loss. scan and loop discretise every step (the "
            "irregular-series path) and run `linear_recurrence`; convolution is the uniform-grid path; the "
            '"recurrence only" rows time `linear_recurrence` alone on fixed inputs. error = largest output '
            "difference from the loop's. saved MiB = memory autograd keeps for the backward pass. "
            f"The loop is timed on at most {loop_length(settings)} steps and scaled "
            "linearly beyond."
        ),
    )
    torch.manual_seed(0)
    frequencies = torch.pi * torch.arange(MODES, dtype=torch.float32)  # S4D-Lin: a_m = -1/2 + i pi m
    eigenvalues = torch.complex(torch.full((WIDTH, MODES), -0.5), frequencies.expand(WIDTH, -1))
    c = torch.randn(WIDTH, MODES, dtype=torch.complex64)
    parameters = tuple(x.to(settings.device).requires_grad_() for x in (eigenvalues, c))
    for length in lengths:
        result.rows += measure(length, parameters, settings)
    case = "L = 4096"
    ratio = result.wall(case, "scan") / result.wall(case, "convolution")
    result.targets.append(Target(f"{case}: scan / convolution, time ratio", ratio, 3.0, at_most=True))
    result.speedup(case, "loop", 10.0, library="scan")
    result.speedup(case, "loop, recurrence only", 10.0, library="scan, recurrence only")
    slopes = []
    for name in paths(torch.zeros(1, 1, WIDTH), parameters):
        timed = [length for length in lengths if not name.startswith("loop") or length <= loop_length(settings)]
        if len(timed) < 2:
            continue
        walls = [result.wall(f"L = {length}", name) for length in timed]
        slopes.append(f"{name} {loglog_slope(timed, walls):.2f}" + (f" (L <= {timed[-1]})" if timed != lengths else ""))
    result.notes.append("log-log slopes of time vs L: " + ", ".join(slopes))
    result.rows += measure(4096, parameters, settings, batch=1, only="recurrence only")
    result.speedup("L = 4096, batch 1", "loop, recurrence only", 10.0, library="scan, recurrence only")
    dropped = measure_dropped(settings)
    result.rows += dropped
    result.notes.append(
        f"{dropped[0].case}: the lattice convolution is "
        f"{dropped[1].wall_s / dropped[0].wall_s:.1f}x faster than the scan"
    )
    return result


if __name__ == "__main__":
    main_for(run, __doc__.splitlines()[0])
