"""The Newton machinery of the implicit Runge-Kutta methods, per sample.

Per-sample Jacobians `[B, N, N]` (reverse mode with the backward passes batched by `vmap`, or a
`jacobian(t, y, args)` method the term supplies), the iteration matrices $I - h\\gamma J$
factorised as a batch by `torch.linalg.lu_factor_ex`, and the simplified (chord) Newton iteration
that solves one stage of every sample with a factorisation held fixed. Each sample iterates until
its own iterate is accurate and then stops changing, so its iterate, its iteration count and its
convergence status never depend on its batch mates (Hairer & Wanner, "Solving Ordinary Differential Equations II", 2nd
ed., 1996, section IV.8).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..._checks import check_int, check_number, describe
from ...errors import IncompatibleTermError
from ...terms.base import AbstractDriftTerm

# A stage's field with its time fixed: `[B, *state]` -> `[B, *state]`.
StageMap = Callable[[Tensor], Tensor]


def batched_jacobian(term: AbstractDriftTerm, t: Tensor, y: Tensor, args: Any) -> Tensor:
    """Per-sample Jacobians $\\partial F_b / \\partial y_b$ of the term's field, `[B, N, N]` with N
    the state size, held constant (no graph).

    A term with a method `jacobian(t, y, args)` returning `[B, N, N]` (or `[B, *state, *state]`)
    supplies its own. Otherwise samples are independent, so row i of every sample's Jacobian is
    the gradient of $\\sum_b F_{b,i}$ with respect to the batch: one forward pass and N backward
    passes batched by `vmap` (`is_grads_batched`, as `torch.func.jacrev` does, at a third of its
    overhead on small states), whatever B is.

    Args:
        term: the drift term (or the implicit part of a split term).
        t: `[B]` times.
        y: `[B, *state]` states.
        args: the solve's `args`.
    """
    batch, size = y.shape[0], y[0].numel()
    supplied = getattr(term, "jacobian", None)
    if callable(supplied):
        with torch.no_grad():
            return _checked_jacobian(term, supplied(t, y.detach(), args), y).reshape(batch, size, size)
    with torch.enable_grad():
        z = y.detach().requires_grad_()
        out = term.vector_field(t, z, args)
        if not out.requires_grad:  # a field that does not depend on y
            return torch.zeros(batch, size, size, dtype=y.dtype, device=y.device)
        basis = torch.eye(size, dtype=y.dtype, device=y.device).reshape(size, 1, *y.shape[1:])
        (rows,) = torch.autograd.grad(out, z, basis.expand(size, *y.shape), is_grads_batched=True, allow_unused=True)
    if rows is None:
        return torch.zeros(batch, size, size, dtype=y.dtype, device=y.device)
    return rows.reshape(size, batch, size).transpose(0, 1).contiguous()


def _checked_jacobian(term: AbstractDriftTerm, jac: Any, y: Tensor) -> Tensor:
    """`jac` unchanged when it is `[B, N, N]` or `[B, *state, *state]` for states `y` `[B, *state]`
    with `y`'s dtype and device; else `IncompatibleTermError` naming the term."""
    batch, size = y.shape[0], y[0].numel()
    shapes = {(batch, size, size), (batch, *y.shape[1:], *y.shape[1:])}
    if isinstance(jac, Tensor) and tuple(jac.shape) in shapes and jac.dtype == y.dtype and jac.device == y.device:
        return jac
    raise IncompatibleTermError(
        f"`jacobian` of {type(term).__name__} must return a tensor of shape {(batch, size, size)}, dtype "
        f"{y.dtype} on {y.device} (one [N, N] block per sample); got {describe(jac)}"
    )


@dataclass(frozen=True)
class Factorisation:
    """Every sample's iteration matrix $M_b = I - s_b J_b$, factorised.

    The batch is factorised once (`torch.linalg.lu_factor_ex`) and its inverse formed from the
    factors, so that each Newton iteration costs one batched matrix-vector product: on the small
    states of neural and chemical ODEs a triangular solve per iteration costs several times more.

    Attributes:
        inverse: `[B, N, N]` $M_b^{-1}$ (NaN for a singular sample).
        singular: `[B]` samples whose matrix is singular or not finite.
    """

    inverse: Tensor
    singular: Tensor

    @classmethod
    def of(cls, jac: Tensor, scale: Tensor) -> Factorisation:
        """Factorise $I - s_b J_b$ for `jac` `[B, N, N]` and `scale` `[B]` ($s = h\\gamma$)."""
        eye = torch.eye(jac.shape[1], dtype=jac.dtype, device=jac.device)
        return cls.invert(eye - scale.reshape(-1, 1, 1) * jac)

    @classmethod
    def invert(cls, matrix: Tensor) -> Factorisation:
        """Factorise every sample's iteration matrix `matrix` `[B, N, N]`."""
        if matrix.shape[1] == 1:
            inverse = matrix.reciprocal()
        else:
            lu, pivots, info = torch.linalg.lu_factor_ex(matrix)
            eye = torch.eye(matrix.shape[1], dtype=matrix.dtype, device=matrix.device)
            inverse = torch.linalg.lu_solve(lu, pivots, eye.expand_as(matrix))
            inverse = torch.where((info != 0)[:, None, None], torch.nan, inverse)
        return cls(inverse, ~torch.isfinite(inverse).flatten(1).all(dim=1))

    def solve(self, rhs: Tensor) -> Tensor:
        """$M_b^{-1} r_b$ for `rhs` `[B, *state]` -> `[B, *state]` (NaN for singular samples)."""
        return torch.bmm(self.inverse, rhs.reshape(rhs.shape[0], -1, 1)).reshape(rhs.shape)


@dataclass(frozen=True)
class NewtonTolerance:
    """When a sample's Newton iteration has converged, in the norm
    $\\|x\\| = \\mathrm{RMS}_j\\, x_j / (a + r |z_{0,j}|)$ ($z_0$ the stage's first guess): once the
    estimated error of its iterate is at most 1. After iteration $k \\ge 2$ that estimate is
    $\\tfrac{\\theta}{1-\\theta}\\|\\Delta_k\\|$ with $\\theta = \\|\\Delta_k\\| / \\|\\Delta_{k-1}\\|$
    the observed contraction (Hairer & Wanner, section IV.8); after the first it is
    $\\eta\\|\\Delta_1\\|$ with $\\eta = (\\tfrac{\\theta_0}{1-\\theta_0})^{0.8}$ from the contraction
    $\\theta_0$ the same sample showed at its previous stage (RADAU5's `FACCON`), or 1 without one.

    Attributes:
        rtol: relative tolerance $r$.
        atol: absolute tolerance $a$.
        max_iters: iterations allowed per stage; a sample still moving after them fails.
    """

    rtol: float
    atol: float
    max_iters: int

    def inverse_scale(self, z0: Tensor) -> Tensor:
        """`[B, *state]` $1 / ((a + r |z_0|) \\sqrt{N})$, formed once per stage, so that the
        Euclidean norm of a scaled update is its RMS in tolerance units."""
        return z0.abs().mul(self.rtol).add_(self.atol).mul_(z0[0].numel() ** 0.5).reciprocal_()


@dataclass(frozen=True)
class NewtonOptions:
    """The Newton options an implicit solver takes (see `AbstractImplicitRK` and `Radau5`).

    Args:
        newton_tol: relative tolerance of the Newton iterate's estimated error; `None` uses the
            square root of the state dtype's machine epsilon (1.5e-8 in float64, 3.5e-4 in float32).
        newton_atol: absolute tolerance of the Newton update; `None` uses `newton_tol`.
        max_newton_iters: Newton iterations allowed per solve.
    """

    newton_tol: float | None = None
    newton_atol: float | None = None
    max_newton_iters: int = 10

    def __post_init__(self) -> None:
        check_number("newton_tol", self.newton_tol, 0.0, open_low=True, optional=True)
        check_number("newton_atol", self.newton_atol, 0.0, open_low=True, optional=True)
        check_int("max_newton_iters", self.max_newton_iters)

    def tolerance(self, like: Tensor) -> NewtonTolerance:
        """The Newton test for states like `like` (defaults resolved by its dtype)."""
        rtol = self.newton_tol if self.newton_tol is not None else torch.finfo(like.dtype).eps ** 0.5
        atol = self.newton_atol if self.newton_atol is not None else rtol
        return NewtonTolerance(rtol, atol, self.max_newton_iters)


@dataclass(frozen=True)
class StageSolution:
    """One stage solved for every sample.

    Attributes:
        z: `[B, *state]` the last iterate (frozen where the sample stopped).
        failed: `[B]` samples whose iteration diverged, went non-finite or ran out of iterations.
        rate: `[B]` the last contraction factor $\\theta$ observed (the one passed in after a single
            iteration): a slow rate asks for a fresh Jacobian.
        iterations: `[B]` iterations each sample ran (its field evaluations): none once it stopped.
    """

    z: Tensor
    failed: Tensor
    rate: Tensor
    iterations: Tensor


def solve_stage(
    field: StageMap,
    rhs: Tensor,
    z0: Tensor,
    hg: Tensor,
    factors: Factorisation,
    tol: NewtonTolerance,
    skip: Tensor | None = None,
    rate: Tensor | None = None,
) -> StageSolution:
    """Solve $z = r + h\\gamma F(z)$ per sample by the chord iteration
    $z \\leftarrow z - M^{-1}(z - r - h\\gamma F(z))$ with $M = I - h\\gamma J$ held fixed.

    See `chord` for when a sample stops; its norm is scaled by the first guess `z0`.

    Args:
        field: $F$ at the stage time, `[B, *state]` -> `[B, *state]`.
        rhs: `[B, *state]` the stage's known part $r$.
        z0: `[B, *state]` first guess.
        hg: `[B, 1, ...]` $h\\gamma$ broadcast against the state.
        factors: the factorised $M$ of every sample.
        tol: the convergence test and the iteration limit.
        skip: `[B]` samples not to iterate (already failed at an earlier stage); they stay failed.
        rate: `[B]` each sample's contraction $\\theta_0$ at its previous stage (0: none), which lets
            a sample converge after one iteration.
    """

    def residual(z: Tensor) -> Tensor:
        return torch.addcmul(z - rhs, hg, field(z), value=-1)

    return chord(residual, z0, factors, tol, tol.inverse_scale(z0), skip, rate)


def chord(
    residual: StageMap,
    z0: Tensor,
    factors: Factorisation,
    tol: NewtonTolerance,
    inverse_scale: Tensor,
    skip: Tensor | None = None,
    rate: Tensor | None = None,
) -> StageSolution:
    """Solve $G(z) = 0$ per sample by the chord iteration $z \\leftarrow z - M^{-1} G(z)$ with the
    factorised $M \\approx \\partial G / \\partial z$ held fixed.

    A sample stops (its iterate frozen) once converged (see `NewtonTolerance`) or failed: its
    update did not shrink ($\\theta \\ge 1$, divergence) or shrinks too slowly to converge within
    `tol.max_iters` iterations ($\\theta^{k_{max} - k} \\tfrac{\\theta}{1-\\theta}\\|\\Delta_k\\| > 1$),
    went non-finite, or its matrix is singular.

    Args:
        residual: $G$, `[B, *shape]` -> `[B, *shape]` (one field evaluation per call).
        z0: `[B, *shape]` first guess.
        factors: the factorised $M$ of every sample (`[B, K, K]`, K the size of `*shape`).
        tol: the iteration limit (its tolerances are already in `inverse_scale`).
        inverse_scale: `[B, *shape]` the norm's weights (see `NewtonTolerance.inverse_scale`).
        skip: `[B]` samples not to iterate; they stay failed.
        rate: `[B]` each sample's contraction $\\theta_0$ at its previous solve (0: none), which lets
            a sample converge after one iteration.
    """
    batch = z0.shape[0]
    rate = torch.zeros(batch, dtype=z0.dtype, device=z0.device) if rate is None else rate
    eta = _first_factor(rate)
    z = z0
    failed = factors.singular if skip is None else factors.singular | skip
    done, finished = failed, int(torch.count_nonzero(failed))
    previous, iterations, shared = None, 0, 0
    own = torch.zeros(batch, dtype=torch.long, device=z0.device)  # iterations run while a mate had stopped
    while iterations < tol.max_iters and finished < batch:
        iterations += 1
        delta = factors.solve(residual(z))
        size = torch.linalg.vector_norm((delta * inverse_scale).flatten(1), dim=1)
        if previous is None:
            theta, converged, bad = rate, size * eta <= 1, ~torch.isfinite(size)
        else:
            theta, converged, bad = _judge(size, previous, tol.max_iters - iterations)
        if finished == 0:  # every sample moves: no masking needed
            z, rate, failed, done, shared = z - delta, theta, bad, bad | converged, shared + 1
        else:
            active = ~done
            own = own + active
            z = torch.where(active.reshape((batch,) + (1,) * (z.ndim - 1)), z - delta, z)
            rate = torch.where(active, theta, rate)
            failed = failed | (active & bad)
            done = done | bad | converged
        previous, finished = size, int(torch.count_nonzero(done))
    return StageSolution(z=z, failed=failed | ~done, rate=rate, iterations=own + shared)


def _judge(size: Tensor, previous: Tensor, left: int) -> tuple[Tensor, Tensor, Tensor]:
    """`(theta, converged, bad)` `[B]` after an iteration $k \\ge 2$ with update sizes `size` and
    `previous` and `left` iterations allowed after it.

    With $\\theta = \\|\\Delta_k\\| / \\|\\Delta_{k-1}\\| < 1$, converged is
    $\\tfrac{\\theta}{1-\\theta}\\|\\Delta_k\\| \\le 1$, written
    $\\|\\Delta_k\\|(\\|\\Delta_k\\| + 1) \\le \\|\\Delta_{k-1}\\|$;
    bad is diverging ($\\theta \\ge 1$ or NaN) or too slow to converge in the iterations left,
    $\\theta^{left} \\tfrac{\\theta}{1-\\theta}\\|\\Delta_k\\| > 1$, written
    $\\theta^{left+1}\\|\\Delta_k\\| > 1 - \\theta$ (Hairer & Wanner, IV.8)."""
    theta = size / previous
    converged = torch.addcmul(size, size, size) <= previous
    # theta^(left+1) |D_k| + theta > 1 also holds for theta >= 1, and is false for NaN: one test.
    bad = ~(theta.pow(left + 1).mul_(size).add_(theta) <= 1)
    return theta, converged, bad


def _first_factor(rate: Tensor) -> Tensor:
    """`[B]` the factor $\\eta$ on the first update's size: $(\\theta_0 / (1 - \\theta_0))^{0.8}$ for a
    known contraction $\\theta_0 > 0$ (at least machine epsilon), else 1 (Hairer & Wanner, IV.8); a
    sample with $\\theta_0 \\ge 1$ has failed and is not iterated."""
    ratio = (rate / torch.rsub(rate, 1)).clamp_min_(torch.finfo(rate.dtype).eps).pow_(0.8)
    return torch.where(rate > 0, ratio, 1.0)
