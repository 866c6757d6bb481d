"""Butcher tableaus of explicit Runge-Kutta methods and their dense-output polynomials."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge-Kutta method.

    Args:
        c: `[s]` stage times (fractions of the step).
        a: lower-triangular stage coefficients, row i holding i entries.
        b: `[s]` solution weights.
        b_error: `[s]` weights of the local error estimate (b minus the embedded
            method's weights), or `None`.
        dense: `[P, s]` matrix D such that the dense output on the step is
            $y_0 + h \\sum_{p=1}^{P} \\theta^p \\sum_i D_{p,i} k_i$, or `None` to use the
            cubic Hermite interpolant through both ends and their slopes.
    """

    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    b_error: tuple[float, ...] | None = None
    dense: tuple[tuple[float, ...], ...] | None = None
    fsal: bool = field(init=False)
    a_terms: tuple[Combination | None, ...] = field(init=False, compare=False, repr=False)
    b_terms: Combination | None = field(init=False, compare=False, repr=False)
    b_error_terms: Combination | None = field(init=False, compare=False, repr=False)
    _dense_tensors: dict = field(init=False, compare=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        stages = len(self.c)
        if len(self.a) != stages or any(len(row) != i for i, row in enumerate(self.a)):
            raise ValueError(
                f"`a` must be lower triangular with {stages} rows; got row lengths {[len(r) for r in self.a]}"
            )
        if len(self.b) != stages or (self.b_error is not None and len(self.b_error) != stages):
            raise ValueError(f"`b` and `b_error` must have {stages} entries")
        if abs(sum(self.b) - 1.0) > 1e-12:
            raise ValueError(f"`b` must sum to 1; sums to {sum(self.b)}")
        for i, row in enumerate(self.a):
            if abs(sum(row) - self.c[i]) > 1e-10:
                raise ValueError(f"row {i} of `a` must sum to c[{i}] = {self.c[i]}; sums to {sum(row)}")
        last = self.a[-1] + (0.0,)
        fsal = stages > 1 and self.c[-1] == 1.0 and all(abs(x - y) < 1e-15 for x, y in zip(last, self.b))
        object.__setattr__(self, "fsal", fsal)
        # How to form each row's weighted sum of stages, looked up on every step.
        object.__setattr__(self, "a_terms", tuple(combination(row) for row in self.a))
        object.__setattr__(self, "b_terms", combination(self.b))
        object.__setattr__(self, "b_error_terms", combination(self.b_error))

    @property
    def stages(self) -> int:
        """Number of stages s."""
        return len(self.c)

    def dense_matrix(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor | None:
        """The `[P, s]` dense-output matrix as a tensor (cached per dtype and device), or `None`."""
        if self.dense is None:
            return None
        if torch.compiler.is_compiling():
            # A constant of the compiled graph; filling the cache would change what it guards on.
            return torch.tensor(self.dense, dtype=dtype, device=device)
        key = (dtype, device)
        if key not in self._dense_tensors:
            self._dense_tensors[key] = torch.tensor(self.dense, dtype=dtype, device=device)
        return self._dense_tensors[key]


@dataclass(frozen=True)
class Combination:
    """A weighted sum of stages $\\sum_i w_i k_i$ over a tableau row's non-zero weights,
    written as $w_f (k_f + \\sum_{i \\ne f} (w_i / w_f) k_i)$ with `f = first`: the sum
    costs one tensor operation per further stage, and the caller applies `scale` $= w_f$
    in the operation that consumes it.

    Attributes:
        first: index of the first stage with a non-zero weight.
        scale: its weight $w_f$.
        rest: `(stage index, w_i / w_f)` of the other non-zero weights.
    """

    first: int
    scale: float
    rest: tuple[tuple[int, float], ...]


def combination(row: tuple[float, ...] | None) -> Combination | None:
    """The `Combination` of a tableau row's non-zero weights, or `None` when there are none."""
    terms = [] if row is None else [(i, w) for i, w in enumerate(row) if w != 0.0]
    if not terms:
        return None
    (first, scale), *rest = terms
    return Combination(first, scale, tuple((i, w / scale) for i, w in rest))


def quartic_dense_from_midpoint(b: tuple[float, ...], b_mid: tuple[float, ...]) -> tuple[tuple[float, ...], ...]:
    """Dense matrix D (`[4, s]`) of the quartic through $y_0$, $y_{1/2}$, $y_1$ and the end slopes.

    Used for FSAL methods whose midpoint value $y_{1/2} = y_0 + h \\sum_i m_i k_i$ is known
    (Shampine's construction for Dormand-Prince 5(4)). The quartic is linear in the stages,
    so it is stored as the same `[P, s]` matrix as any other RK dense output.
    """
    stages = len(b)
    f0 = np.eye(stages)[0]
    f1 = np.eye(stages)[-1]
    delta1, delta_mid = np.asarray(b), np.asarray(b_mid)
    # Unknowns c2, c3, c4 (c1 = f0) from y(1), y'(1) and y(1/2).
    system = np.array([[1.0, 1.0, 1.0], [2.0, 3.0, 4.0], [1 / 4, 1 / 8, 1 / 16]])
    rhs = np.stack([delta1 - f0, f1 - f0, delta_mid - f0 / 2])
    c234 = np.linalg.solve(system, rhs)
    return tuple(tuple(float(x) for x in row) for row in np.vstack([f0, c234]))


def dense_from_basis_polynomials(basis: list[np.polynomial.Polynomial]) -> tuple[tuple[float, ...], ...]:
    """Dense matrix D from per-stage weight polynomials $b_i(\\theta)$ with $b_i(0) = 0$."""
    degree = max(poly.degree() for poly in basis)
    matrix = np.zeros((degree, len(basis)))
    for i, poly in enumerate(basis):
        coef = poly.coef
        matrix[: len(coef) - 1, i] = coef[1:]
    return tuple(tuple(float(x) for x in row) for row in matrix)
