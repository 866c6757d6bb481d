"""Jacobian spectra of a term along a trajectory: eigenvalues, the symmetric part, stiffness.

At each saved point $(t_k, y_k)$ of a solution, $J_k = \\partial F / \\partial y\\,(t_k, y_k)$ of the
term's vector field $F$ is formed for every sample at once (one call of $F$ per saved time and N
batched vector-Jacobian products), then

- its eigenvalues $\\lambda_i(J_k)$: the local linear rates (an explicit solver is stable where
  $h\\lambda_i$ lies in its stability region, see `neuralct.stability.regions`);
- the eigenvalues of its symmetric part $(J_k + J_k^\\top)/2$: the largest bounds how fast
  nearby trajectories can separate in the Euclidean norm, $\\tfrac{d}{dt}\\|\\delta\\| \\le
  \\mu_{max}\\|\\delta\\|$ (the logarithmic norm);
- the stiffness ratio $\\max_i |\\mathrm{Re}\\,\\lambda_i| / \\min_i |\\mathrm{Re}\\,\\lambda_i|$
  over the eigenvalues with negative real part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._checks import describe
from ..data.series import IrregularBatch
from ..errors import InvalidInputError, SolveFailed
from ..models.base import AbstractContinuousModel, AbstractSequenceModel, SolveOptions
from ..terms.base import AbstractDriftTerm, AbstractTerm
from .lyapunov import step_jacobian


@dataclass(frozen=True)
class JacobianSpectra:
    """Spectra of the vector field's Jacobian at each saved point of each sample.

    Attributes:
        times: `[B, K]` the times of the points.
        jacobians: `[B, K, N, N]` the Jacobians.
        eigenvalues: `[B, K, N]` complex eigenvalues, sorted by decreasing real part.
        symmetric: `[B, K, N]` real eigenvalues of the symmetric part, decreasing.
        stiffness: `[B, K]` the stiffness ratio (NaN where fewer than one eigenvalue has a
            negative real part, 1 where exactly one has).
    """

    times: Tensor
    jacobians: Tensor
    eigenvalues: Tensor
    symmetric: Tensor
    stiffness: Tensor

    def max_real(self) -> Tensor:
        """`[B, K]` the largest real part of the eigenvalues (the fastest local growth rate)."""
        return self.eigenvalues.real[..., 0]

    def spectral_abscissa(self) -> Tensor:
        """`[B]` the largest real part of any eigenvalue along each trajectory."""
        return self.max_real().amax(dim=1)


def jacobian_spectra(term: AbstractDriftTerm, times: Tensor, states: Tensor, args: Any = None) -> JacobianSpectra:
    """The Jacobian spectra of `term`'s vector field at the points `(times[b, k], states[b, k])`.

    Args:
        term: any drift term (`ODETerm`, a model's term, a linear SSM term, ...).
        times: `[B, K]` times, e.g. `solution.ts`.
        states: `[B, K, N]` states at those times, e.g. `solution.ys` (a flat state).
        args: passed to the vector field.

    Returns:
        The spectra (see `JacobianSpectra`).

    Raises:
        InvalidInputError: a term without a vector field, shapes that do not match, or
            non-finite states.
    """
    if not isinstance(term, AbstractDriftTerm):
        raise InvalidInputError(f"`term` must be a drift term (it has a vector field); got {describe(term)}")
    check_trajectory(times, states)
    jacobians = torch.stack([_jacobian_at(term, times[:, k], states[:, k], args) for k in range(times.shape[1])], 1)
    return spectra_of(times, jacobians)


def check_trajectory(times: Tensor, states: Tensor) -> None:
    """Raise `InvalidInputError` unless `states` `[B, K, N]` are finite states at `times` `[B, K]`."""
    if states.ndim != 3 or times.shape != states.shape[:2]:
        raise InvalidInputError(
            f"`states` must be [B, K, N] and `times` [B, K] for the same B and K; got {tuple(states.shape)} "
            f"and {tuple(times.shape)}"
        )
    if not bool(torch.isfinite(states).all()):
        raise InvalidInputError("`states` must be finite (a failed solve's NaN points have no Jacobian)")


def spectra_of(times: Tensor, jacobians: Tensor) -> JacobianSpectra:
    """The `JacobianSpectra` of Jacobians `[B, K, N, N]` taken at `times` `[B, K]`."""
    return JacobianSpectra(times, jacobians, *_spectra(jacobians))


def _jacobian_at(term: AbstractDriftTerm, t: Tensor, y: Tensor, args: Any) -> Tensor:
    """`[B, N, N]` the field's Jacobian at `(t [B], y [B, N])`: the batch as the term knows it
    (a model's term reads its input path per sample)."""
    return step_jacobian(lambda state, _: term.vector_field(t, state, args), y)[1]


def model_jacobian_spectra(
    model: AbstractContinuousModel, batch: IrregularBatch, options: SolveOptions | None = None
) -> JacobianSpectra:
    """The Jacobian spectra of a continuous model's vector field along its own trajectories:
    the model is solved on `batch` in eval mode (under `options`, default its own numerics) and
    the spectra are taken at every saved point (padding included, where the input is held).

    Raises:
        InvalidInputError: a model that is not one equation over the series
            (`AbstractContinuousModel`) or whose term has no vector field (a delay or noise term),
            or a solve whose states are not flat `[B, K, N]`.
    """
    if not isinstance(model, AbstractContinuousModel):
        raise InvalidInputError(
            f"`model` must be an AbstractContinuousModel (one equation over the series); got {describe(model)}"
        )
    return jacobian_spectra(*evaluation_solve(model, batch, options))


def jacobian_monitor(model: AbstractSequenceModel, val: IrregularBatch, options: SolveOptions | None) -> float | None:
    """The largest real part of the Jacobian eigenvalues along the model's solves of up to 16
    series of `val` (the `monitor` that `neuralct fit --monitor-jacobian` hands to
    [`fit`][neuralct.train.fit] for the `max_jacobian_real` column).

    Returns:
        The number, or `None` for a model that is not one ODE over the series (a jump model, a
        delay or noise term) and when one of the series fails its solve (counted in `val_failed`).
    """
    if not isinstance(model, AbstractContinuousModel):
        return None
    series = val.select(slice(0, min(16, val.batch_size)))
    try:
        return float(model_jacobian_spectra(model, series, options).spectral_abscissa().max())
    except (InvalidInputError, SolveFailed):  # no vector field to differentiate, or a failed solve
        return None


def evaluation_solve(
    model: AbstractContinuousModel, batch: IrregularBatch, options: SolveOptions | None
) -> tuple[AbstractTerm, Tensor, Tensor]:
    """`model`'s term for `batch` and its solution's save times `[B, K]` and states `[B, K, ...]`,
    solved in eval mode without gradients (the model's mode is restored)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            solution = model.solution(batch, options)
        return model.term(batch), solution.ts, solution.ys
    finally:
        model.train(was_training)


def _spectra(jacobians: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    eigenvalues = torch.linalg.eigvals(jacobians)
    order = eigenvalues.real.argsort(dim=-1, descending=True)
    eigenvalues = eigenvalues.gather(-1, order)
    symmetric = torch.linalg.eigvalsh((jacobians + jacobians.transpose(-1, -2)) / 2).flip(-1)
    return eigenvalues, symmetric, _stiffness(eigenvalues.real)


def _stiffness(real: Tensor) -> Tensor:
    """`max |Re| / min |Re|` over the negative real parts (NaN with none)."""
    decaying = real < 0
    magnitude = real.abs()
    largest = torch.where(decaying, magnitude, torch.zeros_like(magnitude)).amax(dim=-1)
    smallest = torch.where(decaying, magnitude, torch.full_like(magnitude, torch.inf)).amin(dim=-1)
    return torch.where(decaying.any(dim=-1), largest / smallest, torch.full_like(largest, torch.nan))


__all__ = ["JacobianSpectra", "jacobian_monitor", "jacobian_spectra", "model_jacobian_spectra"]
