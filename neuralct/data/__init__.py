"""Data for irregularly sampled time series: the padded batch, controls, transforms, datasets."""

from . import datasets
from .controls import ControlPath, control_path
from .series import IrregularBatch, Series, collate, pad_times
from .transforms import Normalize, drop_observations, jitter_times, merge_close_times

__all__ = [
    "ControlPath",
    "IrregularBatch",
    "Normalize",
    "Series",
    "collate",
    "control_path",
    "datasets",
    "drop_observations",
    "jitter_times",
    "merge_close_times",
    "pad_times",
]
