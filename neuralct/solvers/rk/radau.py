"""Radau IIA of order 5: three-stage collocation, L-stable and stiffly accurate, solved as one
coupled system per sample by simplified Newton (Hairer & Wanner, "Solving Ordinary Differential
Equations II", 2nd ed., 1996, section IV.8: the method of their RADAU5 and of SciPy's `Radau`)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ...terms.base import AbstractDriftTerm
from ..base import AbstractSolver, Carry, StepResult
from .newton import Factorisation, NewtonOptions, StageSolution, batched_jacobian, chord

_S6 = math.sqrt(6.0)
NODES = ((4 - _S6) / 10, (4 + _S6) / 10, 1.0)
MATRIX = (
    ((88 - 7 * _S6) / 360, (296 - 169 * _S6) / 1800, (-2 + 3 * _S6) / 225),
    ((296 + 169 * _S6) / 1800, (88 + 7 * _S6) / 360, (-2 - 3 * _S6) / 225),
    ((16 - _S6) / 36, (16 + _S6) / 36, 1 / 9),
)
# The real eigenvalue of MATRIX^-1, and the stage weights of the error estimate: with them
# (I - h J / MU_REAL)^-1 (h f0 + sum_i E_i Z_i) / MU_REAL is the difference to an embedded
# third-order method, filtered so that it stays bounded on stiff components (Hairer & Wanner IV.8).
MU_REAL = 3 + 3 ** (2 / 3) - 3 ** (1 / 3)
ERROR_WEIGHTS = ((-13 - 7 * _S6) / 3, (-13 + 7 * _S6) / 3, -1 / 3)
# A sample whose Newton iteration contracted more slowly than this gets a fresh Jacobian at its next
# step (RADAU5's default): the error estimate is filtered through the Jacobian, so a stale one makes
# it wrong, not only Newton slower.
REFRESH_RATE = 1e-3


@functools.lru_cache(maxsize=8)
def _constants(dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """`(A [3, 3], V^-1 [3, 3], E [3], c [3])`: the Butcher matrix, the inverse of
    $V_{ik} = c_i^{k+1}$ (stage increments to the collocation polynomial's coefficients), the
    error weights and the nodes, as tensors."""
    nodes = torch.tensor(NODES, dtype=torch.float64)
    powers = nodes[:, None] ** torch.arange(1, 4, dtype=torch.float64)
    found = (
        torch.tensor(MATRIX, dtype=torch.float64),
        torch.linalg.inv(powers),
        torch.tensor(ERROR_WEIGHTS, dtype=torch.float64),
        nodes,
    )
    return tuple(x.to(dtype=dtype, device=device) for x in found)  # type: ignore[return-value]


@dataclass(frozen=True)
class Radau5(NewtonOptions, AbstractSolver):
    """Radau IIA of order 5 with a third-order embedded error estimate, for stiff problems.

    The three stages are the collocation points $c = (4 - \\sqrt 6)/10, (4 + \\sqrt 6)/10, 1$. Each
    step solves the stage increments $Z_i = h \\sum_j a_{ij} F(t_0 + c_j h, y_0 + Z_j)$ of every
    sample as one system of size 3N by the chord iteration with $I - h (A \\otimes J)$ factorised
    once per step (batched). Newton starts from the previous step's collocation polynomial
    extrapolated to the new stages and stops once its update's estimated error is within
    `newton_tol`; a first update within it ends the iteration, but the previous step's contraction
    is not trusted to stop it earlier (RADAU5's shortcut: on Van der Pol mu=1000 at rtol 1e-6 it
    left an error of 77 tolerances, against 0.45 without). The Jacobian is kept across steps while
    Newton contracts faster than 1e-3 per iteration, and refreshed after a rejection (the error
    estimate is filtered through it). Per iteration the field is evaluated at the three stages.

    Use it with `nct.PIDController(..., predictive=True)`, Gustafsson's control as in RADAU5 and
    SciPy's `Radau`: on Van der Pol mu=1000 at rtol 1e-6 that takes 875 steps (18 rejected, 6533
    evaluations, error 0.45 tolerances; SciPy's `Radau`: 7702 evaluations, error 0.77) where the
    integral controller takes 1809 (445 rejected). At equal tolerance the error is far below
    `Kvaerno5`'s on oscillators with fast jumps.

    The solution is the last stage ($y_1 = y_0 + Z_3$) and the dense output is the collocation
    polynomial (third order), so adaptive solves step onto save times. The error estimate needs the
    slope at the step's start, which is evaluated at each step's end (one evaluation).
    Gradients: as `AbstractImplicitRK`, one exact Newton step from the converged stages with the
    graph on (three evaluations and three Jacobians) gives the implicit-function derivative.

    Args:
        newton_tol: relative tolerance of the Newton iterate's estimated error; `None` uses the square
            root of the dtype's machine epsilon. 1/1000 of the controller's `rtol` (SciPy's choice) is
            enough: the solution is a stage, so Newton's error is not amplified through later stages.
        newton_atol: absolute tolerance of the Newton update; `None` uses `newton_tol`.
        max_newton_iters: Newton iterations allowed per step (7, as RADAU5).

    The carry is `(f0, jac, refresh, fresh, poly, h_prev, retried)`: the slope at the step's start
    `[B, *state]`, the Jacobian `[B, N, N]`, whether a sample needs a fresh one `[B]`, whether it was
    computed at this step's start `[B]`, the last accepted step's polynomial coefficients
    `[B, 3, *state]`, that step `[B]`, and whether the sample's next step repeats a rejected one `[B]`
    (its error estimate is then refined by one evaluation). `evals` counts, per sample `[B]`, three
    per Newton iteration, one per Jacobian and one for the slope at the step's end.
    """

    max_newton_iters: int = 7

    order: ClassVar[float] = 5
    error_order: ClassVar[int | None] = 3
    term_types: ClassVar[tuple[type, ...]] = (AbstractDriftTerm,)

    @property
    def dense_order(self) -> int:
        """Order of the dense output: 3 (the collocation polynomial)."""
        return 3

    @property
    def interpolates_saves(self) -> bool:
        """`False`: step onto save times (the dense output is two orders below the method)."""
        return False

    def init(self, term: AbstractDriftTerm, t0: Tensor, y0: Tensor, args: Any) -> tuple[Carry, int]:
        """The slope at `(t0 [B], y0 [B, *state])`, no Jacobian or previous step yet; one evaluation."""
        f0 = term.vector_field(t0, y0, args)
        batch, size = y0.shape[0], y0[0].numel()
        jac = torch.zeros(batch, size, size, dtype=y0.dtype, device=y0.device)
        refresh = torch.ones(batch, dtype=torch.bool, device=y0.device)
        poly = torch.zeros(batch, 3, *y0.shape[1:], dtype=y0.dtype, device=y0.device)
        h_prev = torch.ones(batch, dtype=t0.dtype, device=t0.device)
        return (f0, jac, refresh, ~refresh, poly, h_prev, refresh), 1

    def merge_carry(self, rows: Tensor, new: Carry, old: Carry) -> Carry:
        """`new` for the `[B]` boolean `rows`; the Jacobian also where `new` computed it at the same
        start point (`fresh`), so a rejected step's retry reuses it."""
        merged = list(super().merge_carry(rows, new, old))
        merged[1] = torch.where((rows | new[3])[:, None, None], new[1], old[1])
        merged[2] = torch.where(rows, new[2], old[2] & ~new[3])
        merged[3] = new[3]
        merged[6] = ~rows
        return tuple(merged)

    def step(
        self, term: AbstractDriftTerm, t0: Tensor, y0: Tensor, h: Tensor, carry: Carry, args: Any, dense: bool
    ) -> StepResult:
        """One step of signed size `h` `[B]` from `(t0 [B], y0 [B, *state])`."""
        # A fresh Jacobian where the last step asked for one, and for a retry after a rejection
        # unless the rejected step's was fresh (RADAU5): the error estimate is filtered through it.
        jac, refresh = carry[1], carry[2] | (carry[6] & ~carry[3])
        evals = refresh.long()
        if bool(refresh.any()):
            jac = torch.where(refresh[:, None, None], batched_jacobian(term, t0, y0, args), jac)
        with torch.no_grad():
            guess = _extrapolate(carry[4], h / carry[5])
            run = self._newton(term, t0, y0.detach(), h, jac, guess, args)
            retry = run.failed & ~refresh
            if bool(retry.any()):
                jac = torch.where(retry[:, None, None], batched_jacobian(term, t0, y0, args), jac)
                again = self._newton(term, t0, y0.detach(), h, jac, guess, args)
                run = _merge(retry, again, run)
                evals = evals + retry
        z = run.z
        if torch.is_grad_enabled():
            z, extra = _attach_graph(term, t0, y0, h, z, args)
            evals = evals + extra
        return self._finish(term, t0, y0, h, z, run, (jac, refresh | retry), carry, args, evals)

    def _newton(
        self,
        term: AbstractDriftTerm,
        t0: Tensor,
        y0: Tensor,
        h: Tensor,
        jac: Tensor,
        guess: Tensor,
        args: Any,
    ) -> StageSolution:
        """The stage increments `[B, 3, *state]` of every sample without a graph."""
        matrix = _constants(y0.dtype, y0.device)[0]
        times = [t0 + c * h for c in NODES]

        def residual(z: Tensor) -> Tensor:
            return z - _combine(matrix, _stage_slopes(term, times, y0, z, args), h)

        batch, size = y0.shape[0], y0[0].numel()
        coupled = matrix[None, :, None, :, None] * jac[:, None, :, None, :]
        eye = torch.eye(3 * size, dtype=y0.dtype, device=y0.device)
        factors = Factorisation.invert(eye - h.reshape(-1, 1, 1) * coupled.reshape(batch, 3 * size, 3 * size))
        tol = self.tolerance(y0)
        scale = tol.inverse_scale(y0.unsqueeze(1).expand(guess.shape))
        return chord(residual, guess, factors, tol, scale)

    def _finish(
        self,
        term: AbstractDriftTerm,
        t0: Tensor,
        y0: Tensor,
        h: Tensor,
        z: Tensor,
        run: StageSolution,
        jacobian: tuple[Tensor, Tensor],
        carry: Carry,
        args: Any,
        evals: Tensor,
    ) -> StepResult:
        """The step's result from its stage increments `z` `[B, 3, *state]`."""
        to_poly = _constants(y0.dtype, y0.device)[1]
        f0, y1, poly = carry[0], y0 + z[:, 2], _combine(to_poly, z, None)
        with torch.no_grad():
            error, extra = _error(term, t0, y0.detach(), h, z.detach(), jacobian[0], f0, carry[6], args)
            f1 = term.vector_field(t0 + h, y1.detach(), args)
            failed = run.failed | ~torch.isfinite(y1.detach()).flatten(1).all(dim=1)
            error = torch.where(failed.reshape((-1,) + (1,) * (error.ndim - 1)), torch.inf, error)
            refresh = (run.iterations > 2) & (run.rate > REFRESH_RATE) & ~failed
        carry = (f1, jacobian[0], refresh, jacobian[1], poly.detach(), h, failed)
        evals = evals + 3 * run.iterations + extra + 1
        return StepResult(y1=y1, error=error, carry=carry, evals=evals, coeffs=poly, failed=failed)


def _error(
    term: AbstractDriftTerm,
    t0: Tensor,
    y0: Tensor,
    h: Tensor,
    z: Tensor,
    jac: Tensor,
    f0: Tensor,
    retried: Tensor,
    args: Any,
) -> tuple[Tensor, Tensor]:
    """`(error [B, *state], evals [B])`: $e = (I - h J / \\mu)^{-1} (h f_0 + \\sum_i E_i Z_i) / \\mu$ for the
    stage increments `z` `[B, 3, *state]`. On a sample's first step and on a retry after a rejection
    (`retried` `[B]`) $f_0$ is replaced by $F(t_0, y_0 + e)$ and the solve repeated (one evaluation),
    which makes the estimate $O(h^4)$ on stiff components too, so a rejected step is not cut again
    and again (Hairer & Wanner IV.8)."""
    weights = _constants(y0.dtype, y0.device)[2]
    eye = torch.eye(jac.shape[1], dtype=jac.dtype, device=jac.device)
    lu, pivots, _ = torch.linalg.lu_factor_ex(torch.addcmul(eye, (h / -MU_REAL).reshape(-1, 1, 1), jac))
    hs = h.reshape((-1,) + (1,) * (y0.ndim - 1))
    combined = torch.tensordot(weights, z, dims=([0], [1]))

    def filtered(slope: Tensor) -> Tensor:  # a singular matrix gives a non-finite estimate: a rejection
        rhs = torch.addcmul(combined, hs, slope).div_(MU_REAL).reshape(y0.shape[0], -1, 1)
        return torch.linalg.lu_solve(lu, pivots, rhs).reshape(y0.shape)

    error = filtered(f0)
    if not bool(retried.any()):
        return error, torch.zeros_like(retried, dtype=torch.long)
    refined = filtered(term.vector_field(t0, y0 + error, args))
    rows = retried.reshape((-1,) + (1,) * (y0.ndim - 1))
    return torch.where(rows, refined, error), retried.long()


def _stage_slopes(term: AbstractDriftTerm, times: list[Tensor], y0: Tensor, z: Tensor, args: Any) -> Tensor:
    """`[B, 3, *state]` the field at the three stages $y_0 + Z_i$ at their `times` (three evaluations)."""
    return torch.stack([term.vector_field(t, y0 + z[:, i], args) for i, t in enumerate(times)], dim=1)


def _combine(weights: Tensor, stages: Tensor, h: Tensor | None) -> Tensor:
    """`[B, 3, *state]` $\\sum_j w_{ij} s_j$ (times `h` `[B]` when given) for `weights` `[3, 3]` and
    `stages` `[B, 3, *state]`."""
    out = torch.matmul(weights, stages.flatten(2)).reshape(stages.shape)
    return out if h is None else out * h.reshape((-1,) + (1,) * (stages.ndim - 1))


def _extrapolate(poly: Tensor, ratio: Tensor) -> Tensor:
    """`[B, 3, *state]` Newton's first guess: the last accepted step's collocation polynomial
    `poly` `[B, 3, *state]` ($u(\\theta) = y_{prev} + \\sum_k p_k \\theta^{k+1}$) at the new stages
    $1 + c_i r$, less its value at 1 (the new step's start), with `ratio` `[B]` $r$ the new step over
    the old. Zero before the first accepted step (its polynomial is zero)."""
    nodes = _constants(poly.dtype, poly.device)[3]
    points = 1 + nodes[None, :, None] * ratio.to(poly.dtype)[:, None, None]
    basis = points ** torch.arange(1, 4, dtype=poly.dtype, device=poly.device) - 1
    return torch.bmm(basis, poly.flatten(2)).reshape(poly.shape)


def _merge(rows: Tensor, new: StageSolution, old: StageSolution) -> StageSolution:
    """`new` for the `[B]` boolean `rows`, `old` elsewhere; iterations of both for `rows`."""
    state = rows.reshape(rows.shape + (1,) * (new.z.ndim - 1))
    return StageSolution(
        z=torch.where(state, new.z, old.z),
        failed=torch.where(rows, new.failed, old.failed),
        rate=torch.where(rows, new.rate, old.rate),
        iterations=torch.where(rows, new.iterations + old.iterations, old.iterations),
    )


def _attach_graph(
    term: AbstractDriftTerm, t0: Tensor, y0: Tensor, h: Tensor, z_star: Tensor, args: Any
) -> tuple[Tensor, int]:
    """`(z, evals)`: the converged increments `z_star` `[B, 3, *state]` put on the graph by one exact
    Newton step $Z = Z^* - M^{-1} G(Z^*)$, $M_{ij} = \\delta_{ij} I - h a_{ij} J(y_0 + Z^*_j)$: the
    implicit-function derivative. `z_star` unchanged when nothing requires a gradient (found by
    evaluating the first stage: one evaluation)."""
    matrix = _constants(y0.dtype, y0.device)[0]
    times = [t0 + c * h for c in NODES]
    first = term.vector_field(times[0], y0 + z_star[:, 0], args)
    if not first.requires_grad:  # grad mode on, but nothing to differentiate: one evaluation to know it
        return z_star, 1
    rest = [term.vector_field(t, y0 + z_star[:, i], args) for i, t in enumerate(times[1:], start=1)]
    slopes = torch.stack([first, *rest], dim=1)
    batch, size = y0.shape[0], y0[0].numel()
    jacobians = torch.stack(
        [batched_jacobian(term, t, (y0 + z_star[:, i]).detach(), args) for i, t in enumerate(times)], dim=1
    )
    coupled = matrix[None, :, None, :, None] * jacobians.permute(0, 2, 1, 3)[:, None]  # [B, i, p, j, q]
    eye = torch.eye(3 * size, dtype=y0.dtype, device=y0.device)
    step = h.detach().reshape(-1, 1, 1)
    factors = Factorisation.invert(eye - step * coupled.reshape(batch, 3 * size, 3 * size))
    return z_star - factors.solve(z_star - _combine(matrix, slopes, h)), 6
