"""The classical baselines of the long-series benchmark: 1-NN (Euclidean, DTW) and MiniRocket.

Every baseline sees the batches neuralct's models see (`neuralct.data.datasets.load` with the
same `missing_rate` and `seed`), resampled by `resample` to one common length, because all
three need equal-length input. The Euclidean and DTW distances are torch code that runs
wherever neuralct does; MiniRocket (and the DTW cross-check in the tests) need aeon with its
dependencies (numba, scikit-learn, pandas: the `bench` extra), which CI does not install, so
`aeon_runs()` says whether they can run.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from neuralct.data import IrregularBatch

_AEON_NEEDS = ("aeon", "numba", "sklearn", "pandas", "joblib", "narwhals")


def aeon_runs() -> bool:
    """Whether aeon's estimators can be imported: aeon and the libraries they import are installed
    (`make datasets` installs aeon's files alone, with --no-deps)."""
    return all(importlib.util.find_spec(name) is not None for name in _AEON_NEEDS)


def resample(batch: IrregularBatch, length: int) -> np.ndarray:
    """Each series linearly interpolated at `length` equally spaced times over its own observed span.

    For sample b and channel c, the grid runs from the first to the last time at which that
    channel is observed, so that series of unequal length (or with their ends dropped) are
    stretched onto one length; a channel with one observation becomes that constant.

    Args:
        batch: `[B, T, C]` series with their own times and masks.
        length: the common length L.

    Returns:
        `[B, C, L]` float64 values (aeon's collection layout).
    """
    times = batch.times.double().numpy()
    values, mask = batch.values.double().numpy(), batch.mask.numpy()
    out = np.empty((batch.batch_size, batch.channels, length))
    for b in range(batch.batch_size):
        for c in range(batch.channels):
            seen = mask[b, :, c]
            t, v = times[b, seen], values[b, seen, c]
            out[b, c] = np.interp(np.linspace(t[0], t[-1], length), t, v)
    return out


def euclidean_pairwise(queries: Tensor, references: Tensor) -> Tensor:
    """Squared Euclidean distances `[Q, R]` between `[Q, C, L]` queries and `[R, C, L]` references."""
    return torch.cdist(queries.flatten(1), references.flatten(1)).square()


def dtw_pairwise(queries: Tensor, references: Tensor, chunk: int = 4096) -> Tensor:
    """Dynamic time warping distances `[Q, R]` between univariate `[Q, 1, L]` and `[R, 1, L]` series.

    Full window, squared pointwise cost, no square root at the end (aeon's `dtw_distance`):
    $D_{i,j} = (x_i - y_j)^2 + \\min(D_{i-1,j}, D_{i,j-1}, D_{i-1,j-1})$, distance $D_{L-1,L-1}$.
    The recurrence is computed one anti-diagonal $i + j = d$ at a time for all pairs at once
    (the cells of a diagonal depend only on the two before it), `chunk` pairs per pass.

    Reference: Sakoe and Chiba, "Dynamic programming algorithm optimization for spoken word
    recognition", IEEE Trans. ASSP 26(1), 1978.
    """
    pairs = torch.cartesian_prod(torch.arange(len(queries)), torch.arange(len(references)))
    out = torch.empty(len(pairs), dtype=queries.dtype)
    for start in range(0, len(pairs), chunk):
        rows = pairs[start : start + chunk]
        out[start : start + chunk] = _dtw(queries[rows[:, 0], 0], references[rows[:, 1], 0])
    return out.view(len(queries), len(references))


def _dtw(x: Tensor, y: Tensor) -> Tensor:
    """DTW of each row pair of `[P, L]` x and y by anti-diagonal wavefront; `[P]`."""
    length = x.shape[1]
    inf = torch.tensor(float("inf"), dtype=x.dtype)
    rows = torch.arange(length)
    pad = inf.expand(len(x), 1)
    before, last = None, None  # diagonals d - 2 and d - 1, indexed by i
    for d in range(2 * length - 1):
        columns = d - rows
        inside = (columns >= 0) & (columns < length)
        cost = (x - y[:, columns.clamp(0, length - 1)]).square().masked_fill(~inside, inf)
        if last is None:
            current = cost.masked_fill(rows != 0, inf)
        else:
            up = torch.cat([pad, last[:, :-1]], dim=1)  # (i - 1, j)
            diagonal = torch.cat([pad, before[:, :-1]], dim=1) if before is not None else up.new_full(up.shape, inf)
            current = cost + torch.minimum(torch.minimum(up, last), diagonal)  # last: (i, j - 1)
        before, last = last, current
    return last[:, length - 1]


def dtw_distances(queries: Tensor, references: Tensor) -> Tensor:
    """`dtw_pairwise`, by aeon's numba code where it runs (ten times faster on 2 cores; equal to
    1e-12 in the tests), else by the torch wavefront."""
    if not aeon_runs():
        return dtw_pairwise(queries, references)
    from aeon.distances import dtw_pairwise_distance  # the bench extra, not a dependency

    return torch.as_tensor(dtw_pairwise_distance(queries.double().numpy(), references.double().numpy()))


def nearest_neighbour_accuracy(
    distance: Callable[[Tensor, Tensor], Tensor], train: np.ndarray, train_y: Tensor, test: np.ndarray, test_y: Tensor
) -> float:
    """Test accuracy of the 1-nearest-neighbour classifier under `distance` (`[B, C, L]` inputs)."""
    distances = distance(torch.as_tensor(test), torch.as_tensor(train))
    return float((train_y[distances.argmin(dim=1)] == test_y).double().mean())


def minirocket_accuracy(train: np.ndarray, train_y: Tensor, test: np.ndarray, test_y: Tensor, seed: int) -> float:
    """Test accuracy of aeon's MiniRocket classifier (its 10,000 features and ridge), seeded.

    Reference: Dempster, Schmidt and Webb, "MiniRocket: a very fast (almost) deterministic
    transform for time series classification", KDD 2021.
    """
    from aeon.classification.convolution_based import MiniRocketClassifier  # the bench extra, not a dependency

    classifier = MiniRocketClassifier(random_state=seed, n_jobs=1).fit(train, train_y.numpy())
    return float((classifier.predict(test) == test_y.numpy()).mean())
