"""The stability lab's figures (matplotlib, no display needed); the numbers behind them come from
the computation modules of `neuralct.stability`.

- `plot_stability_regions`: the linear stability regions $|R(z)| \\le 1$ of several solvers in the
  complex plane, optionally with a model's scaled Jacobian eigenvalues $h\\lambda$ on top, marked
  by whether they fall inside every region;
- `plot_lyapunov_trace`: the running estimates of Lyapunov exponents against the measured time
  (mean over trajectories with their spread): a flat tail means the estimate converged;
- `plot_gradient_horizon`: log-norms of backpropagated derivatives against the lag, with the
  fitted rate and the leading Lyapunov exponent;
- `plot_memory_profiles`: impulse-response envelopes and cumulative energy of SSM layers;
- `plot_jacobian_spectra`: Jacobian eigenvalues along trajectories, growth rates and stiffness;
- `plot_robustness`: a trained model's metric under input perturbations of growing strength.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from ..errors import InvalidInputError  # noqa: E402
from .gradients import GradientHorizon  # noqa: E402
from .jacobian import JacobianSpectra  # noqa: E402
from .lyapunov import LyapunovSpectrum  # noqa: E402
from .memory import MemoryProfile  # noqa: E402
from .regions import (  # noqa: E402
    SolverLike,
    StabilityFunction,
    inside_region,
    largest_stable_step,
    region_grid,
    scaled_eigenvalues,
    stability_function,
)

_GRID_POINTS = 401
# Directions (upper-left quadrant, by symmetry) along which the extent of each region is measured.
_ANGLES = np.linspace(math.pi / 2, math.pi, 25)


def plot_stability_regions(
    solvers: SolverLike | Sequence[SolverLike],
    eigenvalues: Any = None,
    dt: float | None = None,
    path: Path | str | None = None,
    ax: Axes | None = None,
    *,
    re: tuple[float, float] | None = None,
    im: tuple[float, float] | None = None,
) -> Figure:
    """Draw the stability region $|R(z)| \\le 1$ of each solver, one colour each, with a legend.

    Args:
        solvers: one method or a sequence of them: solver instances, registered names
            (`"rk4"`), `ButcherTableau`s or `StabilityFunction`s.
        eigenvalues: optional complex Jacobian eigenvalues (any shape, array-like or tensor);
            the points `dt * eigenvalues` are drawn on top, as dots when inside every region and
            as crosses otherwise, and each legend entry counts the points inside its region.
        dt: positive step that scales `eigenvalues`; `None` when they are already scaled ($h\\lambda$).
        path: where to save the figure: a `.png` path, or a `.svg` path (then a PNG is written
            beside it as well). `None` saves nothing.
        ax: axes to draw into; `None` makes a new figure.
        re: `(low, high)` real range shown; `None` fits the regions and the points.
        im: `(low, high)` imaginary range shown; `None` fits the regions and the points.

    Returns:
        The figure drawn into.

    Raises:
        InvalidInputError: no solver, a solver without a stability function, `dt` without
            `eigenvalues` or `dt <= 0`, or a `path` that is neither `.png` nor `.svg`.
    """
    functions = _functions(solvers)
    points = _points(eigenvalues, dt)
    target = _target(path)
    window = _window(functions, points, re, im)
    figure, axes = _axes(ax)
    handles = []
    for index, fn in enumerate(functions):
        colour = f"C{index % 10}"
        _draw_region(axes, fn, window, colour)
        label = fn.name if points is None else f"{fn.name}: {int(inside_region(fn, points).sum())}/{points.size} inside"
        handles.append(Patch(facecolor=colour, edgecolor=colour, alpha=0.35, label=label))
    axes.axhline(0.0, color="0.3", linewidth=0.8)
    axes.axvline(0.0, color="0.3", linewidth=0.8)
    if points is not None:
        handles += _draw_points(axes, functions, points)
    axes.set(xlim=window[0], ylim=window[1], xlabel=r"Re$(h\lambda)$", ylabel=r"Im$(h\lambda)$", aspect="equal")
    axes.set_title(r"stability regions $|R(h\lambda)| \leq 1$")
    axes.legend(handles=handles, loc="upper left", fontsize="small", framealpha=0.9)
    if target is not None:
        _save(figure, target)
    return figure


def _functions(solvers: Any) -> list[StabilityFunction]:
    """The stability function of each solver (a single solver counts as a list of one)."""
    if isinstance(solvers, (str, bytes)) or not isinstance(solvers, Sequence):
        solvers = [solvers]
    if len(solvers) == 0:
        raise InvalidInputError("`solvers` must name at least one solver; got an empty sequence")
    return [stability_function(solver) for solver in solvers]


def _points(eigenvalues: Any, dt: float | None) -> np.ndarray | None:
    """The flat complex points $h\\lambda$ to overlay, or `None`."""
    if eigenvalues is None:
        if dt is not None:
            raise InvalidInputError(f"`dt` ({dt!r}) scales `eigenvalues`, which were not given")
        return None
    return scaled_eigenvalues(eigenvalues, 1.0 if dt is None else dt).ravel()


def _target(path: Path | str | None) -> Path | None:
    if path is None:
        return None
    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg"):
        raise InvalidInputError(f"`path` must end in .png or .svg; got {str(path)!r}")
    return path


def _window(
    functions: list[StabilityFunction],
    points: np.ndarray | None,
    re: tuple[float, float] | None,
    im: tuple[float, float] | None,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Plot ranges `(re, im)`: the given ones, or the bounded regions and the points with a margin."""
    radius = max([_extent(fn) for fn in functions if fn.explicit] + [3.0])
    low_re, high_re, half_im = -1.1 * radius, 0.35 * radius, 1.1 * radius
    if points is not None and points.size:
        low_re = min(low_re, 1.1 * float(points.real.min()))
        high_re = max(high_re, 1.1 * float(points.real.max()))
        half_im = max(half_im, 1.1 * float(np.abs(points.imag).max()))
    return re or (low_re, high_re), im or (-half_im, half_im)


def _extent(fn: StabilityFunction) -> float:
    """Largest distance from 0 at which a ray into the left half plane leaves the (bounded) region."""
    exits = [largest_stable_step(fn, complex(np.exp(1j * angle))) for angle in _ANGLES]
    return max(value for value in exits if math.isfinite(value))


def _axes(ax: Axes | None) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    figure = Figure(figsize=(6.5, 5.5), layout="constrained")
    return figure, figure.add_subplot()


def _draw_region(axes: Axes, fn: StabilityFunction, window: tuple, colour: str) -> None:
    """Fill $|R| \\le 1$ in `colour` (translucent, so overlaps stay visible) and draw its boundary."""
    X, Y, absolute = region_grid(fn, re=window[0], im=window[1], points=_GRID_POINTS)
    absolute = np.nan_to_num(absolute, nan=np.inf, posinf=1e300)
    axes.contourf(X, Y, absolute, levels=[0.0, 1.0], colors=[colour], alpha=0.2)
    axes.contour(X, Y, absolute, levels=[1.0], colors=[colour], linewidths=1.5)


def _draw_points(axes: Axes, functions: list[StabilityFunction], points: np.ndarray) -> list[Any]:
    """Scatter the points: dots inside every region, crosses outside at least one; returns legend handles."""
    inside = np.logical_and.reduce([inside_region(fn, points) for fn in functions])
    handles = []
    if inside.any():
        handles.append(
            axes.scatter(
                points.real[inside],
                points.imag[inside],
                s=22,
                c="black",
                marker="o",
                zorder=3,
                label=r"$h\lambda$ inside every region",
            )
        )
    if not inside.all():
        handles.append(
            axes.scatter(
                points.real[~inside],
                points.imag[~inside],
                s=40,
                c="red",
                marker="x",
                zorder=3,
                label=r"$h\lambda$ outside some region",
            )
        )
    return handles


def plot_lyapunov_trace(spectrum: LyapunovSpectrum, path: Path | str | None = None, ax: Axes | None = None) -> Figure:
    """The convergence of each exponent of `spectrum`: the mean over trajectories of the running
    estimate against the measured time, shaded by one standard deviation over trajectories, with
    the final value in the legend. Saves PNG (and SVG for a `.svg` path) when `path` is given.

    Args:
        spectrum: from `neuralct.stability.lyapunov.lyapunov_spectrum` (trace `[S, B, k]`).
        path: where to write the figure, or `None`.
        ax: axes to draw into (default: a new figure).
    """
    target = _target(path)
    figure, axes = _axes(ax)
    times = spectrum.times.detach().cpu().numpy()
    trace = spectrum.trace.detach().double().cpu().numpy()
    mean, spread = trace.mean(axis=1), trace.std(axis=1)
    for i in range(mean.shape[1]):
        line = axes.plot(times, mean[:, i], label=f"$\\lambda_{{{i + 1}}}$ = {mean[-1, i]:.4g}")[0]
        low, high = mean[:, i] - spread[:, i], mean[:, i] + spread[:, i]
        axes.fill_between(times, low, high, alpha=0.2, color=line.get_color())
    axes.axhline(0.0, color="black", linewidth=0.6)
    axes.set(xlabel="time measured after the burn-in", ylabel="running estimate")
    axes.legend(fontsize=8)
    if target is not None:
        _save(figure, target)
    return figure


def _save(figure: Figure, path: Path) -> None:
    """Write `path` (PNG or SVG); an SVG gets a PNG beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path.with_suffix(".png"), dpi=150)
    if path.suffix.lower() == ".svg":
        figure.savefig(path)


def plot_robustness(curves: Sequence[dict[str, Any]], path: Path | str | None = None) -> Figure:
    """One panel per perturbation kind of `curves`: the metric (accuracy, or MAE for regression)
    against the perturbation's level, drawn from the clean baseline at level 0 (a star), which a
    dashed line carries across every panel. Saves PNG (and SVG for a `.svg` path) when `path` is given.

    Args:
        curves: rows of `neuralct.stability.robustness.robustness_curve`: the baseline row
            (`perturbation` `"none"`) and perturbed rows with `perturbation`, `level` and the metric.
        path: where to write the figure, or `None`.

    Raises:
        InvalidInputError: no baseline row, no perturbed row, or a `path` that is neither `.png` nor `.svg`.
    """
    target = _target(path)
    rows = [row if isinstance(row, dict) else {} for row in curves]
    baseline = next((row for row in rows if row.get("perturbation") == "none"), None)
    kinds = [kind for kind in dict.fromkeys(row.get("perturbation") for row in rows) if kind not in (None, "none")]
    if baseline is None or not kinds or {} in rows:
        raise InvalidInputError(
            "`curves` must hold robustness_curve's rows: the baseline (perturbation 'none') and at least one "
            f"perturbed row; got {len(rows)} row(s) with perturbations {kinds}"
        )
    metric = "accuracy" if baseline.get("accuracy") is not None else "mae"
    clean = baseline[metric]
    figure = Figure(figsize=(3.4 * len(kinds) + 0.6, 3.6), layout="constrained")
    panels = figure.subplots(1, len(kinds), sharey=True, squeeze=False)[0]
    for axes, kind in zip(panels, kinds):
        chosen = sorted((row for row in rows if row.get("perturbation") == kind), key=lambda row: row["level"])
        levels = [0.0] + [row["level"] for row in chosen]
        axes.plot(levels, [clean] + [row[metric] for row in chosen], marker="o", color="C0", label=kind)
        axes.axhline(clean, color="0.4", linestyle="--", linewidth=0.9, label=f"clean: {clean:.4g}")
        axes.plot([0.0], [clean], marker="*", markersize=13, color="C3", linestyle="none", zorder=3)
        axes.set(title=kind.replace("_", " "), xlabel=chosen[0].get("parameter") or "level")
        axes.grid(alpha=0.3)
    panels[0].set_ylabel(metric)
    panels[0].legend(handles=panels[0].get_lines()[1:2], fontsize="small", loc="best")
    figure.suptitle(f"{metric} under test-time perturbations")
    if target is not None:
        _save(figure, target)
    return figure


def plot_gradient_horizon(
    horizon: GradientHorizon,
    path: Path | str | None = None,
    ax: Axes | None = None,
    *,
    lyapunov: float | None = None,
) -> Figure:
    """The log-norm of backpropagated derivatives against the lag (each trajectory faint, their
    mean bold) with the fitted line $e^{r \\ell \\Delta t}$, and, when given, the slope of the
    leading Lyapunov exponent for comparison. Saves PNG (and SVG) when `path` is given.

    Args:
        horizon: from `neuralct.stability.gradients.gradient_horizon`.
        path: where to write the figure, or `None`.
        ax: axes to draw into (default: a new figure).
        lyapunov: the leading Lyapunov exponent per unit time, drawn as a dashed slope.
    """
    target = _target(path)
    figure, axes = _axes(ax)
    lags = horizon.lags.numpy() * horizon.dt
    logs = horizon.log_norms.detach().double().cpu().numpy()
    axes.plot(lags, logs.T, color="0.7", linewidth=0.5)
    mean = logs.mean(axis=0)
    axes.plot(lags, mean, color="C0", linewidth=2, label="mean over trajectories")
    rate = horizon.mean_rate()
    intercept = mean.mean() - rate * lags.mean()
    axes.plot(lags, intercept + rate * lags, color="C1", linestyle="--", label=f"fit: rate {rate:.3g}")
    if lyapunov is not None:
        axes.plot(
            lags, intercept + lyapunov * lags, color="C3", linestyle=":", label=f"$\\lambda_{{max}}$ = {lyapunov:.3g}"
        )
    axes.set(xlabel="lag (time)", ylabel="log norm of the backpropagated derivative")
    axes.legend(fontsize=8)
    if target is not None:
        _save(figure, target)
    return figure


def plot_memory_profiles(
    profiles: dict[str, MemoryProfile], path: Path | str | None = None, *, fraction: float = 0.99
) -> Figure:
    """Impulse-response envelopes (mean over channels, normalised, log scale) and cumulative
    energy of several layers side by side, with each layer's `fraction`-memory length in the
    legend. Saves PNG (and SVG) when `path` is given.

    Args:
        profiles: label -> profile (e.g. `{"LegT": memory_profile(legt, 1000), ...}`).
        path: where to write the figure, or `None`.
        fraction: the energy fraction that defines the memory length shown.
    """
    if not profiles:
        raise InvalidInputError("`profiles` must name at least one memory profile")
    target = _target(path)
    figure = Figure(figsize=(10, 3.8))
    envelope_axes, energy_axes = figure.subplots(1, 2)
    for label, profile in profiles.items():
        envelope = profile.envelope().mean(dim=0)
        envelope = (envelope / envelope.max().clamp_min(1e-300)).numpy()
        length = float(profile.memory_length(fraction).double().median())
        envelope_axes.plot(envelope, label=f"{label}: {fraction:.0%} within {length:.0f} lags")
        energy_axes.plot(profile.energy().mean(dim=0).numpy(), label=label)
    envelope_axes.set(xlabel="lag", ylabel="|kernel| envelope (normalised)", yscale="log")
    energy_axes.set(xlabel="lag", ylabel="cumulative energy", ylim=(0, 1.02))
    envelope_axes.legend(fontsize=8)
    energy_axes.legend(fontsize=8)
    figure.tight_layout()
    if target is not None:
        _save(figure, target)
    return figure


def plot_jacobian_spectra(spectra: JacobianSpectra, path: Path | str | None = None) -> Figure:
    """Along the trajectories: the eigenvalues in the complex plane (coloured by time), and over
    time the largest real part of the eigenvalues and of the symmetric part (the logarithmic
    norm) with the stiffness ratio, medians over samples. Saves PNG (and SVG) when `path` is given.
    """
    target = _target(path)
    figure = Figure(figsize=(11, 3.8))
    plane, rates, stiffness = figure.subplots(1, 3)
    values = spectra.eigenvalues.detach().cpu()
    times = spectra.times.detach().cpu().double()
    colours = times[..., None].expand(values.shape).numpy().ravel()
    scatter = plane.scatter(values.real.numpy().ravel(), values.imag.numpy().ravel(), c=colours, s=4, cmap="viridis")
    figure.colorbar(scatter, ax=plane, label="time")
    plane.axvline(0.0, color="0.3", linewidth=0.8)
    plane.set(xlabel=r"Re $\lambda$", ylabel=r"Im $\lambda$", title="Jacobian eigenvalues")
    axis_times = times.median(dim=0).values.numpy()
    rates.plot(axis_times, spectra.max_real().median(dim=0).values.numpy(), label=r"max Re $\lambda$")
    rates.plot(axis_times, spectra.symmetric[..., 0].median(dim=0).values.numpy(), label="max eig. of symmetric part")
    rates.axhline(0.0, color="0.3", linewidth=0.8)
    rates.set(xlabel="time", ylabel="rate (median over samples)")
    rates.legend(fontsize=8)
    stiffness.plot(axis_times, spectra.stiffness.nanmedian(dim=0).values.numpy())
    stiffness.set(xlabel="time", ylabel="stiffness ratio (median)", yscale="log")
    figure.tight_layout()
    if target is not None:
        _save(figure, target)
    return figure


__all__ = [
    "plot_gradient_horizon",
    "plot_jacobian_spectra",
    "plot_lyapunov_trace",
    "plot_memory_profiles",
    "plot_robustness",
    "plot_stability_regions",
]
