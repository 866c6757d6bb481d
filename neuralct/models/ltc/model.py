"""LTC: liquid time-constant networks, the biophysical conductance model of Hasani et al.

Each of the N neurons has a membrane potential $v_i$ driven by a leak, by N recurrent synapses
and by S sensory synapses from the input $I(t)$:

$$C_{m,i} \\dot v_i = g_{l,i}(v_{l,i} - v_i)
+ \\sum_j w_{ji}\\, \\sigma\\big(s_{ji}(v_j - \\mu_{ji})\\big)(E_{ji} - v_i)
+ \\sum_s \\hat w_{si}\\, \\sigma\\big(\\hat s_{si}(I_s - \\hat\\mu_{si})\\big)(\\hat E_{si} - v_i).$$

The synaptic conductances are positive, so the time constant $C_m / (g_l + \\sum w \\sigma)$
varies with the state and the input (it is "liquid") and $v_i$ stays between the smallest and
the largest of its own start value, leak potential and reversal potentials. The network is
solved with the fused semi-implicit step (`neuralct.models.ltc.LTCFused`), knot to knot,
or with any ODE solver.

Reference: Hasani, Lechner, Amini, Rus & Grosu, "Liquid Time-Constant Networks", AAAI 2021;
parameters, initialisation and constraints of `ncps.torch.LTCCell` (`mlech26l/ncps`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional

from ..._checks import check_instance, check_int, check_number, check_sizes, describe
from ...controllers import KnotToKnot
from ...data.series import IrregularBatch
from ...errors import InvalidInputError
from ...solution import Solution
from ...terms.base import path_jump_times
from ..base import AbstractContinuousModel, SolveOptions, held_input, last_observed, lead_in_times
from .fused import AbstractLTCTerm, LTCFused

# Uniform initialisation ranges of ncps.torch.LTCCell (raw values, before softplus).
INIT_RANGES = {
    "gleak": (0.001, 1.0),
    "vleak": (-0.2, 0.2),
    "cm": (0.4, 0.6),
    "w": (0.001, 1.0),
    "sigma": (3.0, 8.0),
    "mu": (0.3, 0.8),
    "sensory_w": (0.001, 1.0),
    "sensory_sigma": (3.0, 8.0),
    "sensory_mu": (0.3, 0.8),
}
POSITIVE = ("cm", "gleak", "w", "sensory_w")


class LTCField(nn.Module):
    """The parameters of a fully connected LTC network and the conductance sums of its field.

    Parameter names, shapes and initial ranges are those of `ncps.torch.LTCCell` with the
    `FullyConnected` wiring (so state dicts copy over): `gleak`, `vleak`, `cm` `[N]`; `w`,
    `sigma`, `mu`, `erev` `[N, N]` indexed (source, target); `sensory_w`, `sensory_sigma`,
    `sensory_mu`, `sensory_erev` `[S, N]`; the affine input map `input_w` (ones), `input_b`
    (zeros) `[S]`. Reversal potentials are drawn from $\\{-1, 1, 1\\}$ (two thirds excitatory)
    and, as in ncps, trained.

    `cm`, `gleak`, `w` and `sensory_w` must be non-negative. With `implicit_constraints=True`
    (ncps's `LTC` default) the raw parameters pass through a softplus; with `False` they are used
    as they are and `apply_weight_constraints()` clips them at 0 (call it after every optimiser
    step).

    Args:
        inputs: sensory inputs S.
        units: neurons N.
        implicit_constraints: softplus (True) or clipping (False) for the positive parameters.

    Raises:
        InvalidInputError: `inputs` or `units` not a positive int.
    """

    def __init__(self, inputs: int, units: int, *, implicit_constraints: bool = True) -> None:
        super().__init__()
        check_int("inputs", inputs)
        check_int("units", units)
        self.implicit_constraints = bool(implicit_constraints)
        for name, (low, high) in INIT_RANGES.items():
            shape = (units,) if name in ("gleak", "vleak", "cm") else (inputs if "sensory" in name else units, units)
            self.register_parameter(name, nn.Parameter(torch.empty(shape).uniform_(low, high)))
        polarity = torch.tensor([-1.0, 1.0, 1.0])
        self.erev = nn.Parameter(polarity[torch.randint(0, 3, (units, units))])
        self.sensory_erev = nn.Parameter(polarity[torch.randint(0, 3, (inputs, units))])
        self.input_w = nn.Parameter(torch.ones(inputs))
        self.input_b = nn.Parameter(torch.zeros(inputs))

    def positive(self, name: str) -> Tensor:
        """The constrained value of `cm`, `gleak`, `w` or `sensory_w` (softplus or as is)."""
        raw = getattr(self, name)
        return functional.softplus(raw) if self.implicit_constraints else raw

    def map_inputs(self, x: Tensor) -> Tensor:
        """The affine input map $w \\odot x + b$: `[B, S]` -> `[B, S]`."""
        return x * self.input_w + self.input_b

    def input_sums(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """Leak plus sensory synapses: $(g_l v_l + \\sum_s \\hat g_s \\hat E_s,\\; g_l + \\sum_s \\hat g_s)$,
        each `[B, N]`, for mapped `inputs` `[B, S]`."""
        conductance = self._synapses(inputs, "sensory_")
        gleak = self.positive("gleak")
        numerator = gleak * self.vleak + (conductance * self.sensory_erev).sum(dim=1)
        return numerator, gleak + conductance.sum(dim=1)

    def state_sums(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """Recurrent synapses: $(\\sum_j g_j E_j,\\; \\sum_j g_j)$, each `[B, N]`, at `v` `[B, N]`."""
        return self.state_sums_for_step()(v)

    def state_sums_for_step(self) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
        """`state_sums` with the constrained recurrent weights formed once, for the unfolds of a step."""
        weights = self.positive("w")

        def sums(v: Tensor) -> tuple[Tensor, Tensor]:
            conductance = self._synapses(v, "", weights)
            return (conductance * self.erev).sum(dim=1), conductance.sum(dim=1)

        return sums

    def _synapses(self, pre: Tensor, prefix: str, weights: Tensor | None = None) -> Tensor:
        """`[B, source, N]` conductances $w\\, \\sigma(s (v_{pre} - \\mu))$ of the synapses named by
        `prefix`, with the constrained weights $w$ given or formed here."""
        gate = torch.sigmoid(getattr(self, prefix + "sigma") * (pre.unsqueeze(-1) - getattr(self, prefix + "mu")))
        return (self.positive(prefix + "w") if weights is None else weights) * gate

    @torch.no_grad()
    def apply_weight_constraints(self) -> None:
        """Clip `cm`, `gleak`, `w`, `sensory_w` at 0 in place (nothing with implicit constraints)."""
        if not self.implicit_constraints:
            for name in POSITIVE:
                getattr(self, name).clamp_(min=0.0)


class LTCTerm(AbstractLTCTerm):
    """The LTC vector field driven by an input path, for `LTCFused` or any ODE solver.

    $\\dot v = (N(v, I(t)) - D(v, I(t))\\, v) / C_m$ with $I(t)$ the affinely mapped input path;
    the conductance sums $N$, $D$ come from the field's `input_sums` and `state_sums`.

    Args:
        field: the network's parameters (registered as a submodule, so they belong to the term).
        path: the input with S channels: `evaluate(t)` takes `[B]` times and returns `[B, S]`
            (e.g. `neuralct.models.base.held_input(batch)`); its `jump_times()`, if any, are the
            term's, so solvers land on its knots.

    Raises:
        InvalidInputError: `field` is not an `LTCField` or `path` has no `evaluate`.
    """

    def __init__(self, field: LTCField, path: Any) -> None:
        super().__init__()
        check_instance("field", field, LTCField, "an LTCField")
        if not callable(getattr(path, "evaluate", None)):
            raise InvalidInputError(f"`path` must have an evaluate(t) method; got {describe(path)}")
        self.field = field
        self.path = path

    @property
    def capacitance(self) -> Tensor:
        """`[N]` the membrane capacitances $C_m$ (constrained)."""
        return self.field.positive("cm")

    def input(self, t: Tensor) -> Tensor:
        """`[B, S]` the mapped input $w \\odot x(t) + b$ at `t` `[B]`."""
        return self.field.map_inputs(self.path.evaluate(t).to(self.field.cm.dtype))

    def input_sums(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """See `LTCField.input_sums`."""
        return self.field.input_sums(inputs)

    def state_sums(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """See `LTCField.state_sums`."""
        return self.field.state_sums(v)

    def state_sums_for_step(self) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
        """See `LTCField.state_sums_for_step`."""
        return self.field.state_sums_for_step()

    def jump_times(self, ts: Tensor) -> Tensor | None:
        """The path's knots, when it declares them by a `jump_times()` method."""
        return path_jump_times(self.path)


class LTC(AbstractContinuousModel):
    """A fully connected LTC network with a linear readout of the state at the last observation.

    The input is the batch held piecewise constant (`held_input`: $x_k$ over the gap that ends at $t_k$).
    The state starts at 0 a time `first_gap` before each sample's first observation, so the
    first step reads $x_0$ over a gap of `first_gap` (ncps's elapsed time 1.0 by default) and
    each later gap $t_k - t_{k-1}$ reads $x_k$: with the default `SolveOptions(LTCFused(unfolds),
    KnotToKnot())` the model is `ncps.torch.LTCCell` run with per-sample elapsed times. Any other
    ODE solver solves the same equation (e.g. `SolveOptions(Tsit5(), PIDController(1e-6))`).

    Args:
        channels: input channels C (the sensory inputs).
        hidden: neurons H.
        outputs: outputs O of the linear readout.
        unfolds: fused sub-steps per observation gap of the default solver.
        implicit_constraints: softplus positivity (True) or clipping by `apply_weight_constraints`.
        first_gap: the (positive) time before the first observation at which the state is 0.

    Raises:
        InvalidInputError: a size or `unfolds` not a positive int, or `first_gap` not a positive number.
    """

    def __init__(
        self,
        channels: int,
        hidden: int,
        outputs: int,
        *,
        unfolds: int = 6,
        implicit_constraints: bool = True,
        first_gap: float = 1.0,
    ) -> None:
        super().__init__()
        check_sizes(channels=channels, hidden=hidden, outputs=outputs)
        self.solver = LTCFused(unfolds)
        self.first_gap = check_number("first_gap", first_gap, 0.0, open_low=True)
        self.field = LTCField(channels, hidden, implicit_constraints=implicit_constraints)
        self.output = nn.Linear(hidden, outputs)

    def default_solve_options(self) -> SolveOptions:
        """`SolveOptions(LTCFused(unfolds), KnotToKnot())`: one fused step per observation gap."""
        return SolveOptions(self.solver, KnotToKnot())

    def initial_state(self, batch: IrregularBatch) -> Tensor:
        """`[B, H]` zeros."""
        return self.field.cm.new_zeros(batch.batch_size, self.field.cm.shape[0])

    def term(self, batch: IrregularBatch) -> LTCTerm:
        """The LTC field driven by the batch's held input."""
        return LTCTerm(self.field, held_input(batch))

    def save_times(self, batch: IrregularBatch) -> Tensor:
        """`[B, T + 1]`: each sample's start $t_0$ - `first_gap`, then its observation times."""
        return lead_in_times(batch, self.first_gap)

    def readout(self, solution: Solution, batch: IrregularBatch) -> Tensor:
        """`[B, O]` the linear readout of the state at each sample's last observation."""
        return self.output(last_observed(solution.ys[:, 1:], batch))

    def apply_weight_constraints(self) -> None:
        """Clip the positive parameters at 0 (with `implicit_constraints=False`; see `LTCField`)."""
        self.field.apply_weight_constraints()


__all__ = ["INIT_RANGES", "LTC", "LTCField", "LTCTerm"]
