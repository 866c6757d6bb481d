"""Series files in and out: UEA/UCR `.ts`, long-format CSV and ragged `.npz`, chosen by extension.

```py
from neuralct.data import read_series_file, save_npz

train = read_series_file("train.csv", target="label")  # SeriesFile: .batch [B, T, C], .classes, ...
save_npz(train, "train.npz")  # the same series, object-free and quick to load
```
"""

from .base import DataFileError, SeriesFile
from .labels import label_order
from .series_file import read_series_file, save_npz, write_series_file
from .ts import TSFile, read_ts

__all__ = [
    "DataFileError",
    "SeriesFile",
    "TSFile",
    "label_order",
    "read_series_file",
    "read_ts",
    "save_npz",
    "write_series_file",
]
