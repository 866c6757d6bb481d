"""Data for irregularly sampled time series: the padded batch, controls, transforms, datasets."""

from typing import TYPE_CHECKING

from .._lazy import lazy_package

if TYPE_CHECKING:  # the names below, for type checkers; at run time each is imported on first use
    from . import datasets
    from .arrays import from_arrays
    from .batching import minibatch_indices
    from .controls import ControlPath, control_path
    from .files import DataFileError, SeriesFile, label_order, read_series_file, save_npz, write_series_file
    from .merging import merge_close_times
    from .series import IrregularBatch, Series, collate, pad_times
    from .transforms import Normalize, drop_observations, jitter_times

lazy_package(
    __name__,
    {
        ".arrays": ("from_arrays",),
        ".batching": ("minibatch_indices",),
        ".controls": ("ControlPath", "control_path"),
        ".files": ("DataFileError", "SeriesFile", "label_order", "read_series_file", "save_npz", "write_series_file"),
        ".merging": ("merge_close_times",),
        ".series": ("IrregularBatch", "Series", "collate", "pad_times"),
        ".transforms": ("Normalize", "drop_observations", "jitter_times"),
    },
    submodules=("datasets",),
)

__all__ = [
    "ControlPath",
    "DataFileError",
    "IrregularBatch",
    "Normalize",
    "Series",
    "SeriesFile",
    "collate",
    "control_path",
    "datasets",
    "drop_observations",
    "from_arrays",
    "jitter_times",
    "label_order",
    "merge_close_times",
    "minibatch_indices",
    "pad_times",
    "read_series_file",
    "save_npz",
    "write_series_file",
]
