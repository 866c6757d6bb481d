"""Kennedy and Carpenter's ARK4(3)6L[2]SA: a fourth-order IMEX pair, explicit in one part of the
field and L-stable ESDIRK in the other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .butcher import ButcherTableau
from .esdirk import ESDIRKTableau
from .implicit import AbstractImplicitRK

_G = 0.25
_C = (0.0, 0.5, 83 / 250, 31 / 50, 17 / 20, 1.0)
_B = (82889 / 524892, 0.0, 15625 / 83664, 69875 / 102672, -2260 / 8211, _G)
_B_EMBEDDED = (
    4586570599 / 29645900160,
    0.0,
    178811875 / 945068544,
    814220225 / 1159782912,
    -3700637 / 11593932,
    61727 / 225920,
)
# Dense output b_i(theta) = sum_p D[p - 1, i] theta^p, third order (the paper's b*_ij).
_DENSE = (
    (
        6943876665148 / 7220017795957,
        0.0,
        7640104374378 / 9702883013639,
        -20649996744609 / 7521556579894,
        8854892464581 / 2390941311638,
        -11397109935349 / 6675773540249,
    ),
    (-54480133 / 30881146, 0.0, -11436875 / 14766696, 174696575 / 18121608, -12120380 / 966161, 3843 / 706),
    (
        6818779379841 / 7100303317025,
        0.0,
        2173542590792 / 12501825683035,
        -31592104683404 / 5083833661969,
        61146701046299 / 7138195549469,
        -17219254887155 / 4939391667607,
    ),
)

_EXPLICIT = ButcherTableau(
    c=_C,
    a=(
        (),
        (0.5,),
        (13861 / 62500, 6889 / 62500),
        (-116923316275 / 2393684061468, -2731218467317 / 15368042101831, 9408046702089 / 11113171139209),
        (
            -451086348788 / 2902428689909,
            -2682348792572 / 7519795681897,
            12662868775082 / 11960479115383,
            3355817975965 / 11060851509271,
        ),
        (
            647845179188 / 3216320057751,
            73281519250 / 8382639484533,
            552539513391 / 3454668386233,
            3354512671639 / 8306763924573,
            4040 / 17871,
        ),
    ),
    b=_B,
    dense=_DENSE,
)

_TABLEAU = ESDIRKTableau(
    c=_C,
    a=(
        (),
        (_G,),
        (8611 / 62500, -1743 / 31250),
        (5012029 / 34652500, -654441 / 2922500, 174375 / 388108),
        (15267082809 / 155376265600, -71443401 / 120774400, 730878875 / 902184768, 2285395 / 8070912),
        _B[:-1],
    ),
    gamma=_G,
    b=_B,
    b_error=tuple(x - y for x, y in zip(_B, _B_EMBEDDED)),
    explicit=_EXPLICIT,
)


@dataclass(frozen=True)
class KenCarp4(AbstractImplicitRK):
    """Kennedy & Carpenter's ARK4(3)6L[2]SA ("Additive Runge-Kutta schemes for
    convection-diffusion-reaction equations", Appl. Numer. Math. 44, 2003): fourth order with a
    third-order embedded estimate and a third-order dense output.

    Over a [`SplitTerm`][neuralct.SplitTerm] it is implicit-explicit: the `explicit` part is
    integrated by the explicit tableau and only the `implicit` part is solved by Newton's method
    (its Jacobian alone is factorised), with an L-stable, stiffly accurate ESDIRK tableau. Over any
    other drift term the whole field is implicit. See
    [`AbstractImplicitRK`][neuralct.solvers.rk.implicit.AbstractImplicitRK] for the Newton options.
    """

    tableau: ClassVar[ESDIRKTableau] = _TABLEAU
    order: ClassVar[float] = 4
    error_order: ClassVar[int | None] = 3
