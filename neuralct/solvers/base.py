"""The solver interface: advance a term by one (per-sample) step."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..errors import IncompatibleTermError
from ..paths.dense import Coefficients
from ..terms.base import AbstractTerm

Carry = tuple[Any, ...]


@dataclass(frozen=True)
class StepResult:
    """What one solver step returns.

    Attributes:
        y1: `[B, *state]` proposed state at `t0 + h`.
        error: `[B, *state]` local error estimate, or `None` for methods without one.
        carry: solver data handed to the next step if this one is accepted
            (e.g. the first-same-as-last stage), each `[B, ...]`.
        evals: vector-field evaluations this step cost each sample: an int when it is the same
            for every sample, else `[B]` integers (e.g. an implicit method's Newton iterations).
        coeffs: `[B, P, *state]` dense-output polynomial coefficients on the step, or the
            stages they are formed from (see `neuralct.paths.dense`), or `None` when not
            requested.
        failed: `[B]` boolean, samples whose step failed inside the solver (e.g. Newton
            did not converge); such steps are rejected. `None` when nothing can fail.
    """

    y1: Tensor
    error: Tensor | None
    carry: Carry
    evals: int | Tensor
    coeffs: Coefficients | None = None
    failed: Tensor | None = None


def check_term_type(method: Any, term: AbstractTerm) -> None:
    """Raise `IncompatibleTermError` naming both when `term` is none of `method.term_types` (the
    check of a step solver and of an `AbstractRunner` alike)."""
    if not isinstance(term, method.term_types):
        accepted = ", ".join(cls.__name__ for cls in method.term_types)
        raise IncompatibleTermError(
            f"solver {type(method).__name__} cannot integrate {_article(type(term).__name__)} {type(term).__name__}; "
            f"it accepts: {accepted}"
        )


class AbstractSolver(abc.ABC):
    """A one-step method.

    Attributes:
        order: the method's (strong, for SDEs) order of convergence.
        error_order: order of the embedded error estimate, or `None` when the method
            has none (it then runs with `ConstantStep` only).
        term_types: the term classes the method can integrate.
    """

    order: ClassVar[float]
    error_order: ClassVar[float | None] = None
    term_types: ClassVar[tuple[type, ...]] = ()

    @property
    def adaptive(self) -> bool:
        """Whether the method has an error estimate, so an adaptive controller can drive it."""
        return self.error_order is not None

    @property
    def has_dense_output(self) -> bool:
        """Whether `step` can return dense-output coefficients."""
        return True

    @property
    def interpolates_saves(self) -> bool:
        """Whether adaptive solves should interpolate save times from the dense output (True)
        or step exactly onto them (False, for methods whose interpolant is much less
        accurate than their steps)."""
        return self.has_dense_output

    @property
    def reads_step_end(self) -> bool:
        """Whether a step evaluates the term at its end time. The loop then stops a step that lands
        on a jump time a hair short of it, so the evaluation sees the term before the jump; a
        solver that reads a held input only inside the step (ZOH, GBT, the LTC fused step) takes
        the exact step instead."""
        return True

    def check_term(self, term: AbstractTerm) -> None:
        """Raise `IncompatibleTermError` when this solver cannot integrate `term`."""
        check_term_type(self, term)

    def check_adaptive_term(self, term: AbstractTerm) -> None:
        """Raise `IncompatibleTermError` when an adaptive controller cannot drive this solver on
        `term` (default: it can; SDE solvers check their Brownian motion)."""

    def jump_times(self, term: AbstractTerm, ts: Tensor) -> Tensor | None:
        """The times this solver must land on when it integrates `term` over save times `ts`
        `[B, K]`: the term's `jump_times` (a solver that can do with fewer overrides this)."""
        return term.jump_times(ts)

    def merge_carry(self, rows: Tensor, new: Carry, old: Carry) -> Carry:
        """Carry after a step: `new` for the `[B]` boolean `rows` (accepted or restarted
        samples), `old` elsewhere. Solvers whose carry is not a tuple of `[B, ...]` tensors
        (e.g. a growing history) override this."""
        return tuple(torch.where(rows.reshape(rows.shape + (1,) * (n.ndim - 1)), n, o) for n, o in zip(new, old))

    @abc.abstractmethod
    def init(self, term: AbstractTerm, t0: Tensor, y0: Tensor, args: Any) -> tuple[Carry, int]:
        """Prepare the carry at `(t0 [B], y0 [B, *state])`; returns `(carry, evals)`."""

    @abc.abstractmethod
    def step(
        self, term: AbstractTerm, t0: Tensor, y0: Tensor, h: Tensor, carry: Carry, args: Any, dense: bool
    ) -> StepResult:
        """Advance every sample from `t0` `[B]` by its signed step `h` `[B]`.

        `dense=True` asks for dense-output coefficients in the result.
        """


class AbstractStepMapSolver(AbstractSolver):
    """A fixed-step method whose step map is the model itself (the LTC fused step, the H2-DNN's
    symplectic Euler): it keeps no carry, reads its term inside the step (so steps land exactly
    on jump times), and steps onto save times instead of interpolating them (its interpolant is
    not what the model means)."""

    @property
    def reads_step_end(self) -> bool:
        """`False`: the term is read inside the step, so steps land exactly on jump times."""
        return False

    @property
    def interpolates_saves(self) -> bool:
        """`False`: step onto save times; the step map is what the model means, its interpolant is not."""
        return False

    def init(self, term: AbstractTerm, t0: Tensor, y0: Tensor, args: Any) -> tuple[Carry, int]:
        """No carry: every step evaluates afresh; no evaluations."""
        return (), 0


def _article(noun: str) -> str:
    """ "an" before a vowel sound as spelt (an ODETerm, an SDETerm), else "a"."""
    return "an" if noun[:1].upper() in "AEIOU" or noun[:3] in ("SDE", "ODE") else "a"
