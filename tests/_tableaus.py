"""Reference tableaus the peer cross-checks share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import neuralct as nct
from neuralct import ButcherTableau


@dataclass(frozen=True)
class ThreeEighths(nct.AbstractExplicitRK):
    """Kutta's 3/8 rule: the fourth-order method torchdiffeq calls "rk4"."""

    tableau: ClassVar[ButcherTableau] = ButcherTableau(
        c=(0.0, 1 / 3, 2 / 3, 1.0),
        a=((), (1 / 3,), (-1 / 3, 1.0), (1.0, -1.0, 1.0)),
        b=(1 / 8, 3 / 8, 3 / 8, 1 / 8),
    )
    order: ClassVar[float] = 4
