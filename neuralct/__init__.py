"""neuralct: continuous-time neural sequence models on one solver-centric core.

```python
import neuralct as nct
sol = nct.solve(nct.ODETerm(f), y0, t, solver=nct.Tsit5(), controller=nct.PIDController(rtol=1e-5))
```
"""

from .controllers import AbstractController, ConstantStep, PIDController, max_norm, rms_norm
from .errors import IncompatibleTermError, InvalidInputError, NeuralCTError, SolveFailed
from .gradients import AbstractGradient, Backprop
from .solution import Solution, SolveStats, Status
from .solve import solve
from .solvers import (
    RK4,
    AbstractExplicitRK,
    AbstractSolver,
    Bosh3,
    ButcherTableau,
    Dopri5,
    Dopri8,
    Euler,
    Heun,
    Midpoint,
    Ralston,
    Tsit5,
)
from .terms import AbstractDriftTerm, AbstractTerm, ControlTerm, ODETerm

# --- sde exports ---
from .paths.brownian import BrownianPath, LevyArea
from .solvers.euler_maruyama import EulerMaruyama
from .solvers.milstein import Milstein
from .solvers.reversible_heun import ReversibleHeun
from .solvers.stochastic_heun import StochasticHeun
from .terms.multi import MultiTerm
from .terms.noise import NoiseTerm, NoiseType, SDEType
# --- dde exports ---
from .solvers.method_of_steps import MethodOfSteps
from .terms.delay import DelayTerm
# --- gradient exports ---
from .gradients import Backsolve
from .solvers import ImplicitEuler
# --- backend exports ---
from .backends.torchdiffeq import TorchDiffEq
from .paths.interpolation import AbstractPiecewisePath, CubicPath, LinearPath

__version__ = "0.1.0"
