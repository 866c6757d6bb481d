"""neuralct: continuous-time neural sequence models on one solver-centric core.

```python
import neuralct as nct
sol = nct.solve(nct.ODETerm(f), y0, t, solver=nct.Tsit5(), controller=nct.PIDController(rtol=1e-5))
```
"""

from typing import TYPE_CHECKING

from ._lazy import lazy_package

if TYPE_CHECKING:  # the names below, for type checkers; at run time each is imported on first use
    from .backends import TorchDiffEq, TorchSDE
    from .controllers import AbstractController, ConstantStep, KnotToKnot, PIDController, max_norm, rms_norm
    from .errors import IncompatibleTermError, InvalidInputError, NeuralCTError, SolveFailed
    from .gradients import AbstractGradient, Backprop, Backsolve, ReversibleAdjoint, StochasticAdjoint
    from .models.hamiltonian import HamiltonianTerm, SeparableHamiltonianTerm, SymplecticEuler
    from .models.ltc import LTCFused
    from .paths import (
        AbstractPiecewisePath,
        BrownianGrid,
        BrownianPath,
        CubicPath,
        DenseInterpolant,
        LevyArea,
        LinearPath,
        PiecewiseConstantPath,
        BrownianTree,
        RectilinearPath,
    )
    from .events import Event
    from .saveat import SaveAt
    from .solution import Solution, SolveStats, Status
    from .solve import solve
    from .solvers import (
        RK4,
        AbstractExplicitRK,
        AbstractSDESolver,
        AbstractSolver,
        Bosh3,
        ButcherTableau,
        Dopri5,
        Dopri8,
        Euler,
        EulerMaruyama,
        GBT,
        Heun,
        ImplicitEuler,
        MethodOfSteps,
        Midpoint,
        Milstein,
        Ralston,
        ReversibleHeun,
        SRA1,
        StochasticHeun,
        Tsit5,
        ZOH,
    )
    from .terms import (
        AbstractDriftTerm,
        AbstractTerm,
        ControlTerm,
        DelayTerm,
        LinearTerm,
        MultiTerm,
        NoiseTerm,
        NoiseType,
        ODETerm,
        SDETerm,
        SDEType,
    )

lazy_package(
    __name__,
    {
        ".backends": ("TorchDiffEq", "TorchSDE"),
        ".controllers": ("AbstractController", "ConstantStep", "KnotToKnot", "PIDController", "max_norm", "rms_norm"),
        ".errors": ("IncompatibleTermError", "InvalidInputError", "NeuralCTError", "SolveFailed"),
        ".gradients": ("AbstractGradient", "Backprop", "Backsolve", "ReversibleAdjoint", "StochasticAdjoint"),
        # one model's own numerics, kept at the top level for the users of earlier releases
        ".models.hamiltonian": ("HamiltonianTerm", "SeparableHamiltonianTerm", "SymplecticEuler"),
        ".models.ltc": ("LTCFused",),
        ".paths": (
            "AbstractPiecewisePath",
            "BrownianGrid",
            "BrownianPath",
            "BrownianTree",
            "CubicPath",
            "DenseInterpolant",
            "LevyArea",
            "LinearPath",
            "PiecewiseConstantPath",
            "RectilinearPath",
        ),
        ".events": ("Event",),
        ".saveat": ("SaveAt",),
        ".solution": ("Solution", "SolveStats", "Status"),
        ".solve": ("solve",),
        ".solvers": (
            "RK4",
            "AbstractExplicitRK",
            "AbstractSDESolver",
            "AbstractSolver",
            "Bosh3",
            "ButcherTableau",
            "Dopri5",
            "Dopri8",
            "Euler",
            "EulerMaruyama",
            "GBT",
            "Heun",
            "ImplicitEuler",
            "MethodOfSteps",
            "Midpoint",
            "Milstein",
            "Ralston",
            "ReversibleHeun",
            "SRA1",
            "StochasticHeun",
            "Tsit5",
            "ZOH",
        ),
        ".terms": (
            "AbstractDriftTerm",
            "AbstractTerm",
            "ControlTerm",
            "DelayTerm",
            "LinearTerm",
            "MultiTerm",
            "NoiseTerm",
            "NoiseType",
            "ODETerm",
            "SDETerm",
            "SDEType",
        ),
    },
)

__version__ = "0.1.0"

__all__ = [
    "RK4",
    "SaveAt",
    "SRA1",
    "AbstractController",
    "AbstractDriftTerm",
    "AbstractExplicitRK",
    "AbstractGradient",
    "AbstractPiecewisePath",
    "AbstractSDESolver",
    "AbstractSolver",
    "AbstractTerm",
    "Backprop",
    "Backsolve",
    "ReversibleAdjoint",
    "StochasticAdjoint",
    "Bosh3",
    "BrownianGrid",
    "BrownianPath",
    "BrownianTree",
    "ButcherTableau",
    "ConstantStep",
    "ControlTerm",
    "CubicPath",
    "DelayTerm",
    "HamiltonianTerm",
    "DenseInterpolant",
    "Dopri5",
    "Dopri8",
    "Euler",
    "EulerMaruyama",
    "Event",
    "GBT",
    "Heun",
    "ImplicitEuler",
    "IncompatibleTermError",
    "InvalidInputError",
    "KnotToKnot",
    "LevyArea",
    "LinearPath",
    "LinearTerm",
    "LTCFused",
    "MethodOfSteps",
    "Midpoint",
    "Milstein",
    "MultiTerm",
    "NeuralCTError",
    "NoiseTerm",
    "NoiseType",
    "ODETerm",
    "PiecewiseConstantPath",
    "PIDController",
    "Ralston",
    "RectilinearPath",
    "ReversibleHeun",
    "SDETerm",
    "SDEType",
    "SeparableHamiltonianTerm",
    "Solution",
    "SolveFailed",
    "SolveStats",
    "Status",
    "StochasticHeun",
    "SymplecticEuler",
    "TorchDiffEq",
    "TorchSDE",
    "Tsit5",
    "ZOH",
    "max_norm",
    "rms_norm",
    "solve",
]
