"""Noisy RNN: the Lipschitz RNN as an Itô SDE, noise in training only.

$$dh = \\big(A h + \\tanh(W h + U x(t) + b)\\big)\\,dt
     + \\big(\\epsilon_1 I + \\epsilon_2 \\operatorname{diag}(h)\\big)\\,dB_t,$$

$A = (1-\\beta)(M_A + M_A^\\top) + \\beta(M_A - M_A^\\top) - \\gamma_A I$ and $W$ built the same way
from $M_W$ and $\\gamma_W$. Euler-Maruyama with one step per observation gap is the noisy RNN
$h_{k+1} = h_k + \\Delta_k f(h_k, x_k) + \\sqrt{\\Delta_k}\\,\\sigma(h_k)\\,\\xi_k$.

Reference: Lim, Erichson, Hodgkinson & Mahoney, "Noisy Recurrent Neural Networks", NeurIPS 2021;
the base ODE is the Lipschitz RNN of Erichson, Azencot, Queiruga, Hodgkinson & Mahoney,
"Lipschitz Recurrent Neural Networks", ICLR 2021.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .._checks import check_choice, check_number, check_sizes
from ..controllers import KnotToKnot
from ..data.series import IrregularBatch
from ..errors import InvalidInputError
from ..paths.brownian import BrownianPath
from ..solution import Solution
from ..solvers.base import AbstractSolver, Carry, StepResult
from ..solvers.rk import Euler
from ..solvers.sde import EulerMaruyama
from ..solvers.sde.base import AbstractSDESolver, linear_coefficients, step_size
from ..terms.base import AbstractDriftTerm, AbstractTerm
from ..terms.noise import NoiseTerm, NoiseType, SDEType
from ..terms.ode import ODETerm
from ..terms.sde import SDETerm
from .base import (
    AbstractContinuousModel,
    HeldInput,
    ModelOutput,
    SolveOptions,
    held_input,
    last_observed,
    lead_in_times,
    solve_to_ends,
)

NOISE_FORMS = ("sde", "reference")


def lipschitz_matrix(m: Tensor, beta: float, gamma: float) -> Tensor:
    """$(1-\\beta)(M + M^\\top) + \\beta(M - M^\\top) - \\gamma I$ for `m` `[H, H]`.

    Its symmetric part is $(1-\\beta)(M + M^\\top) - \\gamma I$: with $\\beta = 1$ (or
    $M + M^\\top \\preceq 0$) every eigenvalue of it is at most $-\\gamma$ (Erichson et al. 2021).
    """
    eye = torch.eye(m.shape[0], dtype=m.dtype, device=m.device)
    return (1 - beta) * (m + m.T) + beta * (m - m.T) - gamma * eye


class InputDriven(nn.Module):
    """A cell `cell(x, *states)` as a vector field `f(t, *states, args)` reading `inputs` at `t`."""

    def __init__(self, cell: nn.Module, inputs: HeldInput):
        super().__init__()
        self.cell, self.inputs = cell, inputs

    def forward(self, t: Tensor, *states_and_args: Any) -> Tensor:
        states = states_and_args[:-1]
        return self.cell(self.inputs.evaluate(t).to(states[0].dtype), *states)


class LipschitzCell(nn.Module):
    """$f(h, x) = A h + \\tanh(W h + U x + b)$ with Lipschitz-RNN matrices $A$, $W$.

    $M_A$, $M_W$ are drawn from $N(0, (\\text{init\\_std}/H)^2)$ as in the reference code;
    $U$, $b$ are an `nn.Linear`.
    """

    def __init__(self, channels: int, hidden: int, beta: float, gamma_a: float, gamma_w: float, init_std: float):
        super().__init__()
        self.beta, self.gamma_a, self.gamma_w = beta, gamma_a, gamma_w
        self.m_a = nn.Parameter(torch.randn(hidden, hidden) * (init_std / hidden))
        self.m_w = nn.Parameter(torch.randn(hidden, hidden) * (init_std / hidden))
        self.input_map = nn.Linear(channels, hidden)

    @property
    def a(self) -> Tensor:
        """`[H, H]` the linear feedback $A$."""
        return lipschitz_matrix(self.m_a, self.beta, self.gamma_a)

    @property
    def w(self) -> Tensor:
        """`[H, H]` the recurrent weights $W$ inside the tanh."""
        return lipschitz_matrix(self.m_w, self.beta, self.gamma_w)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        """`x` `[B, C]`, `h` `[B, H]` -> `[B, H]` the drift."""
        return h @ self.a.T + torch.tanh(h @ self.w.T + self.input_map(x))


@dataclass(frozen=True)
class ReferenceNoisyEuler(AbstractSolver):
    """The NoisyRNN reference code's noisy update (`solver='noisy'`), not an SDE solver.

    $y_1 = y_0 + h\\, m \\odot f(t_0, y_0) + \\epsilon_{add}\\,\\xi$ with $m \\sim U[1 - \\epsilon_{mult}, 1)$
    and $\\xi \\sim N(0, I)$ drawn per step and unit from torch's global generator: the
    multiplicative noise perturbs the step, and the additive noise is not scaled by
    $\\sqrt{h}$ (erichson/NoisyRNN, `models.py`). With zero noise it is Euler's method.

    Args:
        additive: $\\epsilon_{add} \\ge 0$.
        multiplicative: $\\epsilon_{mult} \\in [0, 1]$.
    """

    additive: float = 0.0
    multiplicative: float = 0.0
    order: ClassVar[float] = 1.0
    term_types: ClassVar[tuple[type, ...]] = (AbstractDriftTerm,)

    def __post_init__(self) -> None:
        check_number("additive", self.additive, 0.0)
        check_number("multiplicative", self.multiplicative, 0.0, 1.0)

    @property
    def interpolates_saves(self) -> bool:
        """Always `False`: it steps onto save times."""
        return False

    def init(self, term: AbstractTerm, t0: Tensor, y0: Tensor, args: Any) -> tuple[Carry, int]:
        """No carry, no evaluation."""
        return (), 0

    def step(
        self, term: AbstractDriftTerm, t0: Tensor, y0: Tensor, h: Tensor, carry: Carry, args: Any, dense: bool
    ) -> StepResult:
        """One noisy step of signed size `h` `[B]` from `(t0 [B], y0 [B, *state])`."""
        scale = step_size(h, y0)
        if self.multiplicative > 0:
            scale = scale * (1 - self.multiplicative + self.multiplicative * torch.rand_like(y0))
        y1 = y0 + scale * term.vector_field(t0, y0, args)
        if self.additive > 0:
            y1 = y1 + self.additive * torch.randn_like(y0)
        return StepResult(y1=y1, error=None, carry=(), evals=1, coeffs=linear_coefficients(y0, y1, dense))


@dataclass(frozen=True)
class _NoBrownianMotion:
    """Zero increments: the Brownian motion of a noise-free SDE (eval mode)."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device

    def increment(self, ta: Tensor, tb: Tensor) -> Tensor:
        return torch.zeros(self.shape, dtype=self.dtype, device=self.device)


class NoisyRNN(AbstractContinuousModel):
    """Lipschitz RNN driven by Brownian noise in training (Lim et al., NeurIPS 2021).

    The state starts at 0 a time `first_gap` before each sample's first observation, so the
    first step reads $x_0$ and each gap $(t_{k-1}, t_k)$ reads $x_k$
    ([`held_input`][neuralct.models.base.held_input]).
    Noise is used in training mode only:

    - `noise_form="sde"`: in training the term is the Itô SDE with diagonal noise
      $\\sigma(h) = \\epsilon_1 + \\epsilon_2 h$ and a fresh `BrownianPath` per forward pass (seeded
      from torch's global generator); default `SolveOptions(EulerMaruyama(), KnotToKnot())`,
      and any SDE solver for the declared `sde_type` works. In eval mode (or with both
      $\\epsilon = 0$) the term is the drift ODE, default `SolveOptions(Euler(), KnotToKnot())`;
      any ODE solver works, and an SDE solver integrates it with zero noise (Euler-Maruyama
      is then Euler's method).
    - `noise_form="reference"`: the reference code's update
      ([`ReferenceNoisyEuler`][neuralct.models.noisy_rnn.ReferenceNoisyEuler]: random step
      $m \\sim U[1-\\epsilon_2, 1)$, additive noise $\\epsilon_1 \\xi$ without $\\sqrt{\\Delta}$) is the
      default solver in training; in eval mode that solver runs noise-free. The reference's
      learned per-unit step `d` is not reproduced: the step is the observation gap.

    The training noise of a sample depends on its batch (one Brownian tree per batch).

    Args:
        channels: input channels C.
        hidden: hidden units H.
        outputs: outputs O of the linear readout.
        beta: $\\beta \\in [0, 1]$, skew-symmetric against symmetric part of $A$ and $W$.
        gamma_a: $\\gamma_A \\ge 0$.
        gamma_w: $\\gamma_W \\ge 0$.
        init_std: $M_A, M_W \\sim N(0, (\\text{init\\_std}/H)^2)$.
        additive: $\\epsilon_1 \\ge 0$ (default 0.02, as in the paper's runs; 0 and
            `multiplicative=0` give the deterministic Lipschitz RNN).
        multiplicative: $\\epsilon_2 \\ge 0$ (at most 1 for the reference form; default 0.02).
        noise_form: `"sde"` or `"reference"`.
        sde_type: how the SDE is read (`SDEType.STRATONOVICH` admits the Heun solvers; the
            two coincide for additive noise).
        first_gap: positive length of the step that reads $x_0$.

    Raises:
        InvalidInputError: a size, number or option out of range, naming it.
    """

    def __init__(
        self,
        channels: int,
        hidden: int,
        outputs: int,
        *,
        beta: float = 0.75,
        gamma_a: float = 1e-3,
        gamma_w: float = 1e-3,
        init_std: float = 1.0,
        additive: float = 0.02,
        multiplicative: float = 0.02,
        noise_form: str = "sde",
        sde_type: SDEType = SDEType.ITO,
        first_gap: float = 1.0,
    ):
        super().__init__()
        check_sizes(channels=channels, hidden=hidden, outputs=outputs)
        check_choice("noise_form", noise_form, NOISE_FORMS)
        if not isinstance(sde_type, SDEType):
            raise InvalidInputError(f"`sde_type` must be a SDEType (e.g. SDEType.ITO); got {sde_type!r}")
        self.additive = check_number("additive", additive, 0.0)
        self.multiplicative = check_number(
            "multiplicative", multiplicative, 0.0, 1.0 if noise_form == "reference" else math.inf
        )
        self.first_gap = check_number("first_gap", first_gap, 0.0, open_low=True)
        self.noise_form, self.sde_type = noise_form, sde_type
        self.cell = LipschitzCell(
            channels,
            hidden,
            check_number("beta", beta, 0.0, 1.0),
            check_number("gamma_a", gamma_a, 0.0),
            check_number("gamma_w", gamma_w, 0.0),
            check_number("init_std", init_std, 0.0, open_low=True),
        )
        self.decoder = nn.Linear(hidden, outputs)

    @property
    def noisy(self) -> bool:
        """Whether the forward pass is noisy: training mode with a nonzero $\\epsilon$."""
        return self.training and (self.additive > 0 or self.multiplicative > 0)

    def diffusion(self, t: Tensor, h: Tensor, args: Any) -> Tensor:
        """$\\sigma(h) = \\epsilon_1 + \\epsilon_2 h$ (diagonal noise): `h` `[B, H]` -> `[B, H]`."""
        return self.additive + self.multiplicative * h

    def default_solve_options(self) -> SolveOptions:
        """One step per observation gap: Euler-Maruyama (SDE form, training), the reference
        step (reference form, training) or Euler (eval mode, or no noise)."""
        if not self.noisy:
            return SolveOptions(Euler(), KnotToKnot())
        if self.noise_form == "sde":
            return SolveOptions(EulerMaruyama(), KnotToKnot())
        return SolveOptions(ReferenceNoisyEuler(self.additive, self.multiplicative), KnotToKnot())

    def initial_state(self, batch: IrregularBatch) -> Tensor:
        """`[B, H]` zeros."""
        return self.decoder.weight.new_zeros(batch.batch_size, self.decoder.in_features)

    def save_times(self, batch: IrregularBatch) -> Tensor:
        """`[B, T + 1]`: each sample's $t_0$ - `first_gap`, then its observation times."""
        return lead_in_times(batch, self.first_gap)

    def term(self, batch: IrregularBatch) -> ODETerm | SDETerm:
        """The SDE (SDE form, noisy) or the drift ODE driven by the batch's `held_input`."""
        inputs = held_input(batch)
        drift = ODETerm(InputDriven(self.cell, inputs), inputs=inputs)
        if not (self.noisy and self.noise_form == "sde"):
            return drift
        times = self.save_times(batch)
        weight = self.decoder.weight
        brownian = BrownianPath(
            float(times[:, 0].min()),
            float(times[:, -1].max()),
            (batch.batch_size, self.decoder.in_features),
            dtype=weight.dtype,
            device=weight.device,
        )
        return SDETerm(drift, NoiseTerm(self.diffusion, brownian, NoiseType.DIAGONAL, self.sde_type))

    def run(self, batch: IrregularBatch, options: SolveOptions | None = None) -> ModelOutput:
        """As `AbstractContinuousModel.run`, with the noise-free cases of the class docstring:
        an SDE solver on the drift ODE gets zero noise, the reference step in eval mode none."""
        options = options if options is not None else self.default_solve_options()
        term = self.term(batch)
        if isinstance(options.solver, ReferenceNoisyEuler) and not self.training:
            options = replace(options, solver=ReferenceNoisyEuler())
        if isinstance(options.solver, AbstractSDESolver) and not isinstance(term, SDETerm):
            weight = self.decoder.weight
            still = _NoBrownianMotion((batch.batch_size, self.decoder.in_features), weight.dtype, weight.device)
            term = SDETerm(term, NoiseTerm(lambda t, h, args: torch.zeros_like(h), still, sde_type=self.sde_type))
        solution = solve_to_ends(term, self.initial_state(batch), self.save_times(batch), batch, options)
        return ModelOutput(self.readout(solution, batch), solution.stats)

    def readout(self, solution: Solution, batch: IrregularBatch) -> Tensor:
        """`[B, O]` the linear readout of the state at each sample's last observation."""
        return self.decoder(last_observed(solution.ys[:, 1:], batch))
