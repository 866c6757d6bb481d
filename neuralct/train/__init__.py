"""Training: run configuration, minibatches of irregular series, one epoch of optimisation,
evaluation, checkpoints, progress, data-parallel processes."""

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .config import FitConfig
from .numerics import check_numerics
from .distributed import Workers, session
from .loop import (
    BatchReport,
    EpochResult,
    TrainingDiverged,
    TrainingFailed,
    evaluate,
    minibatches,
    train_epoch,
)
from .progress import Progress, ProgressBar
from .build import LoadedRun, evaluate_run, finished_run_config, load_run
from .run import fit
from .scoring import Scored, score, task_loss
from .sweep import sweep
from .targets import StandardizedTargets

__all__ = [
    "BatchReport",
    "Checkpoint",
    "EpochResult",
    "FitConfig",
    "LoadedRun",
    "Progress",
    "ProgressBar",
    "Scored",
    "StandardizedTargets",
    "TrainingDiverged",
    "TrainingFailed",
    "Workers",
    "check_numerics",
    "evaluate",
    "evaluate_run",
    "finished_run_config",
    "fit",
    "load_run",
    "load_checkpoint",
    "minibatches",
    "save_checkpoint",
    "score",
    "session",
    "sweep",
    "task_loss",
    "train_epoch",
]
