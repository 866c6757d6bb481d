"""Ragged NumPy arrays or tensors, one per series, into an [`IrregularBatch`][neuralct.data.IrregularBatch].

```python
import numpy as np
from neuralct.data import from_arrays

batch = from_arrays(
    [np.array([0.0, 0.5, 2.0]), np.array([0.1, 0.3])],  # times, one [T_i] per series
    [np.array([[1.0, np.nan], [2.0, 0.5], [0.3, 0.1]]), np.array([[4.0, 1.0], [5.0, np.nan]])],  # [T_i, C]
    targets=[1, 0],
)
batch.lengths  # tensor([3, 2]); batch.targets: long
```
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .._checks import check_number, describe
from ..errors import InvalidInputError
from .series import IrregularBatch, Series, collate

ArrayLike = np.ndarray | Tensor | Sequence[float]


def from_arrays(
    times: Sequence[ArrayLike] | None,
    values: Sequence[ArrayLike],
    targets: ArrayLike | None = None,
    *,
    mask: Sequence[ArrayLike] | None = None,
    time_step: float = 1.0,
) -> IrregularBatch:
    """A batch from one array per series, padded to the longest.

    Positions where no channel is observed stay as they are (a file reader removes them first).

    Args:
        times: one `[T_i]` array of strictly increasing times per series, or `None` for
            `times[b, k] = k * time_step`.
        values: one `[T_i, C]` array per series (`[T_i]` for one channel); NaN marks a missing value.
        targets: `[B, ...]` targets, or `None`. Integer targets become `long` (class indices),
            floating ones torch's default dtype.
        mask: one `[T_i, C]` (or `[T_i]`) boolean array per series, `True` where observed, or
            `None` for wherever `values` is not NaN.
        time_step: the time between positions when `times` is `None`.

    Returns:
        The batch, times and values in torch's default floating dtype.

    Raises:
        InvalidInputError: no series, an array of the wrong shape, series with different channel
            counts, times that are not finite and strictly increasing in the default dtype, targets
            that are not numbers or not `[B, ...]`, or a `time_step` that is not a finite number > 0.
    """
    if isinstance(values, (np.ndarray, Tensor)) or not isinstance(values, Sequence) or not values:
        raise InvalidInputError(f"`values` must be a non-empty list of [T_i, C] arrays; got {describe(values)}")
    series = [_values(i, item) for i, item in enumerate(values)]
    for i, item in enumerate(series):
        if item.shape[1] != series[0].shape[1]:
            raise InvalidInputError(
                f"`values[{i}]` must have the C = {series[0].shape[1]} channels of values[0]; got {item.shape[1]}"
            )
    grid = _times(times, series, time_step)
    masks = [None] * len(series) if mask is None else _masks(mask, series)
    rows = _targets(targets, len(series))
    return collate(
        [
            Series(t, v, m, target=None if rows is None else rows[i])
            for i, (t, v, m) in enumerate(zip(grid, series, masks))
        ]
    )


def first_unordered(times: Tensor | np.ndarray) -> int | None:
    """The first position k of `times` `[T]` with `times[k] <= times[k - 1]` (or not finite), else `None`."""
    times = torch.as_tensor(times)
    bad = ~torch.isfinite(times)
    bad[1:] |= times.diff() <= 0
    return int(bad.nonzero()[0]) if bool(bad.any()) else None


def _values(i: int, item: ArrayLike) -> Tensor:
    tensor = torch.as_tensor(np.asarray(item) if not isinstance(item, Tensor) else item)
    if tensor.ndim == 1:
        tensor = tensor.unsqueeze(-1)
    if tensor.ndim != 2 or tensor.shape[0] == 0 or not (tensor.is_floating_point() or _integral(tensor)):
        raise InvalidInputError(
            f"`values[{i}]` must be a numeric [T_i, C] or [T_i] array, T_i >= 1; got {describe(item)}"
        )
    return tensor.to(torch.get_default_dtype())


def _times(times: Sequence[ArrayLike] | None, series: list[Tensor], time_step: float) -> list[Tensor]:
    dtype = torch.get_default_dtype()
    if times is None:
        check_number("time_step", time_step, 0.0, open_low=True)
        return [torch.arange(len(item), dtype=dtype) * time_step for item in series]
    if not isinstance(times, Sequence) or len(times) != len(series):
        raise InvalidInputError(f"`times` must be None or a list of {len(series)} [T_i] arrays; got {describe(times)}")
    grid = []
    for i, (item, rows) in enumerate(zip(times, series)):
        tensor = torch.as_tensor(np.asarray(item) if not isinstance(item, Tensor) else item).to(dtype)
        if tensor.shape != (len(rows),):
            raise InvalidInputError(f"`times[{i}]` must be [T_i = {len(rows)}] like values[{i}]; got {describe(item)}")
        k = first_unordered(tensor)
        if k is not None:
            raise InvalidInputError(
                f"`times[{i}]` must be finite and strictly increasing in {dtype}; got {float(tensor[k]):.9g} "
                f"at position {k}" + (f" after {float(tensor[k - 1]):.9g}" if k else "")
            )
        grid.append(tensor)
    return grid


def _masks(mask: Sequence[ArrayLike], series: list[Tensor]) -> list[Tensor]:
    if not isinstance(mask, Sequence) or len(mask) != len(series):
        raise InvalidInputError(f"`mask` must be None or a list of {len(series)} boolean arrays; got {describe(mask)}")
    tensors = []
    for i, (item, rows) in enumerate(zip(mask, series)):
        tensor = torch.as_tensor(np.asarray(item) if not isinstance(item, Tensor) else item)
        tensor = tensor.unsqueeze(-1) if tensor.ndim == 1 else tensor
        if tensor.shape != rows.shape or tensor.dtype != torch.bool:
            raise InvalidInputError(
                f"`mask[{i}]` must be a boolean array shaped like values[{i}]; got {describe(item)}"
            )
        tensors.append(tensor)
    return tensors


def _targets(targets: ArrayLike | None, size: int) -> Tensor | None:
    if targets is None:
        return None
    array = targets if isinstance(targets, Tensor) else torch.as_tensor(_numeric(targets))
    if array.ndim == 0 or array.shape[0] != size or not (array.is_floating_point() or _integral(array)):
        raise InvalidInputError(f"`targets` must be numbers [B = {size}, ...]; got {describe(targets)}")
    return array.long() if _integral(array) else array.to(torch.get_default_dtype())


def _numeric(targets: ArrayLike) -> np.ndarray:
    array = np.asarray(targets)
    if array.dtype.kind not in "iuf":
        raise InvalidInputError(
            f"`targets` must be numbers (map class labels to 0..K-1 first); got a {array.dtype} array"
        )
    return array


def _integral(tensor: Tensor) -> bool:
    return not tensor.is_floating_point() and not tensor.is_complex() and tensor.dtype != torch.bool
