"""Outputs: the saved blocks of a finished solve mapped back to `[B, K, *state]`."""

from __future__ import annotations

import torch
from torch import Tensor

from ..problem import Problem
from .state import SaveBuffer


def gather_saves(problem: Problem, saves: SaveBuffer, y: Tensor) -> Tensor:
    """`[B, K, *state]` outputs from the save blocks (`y` `[B, *state]` the final state, for
    its shape); outputs never reached are NaN."""
    num_saves = problem.ts.shape[1]
    blocks = saves.blocks
    in_one_block = len(blocks) == 2 and blocks[1].shape[1] == num_saves - 1
    if in_one_block and bool((saves.next_save == num_saves).all()):
        # Every sample wrote all its outputs after the first in one block: they are in order.
        return torch.cat(blocks, dim=1)
    widths = torch.tensor([block.shape[1] for block in blocks], device=y.device)
    offsets = torch.cumsum(widths, 0) - widths
    values = torch.cat(blocks + (torch.full_like(y, torch.nan)[:, None],), dim=1)
    ends = torch.stack(saves.ends, dim=1)
    positions = torch.arange(num_saves, device=y.device).expand(y.shape[0], -1).contiguous()
    block = torch.searchsorted(ends, positions, right=True).clamp_max(len(blocks) - 1)
    start = torch.stack(saves.starts, dim=1).gather(1, block)
    column = offsets[block] + positions - start
    filled = positions < saves.next_save[:, None]
    column = torch.where(filled, column, values.shape[1] - 1)
    return values[torch.arange(y.shape[0], device=y.device)[:, None], column]


def hold_past_ends(ys: Tensor, lengths: Tensor | None) -> Tensor:
    """`ys` `[B, K, *state]` with every sample's outputs past its end (columns
    `k >= lengths[b]`, `lengths` `[B]`) replaced by its last one, `ys[b, lengths[b] - 1]`;
    unchanged when `lengths` is `None`. A gather, so the padding's gradient reaches that
    last output."""
    if lengths is None:
        return ys
    positions = torch.arange(ys.shape[1], device=ys.device)
    index = torch.minimum(positions, (lengths - 1)[:, None])
    return ys.gather(1, index.reshape(index.shape + (1,) * (ys.ndim - 2)).expand_as(ys))
