"""Sequence models built on the solver core: linear state-space layers (LSSL, HOPE, S4D) and their stack."""

from .deep_ssm import DeepSSM, SSMBlock, param_groups
from .hippo import HIPPO, hippo_lagt, hippo_legs, hippo_legt
from .hope import HOPE, fir_realization, hope_transfer, mobius
from .lssl import LSSL
from .s4d import S4D, s4d_init

__all__ = [
    "HIPPO",
    "HOPE",
    "LSSL",
    "S4D",
    "DeepSSM",
    "SSMBlock",
    "fir_realization",
    "hippo_lagt",
    "hippo_legs",
    "hippo_legt",
    "hope_transfer",
    "mobius",
    "param_groups",
    "s4d_init",
]
