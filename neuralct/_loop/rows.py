"""Row-wise tensor helpers: every loop tensor is batch-first, one row per sample."""

from __future__ import annotations

import torch
from torch import Tensor


def gather_row(table: Tensor, index: Tensor) -> Tensor:
    """`[B]` entries `table[b, index[b]]` of a `[B, N]` table for a `[B]` index (clamped to N - 1)."""
    return table.gather(1, index.clamp_max(table.shape[1] - 1)[:, None]).squeeze(1)


def expand_like(mask: Tensor, like: Tensor) -> Tensor:
    """`mask` `[B, ...]` with trailing unit dimensions up to `like.ndim`, to broadcast against `like`."""
    return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))


def where_rows(rows: Tensor, new: Tensor, old: Tensor) -> Tensor:
    """`[B, ...]` rows of `new` where the `[B]` boolean `rows` holds, of `old` elsewhere."""
    return torch.where(rows.reshape(rows.shape + (1,) * (new.ndim - 1)), new, old)


def finite_rows(y: Tensor) -> Tensor:
    """`[B]` whether every entry of each row of `y` `[B, *state]` is finite.

    In single and double precision a row's sum stands in for its entries (NaN or infinite
    if any entry is, and cheaper than an elementwise test): a row whose finite entries sum
    past the largest float counts as non-finite too, a state that has blown up anyway.
    """
    flat = y if y.ndim == 2 else y.flatten(1)
    if flat.dtype in (torch.float16, torch.bfloat16):
        return torch.isfinite(flat).all(dim=1)
    total = flat.sum(dim=1)
    return (total - total) == 0
