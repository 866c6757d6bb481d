"""Reversible adjoint: exact gradients of a reversible solver's discrete solve in memory flat in the steps."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten

from .._loop import LoopState, advance, finish, hold_past_ends, initial_state
from .._loop.rows import gather_row, where_rows
from ..errors import IncompatibleTermError
from ..problem import Problem
from ..solution import Solution
from ..solvers.base import Carry
from ..terms.base import AbstractTerm
from ._adjoint_field import check_hidden_leaves
from .base import AbstractGradient


@runtime_checkable
class ReversibleSolver(Protocol):
    """A solver whose steps can be undone: `invert(term, t0, y1, h, carry1, args)` returns
    `(y0, carry0)` at `t0` `[B]` from the state `y1` `[B, *state]` and carry after a step of
    size `h` `[B]` (`nct.ReversibleHeun`)."""

    def invert(self, term: Any, t0: Tensor, y1: Tensor, h: Tensor, carry1: Carry, args: Any) -> tuple[Tensor, Carry]:
        """The state and carry before the step."""
        ...


@dataclass(frozen=True)
class ReversibleAdjoint(AbstractGradient):
    """Gradients of a reversible solver's discrete solve, reconstructing its states backwards.

    The forward solve keeps no graph, only each step's end time (one number per sample and
    step). The backward pass runs the solver's algebraic inverse from the last step to the
    first, rebuilding every step's state and carry exactly up to rounding, and backpropagates
    through each step on its own (the vector-Jacobian product of one step), adding the
    cotangent of each output at its save time (Kidger, Foster, Li & Lyons, "Efficient and
    Accurate Gradients for Neural SDEs", NeurIPS 2021, algorithm 2). The gradients are those
    of `Backprop` (the discretised solve) to float rounding, without its memory: a few copies
    of the state and one step's activations, whatever the number of steps. Each backward step
    costs two evaluations of the inverse and the VJP of a step (two more): about twice
    `Backprop`'s backward pass.

    Needs a solver with an `invert` method (`nct.ReversibleHeun`), a fixed-step controller
    (`ConstantStep`, `KnotToKnot`), a Brownian motion that repeats its increments when
    queried again (`BrownianPath`, `BrownianGrid`) and a term without jump times (their carry
    restart cannot be undone). What gets a gradient: `y0`, the term's parameters and the
    tensors in `args` that require grad; `Solution.ys` and `y_final` carry gradients, the
    dense output does not. Double backward is not supported.
    """

    def check(self, problem: Problem) -> None:
        """Raise `IncompatibleTermError` unless the solver is reversible and the term has no jump times."""
        solver = problem.solver
        if not isinstance(solver, ReversibleSolver):
            raise IncompatibleTermError(
                f"ReversibleAdjoint reconstructs each step by inverting the solver, and {type(solver).__name__} "
                f"cannot be inverted; use solver=nct.ReversibleHeun(), or gradient=nct.StochasticAdjoint() "
                f"(a Stratonovich SDE) or nct.Backprop() with this solver"
            )
        if problem.jumps is not None:
            raise IncompatibleTermError(
                f"ReversibleAdjoint cannot undo the carry restart at the jump times of {type(problem.term).__name__} "
                f"(e.g. a ControlTerm's knots); use gradient=nct.Backprop(checkpoint_every=k) for this term"
            )

    def run(self, problem: Problem, y0: Tensor) -> Solution:
        """Solve forwards without a graph; attach the reversible backward pass to `ys`."""
        inputs = differentiable_inputs(problem.term, problem.args)
        if not (torch.is_grad_enabled() and (y0.requires_grad or inputs)):
            with torch.no_grad():
                return finish(problem, advance(problem, initial_state(problem, y0)))
        _probe(problem, y0, inputs)
        holder: dict[str, Solution] = {}
        ys = _ReversibleFunction.apply(problem, holder, y0, *inputs)
        ys = hold_past_ends(ys, problem.lengths)
        solution = holder["solution"]
        ok = solution.succeeded.reshape((-1,) + (1,) * (y0.ndim - 1))
        return dataclasses.replace(solution, ys=ys, y_final=torch.where(ok, ys[:, -1], solution.y_final))


def differentiable_inputs(term: AbstractTerm, args: Any) -> tuple[Tensor, ...]:
    """The term's parameters and the tensors in `args` that require grad."""
    leaves, _ = tree_flatten(args)
    params = tuple(p for p in term.parameters() if p.requires_grad)
    return params + tuple(x for x in leaves if isinstance(x, Tensor) and x.requires_grad)


def _probe(problem: Problem, y0: Tensor, inputs: tuple[Tensor, ...]) -> None:
    """Refuse a field that uses a tensor requiring grad that is none of `inputs` (its gradient
    would be lost): the solver's start (`init`) at `y0` `[B, *state]`, with a graph."""
    with torch.enable_grad():
        carry, _ = problem.solver.init(problem.term, problem.ts[:, 0], y0.detach(), problem.args)
    for part in carry:
        if isinstance(part, Tensor):
            check_hidden_leaves(part, inputs, "ReversibleAdjoint")


def _forward(problem: Problem, y0: Tensor) -> tuple[LoopState, Tensor]:
    """Run the loop from `y0` one iteration at a time: the final state and `[I + 1, B]` each
    sample's time before the first and after every iteration (a step of size zero where a
    sample did not move)."""
    state = initial_state(problem, y0)
    times = [state.clock.t]
    while not bool(state.done.all()):
        state = advance(problem, state, 1)
        times.append(state.clock.t)
    return state, torch.stack(times)


class _ReversibleFunction(torch.autograd.Function):
    """`ys = solve(y0; inputs)` with the reversible backward pass."""

    @staticmethod
    def forward(ctx: Any, problem: Problem, holder: dict, y0: Tensor, *inputs: Tensor) -> Tensor:
        state, times = _forward(problem, y0.detach())
        solution = finish(problem, state)
        holder["solution"] = solution
        ctx.problem, ctx.carry = problem, state.carry
        ctx.save_for_backward(y0.detach(), state.y, times, state.saves.next_save, *inputs)
        return solution.ys.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_ys: Tensor) -> tuple[Tensor | None, ...]:
        y0, y, times, next_save, *inputs = ctx.saved_tensors
        problem: Problem = ctx.problem
        if grad_ys is None:
            grad_ys = y.new_zeros((y.shape[0], problem.ts.shape[1], *y.shape[1:]))
        cot = _Cotangents(grad_ys, next_save - 1, y, ctx.carry, inputs)
        cot.add_save(problem.ts, times[-1])
        carry = ctx.carry
        for i in range(times.shape[0] - 2, -1, -1):
            t0, h = times[i], times[i + 1] - times[i]
            active = h != 0
            if not bool(active.any()):
                continue
            with torch.no_grad():
                y_before, carry_before = problem.solver.invert(problem.term, t0, y, h, carry, problem.args)
            y = where_rows(active, y_before, y)
            carry = problem.solver.merge_carry(active, carry_before, carry)
            cot.pull_back(active, _step_map(problem, t0, h), y, carry)
            cot.add_save(problem.ts, t0)
        cot.pull_back(torch.ones_like(times[0], dtype=torch.bool), _init_map(problem), y0, ())
        grad_y0 = cot.y + grad_ys[:, 0]
        return (None, None, grad_y0, *cot.inputs)


def _step_map(problem: Problem, t0: Tensor, h: Tensor):
    """`(y, carry) -> (y1, carry1)`: the solver's step from `t0` `[B]` by `h` `[B]`."""

    def step(y: Tensor, carry: Carry) -> tuple[Tensor, Carry]:
        out = problem.solver.step(problem.term, t0, y, h, carry, problem.args, False)
        return out.y1, out.carry

    return step


def _init_map(problem: Problem):
    """`(y0, ()) -> (y0, carry0)`: the solver's start at `ts[:, 0]`."""

    def init(y: Tensor, carry: Carry) -> tuple[Tensor, Carry]:
        return y, problem.solver.init(problem.term, problem.ts[:, 0], y, problem.args)[0]

    return init


class _Cotangents:
    """The cotangents of the backward pass: of the state `y` `[B, *state]`, of the solver's
    carry, and the gradients of the differentiable inputs summed so far; `pointer` `[B]` is the
    latest save index of each sample whose cotangent has not been added yet."""

    def __init__(self, grad_ys: Tensor, pointer: Tensor, y: Tensor, carry: Carry, inputs: list[Tensor]):
        self.grad_ys, self.pointer = grad_ys, pointer
        self.y = torch.zeros_like(y)
        self.carry = tuple(torch.zeros_like(c) for c in carry)
        self.inputs = [torch.zeros_like(x) for x in inputs]
        self._leaves = tuple(inputs)

    def add_save(self, ts: Tensor, t: Tensor) -> None:
        """Add the cotangent of output `pointer` of every sample standing on its save time `t` `[B]`."""
        at_save = (self.pointer >= 1) & (gather_row(ts, self.pointer) == t)
        if bool(at_save.any()):
            saved = self.grad_ys[torch.arange(t.shape[0], device=t.device), self.pointer.clamp_min(0)]
            self.y = self.y + where_rows(at_save, saved, torch.zeros_like(saved))
            self.pointer = self.pointer - at_save.long()

    def pull_back(self, active: Tensor, step, y: Tensor, carry: Carry) -> None:
        """Replace the cotangents of the `[B]` `active` samples by their pull-back through
        `step(y, carry)` (their state before the step); add the inputs' gradients."""
        zero = ~active
        with torch.enable_grad():
            y = y.detach().requires_grad_(True)
            carry = tuple(c.detach().requires_grad_(True) for c in carry)
            y1, carry1 = step(y, carry)
            outputs = (y1, *carry1)
            cotangents = tuple(where_rows(zero, torch.zeros_like(c), c) for c in (self.y, *self.carry))
            grads = torch.autograd.grad(
                outputs, (y, *carry, *self._leaves), cotangents, allow_unused=True, materialize_grads=True
            )
        n = 1 + len(carry)
        self.y = where_rows(active, grads[0], self.y)
        self.carry = tuple(where_rows(active, g, old) for g, old in zip(grads[1:n], self.carry))
        self.inputs = [total + g for total, g in zip(self.inputs, grads[n:])]
