"""The linearisation of a delay equation along a trajectory: what of the Jacobian analysis applies.

Near a point $(t_k, y_k)$ of a solution of $\\dot y = f(t, y(t), y(t - \\tau_1), \\dots)$, the
perturbations follow the linear delay equation

$$\\dot\\delta(t) = A_k\\,\\delta(t) + \\sum_i B_{i,k}\\,\\delta(t - \\tau_i),\\qquad
A_k = \\partial f / \\partial y(t),\\quad B_{i,k} = \\partial f / \\partial y(t - \\tau_i).$$

Its characteristic equation $\\det(\\lambda I - A - \\sum_i B_i e^{-\\lambda\\tau_i}) = 0$ has infinitely
many roots, so there is no finite spectrum to plot. What is measured instead:

- the spectrum of $A_k$ (`instantaneous`, a `JacobianSpectra`): the rates of the part that the
  method of steps integrates with its inner Runge-Kutta method (the delayed values enter each step
  as known inputs), so $h\\lambda(A_k)$ in the inner method's stability region is what a step needs;
- $\\|B_{i,k}\\|_2$ (`delayed_norms`) and the Halanay bound $\\mu_2(A_k) + \\sum_i \\|B_{i,k}\\|_2$,
  $\\mu_2$ the largest eigenvalue of the symmetric part: where it is negative the linearised delay
  equation contracts whatever the delays (Halanay, "Differential Equations: Stability,
  Oscillations, Time Lags", Academic Press 1966, section 4.5).

The delayed states $y(t_k - \\tau_i)$ are read from the saved trajectory by linear interpolation
(exact where the delays are multiples of the save grid) and from the term's history before it starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import describe
from ..data.series import IrregularBatch
from ..errors import InvalidInputError
from ..models.base import AbstractContinuousModel, SolveOptions
from ..terms.delay import DelayTerm
from .jacobian import JacobianSpectra, check_trajectory, evaluation_solve, spectra_of


@dataclass(frozen=True)
class DelayLinearisation:
    """The linearised delay field at each saved point of each sample.

    Attributes:
        instantaneous: spectra of $A = \\partial f / \\partial y(t)$, `[B, K, N]` eigenvalues.
        delayed_norms: `[B, K, n]` spectral norms of $B_i = \\partial f / \\partial y(t - \\tau_i)$.
    """

    instantaneous: JacobianSpectra
    delayed_norms: Tensor

    def halanay(self) -> Tensor:
        """`[B, K]` $\\mu_2(A) + \\sum_i \\|B_i\\|_2$: negative where the linearisation contracts for any delays."""
        return self.instantaneous.symmetric[..., 0] + self.delayed_norms.sum(dim=-1)


def delay_linearisation(term: DelayTerm, times: Tensor, states: Tensor) -> DelayLinearisation:
    """The linearisation of `term`'s field at the points `(times[b, k], states[b, k])` of a forward solve.

    Args:
        term: the delay term that was solved.
        times: `[B, K]` increasing save times, e.g. `solution.ts`.
        states: `[B, K, N]` the states there, e.g. `solution.ys` (a flat state).

    Raises:
        InvalidInputError: a term that is not a `DelayTerm`, shapes that do not match, or
            non-finite states.
    """
    if not isinstance(term, DelayTerm):
        raise InvalidInputError(f"`term` must be a DelayTerm; got {describe(term)}")
    check_trajectory(times, states)
    taus = term.delay_values(times).detach()
    parts = [_linearised_at(term, times, states, k, taus) for k in range(times.shape[1])]
    instantaneous, delayed = (torch.stack(part, dim=1) for part in zip(*parts))
    return DelayLinearisation(spectra_of(times, instantaneous), delayed)


def _linearised_at(term: DelayTerm, times: Tensor, states: Tensor, k: int, taus: Tensor) -> tuple[Tensor, Tensor]:
    """At save index `k`: `[B, N, N]` $A$ and `[B, n]` $\\|B_i\\|_2$."""
    t, y = times[:, k], states[:, k]
    lagged = torch.stack([_state_at(term, times, states, t - tau) for tau in taus], dim=1)  # [B, n, N]
    instantaneous = _jacobian(lambda z: term.vector_field(t, z, lagged, None), y)
    flat = _jacobian(lambda z: term.vector_field(t, y, z, None), lagged)  # [B, N, n, N]
    return instantaneous, torch.linalg.matrix_norm(flat.movedim(-2, 1), ord=2)


def _jacobian(field: Callable[[Tensor], Tensor], z: Tensor) -> Tensor:
    """`[B, N, *z.shape[1:]]` the per-sample Jacobian of `field` (`z` -> `[B, N]`) at `z`: N batched
    vector-Jacobian products (the delayed part is not square, so `step_jacobian` does not apply)."""
    with torch.enable_grad():
        state = z.detach().requires_grad_(True)
        out = field(state)
        if not out.requires_grad:  # a field that does not read this part of its input
            return out.new_zeros(*out.shape, *z.shape[1:])
        size = out.shape[1]
        basis = torch.eye(size, dtype=out.dtype, device=out.device)[:, None, :].expand(size, *out.shape)
        rows = torch.autograd.grad(out, state, grad_outputs=basis, is_grads_batched=True, allow_unused=True)[0]
    return out.new_zeros(*out.shape, *z.shape[1:]) if rows is None else rows.movedim(0, 1)


def _state_at(term: DelayTerm, times: Tensor, states: Tensor, query: Tensor) -> Tensor:
    """`[B, N]` the state at `query` `[B]`: linear between saved points, the history before the first."""
    right = torch.searchsorted(times.contiguous(), query[:, None]).clamp(1, times.shape[1] - 1)
    left = right - 1
    t0, t1 = times.gather(1, left), times.gather(1, right)
    weight = ((query[:, None] - t0) / (t1 - t0)).clamp(0.0, 1.0)[..., None]
    y0, y1 = (states.gather(1, i[..., None].expand(-1, -1, states.shape[-1])) for i in (left, right))
    inside = (y0 + weight * (y1 - y0))[:, 0]
    before = query < times[:, 0]
    if not bool(before.any()):
        return inside
    return torch.where(before[:, None], term.history_at(query, inside), inside)


def model_delay_linearisation(
    model: AbstractContinuousModel, batch: IrregularBatch, options: SolveOptions | None = None
) -> DelayLinearisation:
    """`delay_linearisation` along a delay model's own solves on `batch` (eval mode, under
    `options`, default its own numerics), at every saved point.

    Raises:
        InvalidInputError: a model whose term is not a `DelayTerm`, or states not flat `[B, K, N]`.
    """
    return delay_linearisation(*evaluation_solve(model, batch, options))


__all__ = ["DelayLinearisation", "delay_linearisation", "model_delay_linearisation"]
