"""The stability lab's figures (matplotlib, no display needed); the numbers behind them come from
the computation modules of `neuralct.stability`.

- `plot_stability_regions` (from `plot_regions`): the linear stability regions $|R(z)| \\le 1$ of
  several solvers in the complex plane, optionally with a model's scaled Jacobian eigenvalues
  $h\\lambda$ on top, marked by whether they fall inside every region;
- `plot_lyapunov_trace`: the running estimates of Lyapunov exponents against the measured time
  (mean over trajectories with their spread): a flat tail means the estimate converged;
- `plot_gradient_horizon`: log-norms of backpropagated derivatives against the lag, with the
  fitted rate and the leading Lyapunov exponent;
- `plot_memory_profiles`: impulse-response envelopes and cumulative energy of SSM layers;
- `plot_jacobian_spectra`: Jacobian eigenvalues along trajectories, growth rates and stiffness
  (`stiffness_statistics` gives the numbers its title and the stability report quote);
- `plot_robustness`: a trained model's metric under input perturbations of growing strength.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..errors import InvalidInputError
from ..train.plots import readable_log_axis
from ._figures import new_axes, save, target
from .gradients import GradientHorizon
from .jacobian import JacobianSpectra
from .lyapunov import LyapunovSpectrum
from .memory import MemoryProfile
from .plot_regions import plot_stability_regions


def plot_lyapunov_trace(spectrum: LyapunovSpectrum, path: Path | str | None = None, ax: Axes | None = None) -> Figure:
    """The convergence of each exponent of `spectrum`: the mean over trajectories of the running
    estimate against the measured time, shaded by one standard deviation over trajectories, with
    the final value in the legend. Saves PNG (and SVG for a `.svg` path) when `path` is given.

    Args:
        spectrum: from `neuralct.stability.lyapunov.lyapunov_spectrum` (trace `[S, B, k]`).
        path: where to write the figure, or `None`.
        ax: axes to draw into (default: a new figure).
    """
    destination = target(path)
    figure, axes = new_axes(ax)
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
    if destination is not None:
        save(figure, destination)
    return figure


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
    destination = target(path)
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
    if destination is not None:
        save(figure, destination)
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
    destination = target(path)
    figure, axes = new_axes(ax)
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
    if destination is not None:
        save(figure, destination)
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
    destination = target(path)
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
    if destination is not None:
        save(figure, destination)
    return figure


def stiffness_statistics(stiffness: np.ndarray) -> dict[str, float]:
    """What the report and the figure quote of stiffness ratios `[B, K]` (NaN where undefined):
    `points` (how many are defined), and over them `median`, `p90` (90th percentile) and `max`."""
    finite = stiffness[np.isfinite(stiffness)]
    if not finite.size:
        return {"points": 0}
    median, high = np.percentile(finite, [50, 90])
    return {"points": int(finite.size), "median": float(median), "p90": float(high), "max": float(finite.max())}


def plot_jacobian_spectra(spectra: JacobianSpectra, path: Path | str | None = None) -> Figure:
    """Along the trajectories: the eigenvalues in the complex plane (coloured by time); over time
    the largest real part of the eigenvalues and of the symmetric part (the logarithmic norm),
    medians over samples; and the stiffness ratio over time (median and 90th percentile over
    samples), titled with the `stiffness_statistics` over every point. Saves PNG (and SVG) when
    `path` is given.
    """
    destination = target(path)
    figure = Figure(figsize=(12, 4.2), layout="constrained")
    plane, rates, stiffness = figure.subplots(1, 3)
    values = spectra.eigenvalues.detach().cpu()
    times = spectra.times.detach().cpu().double()
    colours = times[..., None].expand(values.shape).numpy().ravel()
    scatter = plane.scatter(values.real.numpy().ravel(), values.imag.numpy().ravel(), c=colours, s=6, cmap="viridis")
    figure.colorbar(scatter, ax=plane, label="time")
    plane.axvline(0.0, color="0.3", linewidth=0.8)
    plane.set(xlabel=r"Re $\lambda$", ylabel=r"Im $\lambda$", title="Jacobian eigenvalues")
    axis_times = times.median(dim=0).values.numpy()
    rates.plot(axis_times, spectra.max_real().median(dim=0).values.numpy(), label=r"max Re $\lambda$")
    rates.plot(axis_times, spectra.symmetric[..., 0].median(dim=0).values.numpy(), label="max eig. of symmetric part")
    rates.axhline(0.0, color="0.3", linewidth=0.8)
    rates.set(xlabel="time (median over samples)", ylabel="rate (median over samples)", title="growth rates")
    rates.legend(fontsize=8)
    _plot_stiffness(stiffness, axis_times, spectra.stiffness.detach().double().cpu().numpy())
    if destination is not None:
        save(figure, destination)
    return figure


def _plot_stiffness(axes: Axes, axis_times: np.ndarray, ratio: np.ndarray) -> None:
    """Median and 90th percentile over samples at each save index, and the pooled statistics."""
    overall = stiffness_statistics(ratio)
    axes.set(xlabel="time (median over samples)", ylabel="stiffness ratio")
    if not overall["points"]:
        axes.set_title("stiffness ratio: no decaying eigenvalue")
        return
    columns = [column[np.isfinite(column)] for column in ratio.T]
    quantiles = np.array([np.percentile(c, [50, 90]) if c.size else [np.nan, np.nan] for c in columns])
    axes.plot(axis_times, quantiles[:, 0], marker=".", label="median over samples")
    axes.plot(axis_times, quantiles[:, 1], marker=".", linestyle="--", label="90th percentile over samples")
    axes.axhline(overall["median"], color="0.3", linestyle=":", label=f"median over all points {overall['median']:.3g}")
    axes.set_yscale("log")
    readable_log_axis(axes)
    axes.set_title(
        f"stiffness ratio over {overall['points']} points:\nmedian {overall['median']:.3g}, "
        f"90th percentile {overall['p90']:.3g}, max {overall['max']:.3g}",
        fontsize="medium",
    )
    axes.legend(fontsize=8)


__all__ = [
    "stiffness_statistics",
    "plot_gradient_horizon",
    "plot_jacobian_spectra",
    "plot_lyapunov_trace",
    "plot_memory_profiles",
    "plot_robustness",
    "plot_stability_regions",
]
