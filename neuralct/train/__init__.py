"""Training: run configuration, minibatches of irregular series, one epoch of optimisation, evaluation, checkpoints."""

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .config import FitConfig, check_numerics
from .loop import EpochResult, evaluate, minibatches, task_loss, train_epoch
from .run import TrainingDiverged, evaluate_run, fit
from .sweep import sweep

__all__ = [
    "Checkpoint",
    "EpochResult",
    "FitConfig",
    "TrainingDiverged",
    "check_numerics",
    "evaluate",
    "evaluate_run",
    "fit",
    "load_checkpoint",
    "minibatches",
    "save_checkpoint",
    "sweep",
    "task_loss",
    "train_epoch",
]
