"""Implicit Runge-Kutta steps (ESDIRK, and IMEX pairs over a `SplitTerm`) with per-sample Newton.

One step factorises every sample's $M = I - h\\gamma J$ once (`torch.linalg.lu_factor`, batched)
and solves its implicit stages in turn by the chord iteration of `newton.py`. The Jacobian $J$
rides in the carry and is reused across steps while Newton converges quickly; a sample whose
iteration converged slowly gets a fresh one at its next step, and one whose iteration failed on
an old Jacobian retries the step at once with a fresh one (Hairer & Wanner, "Solving Ordinary
Differential Equations II", 2nd ed., 1996, section IV.8). A sample that still fails is rejected
(infinite error), so an adaptive controller shrinks its step, and `ConstantStep` ends it with
status `NEWTON_FAILED`. Every decision is per sample.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from torch import Tensor

from ...paths.dense import Coefficients, StageCoefficients
from ...terms.base import AbstractDriftTerm, stage_times
from ...terms.split import SplitTerm
from ..base import AbstractSolver, Carry, StepResult
from .esdirk import ESDIRKTableau
from .explicit import broadcast_step, combine_stages, hermite_coefficients, step_with
from .newton import Factorisation, NewtonOptions, batched_jacobian
from .stages import Parts, StageRun, attach_graph, merge_runs, run_stages

# A sample whose chord iteration contracted more slowly than this gets a fresh Jacobian next step.
REFRESH_RATE = 0.1


@dataclass(frozen=True)
class AbstractImplicitRK(NewtonOptions, AbstractSolver):
    """An ESDIRK method (or IMEX pair) given by the class attribute `tableau`.

    The carry is `(f0, g0, jac, refresh, fresh)`: the slope $F(t_0, y_0)$ `[B, *state]`, its
    implicit part `[B, *state]` (the same tensor unless the term is split), the Jacobian of the
    implicit part `[B, N, N]`, whether each sample needs a fresh one `[B]`, and whether it was
    computed at this step's start `[B]`. Implicit slopes are taken as $(z_i - r_i) / (h\\gamma)$,
    not by evaluating the field at $z_i$, which keeps Newton's residual out of stiff components.

    Gradients: the Newton iterations run without a graph; when one is being built, each stage takes
    one more Newton step from its converged iterate with the graph on and the exact Jacobian there,
    which gives the implicit-function-theorem derivative (exact up to the Newton tolerance) at one
    evaluation and one Jacobian per stage.

    Args:
        newton_tol: relative tolerance of the Newton iterate's estimated error (see
            `NewtonTolerance`); `None` uses the square root of the state dtype's machine epsilon
            (1.5e-8 in float64, 3.5e-4 in float32). Keep it about 1/300 of the controller's `rtol`:
            a looser one lets Newton's error, carried through the stages, into the solution (at
            1/100 it doubles the global error of Van der Pol mu=1000 at rtol 1e-6).
        newton_atol: absolute tolerance of the Newton update; `None` uses `newton_tol`. Lower it
            for components far below 1 in size.
        max_newton_iters: Newton iterations allowed per stage.

    `evals` counts, per sample `[B]`, one evaluation per Newton iteration it ran, explicit slope, and
    Jacobian it asked for (its forward pass), so it never depends on its batch mates.
    """

    tableau: ClassVar[ESDIRKTableau]
    term_types: ClassVar[tuple[type, ...]] = (AbstractDriftTerm,)

    @property
    def dense_order(self) -> int:
        """Order of the dense output: 3 (cubic Hermite, or the tableau's own polynomial)."""
        return 3

    @property
    def interpolates_saves(self) -> bool:
        """Interpolate save times only when the dense output is within one order of the method."""
        return self.dense_order >= self.order - 1

    def parts(self, term: AbstractDriftTerm) -> tuple[AbstractDriftTerm | None, AbstractDriftTerm]:
        """`(explicit, implicit)` parts of `term`: those of a `SplitTerm` under an IMEX tableau,
        else `(None, term)` (all implicit)."""
        if isinstance(term, SplitTerm) and self.tableau.explicit is not None:
            return term.explicit, term.implicit
        return None, term

    def init(self, term: AbstractDriftTerm, t0: Tensor, y0: Tensor, args: Any) -> tuple[Carry, int]:
        """The slopes at `(t0 [B], y0 [B, *state])`, no Jacobian yet; one evaluation per part."""
        explicit, implicit = self.parts(term)
        g0 = implicit.vector_field(t0, y0, args)
        f0 = g0 if explicit is None else explicit.vector_field(t0, y0, args) + g0
        size = y0[0].numel()
        jac = torch.zeros(y0.shape[0], size, size, dtype=y0.dtype, device=y0.device)
        refresh = torch.ones(y0.shape[0], dtype=torch.bool, device=y0.device)
        return (f0, g0, jac, refresh, ~refresh), 1 if explicit is None else 2

    def merge_carry(self, rows: Tensor, new: Carry, old: Carry) -> Carry:
        """Slopes from `new` for the `[B]` boolean `rows`; the Jacobian also where `new` computed
        it at the same start point (`fresh`), so a rejected step's retry reuses it."""
        keep = rows | new[4]
        slope = rows.reshape(rows.shape + (1,) * (new[0].ndim - 1))
        f0 = torch.where(slope, new[0], old[0])
        g0 = f0 if new[1] is new[0] and old[1] is old[0] else torch.where(slope, new[1], old[1])
        jac = torch.where(keep[:, None, None], new[2], old[2])
        refresh = torch.where(rows, new[3], old[3] & ~new[4])
        return (f0, g0, jac, refresh, new[4])

    def step(
        self, term: AbstractDriftTerm, t0: Tensor, y0: Tensor, h: Tensor, carry: Carry, args: Any, dense: bool
    ) -> StepResult:
        """One step of signed size `h` `[B]` from `(t0 [B], y0 [B, *state])`."""
        explicit, implicit = self.parts(term)
        times = stage_times(t0, h, self.tableau.c)
        hs = broadcast_step(h, y0)
        jac, refresh = carry[2], carry[3]
        evals = torch.zeros_like(refresh, dtype=torch.long)
        if bool(refresh.any()):
            jac = torch.where(refresh[:, None, None], batched_jacobian(implicit, t0, y0, args), jac)
            evals = evals + refresh
        with torch.no_grad():
            run = self._run(explicit, implicit, times, y0.detach(), hs, carry, jac, args)
            retry = run.failed & ~refresh
            if bool(retry.any()):
                jac = torch.where(retry[:, None, None], batched_jacobian(implicit, t0, y0, args), jac)
                run = merge_runs(retry, self._run(explicit, implicit, times, y0.detach(), hs, carry, jac, args), run)
                evals = evals + retry
        fresh = refresh | retry
        if torch.is_grad_enabled():
            run = attach_graph(self.tableau, (explicit, implicit), times, y0, hs, carry, run, args)
        run = replace(run, evals=run.evals + evals)
        return self._finish((explicit, implicit), times[0] + h, y0, hs, run, (jac, fresh), args, dense)

    def _run(
        self,
        explicit: AbstractDriftTerm | None,
        implicit: AbstractDriftTerm,
        times: list[Tensor],
        y0: Tensor,
        hs: Tensor,
        carry: Carry,
        jac: Tensor,
        args: Any,
    ) -> StageRun:
        """The stages of every sample without a graph, with the Jacobian `jac` `[B, N, N]`."""
        hg = hs * self.tableau.gamma
        factors = Factorisation.of(jac, hg.reshape(-1))
        return run_stages(self.tableau, (explicit, implicit), times, y0, hs, carry, factors, args, self.tolerance(y0))

    def _finish(
        self,
        parts: Parts,
        t1: Tensor,
        y0: Tensor,
        hs: Tensor,
        run: StageRun,
        jacobian: tuple[Tensor, Tensor],
        args: Any,
        dense: bool,
    ) -> StepResult:
        """The step's result from its stages: solution, error, next carry, dense output."""
        explicit, implicit = parts
        tab = self.tableau
        slopes = run.slopes()
        y1 = step_with(y0, hs, combine_stages(slopes, tab.b_terms))
        total, scale = combine_stages(slopes, tab.b_error_terms)
        error = total * (hs * scale)
        if tab.filter_error:
            error = Factorisation.of(jacobian[0], (hs * tab.gamma).reshape(-1)).solve(error)
        failed = run.failed | ~torch.isfinite(y1).flatten(1).all(dim=1)
        # An infinite error makes adaptive controllers reject the step and cut it hard.
        error = torch.where(failed.reshape((-1,) + (1,) * (error.ndim - 1)), torch.inf, error)
        evals = run.evals
        if explicit is None and tab.stiffly_accurate:
            f1 = g1 = run.implicit[-1]
        else:
            g1 = implicit.vector_field(t1, y1, args)
            f1 = g1 if explicit is None else explicit.vector_field(t1, y1, args) + g1
            evals = evals + (1 if explicit is None else 2)
        refresh = (run.rate > REFRESH_RATE) & ~failed
        carry = (f1, g1, jacobian[0], refresh, jacobian[1])
        coeffs = self._dense(y0, y1, slopes, f1, hs) if dense else None
        return StepResult(y1=y1, error=error, carry=carry, evals=evals, coeffs=coeffs, failed=failed)

    def _dense(self, y0: Tensor, y1: Tensor, slopes: list[Tensor], f1: Tensor, hs: Tensor) -> Coefficients:
        """Dense-output coefficients: the IMEX pair's polynomial in the stages (kept as the stages,
        see `StageCoefficients`), or the cubic Hermite `[B, 3, *state]`."""
        explicit = self.tableau.explicit
        matrix = None if explicit is None else explicit.dense_matrix(y0.dtype, y0.device)
        if matrix is None:
            return hermite_coefficients(y0, y1, slopes[0], f1, hs)
        return StageCoefficients(tuple(slopes), hs, matrix)
