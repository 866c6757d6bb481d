"""The stages of one ESDIRK (or IMEX) step for every sample: solved without a graph, then, when a
graph is being built, differentiated through by one exact Newton step per stage."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from ...terms.base import AbstractDriftTerm
from ..base import Carry
from .esdirk import ESDIRKTableau
from .explicit import combine_stages, step_with
from .newton import Factorisation, NewtonTolerance, batched_jacobian, solve_stage

# `(explicit part or None, implicit part)` of the term being stepped.
Parts = tuple[AbstractDriftTerm | None, AbstractDriftTerm]


@dataclass(frozen=True)
class StageRun:
    """The stages of one step.

    Attributes:
        implicit: the `s` slopes of the implicit part, each `[B, *state]` (stage 0: the carry's).
        explicit: the `s` slopes of the explicit part, or `None` when nothing is explicit.
        z: the `s` stage values `[B, *state]` (stage 0: the step's start).
        failed: `[B]` samples whose Newton iteration failed at some stage.
        rate: `[B]` slowest contraction factor of their iterations.
        evals: field evaluations each sample spent, `[B]` (or an int, the same for all).
    """

    implicit: list[Tensor]
    explicit: list[Tensor] | None
    z: list[Tensor]
    failed: Tensor
    rate: Tensor
    evals: int | Tensor

    def slopes(self) -> list[Tensor]:
        """The stage slopes of the whole field, `[B, *state]` each."""
        if self.explicit is None:
            return self.implicit
        return [g + f for g, f in zip(self.implicit, self.explicit)]


def run_stages(
    tab: ESDIRKTableau,
    parts: Parts,
    times: list[Tensor],
    y0: Tensor,
    hs: Tensor,
    carry: Carry,
    factors: Factorisation,
    args: Any,
    tol: NewtonTolerance,
) -> StageRun:
    """Solve stages 1 to s - 1 in turn from `y0` `[B, *state]` over the step `hs` `[B, 1, ...]`.

    Each stage starts Newton from the guess that its implicit slope equals the previous stage's
    (the extrapolation a smooth solution makes good); a sample that failed at one stage is not
    iterated at the later ones, and each stage's test after its first iteration uses the
    contraction the sample showed at the stage before.
    """
    explicit, implicit = parts
    hg, inverse = _scaled_gamma(tab, hs)
    slopes_i, slopes_e = [carry[1]], None if explicit is None else [carry[0] - carry[1]]
    zs, evals = [y0], 0
    failed = torch.zeros(y0.shape[0], dtype=torch.bool, device=y0.device)
    rate = last = torch.zeros(y0.shape[0], dtype=y0.dtype, device=y0.device)
    for i in range(1, tab.stages):
        rhs = _known(tab, i, y0, hs, slopes_i, slopes_e)
        t = times[i]
        solved = solve_stage(
            lambda z, t=t: implicit.vector_field(t, z, args),
            rhs,
            _predict(tab, i, zs, hs, carry[0]),
            hg,
            factors,
            tol,
            skip=failed,
            rate=last,
        )
        slopes_i.append((solved.z - rhs) * inverse)
        if slopes_e is not None:
            slopes_e.append(explicit.vector_field(t, solved.z, args))
            evals = evals + 1
        zs.append(solved.z)
        failed, last, evals = solved.failed, solved.rate, evals + solved.iterations
        rate = torch.maximum(rate, last)
    return StageRun(slopes_i, slopes_e, zs, failed, rate, evals)


def attach_graph(
    tab: ESDIRKTableau,
    parts: Parts,
    times: list[Tensor],
    y0: Tensor,
    hs: Tensor,
    carry: Carry,
    run: StageRun,
    args: Any,
) -> StageRun:
    """`run` with its slopes recomputed on the graph: from each converged stage value $z^*_i$ one
    Newton step $z_i = z^*_i - M_i^{-1} G_i(z^*_i)$ with $M_i = I - h\\gamma J(t_i, z^*_i)$ held
    constant, so $\\partial z_i = M_i^{-1} \\partial(r_i + h\\gamma F)$: the implicit-function
    derivative. Returns `run` with one more evaluation (the probe of stage 1) when nothing it
    depends on requires a gradient."""
    explicit, implicit = parts
    hg, inverse = _scaled_gamma(tab, hs)
    slopes_i, slopes_e = [carry[1]], None if explicit is None else [carry[0] - carry[1]]
    evals = run.evals
    for i in range(1, tab.stages):
        rhs = _known(tab, i, y0, hs, slopes_i, slopes_e)
        z_star = run.z[i]
        g = implicit.vector_field(times[i], z_star, args)
        if i == 1 and not (g.requires_grad or rhs.requires_grad):  # the probe `g` was an evaluation
            return replace(run, evals=run.evals + 1)
        factors = Factorisation.of(batched_jacobian(implicit, times[i], z_star, args), hg.reshape(-1))
        z = z_star - factors.solve(torch.addcmul(z_star - rhs, hg, g, value=-1))
        slopes_i.append((z - rhs) * inverse)
        if slopes_e is not None:
            slopes_e.append(explicit.vector_field(times[i], z, args))
            evals = evals + 1
        evals = evals + 2
    return StageRun(slopes_i, slopes_e, run.z, run.failed, run.rate, evals)


def merge_runs(rows: Tensor, new: StageRun, old: StageRun) -> StageRun:
    """`new` for the `[B]` boolean `rows`, `old` elsewhere; the evaluations of both for `rows`, of `old`
    elsewhere (the others' second run is discarded, as it would not have happened alone)."""
    state = rows.reshape(rows.shape + (1,) * (new.z[0].ndim - 1))

    def pick(a: list[Tensor], b: list[Tensor]) -> list[Tensor]:
        return [torch.where(state, x, y) for x, y in zip(a, b)]

    explicit = None if new.explicit is None or old.explicit is None else pick(new.explicit, old.explicit)
    return StageRun(
        implicit=pick(new.implicit, old.implicit),
        explicit=explicit,
        z=pick(new.z, old.z),
        failed=torch.where(rows, new.failed, old.failed),
        rate=torch.where(rows, new.rate, old.rate),
        evals=torch.where(rows, new.evals + old.evals, old.evals),
    )


def _known(
    tab: ESDIRKTableau, i: int, y0: Tensor, hs: Tensor, slopes_i: list[Tensor], slopes_e: list[Tensor] | None
) -> Tensor:
    """`[B, *state]` the known part $r_i = y_0 + h \\sum_{j<i} (a_{ij} k^g_j + \\hat a_{ij} k^f_j)$."""
    rhs = step_with(y0, hs, combine_stages(slopes_i, tab.a_terms[i]))
    if slopes_e is not None and tab.explicit is not None:
        rhs = step_with(rhs, hs, combine_stages(slopes_e, tab.explicit.a_terms[i]))
    return rhs


def _predict(tab: ESDIRKTableau, i: int, zs: list[Tensor], hs: Tensor, f0: Tensor) -> Tensor:
    """`[B, *state]` Newton's first guess for stage `i`: the quadratic through $y_0$ with slope
    $f_0$ and the solved stage $z_j$ nearest in time ($z(c) = y_0 + c h f_0 + (c / c_j)^2
    (z_j - y_0 - c_j h f_0)$), or $y_0 + c_i h f_0$ for the first stage. Exact for quadratics, so
    Newton starts within $O(h^3)$ of a smooth solution."""
    c = tab.c
    if i == 1:
        return zs[0] if not tab.extrapolate else torch.addcmul(zs[0], hs, f0, value=c[1])
    j = min(range(1, i), key=lambda k: (abs(c[k] - c[i]), -k))
    ratio = c[i] / c[j]
    curve = torch.addcmul(zs[j] - zs[0], hs, f0, value=-c[j])
    return torch.addcmul(zs[0], hs, f0, value=c[i]).add_(curve, alpha=ratio * ratio)


def _scaled_gamma(tab: ESDIRKTableau, hs: Tensor) -> tuple[Tensor, Tensor]:
    """$h\\gamma$ `[B, 1, ...]` and its reciprocal (0 for a zero step, whose stages are $y_0$)."""
    hg = hs * tab.gamma
    return hg, torch.where(hg == 0, 0.0, hg.reciprocal())
