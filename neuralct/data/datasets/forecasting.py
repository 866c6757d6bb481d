"""Forecasting windows cut from one long real series with real gaps: Mauna Loa CO2."""

from __future__ import annotations

import csv
import datetime
import functools
import math

import numpy as np
import torch

from ..series import IrregularBatch
from ._common import check_count, wheel_file

# The chronological split: a window is "train" when its last target week is before this date,
# "test" when its first input week is on or after it; windows straddling it are dropped.
CO2_SPLIT_DATE = datetime.date(1990, 1, 1)


def co2(split: str, seed: int, history: int = 52, horizon: int = 13, stride: int = 4) -> IrregularBatch:
    """Mauna Loa CO2, weekly 1958-2001 with its real gaps: forecast the next weeks (regression).

    Weekly mean CO2 concentration (ppm) from continuous air samples at Mauna Loa Observatory,
    29 March 1958 to 29 December 2001: 2284 weeks, of which 59 (in 1958-1985) have no
    measurement. The series
    is cut into windows of `history` input weeks followed by `horizon` target weeks, every
    `stride` weeks. Weeks without a measurement stay unobserved in the inputs (mask `False`):
    the gaps are real, not simulated. Windows whose target weeks include a gap are skipped,
    so every target is a measurement.

    - Source: Keeling & Whorf, Scripps Institution of Oceanography (CDIAC), as
      `statsmodels/datasets/co2/co2.csv` of the `statsmodels==0.15.0` wheel (`make datasets`).
    - Licence: public domain (as statsmodels states); the wheel is BSD 3-Clause.
    - Split: chronological, at 1 January 1990 (`CO2_SPLIT_DATE`): train windows end before
      it, test windows start on or after it, so no week is in both. With the defaults: 348
      train windows (382 unobserved input weeks among them) and 140 test windows (the
      1990s have no gaps). `seed` is unused.
    - Inputs: `[B, history, 1]` ppm. Times: weeks since the window's first week, 0 to
      `history - 1` (every sample shares the grid; gaps differ).
    - Targets: `[B, horizon]` ppm at weeks `history`, ..., `history + horizon - 1`.

    Args:
        split: "train" or "test".
        seed: unused.
        history: input weeks per window.
        horizon: target weeks per window.
        stride: weeks between the starts of consecutive windows.
    """
    check_count(history=(history, 2), horizon=(horizon, 1), stride=(stride, 1))
    dates, ppm = _co2_weeks()
    span = history + horizon
    inputs, targets = [], []
    for start in range(0, len(ppm) - span + 1, stride):
        target = ppm[start + history : start + span]
        if np.isnan(target).any() or not _in_split(dates[start], dates[start + span - 1], split):
            continue
        inputs.append(ppm[start : start + history])
        targets.append(target)
    dtype = torch.get_default_dtype()
    values = torch.as_tensor(np.stack(inputs)[:, :, None], dtype=dtype)
    times = torch.arange(history, dtype=dtype)
    return IrregularBatch.from_padded(times, values, targets=torch.as_tensor(np.stack(targets), dtype=dtype))


def co2_overlap(history: int = 52, horizon: int = 13, stride: int = 4) -> int:
    """How many later windows of `co2` (with these options) share weeks with a window: a
    chronological validation split leaves that many training windows out before it."""
    return math.ceil((history + horizon) / stride) - 1


def _in_split(first: datetime.date, last: datetime.date, split: str) -> bool:
    return last < CO2_SPLIT_DATE if split == "train" else first >= CO2_SPLIT_DATE


@functools.lru_cache(maxsize=1)
def _co2_weeks() -> tuple[list[datetime.date], np.ndarray]:
    """The week dates and `[2284]` ppm values (NaN where the week has no measurement)."""
    with open(wheel_file("statsmodels", "datasets", "co2", "co2.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    dates = [datetime.datetime.strptime(row["date"], "%Y%m%d").date() for row in rows]
    ppm = np.array([float(row["co2"]) if row["co2"] else np.nan for row in rows])
    return dates, ppm
