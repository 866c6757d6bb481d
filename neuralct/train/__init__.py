"""Training: minibatches of irregular series, one epoch of optimisation, evaluation."""

from .loop import EpochResult, evaluate, minibatches, task_loss, train_epoch

__all__ = ["EpochResult", "evaluate", "minibatches", "task_loss", "train_epoch"]
