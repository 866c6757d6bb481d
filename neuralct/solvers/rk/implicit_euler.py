"""The implicit (backward) Euler method with a per-sample Newton iteration, order 1."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..._checks import check_int, check_number
from ...terms.base import AbstractDriftTerm
from ..base import AbstractSolver, Carry, StepResult
from .explicit import broadcast_step, hermite_coefficients


def batched_jacobian(term: AbstractDriftTerm, t: Tensor, y: Tensor, args: Any) -> Tensor:
    """Per-sample Jacobians $\\partial f_b / \\partial y_b$, `[B, N, N]` with N the state size.

    Samples are independent, so the Jacobian of $\\sum_b f_b$ with respect to the batch
    holds exactly the per-sample blocks: N vectorised backward passes, whatever B is.

    Args:
        t: `[B]` times; y: `[B, *state]` states.
    """
    batch, size = y.shape[0], y[0].numel()
    with torch.enable_grad():
        jac = torch.autograd.functional.jacobian(
            lambda z: term.vector_field(t, z, args).sum(dim=0), y.detach(), vectorize=True
        )
    return jac.reshape(size, batch, size).permute(1, 0, 2)


def newton_matrix(term: AbstractDriftTerm, t1: Tensor, z: Tensor, hs: Tensor, args: Any) -> Tensor:
    """$J = I - h\\,\\partial_y f(t_1, z)$ per sample, `[B, N, N]` (`hs` is `h` broadcast to the state)."""
    jac = batched_jacobian(term, t1, z, args)
    eye = torch.eye(jac.shape[1], dtype=jac.dtype, device=jac.device)
    return eye - hs.reshape(-1, 1, 1) * jac


def solve_linear(matrix: Tensor, *rhs: Tensor) -> tuple[Tensor, ...]:
    """Solve the `[B, N, N]` systems for one or more `[B, *state]` right-hand sides at once.

    A singular sample gets NaN (instead of an error for the whole batch); scalar states
    (N = 1) are divided directly, which avoids LAPACK's per-call threading overhead.
    """
    batch = matrix.shape[0]
    stacked = torch.stack([r.reshape(batch, -1) for r in rhs], dim=2)
    if matrix.shape[1] == 1:
        pivot = matrix
        solution = stacked / torch.where(pivot == 0, torch.nan, pivot)
    else:
        solution, info = torch.linalg.solve_ex(matrix, stacked)
        solution = torch.where((info != 0)[:, None, None], torch.nan, solution)
    return tuple(solution[..., i].reshape(r.shape) for i, r in enumerate(rhs))


def _rms(x: Tensor) -> Tensor:
    return x.square().flatten(1).mean(dim=1).sqrt()


@dataclass(frozen=True)
class ImplicitEuler(AbstractSolver):
    """Implicit Euler, $y_1 = y_0 + h f(t_1, y_1)$: order 1, L-stable, for stiff problems.

    Each sample solves its own nonlinear equation by Newton's method with its exact
    Jacobian $J = I - h\\,\\partial_y f(t_1, z)$ (per-sample blocks, solved as a batch with
    `torch.linalg.solve`), starting from $y_0$. A sample whose iteration has not converged
    after `max_newton_iters` iterations (or went non-finite) is reported in
    `StepResult.failed`: an adaptive controller rejects and shrinks the step, `ConstantStep`
    ends the sample with status `NEWTON_FAILED`.

    The error estimate (error order 1) is the difference to the trapezoidal rule,
    $\\tfrac{h}{2}(f_1 - f_0)$, an $O(h^2)$ estimate of the local error $-\\tfrac{h^2}{2}y''$,
    filtered through $J^{-1}$ so that stiff, quickly decaying components do not force tiny
    steps (Hairer & Wanner, "Solving Ordinary Differential Equations II", 2nd ed., 1996,
    section IV.8; Shampine, "Implementation of implicit formulas for the solution of ODEs",
    SIAM J. Sci. Stat. Comput. 1, 1980). Dense output is the cubic Hermite interpolant.

    Gradients: the Newton iterations run without a graph; one final Newton step from the
    converged iterate is taken with the graph on and $J$ held constant, which gives the
    implicit-function-theorem derivative $\\partial y_1 / \\partial(y_0, \\theta) =
    J^{-1} \\partial(y_0 + h f)/\\partial(y_0, \\theta)$ (exact up to the Newton tolerance)
    at the memory cost of one evaluation per step.

    Args:
        newton_tol: a sample has converged once the RMS of its Newton update is at most
            `newton_tol * (1 + RMS(iterate))`; `None` uses the cube root of the state dtype's
            machine epsilon (6e-6 in float64, 5e-3 in float32): by Newton's quadratic
            convergence the iterate is then accurate to about its square, and the final
            Newton step squares that again, to about machine precision.
        max_newton_iters: Newton iterations allowed per step.

    `evals` counts each Newton iteration as two evaluations (the field and its Jacobian's
    forward pass) plus one for the final step (two when a graph is being built).
    """

    newton_tol: float | None = None
    max_newton_iters: int = 10

    order: ClassVar[float] = 1
    error_order: ClassVar[int | None] = 1
    term_types: ClassVar[tuple[type, ...]] = (AbstractDriftTerm,)

    def __post_init__(self) -> None:
        check_number("newton_tol", self.newton_tol, 0.0, open_low=True, optional=True)
        check_int("max_newton_iters", self.max_newton_iters)

    @property
    def interpolates_saves(self) -> bool:
        """Step onto save times: the cubic interpolant of a first-order step adds little."""
        return False

    def init(self, term: AbstractDriftTerm, t0: Tensor, y0: Tensor, args: Any) -> tuple[Carry, int]:
        """Carry is `(f(t0, y0),)`; costs one evaluation."""
        return (term.vector_field(t0, y0, args),), 1

    def step(
        self, term: AbstractDriftTerm, t0: Tensor, y0: Tensor, h: Tensor, carry: Carry, args: Any, dense: bool
    ) -> StepResult:
        """One implicit Euler step of signed size `h` `[B]` from `(t0 [B], y0 [B, *state])`."""
        t1 = t0 + h
        hs = broadcast_step(h, y0)
        with torch.no_grad():
            z, jac, converged, iters = self._newton(term, t1, y0.detach(), hs, args)
        # One more Newton step with the graph on (J constant): the implicit-function gradient,
        # exact when J is evaluated at the converged iterate (recomputed only if a graph is built).
        f1 = term.vector_field(t1, z, args)
        graph = f1.requires_grad or y0.requires_grad
        if graph:
            jac = newton_matrix(term, t1, z, hs, args)
        residual = z - y0 - hs * f1
        f0 = carry[0]
        trapezoid_gap = 0.5 * hs * (f1.detach() - f0.detach())
        correction, error = solve_linear(jac, residual, trapezoid_gap)
        y1 = z - correction
        failed = ~converged | ~torch.isfinite(y1).flatten(1).all(dim=1)
        # An infinite error makes adaptive controllers reject the step and cut it hard.
        error = torch.where(failed.reshape((-1,) + (1,) * (error.ndim - 1)), torch.inf, error)
        coeffs = hermite_coefficients(y0, y1, f0, f1, hs) if dense else None
        return StepResult(
            y1=y1,
            error=error,
            carry=(f1,),
            evals=2 * iters + 1 + int(graph),
            coeffs=coeffs,
            failed=failed,
        )

    def _newton(
        self, term: AbstractDriftTerm, t1: Tensor, y0: Tensor, hs: Tensor, args: Any
    ) -> tuple[Tensor, Tensor, Tensor, int]:
        """Newton's method on $G(z) = z - y_0 - h f(t_1, z)$ from $z = y_0$, per sample.

        Returns the iterate `[B, *state]`, the last matrix $J$ `[B, N, N]`, the `[B]`
        convergence flags and the number of iterations run for the batch.
        """
        batch = y0.shape[0]
        tol = self.newton_tol if self.newton_tol is not None else torch.finfo(y0.dtype).eps ** (1 / 3)
        z = y0
        converged = torch.zeros(batch, dtype=torch.bool, device=y0.device)
        jac = newton_matrix(term, t1, z, hs, args)
        iters = 0
        while iters < self.max_newton_iters:
            iters += 1
            if iters > 1:
                jac = torch.where(converged.reshape(batch, 1, 1), jac, newton_matrix(term, t1, z, hs, args))
            residual = z - y0 - hs * term.vector_field(t1, z, args)
            (delta,) = solve_linear(jac, residual)
            z_new = z - delta
            finite = torch.isfinite(z_new).flatten(1).all(dim=1)
            moving = ~converged & finite
            z = torch.where(moving.reshape((batch,) + (1,) * (z.ndim - 1)), z_new, z)
            converged = converged | (moving & (_rms(delta) <= tol * (1 + _rms(z_new))))
            if bool((converged | ~finite).all()):
                break
        return z, jac, converged, iters
