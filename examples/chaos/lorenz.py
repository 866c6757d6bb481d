"""Lorenz-63 trajectories on the attractor, the standard chaotic benchmark of dynamical-systems
reconstruction (Mikhaeil, Monfared & Durstewitz, NeurIPS 2022, use it at $\\Delta t = 0.01$).

$$\\dot x = \\sigma (y - x), \\qquad \\dot y = x (\\rho - z) - y, \\qquad \\dot z = x y - \\beta z,$$

with the classical $\\sigma = 10$, $\\rho = 28$, $\\beta = 8/3$: leading Lyapunov exponent about
0.906 per unit time, so two nearby states separate by a factor 2 in about $\\ln 2 / 0.906 \\approx
0.77$ time units (77 steps of 0.01).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from neuralct import RK4, ConstantStep, ODETerm, solve
from neuralct._checks import check_int, check_number


def lorenz63_field(
    sigma: float = 10.0, rho: float = 28.0, beta: float = 8 / 3
) -> Callable[[Tensor, Tensor, object], Tensor]:
    """The Lorenz-63 vector field `f(t, y [B, 3], args) -> [B, 3]` for `ODETerm` (`t`, `args` ignored)."""

    def field(t: Tensor, y: Tensor, args: object = None) -> Tensor:
        x, v, w = y.unbind(-1)
        return torch.stack([sigma * (v - x), x * (rho - w) - v, x * v - beta * w], dim=-1)

    return field


def lorenz63(
    steps: int,
    dt: float = 0.01,
    *,
    burn_in: int = 1000,
    sigma: float = 10.0,
    rho: float = 28.0,
    beta: float = 8 / 3,
    seed: int = 0,
    batch: int = 1,
    standardise: bool = True,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Lorenz-63 trajectories sampled every `dt`, on the attractor, standardised per channel.

    Each of the `batch` trajectories starts from a random state near the attractor
    ($(0, 0, 25) + \\mathcal N(0, 5^2 I)$, seeded by `seed`), is integrated for `burn_in` steps that
    are thrown away (transient), then `steps` states are kept. Integration is RK4 at the constant
    step `dt` through `neuralct.solve`. With `standardise`, every channel is shifted and scaled to
    mean 0 and standard deviation 1 over all trajectories and times of this call.

    Args:
        steps: states kept per trajectory, T (at least 2).
        dt: the sampling (and integration) step.
        burn_in: steps discarded first (0 keeps the random start).
        sigma: the Lorenz parameter σ.
        rho: the Lorenz parameter ρ.
        beta: the Lorenz parameter β.
        seed: seeds the initial states.
        batch: trajectories B.
        standardise: whether to standardise each channel (otherwise the raw ODE states).
        dtype: floating dtype of the result (default: torch's default dtype); the integration
            runs in float64 either way.

    Returns:
        `[B, T, 3]` the states $(x, y, z)$ at times $0, \\Delta t, \\ldots, (T-1)\\Delta t$ after the burn-in.

    Raises:
        InvalidInputError: `steps < 2`, negative `burn_in`, `batch < 1` or `dt` not positive and finite.
    """
    _check_sizes(steps=steps, burn_in=burn_in, batch=batch, dt=dt)
    generator = torch.Generator().manual_seed(seed)
    start = torch.tensor([0.0, 0.0, 25.0], dtype=torch.float64) + 5 * torch.randn(
        batch, 3, generator=generator, dtype=torch.float64
    )
    term = ODETerm(lorenz63_field(sigma, rho, beta))
    if burn_in > 0:
        start = _integrate(term, start, burn_in + 1, dt)[:, -1]
    states = _integrate(term, start, steps, dt)
    if standardise:
        flat = states.reshape(-1, 3)
        states = (states - flat.mean(dim=0)) / flat.std(dim=0)
    return states.to(dtype or torch.get_default_dtype())


def _integrate(term: ODETerm, start: Tensor, points: int, dt: float) -> Tensor:
    """`[B, points, 3]` the RK4 trajectory from `start` `[B, 3]` saved every `dt`."""
    times = torch.arange(points, dtype=torch.float64) * dt
    solution = solve(term, start, times, solver=RK4(), controller=ConstantStep(dt), max_steps=points + 8)
    return solution.ys


def _check_sizes(*, steps: int, burn_in: int, batch: int, dt: float) -> None:
    check_int("steps", steps, 2)
    check_int("burn_in", burn_in, 0)
    check_int("batch", batch)
    check_number("dt", dt, 0.0, open_low=True)


__all__ = ["lorenz63", "lorenz63_field"]
