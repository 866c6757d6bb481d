"""Work-precision sweeps: wall time against error over tolerances, and the equal-error targets.

A library is faster "at equal error" when its wall time, read off its work-precision curve at
another library's error (`harness.wall_at_error`, log-log between the two Pareto points that
bracket it, no extrapolation), is smaller. `sweep` times every library at every tolerance (the
libraries of one tolerance in turns, `interleaved_medians`) and records the rows;
`equal_error_targets` adds, per peer, the target "peer wall / ours at equal error >= 1 at our
worst point".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from benchmarks.harness import (
    BenchmarkResult,
    Measurement,
    Settings,
    Target,
    interleaved_medians,
    slowest_ratio_at_equal_error,
    wall_at_error,
)

# A library's solve at one tolerance: `tol -> forward`, `forward() -> Tensor` compared with the reference.
Forward = Callable[[], Tensor]
Curves = dict[str, list[tuple[float, float]]]


def no_grad_call(forward: Forward) -> Callable[[], object]:
    """The timed call of a forward solve: the forward alone, without gradients."""
    return torch.no_grad()(forward)


def sweep(
    result: BenchmarkResult,
    settings: Settings,
    label: str,
    forwards: dict[str, Callable[[float], Forward]],
    tolerances: Sequence[float],
    reference: Tensor,
    timed: Callable[[Forward], Callable[[], object]] = no_grad_call,
    evals: Callable[[Forward], int | None] = lambda forward: None,
) -> Curves:
    """Every library of `forwards` at every tolerance: the error (largest absolute deviation of
    the forward's output from `reference`, in float64), the median wall of `timed(forward)`
    (the forward under `no_grad` unless told, e.g. a training step) and `evals(forward)`. One
    row per (tolerance, library), case `"<label>, tol <tol>"`; returns library -> [(error, wall)]."""
    curves: Curves = {library: [] for library in forwards}
    for tol in tolerances:
        solves = {library: make(tol) for library, make in forwards.items()}
        walls = interleaved_medians({library: timed(forward) for library, forward in solves.items()}, settings)
        for library, forward in solves.items():
            with torch.no_grad():
                error = float((forward().double() - reference).abs().max())
            result.rows.append(Measurement(f"{label}, tol {tol:g}", library, walls[library], evals(forward), error))
            curves[library].append((error, walls[library]))
    return curves


def equal_error_targets(
    result: BenchmarkResult, label: str, curves: Curves, ours: str = "neuralct", required: float = 1.0
) -> None:
    """Per peer in `curves`, the target: the peer's wall at equal error over `ours`' wall, at the
    worst of `ours`' points inside the peer's range of errors, at least `required` ("n/a", and so
    missed, when no point of ours lies inside it); the description counts the points compared."""
    for peer, points in curves.items():
        if peer == ours:
            continue
        ratio = slowest_ratio_at_equal_error(curves[ours], points)
        compared = sum(wall_at_error(points, error) is not None for error, _ in curves[ours])
        points_compared = f"{compared} point" + ("" if compared == 1 else "s")
        description = f"{label}: {peer} / {ours} wall at equal error, worst of {points_compared}"
        result.targets.append(Target(description, ratio, required))
