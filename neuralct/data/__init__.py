"""Data for irregularly sampled time series: the padded batch, controls, transforms, datasets."""

from .series import IrregularBatch, Series, collate, pad_times

__all__ = ["IrregularBatch", "Series", "collate", "pad_times"]
