"""Sequence models built on the solver core.

- Linear state-space layers (LSSL, HOPE, S4D), their deep stack and `SSMModel` (the registered
  `s4d`, `lssl`, `hope`, `deep_ssm` models of irregular series), in `neuralct.models.ssm`.
- Nonlinear continuous-time models: LTC (and CfC), neural CDE and ANCDE, the noisy RNN (an
  SDE), tau-GRU (a delay equation).
- Irregular-series baselines (`neuralct.models.baselines`): GRU-D, ODE-RNN, a GRU given the gaps.
- The interface they share (`neuralct.models.base`).
"""

from .ancde import ANCDE
from .base import (
    AbstractContinuousModel,
    AbstractJumpModel,
    AbstractSequenceModel,
    HeldInput,
    ModelOutput,
    SolveOptions,
    held_input,
    last_observed,
    lead_in_times,
    solve_to_ends,
)
from .baselines import GRUD, ODERNN, GRUDelta
from .cfc import CfC, CfCCell
from .ltc import LTC, LTCFused, LTCField, LTCTerm
from .ncde import NeuralCDE
from .noisy_rnn import NoisyRNN, ReferenceNoisyEuler, lipschitz_matrix
from .ssm import (
    HIPPO,
    HOPE,
    LSSL,
    S4D,
    DeepSSM,
    SSMBlock,
    SSMModel,
    fir_realization,
    hippo_lagt,
    hippo_legs,
    hippo_legt,
    hope_model,
    hope_transfer,
    lssl_model,
    mobius,
    param_groups,
    s4d_init,
    s4d_model,
)
from .tau_gru import TauGRU, TauGRUCell, tau_gru_recursion

__all__ = [
    "ANCDE",
    "GRUD",
    "HIPPO",
    "HOPE",
    "LSSL",
    "LTC",
    "ODERNN",
    "S4D",
    "AbstractContinuousModel",
    "AbstractJumpModel",
    "AbstractSequenceModel",
    "CfC",
    "CfCCell",
    "DeepSSM",
    "GRUDelta",
    "HeldInput",
    "LTCField",
    "LTCFused",
    "LTCTerm",
    "ModelOutput",
    "NeuralCDE",
    "NoisyRNN",
    "ReferenceNoisyEuler",
    "SSMBlock",
    "SSMModel",
    "SolveOptions",
    "TauGRU",
    "TauGRUCell",
    "fir_realization",
    "held_input",
    "hippo_lagt",
    "hippo_legs",
    "hippo_legt",
    "hope_model",
    "hope_transfer",
    "last_observed",
    "lead_in_times",
    "lipschitz_matrix",
    "lssl_model",
    "mobius",
    "param_groups",
    "s4d_init",
    "s4d_model",
    "solve_to_ends",
    "tau_gru_recursion",
]
