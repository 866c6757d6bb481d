"""Shared machinery of the SDE solvers.

Conventions every SDE solver follows:

- It integrates an [`SDETerm`][neuralct.SDETerm]. Solvers with an embedded error estimate
  (`StochasticHeun`, `SRA1`) also run under `nct.PIDController`; the others have
  `error_order = None` and run with `nct.ConstantStep(dt)` only, unless wrapped in
  `StepDoubling` (explicit methods of strong order at least 1: `Milstein`), whose estimate is
  the difference of one step and two half steps. Either way the step loop lands exactly on save
  times.
- `error_order` is $q - 1$ where the error estimate of a step of size $h$ scales as
  $h^q$ (the controller's exponent is $1/q$): a difference of two methods of strong orders
  $p < \\hat p$ is of size $h^{p + 1/2}$, so `error_order` $= p - 1/2$ (diffrax's
  `error_order` is $q$, Kidger, "On Neural Differential Equations", 2022, section 5.5).
- An adaptive solve needs a Brownian motion that can be queried at any time with values
  that do not depend on the query sequence (`nct.BrownianPath(..., tol=...)`), so that a
  rejected step re-queries the same realisation and a sample's path does not depend on its
  batch mates' steps; `check_adaptive_term` says so before the solve.
- `order` is the strong order the method guarantees for every noise type it accepts;
  `strong_order(noise_type)` gives the (possibly higher) order for a given noise type, and
  `weak_order` the weak order.
- `StepResult.evals` counts calls of the drift plus calls of the diffusion per sample
  (Euler-Maruyama: 1 + 1 per step).
- Dense output is the piecewise-linear interpolant of the numerical solution between
  steps (one coefficient, `(y1 - y0)`), which is what an SDE solver can honestly offer.
- For a step of signed size $h$ the Brownian increment is $W(t_0 + h) - W(t_0)$ and
  $|h|$ plays the role of $dt$ in the Itô correction terms.
"""

from __future__ import annotations

import abc
import inspect
from typing import Any, ClassVar, cast

from torch import Tensor

from ...errors import IncompatibleTermError
from ...terms.base import AbstractTerm
from ...terms.noise import NoiseType, SDEType
from ...terms.sde import SDETerm
from ..base import AbstractSolver, Carry, StepResult

ALL_NOISE = frozenset(NoiseType)


class AbstractSDESolver(AbstractSolver):
    """A fixed-step one-step method for SDEs given as an `SDETerm`.

    Attributes:
        order: strong order guaranteed for every accepted noise type.
        weak_order: weak order.
        noise_types: the [`NoiseType`][neuralct.NoiseType]s the method handles.
        sde_types: the [`SDEType`][neuralct.SDEType]s the method handles.
    """

    term_types: ClassVar[tuple[type, ...]] = (SDETerm,)
    weak_order: ClassVar[float]
    noise_types: ClassVar[frozenset[NoiseType]]
    sde_types: ClassVar[frozenset[SDEType]]

    @property
    def interpolates_saves(self) -> bool:
        """Always `False`: fixed-step SDE solvers step exactly onto save times."""
        return False

    def strong_order(self, noise_type: NoiseType) -> float:
        """The strong order for `noise_type` (default: `order`)."""
        return self.order

    def check_adaptive_term(self, term: SDETerm) -> None:
        """Raise `IncompatibleTermError` when an adaptive controller cannot drive this solver on
        `term`: no error estimate, or a Brownian motion whose values depend on the query
        sequence or that cannot be queried off a grid (a `BrownianGrid`)."""
        if not self.adaptive:
            name = type(self).__name__
            wrap = f", or nct.StepDoubling(nct.{name}())" if name in doubling_sde_solvers() else ""
            raise IncompatibleTermError(
                f"solver {name} has no error estimate; adaptive SDE solvers: {', '.join(adaptive_sde_solvers())}{wrap}"
            )
        brownian = term.noise.brownian
        if getattr(brownian, "query_independent", False):
            return
        why = (
            "a grid cannot be queried between its times"
            if hasattr(brownian, "grid")
            else "its values depend on the query order"
        )
        raise IncompatibleTermError(
            f"solver {type(self).__name__} with an adaptive controller cannot use a {type(brownian).__name__} ({why}): "
            f"adaptive SDE steps need nct.BrownianTree(t0, t1, shape, seed=...), independent of the queries; "
            f"or step with nct.ConstantStep(dt)"
        )

    def check_term(self, term: AbstractTerm) -> None:
        """Raise `IncompatibleTermError` unless `term` is an `SDETerm` whose noise type and
        SDE type this solver handles; the message lists the solvers that can."""
        super().check_term(term)
        sde_term = cast(SDETerm, term)  # super().check_term made sure of it
        noise, sde = sde_term.noise_type, sde_term.sde_type
        if noise in self.noise_types and sde in self.sde_types:
            return
        name = type(self).__name__
        handles = ", ".join(n.name for n in NoiseType if n in self.noise_types)
        kinds = ", ".join(s.name for s in SDEType if s in self.sde_types)
        able = ", ".join(sde_solvers_for(noise, sde)) or "none"
        hint = ""
        if noise == NoiseType.ADDITIVE:
            hint = " (with additive noise the Itô and Stratonovich SDEs coincide, so either SDEType may be declared)"
        raise IncompatibleTermError(
            f"solver {name} cannot integrate an SDETerm with {noise} and {sde}: {name} handles noise types "
            f"{handles} and SDE types {kinds}. Solvers for {noise.name} noise with {sde.name}: {able}{hint}"
        )

    def init(self, term: SDETerm, t0: Tensor, y0: Tensor, args: Any) -> tuple[Carry, int]:
        """Check the Brownian motion against `y0`; no carry, no evaluations."""
        term.noise.check_state(y0)
        return (), 0


class AbstractStratonovichHeun(AbstractSDESolver):
    """What the Heun-type Stratonovich methods share (`StochasticHeun`, `ReversibleHeun`): any
    noise type, Stratonovich only, strong order 0.5 in general and 1.0 for commutative
    (diagonal, scalar, additive) noise, weak order 1."""

    order: ClassVar[float] = 0.5
    weak_order: ClassVar[float] = 1.0
    noise_types: ClassVar[frozenset[NoiseType]] = ALL_NOISE
    sde_types: ClassVar[frozenset[SDEType]] = frozenset({SDEType.STRATONOVICH})

    def strong_order(self, noise_type: NoiseType) -> float:
        """1.0 for commutative (diagonal, scalar, additive) noise, 0.5 for general noise."""
        return self.order if noise_type == NoiseType.GENERAL else 1.0


class AbstractExplicitSDESolver(AbstractSDESolver):
    """An explicit one-step SDE method that reads the drift and the diffusion at the step's start
    $(t_0, y_0)$, the Brownian increment $\\Delta W$, and whatever further evaluations it makes
    itself (`EulerMaruyama`, `Milstein`). No carry, no error estimate; `StepDoubling` wraps those of
    strong order at least 1, sharing the start's two evaluations between its whole step and its
    first half step."""

    @property
    def reads_step_end(self) -> bool:
        """`False`: drift and diffusion are read at the step's start only, so steps land
        exactly on jump times and take the Brownian increment over the whole gap."""
        return False

    def step(
        self, term: SDETerm, t0: Tensor, y0: Tensor, h: Tensor, carry: Carry, args: Any, dense: bool
    ) -> StepResult:
        """One step of signed size `h` `[B]` from `(t0 [B], y0 [B, *state])`: two evaluations at the
        start, then `advance`."""
        dw = brownian_step(term, t0, h)
        drift = term.drift_field(t0, y0, args)
        diffusion = term.diffusion(t0, y0, args)
        y1, evals = self.advance(term, t0, y0, h, dw, (drift, diffusion), args)
        return StepResult(y1=y1, error=None, carry=(), evals=2 + evals, coeffs=linear_coefficients(y0, y1, dense))

    @abc.abstractmethod
    def advance(
        self, term: SDETerm, t0: Tensor, y0: Tensor, h: Tensor, dw: Tensor, start: tuple[Tensor, Tensor], args: Any
    ) -> tuple[Tensor, int]:
        """The step's end `[B, *state]` from `(t0 [B], y0 [B, *state])` by the signed step `h` `[B]`
        with increment `dw` `[B, M]`, given `start = (drift, diffusion)` evaluated at `(t0, y0)`,
        and the evaluations it made beyond those two."""


def sde_solvers_for(noise_type: NoiseType, sde_type: SDEType) -> list[str]:
    """Names of the concrete SDE solvers that handle `noise_type` with `sde_type`."""
    return sorted(
        {cls.__name__ for cls in _concrete_sde_solvers() if noise_type in cls.noise_types and sde_type in cls.sde_types}
    )


def adaptive_sde_solvers() -> list[str]:
    """Names of the concrete SDE solvers with an error estimate."""
    return sorted({cls.__name__ for cls in _concrete_sde_solvers() if cls.error_order is not None})


def doubling_sde_solvers() -> list[str]:
    """Names of the solvers `StepDoubling` wraps: the concrete `AbstractExplicitSDESolver`s of
    strong order at least 1 for every noise type they accept (see `can_double`)."""
    return sorted({cls.__name__ for cls in _concrete_sde_solvers() if can_double(cls)})


def can_double(solver: object) -> bool:
    """Whether `StepDoubling` can wrap `solver` (an instance or a class): an explicit SDE method
    of strong order at least 1. Steps chosen from the Brownian path are not previsible, and a
    method of order 1/2 (Euler-Maruyama) then converges to another limit, as its sums of
    $\\Delta W^2$ need not approach the elapsed time (Foster & Jelinčič, "On the convergence of
    adaptive approximations for stochastic differential equations", arXiv:2311.14201, 2024)."""
    kind = solver if isinstance(solver, type) else type(solver)
    return issubclass(kind, AbstractExplicitSDESolver) and kind.order >= 1


def _concrete_sde_solvers() -> list[type[AbstractSDESolver]]:
    """Every concrete subclass of `AbstractSDESolver`, at any depth, that declares its noise types
    on the class: a wrapper (`StepDoubling`) takes them from the solver it wraps, and messages
    name it apart."""
    found, pending = [], list(AbstractSDESolver.__subclasses__())
    while pending:
        cls = pending.pop(0)
        pending.extend(cls.__subclasses__())
        if not inspect.isabstract(cls) and isinstance(cls.noise_types, frozenset):
            found.append(cls)
    return found


def linear_coefficients(y0: Tensor, y1: Tensor, dense: bool) -> Tensor | None:
    """`[B, 1, *state]` coefficients of the linear interpolant on a step, or `None`."""
    return (y1 - y0).unsqueeze(1) if dense else None


def brownian_step(term: SDETerm, t0: Tensor, h: Tensor) -> Tensor:
    """$\\Delta W = W(t_0 + h) - W(t_0)$ for `[B]` times and steps -> `[B, M]`, in the state dtype."""
    return term.increment(t0, t0 + h)


def brownian_step_and_area(term: SDETerm, t0: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
    """$\\Delta W$ and the space-time Lévy area $H$ over the step (see
    `BrownianPath.increment_and_area`) for `[B]` times and steps -> two `[B, M]`."""
    # SRA1.check_term made sure the Brownian motion has `increment_and_area`.
    return cast(Any, term.noise.brownian).increment_and_area(t0, t0 + h)


def step_size(h: Tensor, like: Tensor) -> Tensor:
    """`[B]` signed steps as `like`'s dtype, shaped `[B, 1, ...]` to scale `like`."""
    return h.to(like.dtype).reshape(h.shape + (1,) * (like.ndim - 1))
