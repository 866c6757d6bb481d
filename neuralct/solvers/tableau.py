"""Butcher tableaus of explicit Runge-Kutta methods and their dense-output polynomials."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

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

    @property
    def stages(self) -> int:
        """Number of stages s."""
        return len(self.c)

    @property
    def a_terms(self) -> tuple[Terms, ...]:
        """Non-zero `(stage, weight)` pairs of every row of `a`."""
        return _row_terms(self)[0]

    @property
    def b_terms(self) -> Terms:
        """Non-zero `(stage, weight)` pairs of `b`."""
        return _row_terms(self)[1]

    @property
    def b_error_terms(self) -> Terms:
        """Non-zero `(stage, weight)` pairs of `b_error` (empty without an error estimate)."""
        return _row_terms(self)[2]


Terms = tuple[tuple[int, float], ...]


@cache
def _row_terms(tableau: ButcherTableau) -> tuple[tuple[Terms, ...], Terms, Terms]:
    return (
        tuple(nonzero_terms(row) for row in tableau.a),
        nonzero_terms(tableau.b),
        nonzero_terms(tableau.b_error),
    )


def nonzero_terms(row: tuple[float, ...] | None) -> Terms:
    """`(stage index, weight)` pairs of a tableau row's non-zero weights (empty for `None`)."""
    return () if row is None else tuple((i, w) for i, w in enumerate(row) if w != 0.0)


@cache
def dense_matrix(tableau: ButcherTableau, dtype: torch.dtype, device: torch.device) -> torch.Tensor | None:
    """The tableau's `[P, s]` dense-output matrix as a tensor (cached per dtype and device)."""
    return None if tableau.dense is None else torch.tensor(tableau.dense, dtype=dtype, device=device)


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
