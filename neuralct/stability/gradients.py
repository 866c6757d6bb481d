"""Gradients against the horizon: how far back a loss can reach through a recurrence.

For a map $z_t = F_t(z_{t-1})$ run for T steps, backpropagation through time multiplies Jacobians:
$\\partial z_T / \\partial z_{T-\\ell} = J_T J_{T-1} \\cdots J_{T-\\ell+1}$. Its norm against the lag
$\\ell$ grows like $e^{\\lambda_{max} \\ell \\Delta t}$ when the dynamics are chaotic ($\\lambda_{max} >
0$: gradients explode, Mikhaeil et al., NeurIPS 2022) and decays when they contract (gradients
vanish). `gradient_horizon` measures these norms on any map (an RNN cell, a solver's one-step map
of a model's term, see `neuralct.stability.lyapunov.flow_map`), optionally for the gradient of a
loss on the final state, $\\|\\partial L / \\partial z_{T-\\ell}\\|$, and fits the exponential rate
by least squares on $\\log\\|\\cdot\\|$ against $\\ell\\,\\Delta t$, to compare with the leading Lyapunov
exponent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import check_int, describe
from ..errors import InvalidInputError
from ._common import check_dt, check_state, slopes
from .lyapunov import Map, step_jacobian


@dataclass(frozen=True)
class GradientHorizon:
    """Norms of backpropagated derivatives against the lag, and their exponential rate.

    Attributes:
        lags: `[L]` lags $\\ell = 1, \\ldots, T$ in steps.
        log_norms: `[B, L]` $\\log \\|\\partial z_T / \\partial z_{T-\\ell}\\|_2$ (spectral norm),
            or $\\log \\|\\partial L / \\partial z_{T-\\ell}\\|$ when a loss was given (logs, so
            that exploding products do not overflow).
        rate: `[B]` the fitted growth rate per unit time (slope of `log_norms` against
            $\\ell\\,\\Delta t$).
        dt: time per step.
    """

    lags: Tensor
    log_norms: Tensor
    rate: Tensor
    dt: float

    def mean_rate(self) -> float:
        """The rate fitted to the mean log-norm over the samples."""
        return float(slopes(self.lags.to(self.log_norms.dtype) * self.dt, self.log_norms.mean(dim=0, keepdim=True)))

    def diagnosis(self, tolerance: float = 0.01) -> str:
        """`"exploding"`, `"vanishing"` or `"neutral"`: the sign of `mean_rate()` beyond
        `tolerance` (per unit time), with the growth it implies over the horizon."""
        rate = self.mean_rate()
        span = float(self.lags[-1]) * self.dt
        factor = f"x{math.exp(max(min(rate * span, 700), -700)):.3g} over T = {span:g}"
        if rate > tolerance:
            return f"exploding: gradients grow about e^({rate:.3g} T), {factor}"
        if rate < -tolerance:
            return f"vanishing: gradients shrink about e^({rate:.3g} T), {factor}"
        return f"neutral: |rate| = {abs(rate):.3g} <= {tolerance:g} per unit time"


def gradient_horizon(
    step: Map,
    z0: Tensor,
    horizon: int,
    *,
    dt: float = 1.0,
    burn_in: int = 0,
    loss: Callable[[Tensor], Tensor] | None = None,
) -> GradientHorizon:
    """Norms of $\\partial z_T / \\partial z_{T-\\ell}$ (or of a loss's gradient) for every lag.

    Args:
        step: the map `(z [B, N], t) -> [B, N]`, row by row and differentiable (as in
            `lyapunov_spectrum`).
        z0: `[B, N]` initial states, one trajectory each.
        horizon: T, the steps backpropagated through.
        dt: time per step (rates are per unit time).
        burn_in: steps taken first, outside the horizon (to start on the attractor).
        loss: optional `z_T [B, N] -> [B]` per-sample loss; then the norms are those of
            $\\partial L / \\partial z_{T-\\ell}$.

    Returns:
        The norms and rates (see `GradientHorizon`).

    Raises:
        InvalidInputError: a bad `z0`, `horizon < 2`, negative `burn_in`, non-positive `dt`, or a
            loss that does not return `[B]`.
    """
    check_state(z0)
    check_int("horizon", horizon, low=2)
    check_int("burn_in", burn_in, low=0)
    check_dt(dt)
    z = z0.detach()
    with torch.no_grad():
        for t in range(burn_in):
            z = step(z, t)
    jacobians = []
    for t in range(burn_in, burn_in + horizon):
        z, jacobian = step_jacobian(step, z, t)
        jacobians.append(jacobian)
    seed = _loss_gradient(loss, z) if loss is not None else None
    log_norms = _backpropagated_log_norms(jacobians, seed)
    lags = torch.arange(1, horizon + 1)
    return GradientHorizon(lags, log_norms, slopes(lags.to(log_norms.dtype) * dt, log_norms), dt)


def _backpropagated_log_norms(jacobians: list[Tensor], seed: Tensor | None) -> Tensor:
    """`[B, T]` log-norms of the products of the last ℓ Jacobians (times `seed` from the left),
    kept at unit scale as they grow, with the scale carried in logs."""
    product = seed[:, None, :] if seed is not None else None
    log_scale = torch.zeros(jacobians[0].shape[0], dtype=jacobians[0].dtype, device=jacobians[0].device)
    logs = []
    for jacobian in reversed(jacobians):
        product = jacobian if product is None else product @ jacobian
        norm = torch.linalg.matrix_norm(product, ord=2) if seed is None else product.flatten(1).norm(dim=1)
        logs.append(log_scale + norm.log())
        scale = norm.clamp_min(torch.finfo(norm.dtype).tiny)
        product, log_scale = product / scale[:, None, None], log_scale + scale.log()
    return torch.stack(logs, dim=1)


def _loss_gradient(loss: Callable[[Tensor], Tensor], z: Tensor) -> Tensor:
    with torch.enable_grad():
        state = z.detach().requires_grad_(True)
        values = loss(state)
        if not isinstance(values, Tensor) or values.shape != z.shape[:1]:
            raise InvalidInputError(f"`loss` must return one value per sample [{z.shape[0]}]; got {describe(values)}")
        return torch.autograd.grad(values.sum(), state)[0]


__all__ = ["GradientHorizon", "gradient_horizon"]
