"""Linear stability regions of the ODE solvers: where a step of size $h$ keeps $y' = \\lambda y$ bounded.

One step of a Runge-Kutta method on the test equation $y' = \\lambda y$ multiplies the state
by its stability function, $y_1 = R(h\\lambda)\\,y_0$, with

$$R(z) = 1 + z\\,b^\\top (I - zA)^{-1}\\mathbf{1}$$

for the Butcher tableau $(A, b, c)$ (Hairer & Wanner, "Solving Ordinary Differential Equations
II", 2nd ed., 1996, section IV.2). For an explicit method $A$ is strictly lower triangular, so the
Neumann series stops and $R$ is the polynomial $1 + \\sum_{k=1}^{s} (b^\\top A^{k-1}\\mathbf{1})\\,z^k$;
implicit Euler has $R(z) = 1 / (1 - z)$. The stability region is $\\{z : |R(z)| \\le 1\\}$. Near an
equilibrium a model's vector field behaves like its Jacobian, so a step $h$ is stable when every
$h\\lambda$, $\\lambda$ an eigenvalue of the Jacobian, lies in the region: `largest_stable_step`
answers "this explicit solver blew up on a stiff model; which step (or solver) would not".

```python
import neuralct as nct
from neuralct.stability.regions import largest_stable_step, real_interval
real_interval("rk4")                              # (-2.785293563..., 0.0)
largest_stable_step(nct.RK4(), [-10.0, -1 + 3j])   # 0.2785...: the stiff eigenvalue decides
largest_stable_step(nct.ImplicitEuler(), [-1e6])   # inf (A-stable)
```

Solvers are given as a solver instance (`nct.RK4()`), a registered solver name (`"rk4"`), a
`ButcherTableau` or a `StabilityFunction`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.polynomial import polynomial as npoly

from .. import registry
from .._checks import check_int, describe
from ..errors import InvalidInputError
from ..solvers.rk import AbstractExplicitRK, ButcherTableau, ImplicitEuler

# Rays are scanned on this many points between 0 and past the last boundary crossing, on top of
# the crossings found as polynomial roots (the grid catches a root the eigenvalue solver missed).
_RAY_POINTS = 4096
# Points within this distance of |R| = 1 count as inside, so that h = largest_stable_step(...) is stable.
_INSIDE_TOL = 1e-10


@dataclass(frozen=True)
class StabilityFunction:
    """The rational stability function $R(z) = P(z) / Q(z)$ of a one-step method.

    Calling it evaluates $R$ elementwise: complex array-like of any shape in, complex128
    `np.ndarray` of the same shape out (`inf` at poles).

    Args:
        numerator: coefficients of $P$ in increasing powers, $P(0) = 1$.
        denominator: coefficients of $Q$ in increasing powers, $Q(0) = 1$ (`(1.0,)` for
            explicit methods, whose $R$ is the polynomial $P$).
        name: the method's name, for figures and messages.
    """

    numerator: tuple[float, ...]
    denominator: tuple[float, ...] = (1.0,)
    name: str = "method"

    def __post_init__(self) -> None:
        for field_name in ("numerator", "denominator"):
            coeffs = getattr(self, field_name)
            if len(coeffs) == 0 or coeffs[0] != 1.0 or not all(math.isfinite(c) for c in coeffs):
                raise InvalidInputError(
                    f"`{field_name}` must be finite polynomial coefficients starting with 1.0; got {coeffs!r}"
                )

    @property
    def explicit(self) -> bool:
        """Whether $R$ is a polynomial (bounded region, as for every explicit Runge-Kutta method)."""
        return len(self.denominator) == 1

    def __call__(self, z: Any) -> np.ndarray:
        """$R(z)$ for complex `z` of any shape (array-like or tensor); returns complex128 of that shape."""
        z = _complex_array(z, "z")
        with np.errstate(divide="ignore", invalid="ignore"):
            return npoly.polyval(z, self.numerator) / npoly.polyval(z, self.denominator)


# What the functions of this module accept as a solver.
SolverLike = str | ButcherTableau | AbstractExplicitRK | ImplicitEuler | StabilityFunction


def stability_function(solver: SolverLike) -> StabilityFunction:
    """The stability function $R$ of a solver, from its Butcher tableau or its known formula.

    Args:
        solver: a solver instance (an explicit Runge-Kutta method or `ImplicitEuler`), a
            registered solver name such as `"rk4"`, a `ButcherTableau`, or a `StabilityFunction`
            (returned as is).

    Returns:
        The `StabilityFunction`; call it on complex `z` of any shape.

    Raises:
        InvalidInputError: an unknown solver name, or a solver without a known stability
            function (SDE, delay, linear-term and peer-backend solvers); the message lists the
            solvers that have one.
    """
    if isinstance(solver, StabilityFunction):
        return solver
    if isinstance(solver, str):
        solver = _solver_from_name(solver)
    if isinstance(solver, ButcherTableau):
        return StabilityFunction(_tableau_polynomial(solver), name=f"tableau with {solver.stages} stages")
    if isinstance(solver, AbstractExplicitRK):
        return StabilityFunction(_tableau_polynomial(solver.tableau), name=type(solver).__name__)
    if isinstance(solver, ImplicitEuler):
        return StabilityFunction((1.0,), (1.0, -1.0), name="ImplicitEuler")
    raise InvalidInputError(
        f"`solver` must be a solver with a known stability function, a ButcherTableau or a solver name; got "
        f"{describe(solver)}. Solvers with one: {', '.join(supported_solvers())}"
    )


@functools.cache
def supported_solvers() -> tuple[str, ...]:
    """Registered solver names that have a stability function (explicit Runge-Kutta methods, implicit Euler)."""
    supported = []
    for name in registry.names("solver"):
        if ":" in name:
            continue  # peer-library backends: no tableau to read
        try:
            solver = registry.solver(name)
        except (TypeError, InvalidInputError):
            continue  # needs options, e.g. the inner solver of a delay method
        if isinstance(solver, (AbstractExplicitRK, ImplicitEuler)):
            supported.append(name)
    return tuple(supported)


def real_interval(solver: SolverLike) -> tuple[float, float]:
    """The real stability interval $[x_{min}, 0]$: the connected interval of $x \\le 0$ around 0 with $|R(x)| \\le 1$.

    Args:
        solver: see `stability_function`.

    Returns:
        `(x_min, 0.0)`, with `x_min` to about 1e-12 relative, or `(-inf, 0.0)` when the whole
        negative real axis is stable (implicit Euler).
    """
    return -_exit_time(stability_function(solver), -1.0 + 0.0j), 0.0


def region_grid(
    solver: SolverLike,
    re: tuple[float, float] = (-5.0, 1.0),
    im: tuple[float, float] = (-4.0, 4.0),
    points: int = 401,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """$|R(z)|$ on a grid of the complex plane, for contour plots of the boundary $|R(z)| = 1$.

    Args:
        solver: see `stability_function`.
        re: `(low, high)` range of the real part.
        im: `(low, high)` range of the imaginary part.
        points: grid points along each axis (at least 2).

    Returns:
        `(X, Y, absR)`, each float64 `[points, points]`: real parts varying along dim 1,
        imaginary parts along dim 0 (`np.meshgrid` order), and $|R(X + iY)|$.
    """
    fn = stability_function(solver)
    points = check_int("points", int(points) if isinstance(points, np.integer) else points, 2)
    xs = np.linspace(*_range(re, "re"), points)
    ys = np.linspace(*_range(im, "im"), int(points))
    X, Y = np.meshgrid(xs, ys)
    return X, Y, np.abs(fn(X + 1j * Y))


def scaled_eigenvalues(jacobian_eigenvalues: Any, dt: Any) -> np.ndarray:
    """The points $h\\lambda$ that a step of size $h$ puts in the complex plane.

    Args:
        jacobian_eigenvalues: `[..., D]` complex eigenvalues (array-like or tensor).
        dt: a positive step, or positive steps of shape `[...]` (one per row of eigenvalues,
            e.g. per sample).

    Returns:
        complex128 `[..., D]` array `dt * eigenvalues`.
    """
    eigenvalues = _complex_array(jacobian_eigenvalues, "jacobian_eigenvalues")
    steps = _positive_steps(dt)
    if steps.ndim == 0:
        return steps * eigenvalues
    if eigenvalues.ndim == 0 or steps.shape != eigenvalues.shape[:-1]:
        raise InvalidInputError(
            f"`dt` must be a scalar or have the leading shape {eigenvalues.shape[:-1]} of the eigenvalues "
            f"{eigenvalues.shape}; got shape {steps.shape}"
        )
    return steps[..., None] * eigenvalues


def inside_region(solver: SolverLike, z: Any) -> np.ndarray:
    """Whether each point lies in the stability region, $|R(z)| \\le 1$ (within 1e-10).

    Args:
        solver: see `stability_function`.
        z: complex points of any shape (array-like or tensor), typically `scaled_eigenvalues(...)`.

    Returns:
        bool array of the shape of `z`.
    """
    return np.abs(stability_function(solver)(z)) <= 1.0 + _INSIDE_TOL


def largest_stable_step(solver: SolverLike, eigenvalues: Any) -> float:
    """The largest $h > 0$ such that $h\\lambda$ stays in the stability region for every eigenvalue.

    Along each ray $h\\lambda$, $h > 0$, the first crossing of $|R| = 1$ is located (as a root of
    the polynomial $|P(h\\lambda)|^2 - |Q(h\\lambda)|^2$, checked on a grid and refined by Brent's
    method); the answer is the smallest crossing over the eigenvalues. Every step below it is
    stable too, the region being entered at $h = 0$ and left at the crossing.

    Only eigenvalues with $\\mathrm{Re}\\,\\lambda \\le 0$ and $\\lambda \\neq 0$ constrain the step:
    modes with positive real part grow in the exact solution too.

    Args:
        solver: see `stability_function`.
        eigenvalues: complex eigenvalues of any shape (array-like or tensor), at least one.

    Returns:
        The step, `inf` when no ray leaves the region (an A-stable method on a stable system),
        or `0.0` when some ray starts outside it (Euler on a purely imaginary eigenvalue).
    """
    fn = stability_function(solver)
    values = _complex_array(eigenvalues, "eigenvalues").ravel()
    if values.size == 0:
        raise InvalidInputError("`eigenvalues` must hold at least one eigenvalue; got an empty array")
    constraining = values[(values.real <= 0) & (values != 0)]
    # Rays depend only on the direction; the distinct directions (to 1e-12) are scanned once each.
    moduli = np.abs(constraining)
    directions = np.round(constraining / moduli, 12) if constraining.size else constraining
    unique, index = np.unique(directions, return_inverse=True)
    exits = np.array([_exit_time(fn, d / abs(d)) for d in unique])
    steps = exits[index.ravel()] / moduli if constraining.size else np.array([math.inf])
    return float(np.min(steps))


def _exit_time(fn: StabilityFunction, direction: complex) -> float:
    """First $t > 0$ at which the ray $t u$ (`direction` u, $|u| = 1$) leaves the region $|R| \\le 1$.

    `0.0` if the ray starts outside the region, `inf` if it never leaves.
    """
    coeffs = _boundary_polynomial(fn, direction)
    if coeffs.size == 1:
        return math.inf  # |P|^2 == |Q|^2 along the whole ray (never for a consistent method)
    # t = 0 is always a root (R(0) = 1); dividing out its multiplicity keeps the other roots accurate.
    roots = npoly.polyroots(coeffs[np.flatnonzero(coeffs)[0] :]) if np.count_nonzero(coeffs) > 1 else np.zeros(0)
    roots = roots.real[(roots.real > 0) & (np.abs(roots.imag) <= 1e-3 * (1 + np.abs(roots.real)))]
    last = float(roots.max()) if roots.size else 1.0
    # Between consecutive candidates the sign of the boundary polynomial is constant.
    knots = np.unique(np.concatenate([[0.0], roots, np.linspace(0.0, 1.25 * last, _RAY_POINTS + 1)[1:]]))
    tests = np.append((knots[:-1] + knots[1:]) / 2, 2.0 * knots[-1])
    outside = npoly.polyval(tests, coeffs) > 0
    if not outside.any():
        return math.inf
    first = int(np.argmax(outside))
    if first == 0:
        return 0.0
    return _bisect(coeffs, float(tests[first - 1]), float(tests[first]))


def _bisect(coeffs: np.ndarray, inside: float, outside: float) -> float:
    """The sign change of the polynomial `coeffs` between `inside` (<= 0) and `outside` (> 0),
    to the last bit (bisection: no SciPy at run time)."""
    while True:
        middle = 0.5 * (inside + outside)
        if middle in (inside, outside):
            return outside if abs(npoly.polyval(outside, coeffs)) < abs(npoly.polyval(inside, coeffs)) else inside
        if npoly.polyval(middle, coeffs) > 0:
            outside = middle
        else:
            inside = middle


def _boundary_polynomial(fn: StabilityFunction, direction: complex) -> np.ndarray:
    """Real coefficients (increasing powers of t) of $|P(tu)|^2 - |Q(tu)|^2$, positive outside the region.

    Coefficients below their rounding error are set to zero: for a high-order method on the
    imaginary axis the low-order ones vanish exactly, and their rounding noise would otherwise
    decide on which side of the boundary the ray starts.
    """
    parts, bounds = [], []
    for coeffs in (fn.numerator, fn.denominator):
        along = np.asarray(coeffs, dtype=np.complex128) * direction ** np.arange(len(coeffs))
        parts.append(np.convolve(along, along.conj()).real)
        bounds.append(np.convolve(np.abs(along), np.abs(along)))
    size = max(len(p) for p in parts)
    padded = [np.pad(p, (0, size - len(p))) for p in parts + bounds]
    difference, scale = padded[0] - padded[1], padded[2] + padded[3]
    noise = 32 * np.finfo(np.float64).eps * (np.arange(size) + 1) * scale
    difference[np.abs(difference) <= noise] = 0.0
    return npoly.polytrim(difference, tol=0) if difference.any() else np.zeros(1)


def _tableau_polynomial(tableau: ButcherTableau) -> tuple[float, ...]:
    """Coefficients of an explicit method's $R$ in increasing powers: $1$, then $b^\\top A^{k-1}\\mathbf{1}$, k = 1..s.

    Trailing exact zeros are dropped (first-same-as-last methods have a zero last weight).
    """
    stages = tableau.stages
    matrix = np.zeros((stages, stages))
    for i, row in enumerate(tableau.a):
        matrix[i, : len(row)] = row
    b = np.asarray(tableau.b, dtype=np.float64)
    coeffs, power = [1.0], np.ones(stages)
    for _ in range(stages):
        coeffs.append(float(b @ power))
        power = matrix @ power
    return tuple(npoly.polytrim(np.asarray(coeffs), tol=0).tolist())


def _solver_from_name(name: str) -> Any:
    if ":" in name:
        raise InvalidInputError(
            f"`solver` {name!r} is a peer-library backend without a Butcher tableau; solvers with a stability "
            f"function: {', '.join(supported_solvers())}"
        )
    return registry.solver(name)


def _complex_array(values: Any, name: str) -> np.ndarray:
    """`values` (array-like or tensor) as a finite complex128 array."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    try:
        array = np.asarray(values, dtype=np.complex128)
    except (TypeError, ValueError) as error:
        raise InvalidInputError(f"`{name}` must be complex numbers (array-like or tensor); got {values!r}") from error
    if not np.isfinite(array).all():
        raise InvalidInputError(f"`{name}` must be finite; got {int((~np.isfinite(array)).sum())} non-finite values")
    return array


def _positive_steps(dt: Any) -> np.ndarray:
    """`dt` as a float64 array of positive finite steps."""
    if isinstance(dt, torch.Tensor):
        dt = dt.detach().cpu().numpy()
    try:
        steps = np.asarray(dt, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InvalidInputError(f"`dt` must be a positive number or array of them; got {dt!r}") from error
    if steps.size == 0 or not (np.isfinite(steps) & (steps > 0)).all():
        raise InvalidInputError(f"`dt` must be positive and finite; got {dt!r}")
    return steps


def _range(bounds: Any, name: str) -> tuple[float, float]:
    """A `(low, high)` pair of finite floats with low < high."""
    try:
        low, high = (float(x) for x in bounds)
    except (TypeError, ValueError) as error:
        raise InvalidInputError(f"`{name}` must be a (low, high) pair of numbers; got {bounds!r}") from error
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise InvalidInputError(f"`{name}` must be finite with low < high; got {bounds!r}")
    return low, high


__all__ = [
    "StabilityFunction",
    "inside_region",
    "largest_stable_step",
    "real_interval",
    "region_grid",
    "scaled_eigenvalues",
    "stability_function",
    "supported_solvers",
]
