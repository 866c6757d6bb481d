"""The figure of the solvers' linear stability regions, with a model's $h\\lambda$ on top
(re-exported by `neuralct.stability.plots`).

Each method has its own colour and line style. A bounded region (an explicit method) is filled;
an unbounded one (an A-stable method, stable almost everywhere) would cover the others, so its
*unstable* set is hatched instead. Eigenvalues that crowd near the origin at the scale of the
regions get a second panel zoomed on them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from ..errors import InvalidInputError
from ._figures import new_axes, save, target
from .regions import (
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
_LINESTYLES = ("solid", "dashed", "dashdot", "dotted")
# Points spread over less than this fraction of the view get a zoomed panel of their own.
_ZOOM_BELOW = 0.25


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
    """Draw the stability region $|R(z)| \\le 1$ of each solver, one colour and line style each, with a legend.

    Args:
        solvers: one method or a sequence of them: solver instances, registered names
            (`"rk4"`), `ButcherTableau`s or `StabilityFunction`s.
        eigenvalues: optional complex Jacobian eigenvalues (any shape, array-like or tensor);
            the points `dt * eigenvalues` are drawn on top, as dots when inside every region and
            as crosses otherwise, and each legend entry counts the points inside its region.
            Points crowded near the origin are shown again in a zoomed second panel (only when
            the figure is new, not drawn into `ax`).
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
    destination = target(path)
    window = _window(functions, points, re, im)
    zoom = _zoom_window(points, window) if ax is None else None
    if zoom is None:
        figure, axes = new_axes(ax, (6.5, 6.4))
        panels = [axes]
    else:
        figure = Figure(figsize=(11.5, 6.4), layout="constrained")
        panels = list(figure.subplots(1, 2))
        axes = panels[0]
    for panel, view in zip(panels, (window, zoom)):
        handles = _draw(panel, functions, points, view)
    if zoom is not None:
        panels[1].set_title(r"zoomed on the $h\lambda$ (dotted box on the left)")
        (low_re, high_re), (low_im, high_im) = zoom
        axes.add_patch(Rectangle((low_re, low_im), high_re - low_re, high_im - low_im, fill=False, linestyle=":"))
    axes.set_title(r"stability regions $|R(h\lambda)| \leq 1$")
    axes.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize="small", ncols=2)
    if destination is not None:
        save(figure, destination)
    return figure


def _draw(axes: Axes, functions: list[StabilityFunction], points: np.ndarray | None, window: tuple) -> list[Any]:
    """Regions, axes lines and points of one panel over `window`; returns the legend handles."""
    handles = []
    for index, fn in enumerate(functions):
        style = {"colour": f"C{index % 10}", "linestyle": _LINESTYLES[index % len(_LINESTYLES)]}
        handles.append(_draw_region(axes, fn, window, points, **style))
    axes.axhline(0.0, color="0.3", linewidth=0.8)
    axes.axvline(0.0, color="0.3", linewidth=0.8)
    if points is not None:
        handles += _draw_points(axes, functions, points)
    axes.set(xlim=window[0], ylim=window[1], xlabel=r"Re$(h\lambda)$", ylabel=r"Im$(h\lambda)$", aspect="equal")
    return handles


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


def _zoom_window(points: np.ndarray | None, window: tuple) -> tuple | None:
    """A square view around the origin and the points when they span under `_ZOOM_BELOW` of `window`."""
    if points is None or not points.size:
        return None
    half = 1.25 * max(float(np.abs(points).max()), 1e-12)
    if half >= _ZOOM_BELOW * min(window[0][1] - window[0][0], window[1][1] - window[1][0]):
        return None
    return (-half, half), (-half, half)


def _extent(fn: StabilityFunction) -> float:
    """Largest distance from 0 at which a ray into the left half plane leaves the (bounded) region."""
    exits = [largest_stable_step(fn, complex(np.exp(1j * angle))) for angle in _ANGLES]
    return max(value for value in exits if math.isfinite(value))


def _draw_region(
    axes: Axes, fn: StabilityFunction, window: tuple, points: np.ndarray | None, colour: str, linestyle: str
) -> Patch:
    """Fill a bounded region (translucent, so overlaps stay visible), hatch the unstable set of an
    unbounded one, draw the boundary; returns the legend entry, which counts the points inside."""
    X, Y, absolute = region_grid(fn, re=window[0], im=window[1], points=_GRID_POINTS)
    absolute = np.nan_to_num(absolute, nan=np.inf, posinf=1e300)
    if fn.explicit:
        axes.contourf(X, Y, absolute, levels=[0.0, 1.0], colors=[colour], alpha=0.18)
        patch = {"facecolor": colour, "alpha": 0.35, "label": fn.name}
    else:
        fill = axes.contourf(X, Y, absolute, levels=[1.0, np.inf], colors="none", hatches=["//"])
        fill.set_edgecolor(colour)
        fill.set_linewidth(0.0)
        patch = {"facecolor": "none", "hatch": "//", "label": f"{fn.name} (unstable where hatched)"}
    axes.contour(X, Y, absolute, levels=[1.0], colors=[colour], linewidths=1.6, linestyles=[linestyle])
    if points is not None:
        patch["label"] += f": {int(inside_region(fn, points).sum())}/{points.size} inside"
    return Patch(edgecolor=colour, linestyle=linestyle, linewidth=1.6, **patch)


def _draw_points(axes: Axes, functions: list[StabilityFunction], points: np.ndarray) -> list[Any]:
    """Scatter the points: dots inside every region, crosses outside at least one; returns legend handles."""
    inside = np.logical_and.reduce([inside_region(fn, points) for fn in functions])
    handles = []
    for chosen, marker, colour, label in (
        (inside, "o", "black", r"$h\lambda$ inside every region"),
        (~inside, "X", "red", r"$h\lambda$ outside some region"),
    ):
        if chosen.any():
            handles.append(
                axes.scatter(
                    points.real[chosen],
                    points.imag[chosen],
                    s=30,
                    c=colour,
                    marker=marker,
                    edgecolors="white",
                    linewidths=0.6,
                    zorder=3,
                    label=label,
                )
            )
    return handles


__all__ = ["plot_stability_regions"]
