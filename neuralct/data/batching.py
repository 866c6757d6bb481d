"""Minibatch indices grouped by series length, so that a short series does not pay for a long one's padding.

A minibatch is trimmed to its longest series ([`select`][neuralct.data.IrregularBatch.select]),
but a solver steps a whole minibatch together: in a neural CDE, the vector field was evaluated
on a 100-point series' row 9 556 times next to a 1 344-point series, against 796 times alone
(its per-sample `vf_evals` count only the 796). `minibatch_indices` puts series of similar
lengths together.

```python
import torch
from neuralct.data.batching import minibatch_indices

lengths = torch.tensor([100, 1344, 90, 1200, 120, 1300, 95, 1250])
batches = minibatch_indices(lengths, 4, torch.Generator().manual_seed(0))
sorted(sorted(lengths[b].tolist()) for b in batches)  # -> [[90, 95, 100, 120], [1200, 1250, 1300, 1344]]
```
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .._checks import check_int
from ..errors import InvalidInputError
from .series import IrregularBatch

JITTER = 0.1
"""The largest relative change of a length in the sort key of `minibatch_indices`."""


def minibatch_indices(
    lengths: Tensor, batch_size: int, generator: torch.Generator | None = None, *, by_length: bool = True
) -> tuple[Tensor, ...]:
    """The sample indices of each minibatch of one pass, grouped by length or at random.

    With `by_length` and a `generator`, samples are sorted by their length jittered at random by
    up to `JITTER` (10%) either way, $\\ell_b (1 + 0.1\\,u_b)$ with $u_b \\sim U(-1, 1)$, cut into
    consecutive minibatches of `batch_size`, and the minibatches visited in random order. The
    jitter keeps minibatches tight (samples whose lengths differ by more than a factor
    1.1 / 0.9 never trade places, so a minibatch's longest series exceeds the one length
    sorting would give by at most that factor) while samples of similar lengths (equal ones
    above all) meet in new combinations every epoch. Without a `generator` the order is by
    length, ties by index.

    Without `by_length`: a random permutation cut into minibatches
    (`torch.randperm(B, generator=generator).split(batch_size)`), or `0..B-1` in order without
    a `generator`.

    Processes that draw from generators in the same state get the same minibatches, as
    distributed training needs.

    Args:
        lengths: `[B]` the number of real positions of each sample.
        batch_size: samples per minibatch (the last one may have fewer).
        generator: the CPU random source; `None` for a fixed order.
        by_length: group samples of similar lengths.

    Returns:
        `ceil(B / batch_size)` index tensors `[<= batch_size]` covering `0..B-1` once.

    Raises:
        InvalidInputError: `lengths` not a 1-D integer tensor, or `batch_size` not a positive int.
    """
    if not isinstance(lengths, Tensor) or lengths.ndim != 1 or lengths.is_floating_point() or lengths.numel() == 0:
        raise InvalidInputError(f"`lengths` must be a non-empty integer tensor [B]; got {lengths!r}")
    check_int("batch_size", batch_size)
    count, lengths = lengths.shape[0], lengths.cpu()
    if not by_length:
        order = torch.arange(count) if generator is None else torch.randperm(count, generator=generator)
        return order.split(batch_size)
    if generator is None:
        return lengths.argsort(stable=True).split(batch_size)
    noise = 2 * torch.rand(count, generator=generator, dtype=torch.float64) - 1
    batches = (lengths * (1 + JITTER * noise)).argsort().split(batch_size)
    return tuple(batches[i] for i in torch.randperm(len(batches), generator=generator).tolist())


def prepared_minibatches(
    data: IrregularBatch, rows: Sequence[Tensor], processes: int = 0, device: torch.device | str | None = None
) -> Iterator[IrregularBatch]:
    """`data.select(r).to(device)` for each `r` in `rows`, in order; with `processes > 0` the
    selections are made ahead by that many background processes (a `torch.utils.data.DataLoader`),
    so that preparing the next minibatches overlaps the current step.

    Args:
        data: the split, on the CPU when `processes > 0` (worker processes cannot share a GPU's tensors).
        rows: the sample indices of each minibatch, `[n_i]` each.
        processes: background processes (0: select in this process, when asked for).
        device: where the minibatches go (`None`: where `data` is).

    Raises:
        InvalidInputError: `processes` not an int >= 0, or `processes > 0` with `data` off the CPU.
    """
    check_int("processes", processes, 0)
    if processes == 0:
        return (data.select(index).to(device) for index in rows)
    if data.values.device.type != "cpu":
        raise InvalidInputError(f"`data` must be on the CPU to be prepared by processes; got {data.values.device}")
    loader = DataLoader(_Selections(data, list(rows)), batch_size=None, num_workers=processes, collate_fn=_as_is)
    return (batch.to(device) for batch in loader)


class _Selections(Dataset):
    """The minibatches of one pass as a map-style dataset (what a `DataLoader` worker builds)."""

    def __init__(self, data: IrregularBatch, rows: list[Tensor]) -> None:
        self.data, self.rows = data, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> IrregularBatch:
        return self.data.select(self.rows[index])


def _as_is(batch: IrregularBatch) -> IrregularBatch:
    """The `DataLoader`'s collation: a minibatch is already one batch."""
    return batch
