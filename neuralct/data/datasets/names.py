"""Dataset names: `available()` lists them, `register()` makes a user's loader one of them.

Light on purpose (no torch): `neuralct list` and config validation only need the names.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ... import registry
from ..._catalog import Entry
from ...errors import InvalidInputError

if TYPE_CHECKING:
    from ..series import IrregularBatch

# The splits `neuralct fit` and `neuralct evaluate` load.
_NEEDED = ("train", "test")


def available() -> dict[str, str]:
    """Every dataset name (built in, registered, or from an installed entry point) with a
    one-line description."""
    return registry.names("dataset")


def register(
    name: str,
    loader: Callable[..., IrregularBatch],
    *,
    description: str | None = None,
    splits: Sequence[str] = _NEEDED,
) -> None:
    """Make `loader` the dataset `name`, for [`load`][neuralct.data.datasets.load],
    `FitConfig(dataset=name)`, `neuralct list` and the command line, in this process.

    ```python
    from neuralct.data import from_arrays
    from neuralct.data.datasets import load, register

    def my_sensors(split, seed, size=100):
        \"\"\"Sensor traces of my lab, 3 channels -> fault class.\"\"\"
        ...  # read the split's series and return them as an IrregularBatch (e.g. by from_arrays)

    register("my_sensors", my_sensors)
    train = load("my_sensors", "train", missing_rate=0.2, size=50)
    ```

    To give the name to `neuralct fit --dataset` (another process), declare the loader as an
    entry point of the group `neuralct.datasets` in the package that defines it
    (`my_sensors = "my_package.data:my_sensors"` under `[project.entry-points."neuralct.datasets"]`).

    Args:
        name: the new name: letters, digits, `_`, `.` or `-`, not taken by another dataset.
        loader: called as `loader(split, seed, **options)` and returning an
            [`IrregularBatch`][neuralct.data.IrregularBatch], like the built-in datasets; `seed`
            seeds anything drawn at random; options are its keyword arguments (sizes, files).
        description: the line `neuralct list` shows; the first line of the loader's docstring
            by default.
        splits: the split names the loader accepts; they include "train" and "test".

    Raises:
        InvalidInputError: a name already taken or malformed, a loader that cannot be called
            as `loader(split, seed)`, a description of more than one line, bad splits.
    """
    check_loader(name, loader)
    if isinstance(splits, str) or not all(isinstance(s, str) and s for s in splits) or len(set(splits)) < len(splits):
        raise InvalidInputError(f"`splits` must be distinct non-empty names such as ('train', 'test'); got {splits!r}")
    if not set(_NEEDED) <= set(splits):
        raise InvalidInputError(f"`splits` must include 'train' and 'test' (what `neuralct fit` loads); got {splits!r}")
    if description is None:
        description = (inspect.getdoc(loader) or f"{name}, registered in Python").splitlines()[0]
    registry.add("dataset", name, Entry(loader, description, tuple(splits)))


def check_loader(name: str, loader: Any) -> None:
    """Raise `InvalidInputError` unless `loader` can be called as `loader(split, seed)`."""
    if not callable(loader):
        raise InvalidInputError(f"the loader of dataset {name!r} must be callable; got {loader!r}")
    try:
        inspect.signature(loader).bind("train", 0)
    except (TypeError, ValueError) as error:
        raise InvalidInputError(
            f"the loader of dataset {name!r} must be callable as loader(split, seed, **options); "
            f"{getattr(loader, '__name__', loader)!r} cannot ({error})"
        ) from None
