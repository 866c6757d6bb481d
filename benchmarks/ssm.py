"""LSSL convolution vs recurrence: forward + backward time and saved-activation memory against L.

One `LSSL` layer with H = N = 64, M = 1, batch 4, float32, GBT (bilinear) discretization, A and
the steps trained (so the kernel is rebuilt at every call, as in training). For each length L we
time forward plus backward of a mean-square loss and measure the memory autograd keeps for the
backward pass (`harness.saved_mib`).

The recurrence is a Python loop of L steps; above `RECURRENT_STEPS` it is timed on that many
steps (once) and extrapolated linearly (its time and memory are linear in L); such rows say so.
The convolution builds its kernel with about log2 L batched matmuls and applies it by FFT, so
its cost grows like L log L: the fitted log-log slope of its time against L is checked against
that law (1.12 from 1k to 16k; a quadratic method would give 2). Run:
`python -m benchmarks.ssm [--quick]`.
"""

from __future__ import annotations

import math

import torch

from benchmarks.harness import (
    BenchmarkResult,
    Measurement,
    Settings,
    Target,
    loglog_slope,
    median_seconds,
    saved_mib,
)
from benchmarks.report import main_for
from neuralct.models.ssm.lssl import LSSL

WIDTH = STATE = 64
BATCH = 4
RECURRENT_STEPS = 4096


def measure(layer: LSSL, length: int, mode: str, settings: Settings, repeats: int | None = None) -> tuple[float, float]:
    """Median seconds of forward + backward, and MiB saved for backward, at length `length`."""
    u = torch.randn(BATCH, length, WIDTH, device=settings.device)

    def step() -> None:
        layer.zero_grad()
        layer(u, mode=mode).square().mean().backward()

    return median_seconds(step, settings, repeats), saved_mib(lambda: layer(u, mode=mode))


def run(settings: Settings) -> BenchmarkResult:
    """Convolution and recurrence at L = 1k, 4k (and 16k in full mode)."""
    lengths = [1024, 4096] if settings.quick else [1024, 4096, 16384]
    result = BenchmarkResult(
        name="ssm",
        title="LSSL: convolution vs recurrence",
        setup=(
            f"One LSSL layer, H = N = {WIDTH}, batch {BATCH}, float32, bilinear GBT, A and steps trained (kernel "
            "rebuilt at every call); forward + backward of a mean-square loss. saved MiB = memory autograd keeps "
            f"for the backward pass. The recurrence is timed once on at most {RECURRENT_STEPS} steps and scaled "
            "linearly beyond."
        ),
    )
    torch.manual_seed(0)
    layer = LSSL(WIDTH, STATE).to(settings.device)
    recurrent: dict[int, tuple[float, float]] = {}
    conv_times = []
    for length in lengths:
        case = f"L = {length}"
        conv_time, conv_memory = measure(layer, length, "conv", settings)
        conv_times.append(conv_time)
        result.rows.append(Measurement(case, "convolution", conv_time, memory_mib=conv_memory))
        steps = min(length, RECURRENT_STEPS)
        if steps not in recurrent:
            recurrent[steps] = measure(layer, steps, "recurrent", settings, repeats=1)
        recur_time, recur_memory = (value * length / steps for value in recurrent[steps])
        note = f"timed on {steps} steps, scaled" if steps < length else ""
        result.rows.append(Measurement(case, "recurrence", recur_time, memory_mib=recur_memory, note=note))
    result.speedup("L = 4096", "recurrence", 20.0, library="convolution")
    slope = loglog_slope(lengths, conv_times)
    law = loglog_slope(lengths, [n * math.log(n) for n in lengths])
    description = f"convolution time vs L, log-log slope (L log L: {law:.2f})"
    result.targets.append(Target(description, slope, 1.25, at_most=True))
    return result


if __name__ == "__main__":
    main_for(run, __doc__.splitlines()[0])
