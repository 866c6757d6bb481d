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
# --- dde exports ---
# --- gradient exports ---
# --- backend exports ---

__version__ = "0.1.0"
