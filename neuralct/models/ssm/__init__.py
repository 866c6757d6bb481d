"""Linear state-space layers and the model built from them.

- Layers `[B, L, H] -> [B, L, H]`: `LSSL` (HiPPO memory, `hippo`), `HOPE` (Markov parameters),
  `S4D` (diagonal), with the kernels and scans they share (`kernels`).
- `DeepSSM`: a residual stack of such layers, and `param_groups` for their special rates.
- `SSMModel` (`model`): the stack read at each sample's observations of an irregular series,
  registered as the `s4d`, `lssl`, `hope` and `deep_ssm` models.
"""

from .deep import DeepSSM, SSMBlock, param_groups
from .hippo import HIPPO, hippo_lagt, hippo_legs, hippo_legt
from .hope import HOPE, fir_realization, hope_transfer, mobius
from .lssl import LSSL
from .model import SSMModel, hope_model, lssl_model, s4d_model
from .s4d import S4D, s4d_init

__all__ = [
    "HIPPO",
    "HOPE",
    "LSSL",
    "S4D",
    "DeepSSM",
    "SSMBlock",
    "SSMModel",
    "fir_realization",
    "hippo_lagt",
    "hippo_legs",
    "hippo_legt",
    "hope_model",
    "hope_transfer",
    "lssl_model",
    "mobius",
    "param_groups",
    "s4d_init",
    "s4d_model",
]
