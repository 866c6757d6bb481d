"""What the irregular-series baselines share: the empty state, the observation and its gap."""

from __future__ import annotations

from torch import Tensor

from ...data.series import IrregularBatch, check_batch


def zero_state(batch: IrregularBatch, channels: int, width: int) -> Tensor:
    """`[B, width]` zeros in the batch's value dtype, after `check_batch(batch, channels)`."""
    check_batch(batch, channels)
    return batch.values.new_zeros(batch.batch_size, width)


def observation(batch: IrregularBatch, k: int) -> tuple[Tensor, Tensor]:
    """`(x [B, C], m [B, C])`: the values at position `k` (0 where unobserved) and the mask as numbers."""
    x = batch.values[:, k]
    return x, batch.mask[:, k].to(x.dtype)


def gap(batch: IrregularBatch, k: int) -> Tensor:
    """`[B, 1]` time since the previous position, $t_k - t_{k-1}$ (0 at k = 0), in the value dtype.

    The difference is taken in the time dtype (times may be float64 over float32 values) and
    only then rounded to the value dtype.
    """
    if k == 0:
        return batch.values.new_zeros(batch.batch_size, 1)
    return (batch.times[:, k] - batch.times[:, k - 1]).to(batch.values.dtype).unsqueeze(1)
