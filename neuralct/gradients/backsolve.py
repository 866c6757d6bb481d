"""Optimise-then-discretise: the continuous adjoint, solved backwards in time per sample."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._checks import check_instance, check_number
from .._loop import advance, finish, initial_state
from .._loop.compile import compile_refusal
from ..controllers.base import AbstractController
from ..controllers.pid import PIDController
from ..errors import IncompatibleTermError, InvalidInputError, SolveFailed
from ..problem import Problem
from ..solution import Solution, Status, failure_message
from ..solvers.base import AbstractSolver
from ..terms.base import AbstractDriftTerm
from ._adjoint_field import AdjointNorm, AdjointSystem
from .base import AbstractGradient

# Backward steps whose records one parameter quadrature takes (seminorm): few enough that the
# records and the quadrature's graph stay small, enough to batch its field calls.
QUADRATURE_STEPS = 8


@dataclass(frozen=True)
class Backsolve(AbstractGradient):
    """Continuous adjoint: solve the augmented adjoint ODE backwards in time (Chen, Rubanova,
    Bettencourt & Duvenaud, "Neural Ordinary Differential Equations", NeurIPS 2018).

    The backward pass integrates, for every sample on its own time grid and with its own
    step sizes, $[y, a, a_\\theta]$ with $\\dot a = -a^\\top \\partial_y f$ and
    $\\dot a_\\theta = -a^\\top \\partial_\\theta f$ from each save time to the previous one,
    adding the incoming cotangent of `ys[:, k]` at save time k. The state is reset to the
    forward value at every save time. The gradient is that of the exact solution, so it
    matches the discrete gradient of `Backprop` only up to the solver tolerances, and can be
    inaccurate for stiff or chaotic dynamics (Kim et al., "Stiff neural ordinary
    differential equations", Chaos 31, 2021).

    The forward solve keeps no graph and the backward solve keeps no record of its past
    steps, so memory does not grow with the number of steps. With the full norm every sample
    integrates its own parameter adjoint: the backward solve holds a few copies (its stages)
    of a `[B, 2N + P]` state, for N state and P parameter entries, which is more than
    `Backprop` needs over a few steps when P is large.

    What gets a gradient: `y0`, the parameters of the term (`term.parameters()` that
    require grad; the term is an `nn.Module` holding `f`) and the tensors in `args` that
    require grad. Tensors the vector field captures by closure, or that a term stores
    without registering them as parameters, are not seen: if such a tensor requires grad,
    `solve` raises `IncompatibleTermError` instead of silently dropping its gradient.
    Times (`t`) get no gradient. Only `Solution.ys` (and `y_final` of successful samples)
    carry gradients; the dense output does not. Double backward is not supported.

    Per-sample parameter adjoints use `torch.func.vmap` over per-sample VJPs when the field
    can be called one sample at a time, and batched VJPs with one cotangent per sample
    otherwise (O(B^2) work, e.g. for `ControlTerm`s whose path holds per-sample data).

    With `solve(..., compile=True)` the backward solve's steps run under `torch.compile`, with
    the per-sample VJPs of the full norm in them (the seminorm's parameter quadrature stays
    eager, one batched product every eight steps; so do the full norm's steps when its VJPs are
    the batched ones, which cannot be traced). On the benchmark's neural-ODE train step
    (batch 32, Dopri5 at 1e-6) that takes the full-norm adjoint from 211 ms to 49 ms, after
    about 18 s of compiling on first use; a field whose per-sample VJPs cannot be compiled falls
    back to eager ones.

    Args:
        rtol: relative tolerance of the backward solve; `None` takes the forward
            `PIDController`'s. With a `ConstantStep` forward and no tolerances, the backward
            solve uses the same `ConstantStep`.
        atol: absolute tolerance of the backward solve; `None` as for `rtol`.
        seminorm: leave the parameter adjoint out of the backward error norm (Kidger, Chen &
            Lyons, "'Hey, that's not an ODE'", ICML 2021); fewer backward steps, same
            accuracy for $y_0$ and, in practice, for the parameters. With a backward solver
            that has dense output, the parameter adjoint is then not integrated per sample
            but computed as a quadrature over the backward steps, summed over the batch
            and accumulated every eight steps as the backward solve goes (much
            cheaper: no per-sample parameter products).
        solver: solver of the backward solve; `None` takes the forward solver.
    """

    rtol: float | None = None
    atol: float | None = None
    seminorm: bool = False
    solver: AbstractSolver | None = None

    def __post_init__(self) -> None:
        for name in ("rtol", "atol"):
            check_number(name, getattr(self, name), 0, optional=True)
        check_instance("seminorm", self.seminorm, bool)
        if self.solver is not None:
            check_instance("solver", self.solver, AbstractSolver, "None or an AbstractSolver")

    def check(self, problem: Problem) -> None:
        """Raise `IncompatibleTermError` unless the term is a drift term whose augmented
        system the backward solver and controller can integrate."""
        if not isinstance(problem.term, AbstractDriftTerm):
            raise IncompatibleTermError(
                f"Backsolve differentiates ODE-like (drift) terms only; got a {type(problem.term).__name__}. "
                f"Use gradient=nct.Backprop() (optionally with checkpoint_every=k) for this term"
            )
        solver = self.solver or problem.solver
        probe = AdjointSystem(problem.term, None, torch.Size([1])).term()
        try:
            solver.check_term(probe)
        except IncompatibleTermError as err:
            raise IncompatibleTermError(
                f"Backsolve integrates the adjoint system (an ODETerm) backwards, which {type(solver).__name__} "
                f"cannot do; pass Backsolve(solver=nct.Tsit5()) or similar ({err})"
            ) from None
        self._backward_controller(problem.controller, 1).check_solver(solver)

    def _backward_controller(self, forward: AbstractController, state_size: int) -> AbstractController:
        if isinstance(forward, PIDController):
            rtol = forward.rtol if self.rtol is None else self.rtol
            atol = forward.atol if self.atol is None else self.atol
            norm = AdjointNorm(forward.norm, state_size, self.seminorm)
            return dataclasses.replace(forward, rtol=rtol, atol=atol, norm=norm)
        if self.rtol is None and self.atol is None:
            return forward
        defaults = PIDController()
        return PIDController(
            rtol=defaults.rtol if self.rtol is None else self.rtol,
            atol=defaults.atol if self.atol is None else self.atol,
            norm=AdjointNorm(defaults.norm, state_size, self.seminorm),
        )

    def run(self, problem: Problem, y0: Tensor) -> Solution:
        """Solve forwards without a graph; attach the adjoint backward pass to `ys`."""
        system = AdjointSystem(problem.term, problem.args, y0.shape[1:], compile=problem.compile)
        needs_grad = torch.is_grad_enabled() and (y0.requires_grad or any(x.requires_grad for x in system.inputs))
        if not needs_grad:
            with torch.no_grad():
                return finish(problem, advance(problem, initial_state(problem, y0)))
        system.probe(problem.ts[:, 0], y0)
        holder: dict[str, Solution] = {}
        ys = _BacksolveFunction.apply(self, problem, system, holder, y0, *system.inputs)
        solution = holder["solution"]
        ok = solution.succeeded.reshape((-1,) + (1,) * (y0.ndim - 1))
        y_final = torch.where(ok, ys[:, -1], solution.y_final)
        return dataclasses.replace(solution, ys=ys, y_final=y_final)

    def integrates_parameters_by_quadrature(self, problem: Problem) -> bool:
        """Whether the backward solve carries `[y, a]` only and the parameter adjoint is a
        quadrature over its steps (see `AdjointSystem.parameter_quadrature`): with the
        seminorm, where that adjoint does not steer the steps, and a solver with dense output."""
        return self.seminorm and (self.solver or problem.solver).has_dense_output

    def backward_problem(self, problem: Problem, system: AdjointSystem, k: int, skip: Tensor) -> Problem:
        """The backward solve from save time k + 1 to k; samples in `skip` `[B]` get an empty
        interval, and samples that end at save time k or before stay where they are."""
        ts = problem.ts
        start = ts[:, k + 1]
        end = torch.where(skip, start, ts[:, k])
        # Outputs past a sample's end repeat its last one (`Problem.lengths`), so their
        # cotangents reach it unchanged: nothing is integrated over the padding.
        lengths = None if problem.lengths is None else torch.where(problem.lengths > k + 1, 2, 1)
        forward = problem.controller
        controller = self._backward_controller(forward, system.state_size)
        jumps = None if problem.jumps is None else problem.jumps.flip(1)
        quadrature = self.integrates_parameters_by_quadrature(problem)
        term = system.state_term() if quadrature else system.term()
        solver = self.solver or problem.solver
        return Problem(
            term=term,
            solver=solver,
            controller=controller,
            ts=torch.stack([start, end], dim=1),
            direction=-problem.direction,
            args=None,
            max_steps=problem.max_steps,
            dt0=None,
            dense=quadrature,
            jumps=jumps,
            lengths=lengths,
            # Batched per-sample VJPs (`is_grads_batched`) cannot be traced: those steps stay eager.
            compile=problem.compile and (quadrature or system.mode == "vmap") and compile_refusal(solver, term) is None,
        )


class _BacksolveFunction(torch.autograd.Function):
    """`ys = solve(y0; inputs)` with the continuous adjoint as its backward."""

    @staticmethod
    def forward(
        ctx: Any,
        strategy: Backsolve,
        problem: Problem,
        system: AdjointSystem,
        holder: dict,
        y0: Tensor,
        *inputs: Tensor,
    ) -> Tensor:
        solution = finish(problem, advance(problem, initial_state(problem, y0.detach())))
        holder["solution"] = solution
        ctx.strategy, ctx.problem, ctx.system = strategy, problem, system
        ctx.status = solution.status
        ctx.save_for_backward(solution.ys)
        return solution.ys.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_ys: Tensor) -> tuple[Tensor | None, ...]:
        (ys,) = ctx.saved_tensors
        strategy, problem, system = ctx.strategy, ctx.problem, ctx.system
        grad_ys = torch.zeros_like(ys) if grad_ys is None else grad_ys
        skip = _failed_samples_without_cotangent(ctx.status, grad_ys)
        grad_ys = torch.where(skip.reshape((-1,) + (1,) * (ys.ndim - 1)), 0.0, grad_ys)
        batch, num_saves = problem.ts.shape
        n = system.state_size
        quadrature = strategy.integrates_parameters_by_quadrature(problem)
        a = grad_ys[:, -1].reshape(batch, n)
        # Per sample [B, P] when integrated with the state, summed over the batch [1, P] by quadrature.
        a_inputs = ys.new_zeros(1 if quadrature else batch, system.input_size)
        for k in range(num_saves - 2, -1, -1):
            sub = strategy.backward_problem(problem, system, k, skip)
            parts = [torch.nan_to_num(ys[:, k + 1]).reshape(batch, n), a]
            z0 = torch.cat(parts if quadrature else parts + [a_inputs], dim=1)
            with torch.no_grad():
                solution, integral = _solve_backwards(sub, system, z0, skip, quadrature)
            _raise_if_failed(solution, skip, problem.ts, k, problem.max_steps)
            z1 = torch.where(skip[:, None], torch.zeros_like(z0), solution.y_final)
            a = z1[:, n : 2 * n] + grad_ys[:, k].reshape(batch, n)
            if not quadrature:
                a_inputs = z1[:, 2 * n :]
            elif integral is not None:
                a_inputs = a_inputs + integral.to(a_inputs.dtype)
        grad_y0 = torch.where(skip[:, None], torch.zeros_like(a), a).reshape(ys[:, 0].shape)
        grads, offset = [], 0
        for x in system.inputs:
            grads.append(a_inputs[:, offset : offset + x.numel()].sum(dim=0).reshape(x.shape).to(x.dtype))
            offset += x.numel()
        return (None, None, None, None, grad_y0, *grads)


def _solve_backwards(
    sub: Problem, system: AdjointSystem, z0: Tensor, skip: Tensor, quadrature: bool
) -> tuple[Solution, Tensor | None]:
    """Solve the backward problem `sub` from `z0` `[B, 2N (+ P)]`; with `quadrature`, also
    return the parameter quadrature over its steps (`[P]`, `None` if it has none).

    A backward solve has no save time between its ends, so the loop keeps no window of step
    records for it (`Problem.interpolate_saves`). With the quadrature it keeps every step's
    record for the dense output (`records`): those go every `QUADRATURE_STEPS` steps, once the
    quadrature has used them. Its memory then does not grow with the number of steps.
    """
    state = initial_state(sub, z0)
    if not quadrature:
        return finish(sub, advance(sub, state)), None
    integral = None
    while not bool(state.done.all()):
        state = advance(sub, state, QUADRATURE_STEPS)
        if (part := system.parameter_quadrature(state.records, skip)) is not None:
            integral = part if integral is None else integral + part
        state = dataclasses.replace(state, records=())
    return finish(sub, state), integral


def _failed_samples_without_cotangent(status: Tensor, grad_ys: Tensor, strategy: str = "Backsolve") -> Tensor:
    """`[B]` samples whose forward solve failed and whose outputs get no cotangent: they are
    skipped (zero gradient). A failed sample that does get a cotangent cannot be differentiated
    by the adjoint, which needs the state at every save time."""
    failed = status != int(Status.SUCCESS)
    wanted = (grad_ys != 0).flatten(1).any(dim=1)
    bad = (failed & wanted).nonzero().flatten().tolist()
    if bad:
        raise InvalidInputError(
            f"{strategy} cannot differentiate samples whose forward solve failed; samples {bad[:5]} have status "
            f"{[Status(int(status[b])).name for b in bad[:5]]} and a non-zero gradient. Mask them out of the loss "
            f"or use gradient=nct.Backprop()"
        )
    return failed


def _raise_if_failed(
    solution: Solution, skip: Tensor, ts: Tensor, k: int, max_steps: int, strategy: str = "Backsolve"
) -> None:
    failed = ~solution.succeeded & ~skip
    if not bool(failed.any()):
        return
    masked = dataclasses.replace(solution, status=torch.where(skip, int(Status.SUCCESS), solution.status))
    raise SolveFailed(
        f"{strategy}'s backward (adjoint) solve from save time {k + 1} to {k} failed:\n"
        + failure_message(masked, max_steps)
        + "\nThe adjoint of stiff or chaotic dynamics can be hard to solve backwards; try gradient=nct.Backprop()",
        masked,
    )
