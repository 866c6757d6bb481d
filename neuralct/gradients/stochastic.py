"""The stochastic adjoint: gradients of a Stratonovich SDE solve by its adjoint SDE, solved backwards."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._loop import advance, finish, initial_state
from ..errors import IncompatibleTermError
from ..problem import Problem
from ..solution import Solution
from ..terms.noise import SDEType
from ..terms.sde import SDETerm
from ._sde_adjoint_field import SDEAdjointSystem
from .backsolve import _failed_samples_without_cotangent, _raise_if_failed
from .base import AbstractGradient


@dataclass(frozen=True)
class StochasticAdjoint(AbstractGradient):
    """Continuous adjoint of a Stratonovich SDE: solve the adjoint SDE backwards in time on the
    same Brownian path (Li, Wong, Chen & Duvenaud, "Scalable Gradients for Stochastic
    Differential Equations", AISTATS 2020).

    From each save time to the previous one, every sample solves $[y, a, a_\\theta]$ backwards
    with $da = -a^\\top \\partial_y f\\,dt - a^\\top \\partial_y g \\circ dW$ and
    $da_\\theta = -a^\\top \\partial_\\theta f\\,dt - a^\\top \\partial_\\theta g \\circ dW$, with the
    forward solver and controller, its state reset to the forward value at every save time and
    the cotangent of each output added there. The Brownian motion is queried over the backward
    steps, so it must be one that can be asked for any interval again (`nct.BrownianPath`; a
    `BrownianGrid` only when the backward steps land on its grid). The gradient is that of the
    SDE's solution on that path: it differs from `Backprop`'s gradient of the discrete solve by
    the discretisation error, which vanishes as `dt` does (at the solver's strong order), and
    memory does not grow with the steps. For exact discrete gradients at flat memory use
    `ReversibleAdjoint` with `ReversibleHeun`.

    Needs a Stratonovich `SDETerm` (with Itô noise the adjoint has another drift) and a solver
    that accepts general Stratonovich noise (`StochasticHeun`, `ReversibleHeun`): the adjoint
    SDE has a `[B, 2N + P, M]` diffusion for N state entries, P parameter entries and M noise
    channels (M = N for diagonal noise). The drift and diffusion are called one sample at a
    time (`torch.func.vmap`). What gets a gradient: `y0`, the term's parameters and the tensors
    in `args` that require grad; `Solution.ys` and `y_final` carry gradients.
    """

    def check(self, problem: Problem) -> None:
        """Raise `IncompatibleTermError` unless the term is a Stratonovich `SDETerm` whose
        adjoint (general noise) the solver can integrate."""
        term = problem.term
        if not isinstance(term, SDETerm) or term.sde_type != SDEType.STRATONOVICH:
            kind = f"an SDETerm with {term.sde_type}" if isinstance(term, SDETerm) else f"a {type(term).__name__}"
            raise IncompatibleTermError(
                f"StochasticAdjoint differentiates Stratonovich SDEs (SDETerm with SDEType.STRATONOVICH); got {kind}. "
                f"Use gradient=nct.Backsolve() for ODE terms, or nct.Backprop()"
            )
        probe = SDEAdjointSystem(term, None, torch.Size([1])).term()
        try:
            problem.solver.check_term(probe)
        except IncompatibleTermError as err:
            raise IncompatibleTermError(
                f"StochasticAdjoint integrates the adjoint SDE, which has general noise, with the forward solver "
                f"{type(problem.solver).__name__}, which cannot: use nct.StochasticHeun() or nct.ReversibleHeun() "
                f"({err})"
            ) from None

    def run(self, problem: Problem, y0: Tensor) -> Solution:
        """Solve forwards without a graph; attach the adjoint SDE's backward pass to `ys`."""
        system = SDEAdjointSystem(problem.term, problem.args, y0.shape[1:])  # type: ignore[arg-type]
        if not (torch.is_grad_enabled() and (y0.requires_grad or system.inputs)):
            with torch.no_grad():
                return finish(problem, advance(problem, initial_state(problem, y0)))
        system.probe(problem.ts[:, 0], y0)
        holder: dict[str, Solution] = {}
        ys = _StochasticAdjointFunction.apply(problem, system, holder, y0, *system.inputs)
        solution = holder["solution"]
        ok = solution.succeeded.reshape((-1,) + (1,) * (y0.ndim - 1))
        return dataclasses.replace(solution, ys=ys, y_final=torch.where(ok, ys[:, -1], solution.y_final))


def backward_problem(problem: Problem, system: SDEAdjointSystem, k: int, skip: Tensor) -> Problem:
    """The adjoint SDE from save time k + 1 back to k, with the forward solver and controller;
    samples in `skip` `[B]` and those that end at save time k or before stay where they are."""
    start = problem.ts[:, k + 1]
    lengths = None if problem.lengths is None else torch.where(problem.lengths > k + 1, 2, 1)
    return Problem(
        term=system.term(),
        solver=problem.solver,
        controller=problem.controller,
        ts=torch.stack([start, torch.where(skip, start, problem.ts[:, k])], dim=1),
        direction=-problem.direction,
        args=None,
        max_steps=problem.max_steps,
        dt0=None,
        dense=False,
        jumps=None if problem.jumps is None else problem.jumps.flip(1),
        lengths=lengths,
    )


class _StochasticAdjointFunction(torch.autograd.Function):
    """`ys = solve(y0; inputs)` with the adjoint SDE as its backward."""

    @staticmethod
    def forward(
        ctx: Any, problem: Problem, system: SDEAdjointSystem, holder: dict, y0: Tensor, *inputs: Tensor
    ) -> Tensor:
        solution = finish(problem, advance(problem, initial_state(problem, y0.detach())))
        holder["solution"] = solution
        ctx.problem, ctx.system, ctx.status = problem, system, solution.status
        ctx.save_for_backward(solution.ys)
        return solution.ys.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_ys: Tensor) -> tuple[Tensor | None, ...]:
        (ys,) = ctx.saved_tensors
        problem, system = ctx.problem, ctx.system
        grad_ys = torch.zeros_like(ys) if grad_ys is None else grad_ys
        skip = _failed_samples_without_cotangent(ctx.status, grad_ys, "StochasticAdjoint")
        grad_ys = torch.where(skip.reshape((-1,) + (1,) * (ys.ndim - 1)), 0.0, grad_ys)
        batch, n = ys.shape[0], system.state_size
        a = grad_ys[:, -1].reshape(batch, n)
        a_inputs = ys.new_zeros(batch, system.input_size)
        for k in range(problem.ts.shape[1] - 2, -1, -1):
            sub = backward_problem(problem, system, k, skip)
            z0 = torch.cat([torch.nan_to_num(ys[:, k + 1]).reshape(batch, n), a, a_inputs], dim=1)
            with torch.no_grad():
                solution = finish(sub, advance(sub, initial_state(sub, z0)))
            _raise_if_failed(solution, skip, problem.ts, k, problem.max_steps, "StochasticAdjoint")
            z1 = torch.where(skip[:, None], torch.zeros_like(z0), solution.y_final)
            a = z1[:, n : 2 * n] + grad_ys[:, k].reshape(batch, n)
            a_inputs = z1[:, 2 * n :]
        grad_y0 = torch.where(skip[:, None], torch.zeros_like(a), a).reshape(ys[:, 0].shape)
        grads, offset = [], 0
        for x in system.inputs:
            grads.append(a_inputs[:, offset : offset + x.numel()].sum(dim=0).reshape(x.shape).to(x.dtype))
            offset += x.numel()
        return (None, None, None, grad_y0, *grads)
