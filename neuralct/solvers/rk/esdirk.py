"""Tableaus of singly diagonally implicit Runge-Kutta methods with an explicit first stage (ESDIRK),
alone or as the implicit half of an additive implicit-explicit (IMEX) pair."""

from __future__ import annotations

from dataclasses import dataclass, field

from .butcher import ButcherTableau, Combination, combination

_TOL = 1e-10


@dataclass(frozen=True)
class ESDIRKTableau:
    """An ESDIRK method: stage 0 is $k_0 = F(t_0, y_0)$, and stage $i \\ge 1$ solves
    $z_i = y_0 + h \\sum_{j<i} a_{ij} k_j + h\\gamma F(t_0 + c_i h, z_i)$, $k_i = F(t_i, z_i)$;
    then $y_1 = y_0 + h \\sum_i b_i k_i$.

    With `explicit`, the method is additive (IMEX) for $F = f + g$: the explicit tableau's
    $\\hat a_{ij}$ weigh the slopes of $f$ (never solved for), this tableau's weigh those of $g$,
    and both share `c` and `b` (Kennedy & Carpenter, "Additive Runge-Kutta schemes for
    convection-diffusion-reaction equations", Appl. Numer. Math. 44, 2003).

    Args:
        c: `[s]` stage times (fractions of the step), `c[0] = 0`.
        a: strictly lower stage coefficients, row i holding i entries (the diagonal is `gamma`).
        gamma: the diagonal coefficient $\\gamma$ of stages 1 to s - 1.
        b: `[s]` solution weights.
        b_error: `[s]` weights of the local error estimate (b minus the embedded weights).
        explicit: the explicit tableau of an IMEX pair (same `c` and `b`), or `None`. Its `dense`
            matrix, when it has one, is the pair's dense output in the slopes $k_i$ of the whole
            field; without it the dense output is the cubic Hermite interpolant.
        filter_error: pass the error estimate through $(I - h\\gamma J)^{-1}$, which damps its
            stiff components (Shampine's filter, for low-order pairs whose estimate is not itself
            L-stable).
        extrapolate: start Newton at the first implicit stage from $y_0 + c_1 h f_0$ (else from
            $y_0$, safer for a one-stage method whose $c_1 h$ is the whole step).
    """

    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    gamma: float
    b: tuple[float, ...]
    b_error: tuple[float, ...]
    explicit: ButcherTableau | None = None
    filter_error: bool = False
    extrapolate: bool = True
    a_terms: tuple[Combination | None, ...] = field(init=False, compare=False, repr=False)
    b_terms: Combination | None = field(init=False, compare=False, repr=False)
    b_error_terms: Combination | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        stages = len(self.c)
        if len(self.a) != stages or any(len(row) != i for i, row in enumerate(self.a)):
            raise ValueError(f"`a` must be strictly lower triangular with {stages} rows")
        if len(self.b) != stages or len(self.b_error) != stages or self.c[0] != 0.0:
            raise ValueError(f"`b` and `b_error` must have {stages} entries and `c[0]` must be 0")
        if abs(sum(self.b) - 1.0) > _TOL:
            raise ValueError(f"`b` must sum to 1; sums to {sum(self.b)}")
        for i in range(1, stages):
            if abs(sum(self.a[i]) + self.gamma - self.c[i]) > _TOL:
                raise ValueError(f"row {i} of `a` plus gamma must sum to c[{i}] = {self.c[i]}")
        if self.explicit is not None and (
            max(abs(x - y) for x, y in zip(self.explicit.c + self.explicit.b, self.c + self.b)) > _TOL
        ):
            raise ValueError("the explicit tableau of an IMEX pair must share `c` and `b`")
        object.__setattr__(self, "a_terms", tuple(combination(row) for row in self.a))
        object.__setattr__(self, "b_terms", combination(self.b))
        object.__setattr__(self, "b_error_terms", combination(self.b_error))

    @property
    def stages(self) -> int:
        """Number of stages s, the explicit first one included."""
        return len(self.c)

    @property
    def stiffly_accurate(self) -> bool:
        """Whether the last stage is the solution ($a_{s-1,j} = b_j$, $\\gamma = b_{s-1}$, $c_{s-1} = 1$):
        its slope is then the slope at the step's end, the next step's first stage."""
        last = self.a[-1] + (self.gamma,)
        return self.c[-1] == 1.0 and max(abs(x - y) for x, y in zip(last, self.b)) < 1e-15

    def full_matrix(self) -> list[list[float]]:
        """The `[s, s]` Butcher matrix, diagonal included (for order conditions and stability)."""
        size = self.stages
        return [list(row) + [self.gamma if i > 0 else 0.0] + [0.0] * (size - i - 1) for i, row in enumerate(self.a)]
